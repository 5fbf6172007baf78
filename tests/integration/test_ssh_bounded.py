"""Issue 13 defect 1, at the transport: every remote command is bounded on the target, and a connection
whose channels the server refuses is replaced (real sshd of the sandbox, MaxSessions 10)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from checks.config import Target
from checks.transport.base import CommandTimeout
from checks.transport.ssh import KILL_AFTER, SSHTransport, remote_argv

pytestmark = pytest.mark.sandbox


def running(needle: str) -> list[int]:
    """Pids on this machine (the sandbox's target) whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_the_remote_argv_is_bounded_by_timeout() -> None:
    assert remote_argv(["pm2", "jlist"], 10.0) == ["timeout", "-k", f"{KILL_AFTER:g}", "10", "pm2", "jlist"]
    assert remote_argv(["sleep", "1"], 2.5)[3] == "2.5"


async def test_a_timed_out_command_is_gone_from_the_target(sandbox_target: Target) -> None:
    marker = f"{30 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"  # a sleep nobody else runs
    transport = SSHTransport(sandbox_target)
    try:
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            await transport.run(["sh", "-c", f"sleep {marker}; echo late"], timeout=1.0)
        assert time.monotonic() - started < 1.0 + KILL_AFTER + 1.5
        for _ in range(int((KILL_AFTER + 2) / 0.05)):  # /proc has nothing to wait on: poll it
            if not running(f"sleep {marker}"):
                break
            await asyncio.sleep(0.05)
        assert running(f"sleep {marker}") == [], "the command outlived its timeout on the target"
        # and the connection is still good for the next one
        assert (await transport.run(["true"], timeout=5)).ok
    finally:
        await transport.aclose()


async def test_refused_channels_rebuild_the_connection(sandbox_target: Target) -> None:
    """Ten sessions held open fill sshd's MaxSessions: the next command gets a fresh connection, not an error."""
    transport = SSHTransport(sandbox_target, max_channels=32)
    marker = f"{40 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"
    try:
        holders = [asyncio.ensure_future(transport.run(["sleep", marker], timeout=4.0)) for _ in range(10)]
        deadline = time.monotonic() + 10
        while len(running(f"sleep {marker}")) < 10:
            assert time.monotonic() < deadline, "the ten sessions never all started"
            await asyncio.sleep(0.05)
        result = await transport.run(["echo", "fresh"], timeout=5)
        assert result.ok and result.stdout.strip() == "fresh"
        assert transport.connects == 2, "the refused connection was not replaced"
        await asyncio.gather(*holders, return_exceptions=True)
    finally:
        await transport.aclose()
