"""tests/unit/test_cooldown.py again on the session's real PostgreSQL server: the fix cooldown's count of executions
is the store's SQL, which must count the same on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.stores import Backend, PostgresBackend
from tests.unit.test_cooldown import *  # noqa: F403 - the same tests, collected here a second time


@pytest.fixture
async def backend(postgres: Any) -> AsyncIterator[Backend]:
    name = await postgres.create_database()
    try:
        yield PostgresBackend(postgres.url(name))
    finally:
        await postgres.drop_database(name)
