"""tests/unit/test_takeover_approvals.py again, on the session's real PostgreSQL server: the same harness and the
same assertions, only the store's engine differs (the `backend` fixture)."""

from __future__ import annotations

import pytest

from tests.support.stores import PostgresBackend
from tests.unit.test_takeover_approvals import *  # noqa: F403 - the same tests, collected here a second time


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend
