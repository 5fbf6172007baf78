"""Remediation with replicas (wt-ha), in-process on the remediation harness: a follower records an approval and
executes nothing; the leader picks the approval up and runs the fix once, even when its own click and the pick-up
race, or a second process picks up too; a new leader interrupts what a dead leader left running, never re-runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.chat.admission import Subject
from bot.remediation import approvals as ap
from bot.store import Store
from tests.support.stores import Backend
from tests.unit.test_monitor_harness import T0
from tests.unit.test_remediation_harness import APPROVER, REQUESTER, TARGET, harness


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, clock=lambda: T0) as opened:
        yield opened


def approver() -> Subject:
    return Subject(user_id=APPROVER, source="slack", team_id="T1")


async def test_a_click_on_a_follower_is_recorded_there_and_run_once_by_the_leader(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    leader = h.remediation
    follower = h.new_remediation()
    follower.leading = False
    request = await follower.request("restart", TARGET, requested_by=REQUESTER, team_id="T1", channel="C0ALERTS1")
    answer = (await follower.click(request.id, who=approver(), approve=True)).en
    assert "will run now" in answer.lower() or "approved" in answer.lower(), answer
    await follower._tasks.drain()
    assert await h.status(request) is ap.Status.APPROVED and h.stack.fixes == [], "the follower ran nothing"
    await leader.pickup_once()
    await leader.pickup_once()  # seen again while it runs: not started twice
    await leader._tasks.drain()
    assert len(h.stack.fixes) == 1 and await h.status(request) is ap.Status.SUCCEEDED
    await leader.pickup_once()
    await leader._tasks.drain()
    assert len(h.stack.fixes) == 1


async def test_a_click_on_the_leader_racing_two_pick_ups_runs_the_fix_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    leader = h.remediation
    other = h.new_remediation()  # another process picking up (the token rules it out; the CAS would still hold)
    request = await h.request()
    await leader.click(request.id, who=approver(), approve=True)  # spawns the execution
    await leader.pickup_once()
    await other.pickup_once()
    await leader._tasks.drain()
    await other._tasks.drain()
    assert len(h.stack.fixes) == 1 and await h.status(request) is ap.Status.SUCCEEDED
    assert [e["kind"] for e in await store.audit_entries(limit=100)].count("interrupted") == 0


async def test_a_new_leader_interrupts_the_fix_a_dead_leader_left_running_and_never_runs_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    h.remediation.leading = False  # only records the approval
    request = await h.request()
    await h.remediation.click(request.id, who=approver(), approve=True)
    row = await store.get_request(request.id)
    assert row is not None
    approved = ap.ApprovalRequest.model_validate_json(row[1])
    assert approved.status is ap.Status.APPROVED
    # The dead leader got as far as "running" (stored before the command runs), then died.
    running = ap.start(approved, now=T0)
    assert await store.update_request(approved.id, expected_version=approved.version, new_version=running.version,
                                      status=running.status.value, data=running.model_dump_json())
    new_leader = h.new_remediation()
    await new_leader.start(pickup=True)
    await new_leader.pickup_once()
    await new_leader.stop()
    assert await h.status(request) is ap.Status.INTERRUPTED
    assert h.stack.fixes == [], "an interrupted fix is never re-run"
    assert "interrupted" in [e["kind"] for e in await store.audit_entries(limit=100)]
