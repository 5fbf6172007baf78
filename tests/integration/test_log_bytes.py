"""Issue 13 defect 13: a 30 MB log line is not pulled on every run (real sandbox over SSH).

The line is appended to the sandbox app's PM2 error log and taken back out (truncated to the old size) after.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from checks.config import Target
from checks.models import Status
from checks.runner import run_checks
from checks.transport.base import CommandResult
from checks.transport.ssh import SSHTransport

pytestmark = pytest.mark.sandbox

LINE_BYTES = 30 * 1024 * 1024
#: What a read of the log may cost at most (checks/parsers/limits.py LOG_TAIL_BYTES, plus nothing).
READ_LIMIT = 128 * 1024


class Recording(SSHTransport):
    """The real SSH transport, keeping each command's output size."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.sizes: dict[tuple[str, ...], int] = {}

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        result = await super().run(argv, timeout=timeout)
        self.sizes[tuple(argv)] = len(result.stdout.encode())
        return result

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        """wt-perf: commands asked together run as one batch, not through `run`; their sizes count the same."""
        futures = super().start_many(argvs, timeout=timeout)
        for fut in futures:
            fut.add_done_callback(self._note)
        return futures

    def _note(self, fut: asyncio.Future[CommandResult]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            result = fut.result()
            self.sizes[result.argv] = len(result.stdout.encode())


def append_giant_line(path: Path) -> int:
    size = path.stat().st_size
    with path.open("a") as log:
        log.write("Error: " + "x" * LINE_BYTES + "\n")
    return size


async def test_a_giant_log_line_costs_a_bounded_read(sandbox: Any, sandbox_target: Target) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    log = Path(sandbox.pm2_error_log)
    before = await asyncio.to_thread(append_giant_line, log)
    transport = Recording(sandbox_target)
    try:
        report = await run_checks(sandbox_target, transport, ["pm2.logs"])
    finally:
        await transport.aclose()
        os.truncate(log, before)
    (result,) = report.checks
    assert result.status is not Status.ERROR, result
    reads = {argv: size for argv, size in transport.sizes.items() if argv[0] == "tail"}
    assert reads, transport.sizes
    assert max(reads.values()) <= READ_LIMIT, f"log reads {reads} bytes"
