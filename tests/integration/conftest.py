"""Shared by the integration tests: one SSH connection to the sandbox per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from checks.config import Target
from checks.transport.ssh import SSHTransport


@pytest.fixture(scope="module")
async def ssh(sandbox_target: Target) -> AsyncIterator[SSHTransport]:
    transport = SSHTransport(sandbox_target)
    yield transport
    await transport.aclose()
