"""The alert hold of the bot's own fix outlives its leader (issue 14 leftovers, wt-ops): the real Monitor on the
monitor harness holds a target's alerts while a fix runs; the hold is in the store, so a new Monitor on the same
store (a new leader after a SIGKILL: nothing in memory survives) keeps holding until the same bound, and the hold
ends by itself. Engine-neutral (the `backend` fixture): tests/integration/test_fix_hold_handover_postgresql.py runs
the same tests on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.store import Store
from checks.models import Status
from tests.support.stores import Backend
from tests.unit.test_fix_hold import restart_window
from tests.unit.test_monitor_harness import T0, Clock, Harness, report
from wsmsg import verbatim


@pytest.fixture
async def store_and_clock(backend: Backend) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock()
    async with await Store.open(backend.url, clock=clock) as store:
        yield store, clock


async def successor(store: Store, clock: Clock) -> Harness:
    """A new leader: a fresh Monitor (nothing of the old one's memory), which restores what the store holds."""
    h = Harness(store, clock)
    await h.monitor.restore_holds()
    return h


async def test_the_store_keeps_one_hold_per_target_and_returns_only_those_in_force(
    store_and_clock: tuple[Store, Clock]
) -> None:
    store, _ = store_and_clock
    await store.set_fix_hold(target="web", request_id="R-1", action="restart", until=T0 + timedelta(seconds=60))
    await store.set_fix_hold(target="web", request_id="R-2", action="rebuild", until=T0 + timedelta(seconds=90),
                             verified=True)  # a newer fix replaces the older hold
    await store.set_fix_hold(target="api", request_id="R-3", action="restart", until=T0 + timedelta(seconds=10))
    assert await store.fix_holds(now=T0) == [
        {"target": "api", "request_id": "R-3", "action": "restart", "until": T0 + timedelta(seconds=10),
         "verified": False},
        {"target": "web", "request_id": "R-2", "action": "rebuild", "until": T0 + timedelta(seconds=90),
         "verified": True},
    ]
    assert [h["target"] for h in await store.fix_holds(now=T0 + timedelta(seconds=10))] == ["web"]  # api's ended
    assert not await store.clear_fix_hold("web", request_id="R-1")  # not the hold of R-1 any more: left alone
    assert await store.clear_fix_hold("web", request_id="R-2")
    assert await store.fix_holds(now=T0) == [{"target": "api", "request_id": "R-3", "action": "restart",
                                              "until": T0 + timedelta(seconds=10), "verified": False}]


async def test_a_new_leader_keeps_holding_a_running_fix_then_the_hold_ends_by_itself(
    store_and_clock: tuple[Store, Clock]
) -> None:
    store, clock = store_and_clock
    old = Harness(store, clock)
    await old.monitor.hold("web", request_id="R-1", action="restart", seconds=60)
    # The old leader dies here (SIGKILL: no release). The new one starts with nothing in memory.
    new = await successor(store, clock)
    assert new.monitor.holds["web"].request_id == "R-1"
    assert new.monitor.holds["web"].until == T0 + timedelta(seconds=60)
    await restart_window(new)  # the app stopping under the fix, twice: would open and announce an incident
    await new.deliver()
    assert new.sink.posts == [], "the new leader paged during the fix's hold"
    assert new.monitor.states["web"].incident is not None  # the machine ran underneath, unannounced

    clock.now = T0 + timedelta(seconds=61)  # past the bound: the hold ends by itself and the incident is announced
    await new.monitor.tick_all()
    await new.deliver()
    assert len(new.sink.posts) == 1 and "pm2_not_online" in new.sink.posts[0]["text"]
    assert "web" not in new.monitor.holds and await store.fix_holds(now=T0) == []  # forgotten in the store too


async def test_a_verified_fix_hands_over_its_short_hold_which_ends_once_settled(
    store_and_clock: tuple[Store, Clock]
) -> None:
    store, clock = store_and_clock
    old = Harness(store, clock)
    await old.monitor.hold("web", request_id="R-2", action="restart", seconds=600)
    await restart_window(old)
    await old.monitor.release("web", request_id="R-2", healthy=True, outcome=verbatim("verified healthy"))
    (row,) = await store.fix_holds(now=clock.now)
    grace = old.monitor.settings.check_interval * (old.monitor.settings.success_threshold + 1)
    assert row["verified"] is True and row["until"] == clock.now + timedelta(seconds=grace)

    new = await successor(store, clock)
    assert new.monitor.holds["web"].verified
    new.monitor.states["web"] = old.monitor.states["web"]  # what Monitor.start loads from the store
    for _ in range(3):  # healthy looks: the machine settles, nothing is announced, the hold goes
        clock.now += timedelta(seconds=5)
        await new.monitor.observe("web", report(Status.OK), kind="full")
        await new.monitor.tick_all()
    await new.deliver()
    assert new.sink.posts == [] and new.sink.updates == []
    assert "web" not in new.monitor.holds and await store.fix_holds(now=T0) == []


async def test_a_fix_that_did_not_verify_leaves_no_hold_to_hand_over(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    old = Harness(store, clock)
    await old.monitor.hold("web", request_id="R-3", action="restart", seconds=600)
    await old.monitor.release("web", request_id="R-3", healthy=False, outcome=verbatim("still failing"))
    assert await store.fix_holds(now=clock.now) == []
    new = await successor(store, clock)
    assert new.monitor.holds == {}


async def test_a_hold_that_ended_before_the_takeover_is_not_restored(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    old = Harness(store, clock)
    await old.monitor.hold("web", request_id="R-4", action="restart", seconds=30)
    clock.now += timedelta(seconds=31)
    new = await successor(store, clock)
    assert new.monitor.holds == {}
    await restart_window(new)
    await new.deliver()
    assert len(new.sink.posts) == 1  # alerts as usual


async def test_sharded_the_owner_holds_what_the_leader_holds_for_its_fix(store_and_clock: tuple[Store, Clock]) -> None:
    """WSCHECK_SHARDS=auto: the leader runs the fix, another replica owns (probes) the target. The owner reads the
    hold from the store; once the leader drops it (the fix did not verify), the owner announces."""
    store, clock = store_and_clock
    leader, owner = Harness(store, clock), Harness(store, clock)
    for h, owns in ((leader, False), (owner, True)):
        h.monitor.sharded = True
        h.monitor.owns = lambda _name, owns=owns: owns  # type: ignore[misc]
    await leader.monitor.hold("web", request_id="R-5", action="restart", seconds=600)
    assert "web" not in owner.monitor.holds  # nothing in the owner's memory: only the store says so
    await restart_window(owner)
    await owner.deliver()
    assert owner.sink.posts == [], "the owner paged during the leader's fix"
    await leader.monitor.release("web", request_id="R-5", healthy=False, outcome=verbatim("still failing"))
    clock.now += timedelta(seconds=2)
    await owner.monitor.observe("web", report(Status.FAIL, pm2_status="stopping"), kind="fast", confirmed=True)
    await owner.deliver()
    assert len(owner.sink.posts) == 1 and "pm2_not_online" in owner.sink.posts[0]["text"]
