"""Approvals across a change of leader (wt-ops), in-process on the remediation harness.

A follower records an approval for the leader to run. One clicked while no replica leads (the TTL after a leader's
SIGKILL, or a restarted single bot still waiting out its own old lease) must be run by the next leader, not aborted:
the team was told "will run now", and nothing of it ever ran. An approval older than its request's expiry is still
aborted at takeover. And a deposed leader that wakes up late never starts a fix: approved -> running is fenced.
Engine-neutral: tests/integration/test_takeover_approvals_postgresql.py runs them on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.remediation import approvals as ap
from bot.store import Store
from tests.support.stores import Backend
from tests.unit.test_approvals import _in
from tests.unit.test_monitor_harness import T0
from tests.unit.test_remediation_harness import Harness, harness
from tests.unit.test_remediation_replicas import approver


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, clock=lambda: T0) as opened:
        yield opened


async def approved_on_a_follower(h: Harness) -> ap.ApprovalRequest:
    follower = h.new_remediation()
    follower.leading = False
    request = await h.request()
    await follower.click(request.id, who=approver(), approve=True)
    assert await h.status(request) is ap.Status.APPROVED and h.stack.fixes == []
    return request


async def test_an_approval_recorded_while_no_replica_led_is_run_once_by_the_next_leader(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await approved_on_a_follower(h)
    h.clock.now += timedelta(seconds=20)  # the takeover, a TTL later
    leader = h.new_remediation()
    await leader.start(pickup=True)
    await leader.stop()  # its loops (expiry, pick-up) run forever: the pick-up is driven by hand below
    assert await h.status(request) is ap.Status.APPROVED, "kept for the pick-up, not aborted"
    assert h.stack.fixes == []
    runner = h.new_remediation()
    await runner.pickup_once()
    await runner.pickup_once()
    await runner._tasks.drain()
    assert len(h.stack.fixes) == 1 and await h.status(request) is ap.Status.SUCCEEDED
    assert "aborted" not in await h.audit_kinds() and "interrupted" not in await h.audit_kinds()


async def test_an_approval_older_than_its_request_is_aborted_at_takeover(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await approved_on_a_follower(h)
    h.clock.now += timedelta(seconds=h.settings.approval_ttl + 1)  # no leader for longer than the request lives
    leader = h.new_remediation()
    await leader.start(pickup=True)
    await leader.stop()
    await leader.pickup_once()
    await leader._tasks.drain()
    assert await h.status(request) is ap.Status.ABORTED and h.stack.fixes == []


async def test_a_single_bot_restart_still_aborts_what_it_had_approved(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without replicas (SQLite, `pickup=False`) nothing changes: approved then restarted = ask again."""
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await approved_on_a_follower(h)
    restarted = h.new_remediation()
    await restarted.start()
    await restarted.stop()
    assert await h.status(request) is ap.Status.ABORTED and h.stack.fixes == []


async def test_a_deposed_leader_never_starts_a_fix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await approved_on_a_follower(h)
    store.fence = lambda: 1  # it believes it leads with token 1; the lease says otherwise (no row: nobody's)
    deposed = h.new_remediation()
    await deposed.pickup_once()
    await deposed._tasks.drain()
    assert h.stack.fixes == [] and await h.status(request) is ap.Status.APPROVED, "left for the real leader"
    store.fence = None
    await deposed.pickup_once()
    await deposed._tasks.drain()
    assert len(h.stack.fixes) == 1 and await h.status(request) is ap.Status.SUCCEEDED


def test_the_pure_rule() -> None:
    approved = _in(ap.Status.APPROVED)
    before, after = approved.expires_at - timedelta(seconds=1), approved.expires_at
    assert ap.interrupt(approved, now=before, keep_fresh_approvals=True) is None
    for kept, now in ((True, after), (False, before)):
        aborted = ap.interrupt(approved, now=now, keep_fresh_approvals=kept)
        assert aborted is not None and aborted.status is ap.Status.ABORTED
    interrupted = ap.interrupt(_in(ap.Status.RUNNING), now=before, keep_fresh_approvals=True)
    assert interrupted is not None and interrupted.status is ap.Status.INTERRUPTED  # a started fix: never again
