"""Shared by the integration tests: one SSH connection to the sandbox per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from checks.config import Target
from checks.transport.ssh import SSHTransport
from tests.support.stores import PostgresBackend


@pytest.fixture(scope="module")
async def ssh(sandbox_target: Target) -> AsyncIterator[SSHTransport]:
    transport = SSHTransport(sandbox_target)
    yield transport
    await transport.aclose()


@pytest.fixture
async def postgres_backend(postgres: Any) -> AsyncIterator[PostgresBackend]:
    """A fresh database on the session's real PostgreSQL server (tests/support/postgres.py), dropped afterwards.
    The engine-neutral test modules, collected again here, take it as their `backend`."""
    name = await postgres.create_database()
    try:
        yield PostgresBackend(postgres.url(name))
    finally:
        await postgres.drop_database(name)
