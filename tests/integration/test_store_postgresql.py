"""The store tests again, on a real PostgreSQL server: the same test functions as tests/unit/test_store.py (imported
below), with `backend` overridden to a fresh database of the session's private server (tests/support/postgres.py).
Same schema, same migrations, same outbox, append-only audit, compare-and-set and lock behaviour on both engines.
PostgreSQL-only behaviour (reconnects, the advisory lock's holder, URL secrets) is in test_store_postgresql_only.py.
"""

from __future__ import annotations

import pytest

from tests.support.stores import PostgresBackend
from tests.unit.test_store import *  # noqa: F403 - the engine-neutral store tests, collected here a second time


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend
