"""Issue 13, defect 6: one database error (disk full) ended a target's canary until the bot restarted.

Supervised-task tests: the real Monitor's loops run against a real Store whose writes fail (injected), and a real
WebSocket server on loopback for the canary. Each loop logs the error, counts it (`on_error`, which the app turns
into wscheck_background_errors_total) and goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bot.monitoring import incidents as inc
from bot.monitoring.monitor import Monitor
from bot.settings import load_settings
from bot.store import Store, StoreError
from checks.config import Target
from checks.models import Status
from tests.unit.test_monitor_harness import Clock, RecordingSink, report


class DiskFull:
    """Makes the store's transactions fail `times` times, as a full disk would."""

    def __init__(self, store: Store, times: int) -> None:
        self.left = times
        self.original = store.transaction

        def transaction() -> Any:
            if self.left > 0:
                self.left -= 1
                raise StoreError("database or disk is full")
            return self.original()

        store.transaction = transaction  # type: ignore[method-assign]


@pytest.fixture
async def store(db: str) -> AsyncIterator[Store]:
    async with await Store.open(db, clock=Clock()) as opened:
        yield opened


def make_monitor(store: Store, target: Target, reports: list[Any], canary_backoff: float = 1.0) -> Monitor:
    async def run(name: str, checks: Any = ()) -> Any:
        return reports.pop(0) if reports else report(Status.OK)

    service = SimpleNamespace(targets=(target,), target=lambda name: target, run=run)
    settings = load_settings(None, alert_channel="C0ALERTS1", canary_ping_interval="1s")
    monitor = Monitor(settings, cast(Any, service), store, RecordingSink(), clock=Clock(),
                      canary_backoff=canary_backoff)
    monitor.states[target.name] = inc.TargetState(target=target.name)
    return monitor


async def test_the_canary_survives_store_errors_and_keeps_watching(store: Store) -> None:
    connections: list[int] = []
    reconnected = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        connections.append(1)
        if len(connections) >= 3:
            reconnected.set()
        await ws.close()  # the drop a canary exists to notice

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        target = Target(name="web", pm2_app="chat", app_port=3000, app_dir="/srv/chat",
                        public_url=f"http://127.0.0.1:{port}/")
        monitor = make_monitor(store, target, [], canary_backoff=0.05)  # the reconnects, not their pacing
        errors: list[str] = []
        monitor.on_error.append(errors.append)
        DiskFull(store, times=2)
        task = asyncio.ensure_future(monitor.canary(target))
        try:
            await asyncio.wait_for(reconnected.wait(), 30)
        finally:
            monitor.stop_event.set()
            await asyncio.wait_for(task, 10)
    assert errors.count("canary") == 2, errors
    assert len(connections) >= 3


async def test_probes_and_ticks_survive_store_errors(store: Store) -> None:
    target = Target(name="web", pm2_app="chat", app_port=3000, app_dir="/srv/chat")
    failing = report(Status.FAIL, pm2_status="errored")
    monitor = make_monitor(store, target, [failing, failing, failing, failing])
    errors: list[str] = []
    monitor.on_error.append(errors.append)
    DiskFull(store, times=3)
    await monitor.full_probe("web")  # each of these raised out of the job before
    await monitor.fast_probe("web")
    await monitor.tick_all()
    assert errors == ["full", "fast", "tick"], errors
    await monitor._tasks.drain()
    # The store works again: the very same loops go on and the incident machine sees the failure.
    await monitor.full_probe("web")
    assert monitor.states["web"].consecutive_failures >= 1
    await monitor.stop()
