"""tests/unit/test_remediation_harness.py again, on the session's real PostgreSQL server: the same harness and the
same assertions, only the store's engine differs (the `backend` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.stores import Backend, PostgresBackend
from tests.unit.test_remediation_harness import *  # noqa: F403 - the same tests, collected here a second time


@pytest.fixture
async def backend(postgres: Any) -> AsyncIterator[Backend]:
    name = await postgres.create_database()
    try:
        yield PostgresBackend(postgres.url(name))
    finally:
        await postgres.drop_database(name)
