"""Remediation in-process: a real CheckService over the captured sandbox modes (FunctionTransport), a fake clock,
a temporary store and a recording sink. A fix command "heals" the fake stack by switching it to the healthy capture.
Covers approval then run then verification, aborts (recovered meanwhile, cooldown), expiry and interrupt at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.chat.admission import Subject
from bot.chat.service import CheckService
from bot.i18n import text
from bot.remediation import approvals as ap
from bot.remediation.engine import Remediation
from bot.settings import load_settings
from bot.store import Store
from checks.config import TargetsConfig
from checks.transport import CommandResult, FunctionTransport
from checks.transport.mock import serve_streams
from tests.support.captured import TARGET, Replay, load, route_public_probes
from tests.support.stores import Backend
from tests.unit.test_monitor_harness import T0, Clock, RecordingSink
from wsmsg import Msg

APPROVER, REQUESTER = "U0APPROVE", "U0REQUEST"


class Stack:
    """The fake target: answers from one captured mode; `pm2 restart` switches it to the healthy capture."""

    def __init__(self, mode: str) -> None:
        self.set(mode)
        self.fixes: list[tuple[str, ...]] = []
        self.saves: list[tuple[str, ...]] = []
        self.transport = FunctionTransport(self.run, tcp_handler=serve_streams(self.connect))

    def set(self, mode: str) -> None:
        self.replay = Replay(load(mode))

    def run(self, argv: tuple[str, ...]) -> CommandResult:
        if "restart" in argv:
            self.fixes.append(argv)
            self.set("healthy")
            return CommandResult(argv, 0, "[PM2] restarted", "", 1.0)
        if argv[-1:] == ("save",):  # wt-host: the restart action ends with `pm2 save`
            self.saves.append(argv)
            return CommandResult(argv, 0, "[PM2] Successfully saved", "", 1.0)
        return self.replay.run(argv)

    def connect(self, host: str, port: int) -> Any:
        return self.replay.connect(host, port)


class Harness:
    def __init__(self, store: Store, stack: Stack, *, cooldown: str = "3/1h") -> None:
        self.clock = Clock()
        self.store, self.stack, self.sink = store, stack, RecordingSink()
        self.service = CheckService(TargetsConfig(source="test", targets=(TARGET,)))
        self.service._transports[TARGET.name] = stack.transport
        self.settings = load_settings(None, approvers=APPROVER, cooldown=cooldown)
        self.remediation = self.new_remediation()

    def new_remediation(self) -> Remediation:
        async def approvers(_target: Any) -> frozenset[str]:
            return frozenset({APPROVER})

        return Remediation(self.settings, self.service, self.store, self.sink, bot_team_id=lambda: "T1",
                           approvers=approvers, clock=self.clock)

    async def request(self) -> ap.ApprovalRequest:
        return await self.remediation.request("restart", TARGET, requested_by=REQUESTER, team_id="T1",
                                              channel="C0ALERTS1")

    async def approve(self, request: ap.ApprovalRequest) -> str:
        answer = await self.remediation.click(request.id, who=Subject(user_id=APPROVER, source="slack", team_id="T1"),
                                              approve=True)
        await self.remediation._tasks.drain()  # the fix runs as a background task: wait for it
        return answer

    async def status(self, request: ap.ApprovalRequest) -> ap.Status:
        row = await self.store.get_request(request.id)
        assert row is not None
        return ap.ApprovalRequest.model_validate_json(row[1]).status

    async def audit_kinds(self) -> list[str]:
        return [str(e["kind"]) for e in reversed(await self.store.audit_entries(limit=100))]


async def abort_note(store: Store) -> str:
    (aborted,) = [e for e in await store.audit_entries(limit=100) if e["kind"] == "aborted"]
    data = aborted["data"]
    assert isinstance(data, dict)
    assert isinstance(data["note"], dict), "a reference (key and params), not a sentence"
    return Msg.from_ref(data["note"]).en


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, clock=lambda: T0) as opened:
        yield opened


def harness(store: Store, monkeypatch: pytest.MonkeyPatch, mode: str, **kw: Any) -> Harness:
    h = Harness(store, Stack(mode), **kw)
    route_public_probes(monkeypatch, lambda: h.stack.transport)
    return h


async def test_approved_fix_runs_once_and_is_verified(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await h.request()
    assert request.cause == "pm2_not_online" and len(h.sink.posts) == 1
    await h.approve(request)
    assert len(h.stack.fixes) == 1 and await h.status(request) is ap.Status.SUCCEEDED
    assert len(h.stack.saves) == 1, "the restart is saved, so a reboot keeps it"
    kinds = await h.audit_kinds()
    # restart, then pm2 save (wt-host), each started, then finished (wt-rel2)
    assert kinds.count("execution") == 4 and kinds[-1] == "verification"
    (verification,) = [e for e in await store.audit_entries(limit=100) if e["kind"] == "verification"]
    data = verification["data"]
    assert isinstance(data, dict) and data["healthy"] is True and data["status"] == "succeeded"


async def test_a_stack_that_recovered_meanwhile_aborts_without_running(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await h.request()
    h.stack.set("healthy")
    await h.approve(request)
    assert h.stack.fixes == [] and await h.status(request) is ap.Status.ABORTED
    assert "execution" not in await h.audit_kinds()
    assert await abort_note(store) == text("remediation.abort_recovered").en


async def test_cooldown_aborts_an_approved_fix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped", cooldown="1/1h")
    request = await h.request()
    await store.audit(kind="execution", target=TARGET.name, actor=None, request_id="earlier", at=T0)
    await h.approve(request)
    assert h.stack.fixes == [] and await h.status(request) is ap.Status.ABORTED
    assert (await abort_note(store)).startswith("Cooldown: 1 fixes ran on")


async def test_an_unanswered_request_expires(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await h.request()
    await h.remediation.expire_due()
    assert await h.status(request) is ap.Status.PENDING
    h.clock.now += timedelta(seconds=h.settings.approval_ttl + 1)
    await h.remediation.expire_due()
    assert await h.status(request) is ap.Status.EXPIRED
    await h.approve(request)  # too late
    assert h.stack.fixes == []


async def test_an_approved_request_found_at_start_is_not_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(store, monkeypatch, "pm2-stopped")
    request = await h.request()

    async def crash_before_running(_approved: ap.ApprovalRequest) -> None:
        """The bot died between the approval and the run."""

    monkeypatch.setattr(h.remediation, "execute", crash_before_running)
    await h.approve(request)
    assert await h.status(request) is ap.Status.APPROVED
    restarted = h.new_remediation()
    await restarted.start()
    await asyncio.sleep(0)  # let the expiry sweep that start() spawned begin, so that stop() cancels a started task
    await restarted.stop()
    assert await h.status(request) in (ap.Status.ABORTED, ap.Status.INTERRUPTED)
    assert h.stack.fixes == [] and "interrupted" in await h.audit_kinds()
