"""tests/unit/test_remediation_replicas.py again, on the session's real PostgreSQL server (the engine replicas use)."""

from __future__ import annotations

import pytest

from tests.support.stores import PostgresBackend
from tests.unit.test_remediation_replicas import *  # noqa: F403 - the same tests, collected here a second time


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend
