"""Monitor in-process: a fake clock, a temporary store, a recording sink, and a stub service that hands out
prepared reports. Covers set-aside then heal, confirmation opening an incident, and its resolution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

import bot.monitoring.incidents as inc
import bot.monitoring.monitor as monitor_module
from bot.ha import shards
from bot.monitoring.monitor import Monitor
from bot.settings import load_settings
from bot.store import Store
from checks.config import Target
from checks.models import Cause, CheckResult, Status, TargetReport
from tests.support.sinks import SlackRendering
from tests.support.stores import Backend

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
WEB = Target(name="web", pm2_app="chat", app_port=3000, app_dir="/srv/chat")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class RecordingSink(SlackRendering):
    """Every post and update, in order; posts get increasing ts like Slack's."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        self.posts.append({"channel": channel, "text": text, "thread_ts": thread_ts, "metadata": metadata})
        return f"{1000 + len(self.posts)}.000100"

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.updates.append({"channel": channel, "ts": ts, "text": text})

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        return None


def report(status: Status, *, pm2_status: str = "online", uptime_s: float = 600.0,
           at: datetime = T0) -> TargetReport:
    pm2 = CheckResult(id="pm2.status", status=status if pm2_status != "online" else Status.OK, summary="pm2",
                      details={"instances": [{"status": pm2_status, "uptime_s": uptime_s}]})
    http = CheckResult(id="http.local", status=status, summary="http")
    causes = (Cause(cause="pm2_not_online", summary="down"),) if status is Status.FAIL else ()
    return TargetReport(target="web", host="local", started_at=at, checks=(pm2, http), diagnosis=causes)


class Harness:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.clock = clock
        self.sink = RecordingSink()
        self.reports: list[TargetReport] = []
        self.runs = 0

        async def run(name: str, checks: Any = ()) -> TargetReport:
            self.runs += 1
            return self.reports.pop(0)

        service = SimpleNamespace(targets=(WEB,), target=lambda name: WEB, run=run)
        settings = load_settings(None, alert_channel="C0ALERTS1")
        self.monitor = Monitor(settings, cast(Any, service), store, self.sink, clock=clock)
        self.monitor.states["web"] = inc.TargetState(target="web")

    async def deliver(self) -> None:
        await self.monitor.outbox.drain_once()


@pytest.fixture
async def harness(backend: Backend) -> AsyncIterator[Harness]:
    clock = Clock()
    async with await Store.open(backend.url, clock=clock) as store:
        h = Harness(store, clock)
        yield h
        await h.monitor.stop()


async def test_a_restart_that_heals_is_set_aside_and_never_posted(harness: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "RESTART_GRACE", 0.0)  # the recheck waits RESTART_GRACE seconds
    harness.reports.append(report(Status.OK))  # what the recheck sees: the app came up
    events = await harness.monitor.observe("web", report(Status.FAIL, pm2_status="launching"), kind="full")
    assert events == [] and len(harness.monitor._set_aside["web"]) == 1
    await harness.monitor._tasks.drain()  # the recheck runs as a background task: wait for it
    assert harness.runs == 1 and "web" not in harness.monitor._set_aside
    await harness.deliver()
    assert harness.sink.posts == [] and harness.monitor.states["web"].incident is None


async def test_a_confirmed_failure_opens_one_incident_and_recovery_resolves_it(harness: Harness) -> None:
    mon = harness.monitor
    await mon.observe("web", report(Status.FAIL, pm2_status="errored"), kind="full", confirmed=True)
    harness.clock.now += timedelta(seconds=30)
    await mon.observe("web", report(Status.FAIL, pm2_status="errored"), kind="full", confirmed=True)
    await harness.deliver()
    state = mon.states["web"]
    assert state.incident is not None and state.incident.announced
    assert len(harness.sink.posts) == 1 and harness.sink.posts[0]["channel"] == "C0ALERTS1"
    for _ in range(2):  # success_threshold good reports
        harness.clock.now += timedelta(seconds=30)
        await mon.observe("web", report(Status.OK), kind="full")
    await harness.deliver()
    assert mon.states["web"].incident is None
    assert harness.sink.posts[1:] or harness.sink.updates, "the resolution was not posted"


async def test_a_target_handed_to_another_replica_stops_being_probed_here_at_once(harness: Harness) -> None:
    """Sharded: a probe that started before the hand-over is cancelled by it (each target probed by exactly one
    replica), quietly: no error, no observation, nothing committed; other targets' probes are not touched."""
    mon = harness.monitor
    mon.sharded = True
    mon.owned.add("web")
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_run(name: str, checks: Any = ()) -> TargetReport:
        started.set()
        await release.wait()
        return report(Status.FAIL, pm2_status="errored")

    errors: list[str] = []
    mon.on_error.append(errors.append)
    mon.service.run = slow_run  # type: ignore[attr-defined]
    probe = asyncio.ensure_future(mon.full_probe("web"))
    await started.wait()
    await mon.reshard(shards.Moved(dropped=frozenset({"web"})))
    done, _ = await asyncio.wait({probe}, timeout=5)  # not wait_for: its own cancel on timeout would end it too
    assert probe in done, "the probe went on after its target was handed over"
    assert not probe.cancelled() and probe.exception() is None and errors == []
    assert mon.states["web"].consecutive_failures == 0 and mon.states["web"].last_observation_at is None
    assert "web" not in mon._probing and "web" not in mon.owned
    release.set()
