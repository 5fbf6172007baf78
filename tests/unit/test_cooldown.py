"""The fix cooldown counts every execution in its window, however many other audit rows (refused clicks, notes)
came after them. A real SQLite store in tmp_path; the Remediation is built around it with a stub service.
tests/integration/test_cooldown_postgresql.py runs the same tests on PostgreSQL (the count is SQL of the store's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot.remediation.engine import Remediation, RemediationError
from bot.store import Store
from tests.support.stores import Backend

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, clock=lambda: T0) as opened:
        yield opened


def remediation(store: Store, *, cooldown: tuple[int, float] = (3, 3600.0)) -> Remediation:
    """Only `settings.cooldown`, the store and the clock take part in the cooldown check."""
    target = SimpleNamespace(name="web")
    service = SimpleNamespace(targets=[target], target=lambda name: target)

    async def no_approvers(_: Any) -> frozenset[str]:
        return frozenset()

    return Remediation(cast(Any, SimpleNamespace(cooldown=cooldown, lang="en")), cast(Any, service), store, cast(Any,
                                                                                                                 None),
                       bot_team_id=lambda: "T1", approvers=no_approvers, clock=lambda: T0)


async def executions(store: Store, *ids: str, at: datetime, target: str = "web") -> None:
    for request_id in ids:
        await store.audit(kind="execution", target=target, actor="U1", request_id=request_id, at=at)


async def test_refused_clicks_after_the_executions_do_not_hide_them(store: Store) -> None:
    await executions(store, "r1", "r2", "r3", at=T0 - timedelta(minutes=30))
    for i in range(200):  # refused Approve/Deny clicks are audited and are not rate-limited
        await store.audit(kind="click", target="web", actor=f"U{i}", request_id="r3",
                          data={"approve": True, "allowed": False, "reason": "not_approver"},
                          at=T0 - timedelta(minutes=1))
    with pytest.raises(RemediationError) as refused:
        await remediation(store)._cooldown_check(cast(Any, SimpleNamespace(name="web")))
    assert "3" in str(refused.value)


async def test_cooldown_counts_distinct_requests_in_the_window_on_this_target(store: Store) -> None:
    rem = remediation(store)
    web = cast(Any, SimpleNamespace(name="web"))
    await executions(store, "old1", "old2", at=T0 - timedelta(hours=2))  # outside the window
    await executions(store, "other1", "other2", "other3", at=T0, target="api")  # another target
    await executions(store, "r1", "r1", "r2", at=T0 - timedelta(minutes=5))  # r1 logged twice: one run
    await rem._cooldown_check(web)  # 2 runs < 3: allowed
    assert await store.count_executions(target="web", since=T0 - timedelta(hours=1)) == 2
    await executions(store, "r3", at=T0 - timedelta(hours=1))  # exactly at the window's edge counts
    with pytest.raises(RemediationError):
        await rem._cooldown_check(web)
