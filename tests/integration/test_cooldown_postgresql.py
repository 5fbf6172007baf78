"""tests/unit/test_cooldown.py again on the session's real PostgreSQL server: the fix cooldown's count of executions
is the store's SQL, which must count the same on both engines."""

from __future__ import annotations

import pytest

from tests.support.stores import PostgresBackend
from tests.unit.test_cooldown import *  # noqa: F403 - the same tests, collected here a second time


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend
