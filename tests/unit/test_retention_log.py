"""The hourly retention pass logs what it deleted, and nothing when it deleted nothing (no `purged ` line)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from bot.ops.metrics import retention_loop


@pytest.mark.parametrize(("counts", "line"), [
    ({"audit": 0, "outbox": 0}, None),
    ({"audit": 3, "outbox": 0}, "retention: purged audit=3"),
])
async def test_a_pass_logs_only_what_it_deleted(caplog: pytest.LogCaptureFixture, counts: dict[str, int],
                                                line: str | None) -> None:
    stop = asyncio.Event()

    async def purge(_: datetime) -> dict[str, int]:
        stop.set()  # one pass
        return counts

    with caplog.at_level(logging.INFO, logger="bot.ops.metrics"):
        await asyncio.wait_for(retention_loop(purge, keep=60, stop=stop), 5)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention:")]
    assert said == ([line] if line else [])
