"""Issue 13, defect 16: a fix interrupted by a crash left no `execution` row in the audit, although the command ran
on the target. The execution is recorded as `started` before the command runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.chat.admission import Subject
from bot.store import Store
from tests.unit.test_remediation_harness import APPROVER, harness, store  # noqa: F401


async def test_an_interrupted_fix_is_in_the_audit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    h = harness(store, monkeypatch, "pm2-stopped")
    running = asyncio.Event()
    replay = h.stack.run

    def run(argv: tuple[str, ...]) -> Any:
        if "restart" not in argv:
            return replay(argv)

        async def hang() -> Any:  # the command is on the target when the bot dies
            running.set()
            await asyncio.Event().wait()

        return hang()

    monkeypatch.setattr(h.stack.transport, "handler", run)
    request = await h.request()
    await h.remediation.click(request.id, who=Subject(user_id=APPROVER, source="slack", team_id="T1"), approve=True)
    await asyncio.wait_for(running.wait(), 30)
    await h.remediation._tasks.cancel()  # the crash
    rows = [e for e in await store.audit_entries(limit=100) if e["kind"] == "execution"]
    assert len(rows) == 1, rows
    data = rows[0]["data"]
    assert isinstance(data, dict) and data["state"] == "started" and "restart" in " ".join(data["argv"])
    assert await store.count_executions(target="sandbox", since=request.requested_at) == 1  # counts for cooldown
