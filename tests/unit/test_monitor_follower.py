"""The monitor on a follower replica (wt-ha), in-process on the monitor harness: it reads the leader's incident
states from the store for the commands, says a silence in the incident's thread through the outbox (for the
leader to post), never commits a state (its store is fenced: any leader-only write would fail) and posts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot.monitoring.monitor import Monitor
from bot.settings import load_settings
from bot.store import Fenced, Store
from checks.models import Status
from tests.support.stores import Backend
from tests.unit.test_monitor_harness import WEB, Clock, Harness, RecordingSink, report


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[tuple[Store, Store, Clock]]:
    clock = Clock()
    async with await Store.open(backend.url, clock=clock) as leader, \
            await Store.open(backend.url, clock=clock, exclusive=False) as follower:
        follower.fence = lambda: None  # a follower holds no token: a leader-only write would raise Fenced
        yield leader, follower, clock


async def test_a_follower_reads_the_leaders_incident_and_only_queues_its_thread_note(
    stores: tuple[Store, Store, Clock]
) -> None:
    leader_store, follower_store, clock = stores
    leader = Harness(leader_store, clock)
    sink = RecordingSink()
    ran: list[str] = []

    async def run(name: str, checks: Any = ()) -> Any:
        ran.append(name)
        return report(Status.FAIL, pm2_status="errored")

    service = SimpleNamespace(targets=(WEB,), target=lambda name: WEB, run=run)
    follower = Monitor(load_settings(None, alert_channel="C0ALERTS1"), cast(Any, service), follower_store, sink,
                       clock=clock)
    follower.leading = False
    try:
        for _ in range(2):
            await leader.monitor.observe("web", report(Status.FAIL, pm2_status="errored"), kind="full",
                                         confirmed=True)
            clock.now += timedelta(seconds=30)
        await leader.deliver()
        root = leader.monitor.states["web"].incident
        assert root is not None and root.root_ts

        assert "web" in "\n".join(line.en for line in await follower.status_lines())
        assert follower.states["web"].incident is not None
        assert follower.states["web"].incident.root_ts == root.root_ts  # type: ignore[union-attr]

        await follower.silence("web", until=clock.now + timedelta(hours=1), by="U0ALICE")
        manual = await follower.manual_run("web", by="U0ALICE")  # a report for the asker, no state commit
        assert manual.status is Status.FAIL and ran == ["web"]
        with pytest.raises(Fenced):
            await follower_store.save_state("web", "{}")
        assert sink.posts == [] and sink.updates == [], "a follower posts nothing itself"

        await leader.deliver()  # the leader's outbox posts the follower's note, in the incident's thread
        note = leader.sink.posts[-1]
        assert note["thread_ts"] == root.root_ts and "U0ALICE" in note["text"]
        await follower.stop()  # a follower's stop delivers nothing either
        assert sink.posts == []
    finally:
        await leader.monitor.stop()
