"""Background: a failure is logged, never lost; a task cancelled before it ran leaves no un-awaited coroutine."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from bot.ops.tasks import Background


async def test_cancel_right_after_spawn_closes_the_work() -> None:
    started = []

    async def work() -> None:
        started.append(True)
        await asyncio.sleep(3600)

    tasks = Background("test")
    coro = work()
    tasks.spawn(coro, name="never started")
    await tasks.cancel()
    assert not started
    assert len(tasks) == 0
    # Closed, not merely dropped: a dropped un-started coroutine warns "never awaited" when collected.
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_a_failure_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("kaput")

    tasks = Background("outbox")
    with caplog.at_level(logging.ERROR, logger="bot.ops.tasks"):
        tasks.spawn(boom(), name="delivery")
        await tasks.drain()
    assert "outbox: delivery failed" in caplog.text
    assert len(tasks) == 0
