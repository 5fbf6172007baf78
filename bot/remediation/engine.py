"""Guarded remediation: a fix proposed in chat, approved by a second person, run once, verified after.

The decisions are the pure approval state machine's (bot/remediation/approvals.py); this module does the I/O around
them. Every transition is written with a conditional update on the request's `version` (first decision
wins), so a double click, two approvers at once, a re-delivered Socket Mode envelope or a click on a
stale message can never run anything twice. Everything — requests, clicks (allowed or refused, and
why), executions and verifications — goes to the append-only audit table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.chat import admission as adm
from bot.chat.service import CheckService
from bot.i18n import t, text
from bot.mrkdwn import untrusted
from bot.ops.tasks import Background
from bot.outgoing import ACTION_APPROVE, ACTION_DENY, ACTION_PROPOSE, ThreadNote, approval_message, dump
from bot.remediation import actions as act
from bot.remediation import approvals as ap
from bot.settings import Settings
from bot.store import Fenced, Store
from bot.store.outbox import APPROVAL, APPROVAL_EVENT, Outbox, Payload, Sink, SinkError
from checks.config import Target
from checks.models import Status, TargetReport
from checks.redact import redact
from checks.transport.base import CommandTimeout, TransportError
from wsmsg import Msg, joined, verbatim

log = logging.getLogger(__name__)

__all__ = ["ACTION_APPROVE", "ACTION_DENY", "ACTION_PROPOSE", "Remediation", "RemediationError", "click_message"]
VERIFY_EVERY = 2.0
TAIL = 1500
EXPIRY_SWEEP = 5.0
PICKUP_EVERY = 1.0
"""Seconds between the leader's looks for requests approved on another replica (bot/ha/leader.py)."""
#: Lookups of an approval message whose post had an unknown outcome, before the request is cancelled instead.
POST_LOOKUPS = 3
POST_LOOKUP_DELAY = 1.0
#: How long a request waits for the outbox to post its approval message before answering the requester anyway.
POST_WAIT = 20.0

Reply = Callable[[str], Awaitable[None]]


def _ts_key(request_id: str) -> str:
    """Where the approval message's Slack ts is kept: beside the request, not in its versioned state, so
    learning it (late, after a crash) never races with a decision."""
    return f"approval_message_ts:{request_id}"


class RemediationError(Exception):
    """A request cannot be made; `reason` (a message) tells the requester why and what to do instead.

    `str(exc)` is its English (logs); the front renders `reason` in its language.
    """

    def __init__(self, reason: Msg) -> None:
        super().__init__(reason.en)
        self.reason = reason


_REFUSALS: dict[str, str] = {
    "wrong_request": "approvals.wrong_request",
    "remediation_disabled": "approvals.remediation_disabled",
    "other_team": "approvals.other_team",
    "expired": "approvals.expired",
    "self_approval": "approvals.self_approval",
    "already_voted": "approvals.already_voted",
    "guest": "approvals.guest",
    "not_allowed_user": "approvals.not_allowed_user",
    "channel_disabled": "approvals.channel_disabled",
}


def click_message(result: ap.ClickResult, *, approve: bool, policy: ap.ApprovalPolicy) -> Msg:
    """The clicker's sentence as a message, from the click's outcome and reason (approvals.py stays pure and
    English: its `message` is this in English)."""
    request = result.request
    if result.outcome == "refused":
        reason = result.reason
        if reason == "already_decided":
            return text("approvals.already_decided", status=request.status.value)
        if reason == "not_approver":
            return text("approvals.not_approver_approve" if approve else "approvals.not_approver_deny")
        key = _REFUSALS.get(reason or "")
        return text(key) if key else verbatim(result.message)
    what = {"action": request.action, "target": request.target}
    if result.outcome == "denied":
        return text("approvals.denied", **what)
    if result.outcome == "approved":
        return text("approvals.approved", **what)
    counted = {vote.user for vote in request.approvals if policy.may_approve(vote.user, request.requested_by)}
    return text("approvals.vote_recorded", missing=policy.quorum - len(counted))


class Remediation:
    def __init__(self, settings: Settings, service: CheckService, store: Store, sink: Sink, *,
                 bot_team_id: Callable[[], str], approvers: Callable[[Target], Awaitable[frozenset[str]]],
                 admission: Callable[[], adm.Rules] | None = None, outbox: Outbox | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        #: WSCHECK_LANG: what the approval message and the thread notes are rendered in.
        self.lang = settings.lang
        self.service = service
        self.store = store
        self.sink = sink
        self.bot_team_id = bot_team_id
        self.resolve_approvers = approvers
        #: The admission rules of the bot (allow-lists, its team): `click` decides admission again with them.
        self.admission_rules = admission or (lambda: adm.Rules(bot_team_id=self.bot_team_id()))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.locks: dict[str, asyncio.Lock] = {t.name: asyncio.Lock() for t in service.targets}
        self._request_locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: With an outbox, approval messages are posted through it (written in the same transaction as the request):
        #: an uncertain post is looked up before it is ever sent again, and a crash loses nothing.
        self.outbox = outbox
        #: Approval posts being waited for: resolved with the message's ts, or the SinkError that ended them.
        self._posting: dict[str, asyncio.Future[str | SinkError]] = {}
        if outbox is not None:
            outbox.on_sent[APPROVAL] = self._approval_sent
            outbox.on_failed[APPROVAL] = self._approval_failed
        self._tasks = Background("remediation")
        self._stop = asyncio.Event()
        #: False on a follower replica (bot/ha/leader.py): an approval it records is executed by the leader, which
        #: picks approved requests up from the store; a follower executes nothing and interrupts nothing.
        self.leading = True
        #: Requests this process is executing (or about to): a click and the pick-up sweep never start one twice.
        self._executing: set[str] = set()
        #: Called with a request's final status (metrics).
        self.on_final: list[Callable[[str], None]] = []
        #: Called with "expiry" when the expiry sweep survived an error of its own (metrics).
        self.on_error: list[Callable[[str], None]] = []
        #: (target, request id, action, at most how many seconds) when an approved fix starts running: the monitor
        #: holds the target's alerts, so the bot's own restart does not page the channel.
        self.on_fix_start: list[Callable[[str, str, str, float], Awaitable[None]]] = []
        #: (target, request id, healthy, outcome) once the fix is verified or not: the monitor releases the hold.
        self.on_fix_end: list[Callable[[str, str, bool, Msg | None], Awaitable[None]]] = []

    # -- policy ----------------------------------------------------------------------------------

    async def policy(self, target: Target) -> ap.ApprovalPolicy:
        return ap.ApprovalPolicy(
            approvers=await self.resolve_approvers(target),
            quorum=self.settings.quorum,
            allow_self_approval=self.settings.allow_self_approval,
            ttl=self.settings.approval_ttl,
        )

    def enabled(self) -> bool:
        return bool(self.settings.approvers) or any(t.approvers for t in self.service.targets)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, pickup: bool = False) -> None:
        """Requests found running are interrupted (never re-run by themselves); approved ones aborted. With
        `pickup` (the leader of replicas), approvals recorded on any replica are executed here: from now on, and
        those not run yet that are still before their request's expiry (see `approvals.interrupt`)."""
        now = self.clock()
        for status in ("running", "approved"):
            for raw in await self.store.requests_by_status(status):
                request = ap.ApprovalRequest.model_validate_json(raw)
                changed = ap.interrupt(request, now=now, keep_fresh_approvals=pickup)
                if changed is not None and await self._save(request, changed):
                    await self._audit("interrupted", changed, actor=None, data={"was": status})
                    await self._post_update(changed)
                    await self._thread_note(changed, text("remediation.interrupted", id=changed.id, status=status))
        self._tasks.spawn(self._expiry_loop(), name="expiry sweep")
        if pickup:
            self._tasks.spawn(self._pickup_loop(), name="approved pick-up")

    async def _pickup_loop(self) -> None:
        """The leader executes what a follower approved: approved requests are read from the store every
        PICKUP_EVERY seconds. `execute` moves a request from approved to running by a conditional update, so even
        two leaders (which the fencing token rules out) could not both run it."""
        while not self._stop.is_set():
            try:
                await self.pickup_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("approved pick-up failed")
                for hook in self.on_error:
                    hook("pickup")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), PICKUP_EVERY)

    async def pickup_once(self) -> None:
        for raw in await self.store.requests_by_status("approved"):
            self._spawn_execute(ap.ApprovalRequest.model_validate_json(raw))

    def _spawn_execute(self, approved: ap.ApprovalRequest) -> None:
        if approved.id in self._executing:
            return
        self._executing.add(approved.id)

        async def run() -> None:
            try:
                await self.execute(approved)
            finally:
                self._executing.discard(approved.id)

        self._tasks.spawn(run(), name=f"execute {approved.id}")

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.cancel()

    async def _expiry_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.expire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
                for hook in self.on_error:
                    hook("expiry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), EXPIRY_SWEEP)

    async def expire_due(self) -> None:
        now = self.clock()
        for raw in await self.store.requests_by_status("pending"):
            request = ap.ApprovalRequest.model_validate_json(raw)
            expired = ap.expire(request, now=now)
            if expired is not None and await self._save(request, expired):
                await self._audit("expired", expired, actor=None)
                await self._post_update(expired)

    # -- requesting ------------------------------------------------------------------------------

    async def request(self, action: str, target: Target, *, requested_by: str, team_id: str, channel: str,
                      thread_ts: str | None = None, incident_id: str | None = None) -> ap.ApprovalRequest:
        """Check, plan, record and post one approval request; RemediationError says why not."""
        request, _ = await self.request_or_join(action, target, requested_by=requested_by, team_id=team_id,
                                                channel=channel, thread_ts=thread_ts, incident_id=incident_id)
        return request

    async def request_or_join(self, action: str, target: Target, *, requested_by: str, team_id: str, channel: str,
                              thread_ts: str | None = None,
                              incident_id: str | None = None) -> tuple[ap.ApprovalRequest, bool]:
        """(the request, whether it is an existing one this request joined).

        One request at a time per target and action, from the look at the latest one to the posted message: two
        requests for the same fix at once become one (the second joins the first, ap.joinable), and a request whose
        approval message could not be posted is cancelled before anybody else looks.
        """
        if action not in act.ACTIONS:
            raise RemediationError(text("remediation.unknown_action", action=action))
        lock = self._request_locks.setdefault((target.name, action), asyncio.Lock())
        async with lock:
            return await self._request(action, target, requested_by=requested_by, team_id=team_id, channel=channel,
                                       thread_ts=thread_ts, incident_id=incident_id)

    async def _request(self, action: str, target: Target, *, requested_by: str, team_id: str, channel: str,
                       thread_ts: str | None, incident_id: str | None) -> tuple[ap.ApprovalRequest, bool]:
        policy = await self.policy(target)
        if not policy.enabled:
            raise RemediationError(text("remediation.off"))
        await self._cooldown_check(target)
        report = await self.service.run(target.name)
        try:
            plan = act.plan(action, target, report)
        except act.NotOffered as exc:
            raise RemediationError(exc.reason) from None
        cause = report.diagnosis[0] if report.diagnosis else None
        # The reason is shown to the approvers in the bot's language: stored as a message, rendered with the request.
        reason = joined([verbatim(cause.cause), cause.message], ": ") if cause else text("remediation.by_hand")
        now = self.clock()
        latest = await self.store.latest_request(target=target.name, action=action)
        older = ap.ApprovalRequest.model_validate_json(latest) if latest is not None else None
        if older is not None and ap.joinable(older, commands=plan.commands, now=now):
            await self._audit("joined", older, actor=requested_by)
            ts = await self.store.get_meta(_ts_key(older.id))
            return older.model_copy(update={"message_ts": ts}), True
        try:
            request = ap.new_request(
                entropy=os.urandom(ap.ID_BYTES), target=target.name, action=action, commands=plan.commands,
                host=plan.host, reason=reason.map_text(redact), cause=cause.cause if cause else None,
                requested_by=requested_by, team_id=team_id or self.bot_team_id() or "console", channel=channel,
                now=now, policy=policy, fingerprint=act.fingerprint(report), thread_ts=thread_ts,
                incident_id=incident_id)
        except ap.RequestRefused as exc:
            raise RemediationError(exc.message) from None
        message = approval_message(request, approvers=policy.approvers, quorum=policy.quorum)
        posting: asyncio.Future[str | SinkError] | None = None
        async with self.store.transaction() as tx:
            await tx.insert_request(id=request.id, target=request.target, action=request.action,
                                    status=request.status.value, version=request.version,
                                    expires_at=request.expires_at, data=request.model_dump_json())
            if self.outbox is not None:
                queued = Payload(kind=APPROVAL, target=request.target, incident_id=request.id, key=request.id,
                                 channel=channel, message=dump(message), thread_ts=thread_ts)
                await tx.enqueue(lane=f"approval:{request.target}", kind=APPROVAL, payload=queued.dump(),
                                 dedup_key=f"{request.id}/post")
                if self.leading:  # a follower's outbox is not running: the leader posts it, nobody here waits
                    posting = self._posting[request.id] = asyncio.get_running_loop().create_future()
        await self._audit("request", request, actor=requested_by, data={"commands": list(plan.commands)})
        if older is not None:
            superseded = ap.supersede(older, by_request_id=request.id, now=now)
            if superseded is not None and await self._save(older, superseded):
                await self._audit("superseded", superseded, actor=requested_by, data={"by": request.id})
                await self._post_update(superseded)
        if posting is not None:
            return await self._posted(request, posting), False
        if self.outbox is not None:
            return request, False  # a follower: queued for the leader's outbox
        fallback, blocks = self.sink.render(dump(message))  # the front's rendering, passed on as it is
        try:
            ts = await self.sink.post(channel=channel, text=fallback, blocks=blocks, thread_ts=thread_ts,
                                      metadata={"event_type": APPROVAL_EVENT, "event_payload": {"op": request.id}})
        except SinkError as exc:
            found = await self._find_posted(request) if exc.uncertain else None
            if found is None:
                await self._cancel_unposted(request, exc)
                raise RemediationError(text("remediation.post_failed", error=str(exc))) from None
            log.info("approval request %s had reached Slack (found by metadata); using that message", request.id)
            ts = found
        await self.store.set_meta(_ts_key(request.id), ts)
        return request.model_copy(update={"message_ts": ts}), False

    async def _posted(self, request: ap.ApprovalRequest,
                      posting: asyncio.Future[str | SinkError]) -> ap.ApprovalRequest:
        """Wait (bounded) for the outbox to post the approval message. Failed for good → RemediationError (the
        request was cancelled); still uncertain after the wait → the request stands, its message follows."""
        assert self.outbox is not None
        self.outbox.wake()
        try:
            outcome = await asyncio.wait_for(asyncio.shield(posting), POST_WAIT)
        except TimeoutError:
            log.warning("approval request %s: its message is not posted yet; the outbox keeps at it", request.id)
            return request
        if isinstance(outcome, SinkError):
            raise RemediationError(text("remediation.post_failed", error=str(outcome))) from None
        return request.model_copy(update={"message_ts": outcome})

    async def _approval_sent(self, payload: Payload, ts: str) -> None:
        await self.store.set_meta(_ts_key(payload.key), ts)
        posting = self._posting.pop(payload.key, None)
        if posting is not None and not posting.done():
            posting.set_result(ts)

    async def _approval_failed(self, payload: Payload, error: str) -> None:
        """The outbox gave up on an approval message (Slack refused it): nothing may stay approvable."""
        exc = SinkError(error, permanent=True)
        row = await self.store.get_request(payload.key)
        if row is not None:
            await self._cancel_unposted(ap.ApprovalRequest.model_validate_json(row[1]), exc)
        posting = self._posting.pop(payload.key, None)
        if posting is not None and not posting.done():
            posting.set_result(exc)

    async def _find_posted(self, request: ap.ApprovalRequest) -> str | None:
        """After an uncertain post: the message's ts if a lookup finds it; None if the lookups say it is not there
        or keep failing (then the caller cancels: a request nobody may have seen must not stay approvable)."""
        for attempt in range(POST_LOOKUPS):
            try:
                return await self.sink.find(channel=request.channel, thread_ts=request.thread_ts, key=request.id,
                                            since=request.requested_at - timedelta(seconds=5))
            except SinkError as exc:
                log.warning("approval request %s: lookup %d of its uncertain post failed: %s", request.id,
                            attempt + 1, exc)
                if exc.permanent:
                    return None
                delay = exc.retry_after if exc.retry_after is not None else POST_LOOKUP_DELAY * 2 ** attempt
                await asyncio.sleep(delay)
        return None

    async def _cancel_unposted(self, request: ap.ApprovalRequest, exc: SinkError) -> None:
        note = text("approvals.note_post_failed", error=str(exc)[:200])
        cancelled = ap.cancel(request, note=note, now=self.clock())
        if cancelled is not None and await self._save(request, cancelled):
            log.error("approval request %s cancelled: its message could not be posted (%s)", request.id, exc)
            await self._audit("cancelled", cancelled, actor=None, data={"error": str(exc)[:300]})
            if exc.uncertain:  # it may be there after all (every lookup failed): edited to "cancelled" if found
                await self._post_update(cancelled)

    async def _cooldown_check(self, target: Target) -> None:
        count, window = self.settings.cooldown
        since = self.clock() - timedelta(seconds=window)
        recent = await self.store.count_executions(target=target.name, since=since)
        if recent >= count:
            raise RemediationError(text("remediation.cooldown", count=recent, target=target.name,
                                        hours=window / 3600, max=count))

    # -- clicks ----------------------------------------------------------------------------------

    async def click(self, request_id: str, *, who: adm.Subject, approve: bool) -> Msg:
        """Apply an Approve/Deny click; returns what the clicker is told. Runs the fix if approved.

        Admission (bot/chat/admission.py) is decided here again, whichever front the click came through.
        """
        user, team_id = who.user_id, who.team_id
        admitted = adm.decide(who, self.admission_rules())
        for _ in range(3):
            row = await self.store.get_request(request_id)
            if row is None:
                await self.store.audit(kind="click", target=None, actor=user, request_id=request_id,
                                       data={"approve": approve, "allowed": False, "reason": "unknown_request"},
                                       at=self.clock())
                return text("remediation.no_request")
            request = ap.ApprovalRequest.model_validate_json(row[1])
            target = self.service.target(request.target)
            policy = await self.policy(target)
            result = ap.click(request, request_id=request_id, user=user, team_id=team_id or "console",
                              bot_team_id=self.bot_team_id() or request.team_id, approve=approve,
                              policy=policy, now=self.clock(), admission=admitted)
            if result.changed and not await self._save(request, result.request):
                continue  # somebody else decided first: look again
            await self.store.audit(kind="click", target=request.target, actor=user, request_id=request_id,
                                   data={"approve": approve, "allowed": result.outcome != "refused",
                                         "outcome": result.outcome, "reason": result.reason}, at=self.clock())
            if result.changed:
                await self._post_update(result.request)
            if result.outcome == "approved":
                if self.leading:
                    self._spawn_execute(result.request)
                else:
                    log.info("request %s approved on this follower; the leader executes it", result.request.id)
            return click_message(result, approve=approve, policy=policy)
        return text("remediation.race")

    # -- execution -------------------------------------------------------------------------------


    async def execute(self, approved: ap.ApprovalRequest) -> None:
        """Pre-check, run once, verify. One remediation per target at a time."""
        target = self.service.target(approved.target)
        async with self.locks[target.name]:
            now = self.clock()
            try:
                await self._cooldown_check(target)
            except RemediationError as exc:
                await self._finish_abort(approved, exc.reason)
                return
            # One fresh checklist answers all three questions: recovered already? same PM2 process? same plan?
            report = await self.service.run(target.name)
            # Recovered = nothing failing and the cause the request was made for is gone (a warning cause such as
            # "nginx config invalid, a reload now would fail" is still the reason to act: wt-nginxrt).
            if approved.cause and not [c for c in report.diagnosis
                                       if c.severity in (Status.FAIL, Status.ERROR) or c.cause == approved.cause]:
                await self._finish_abort(approved, text("remediation.abort_recovered"))
                return
            if ap.fingerprint_changed(approved.fingerprint, act.fingerprint(report)):
                await self._finish_abort(approved, text("remediation.abort_changed"))
                return
            try:
                plan = act.plan(approved.action, target, report)
            except act.NotOffered as exc:
                await self._finish_abort(approved, text("remediation.abort_not_applicable", why=exc.reason))
                return
            if plan.commands != approved.commands:
                await self._finish_abort(approved, text("remediation.abort_commands_differ"))
                return
            running = ap.start(approved, now=now)
            try:
                started = await self._save(approved, running, fenced=True)
            except Fenced:
                log.warning("request %s not started: this replica leads no more (the leader runs it)", approved.id)
                return
            if not started:
                return  # another worker started it: exactly once
            log.info("request %s: running %s on %s", running.id, running.action, target.name)
            budget = sum(step.timeout for step in plan.steps) + self.settings.verify_timeout + VERIFY_EVERY * 2
            for hold in self.on_fix_start:
                await hold(target.name, running.id, running.action, budget)
            healthy, outcome = False, None
            try:
                await self._post_update(running)
                ok, exit_code, note = await self._run(plan, running, target)
                finished = ap.finish(running, ok=ok, exit_code=exit_code, note=note, now=self.clock())
                await self._save(running, finished)
                await self._post_update(finished)
                healthy, outcome = await self._verify(finished, target)
                if not ok:
                    healthy, outcome = False, note
            finally:
                for release in self.on_fix_end:
                    await release(target.name, running.id, healthy, outcome)

    async def _run(self, plan: act.Plan, request: ap.ApprovalRequest, target: Target) -> tuple[bool, int, Msg]:
        transport = self.service.transport(target)
        for step in plan.steps:
            if plan.long:
                await self._thread_note(request, text("remediation.step_running", label=step.label))
            # Recorded before the command runs: a crash mid-command still leaves the audit saying it ran (issue 13).
            await self.store.audit(kind="execution", target=target.name, actor=None, request_id=request.id,
                                   data={"argv": list(step.argv), "state": "started"}, at=self.clock())
            started = time.perf_counter()
            try:
                result = await transport.run(list(step.argv), timeout=step.timeout)
                code, out, err = result.exit_status, result.stdout, result.stderr
            except (TransportError, CommandTimeout) as exc:
                code, out, err = 255, "", str(exc)
            took = time.perf_counter() - started
            await self.store.audit(kind="execution", target=target.name, actor=None, request_id=request.id, data={
                "argv": list(step.argv), "state": "finished", "exit_code": code, "duration_s": round(took, 2),
                "stdout_tail": redact(out[-TAIL:]), "stderr_tail": redact(err[-TAIL:])}, at=self.clock())
            if plan.long:
                await self._thread_note(request, text("remediation.step_done", icon="✅" if code == 0 else "❌",
                                                      label=step.label, code=code, seconds=took))
            if code != 0:
                last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
                key = "remediation.step_refused" if step.gate else "remediation.step_failed"
                return False, code, text(key, label=step.label, code=code, output=last[0][:300]).map_text(redact)
        return True, 0, text("remediation.done")

    async def _verify(self, request: ap.ApprovalRequest, target: Target) -> tuple[bool, Msg | None]:
        """Check until healthy or `verify_timeout`: (healthy, what the thread was told)."""
        started = time.perf_counter()
        deadline = started + self.settings.verify_timeout
        report: TargetReport | None = None
        while True:
            report = await self.service.run(target.name)
            failing = [c for c in report.diagnosis if c.severity in (Status.FAIL, Status.ERROR)]
            if not failing:
                took = time.perf_counter() - started
                said = text("remediation.verified", seconds=took, action=request.action)
                await self._thread_note(request, said)
                await self._audit("verification", request, actor=None, data={"healthy": True, "after_s": took})
                return True, said
            if time.perf_counter() >= deadline:
                break
            try:
                await asyncio.wait_for(self._stop.wait(), VERIFY_EVERY)
                return False, None
            except TimeoutError:
                pass
        cause = failing[0]
        said = text("remediation.still_failing", seconds=self.settings.verify_timeout, action=request.action,
                    cause=cause.cause, summary=cause.message)
        await self._thread_note(request, said)
        await self._audit("verification", request, actor=None, data={"healthy": False, "cause": cause.cause})
        return False, said

    async def _finish_abort(self, approved: ap.ApprovalRequest, note: Msg) -> None:
        aborted = ap.abort(approved, note=note, now=self.clock())
        if await self._save(approved, aborted):
            await self._audit("aborted", aborted, actor=None, data={"note": note.to_ref()})
            await self._post_update(aborted)

    # -- plumbing --------------------------------------------------------------------------------

    async def _save(self, before: ap.ApprovalRequest, after: ap.ApprovalRequest, *, fenced: bool = False) -> bool:
        """Conditional update: true only if nobody changed the request since `before` was read."""
        saved = await self.store.update_request(before.id, expected_version=before.version,
                                                new_version=after.version, status=after.status.value,
                                                data=after.model_dump_json(), fenced=fenced)
        if saved and after.status in ap.FINAL:
            for hook in self.on_final:
                hook(after.status.value)
        return saved

    async def _audit(self, kind: str, request: ap.ApprovalRequest, *, actor: str | None,
                     data: dict[str, Any] | None = None) -> None:
        await self.store.audit(kind=kind, target=request.target, actor=actor, request_id=request.id,
                               data={"status": request.status.value, "summary": ap.describe(request), **(data or {})},
                               at=self.clock())

    async def _message_ts(self, request: ap.ApprovalRequest) -> str | None:
        """The approval message's ts; found by its metadata when the bot died between posting and saving."""
        known = await self.store.get_meta(_ts_key(request.id))
        if known:
            return known
        try:
            found = await self.sink.find(channel=request.channel, thread_ts=request.thread_ts, key=request.id,
                                         since=request.requested_at - timedelta(seconds=5))
        except SinkError as exc:
            log.warning("cannot look up the approval message of %s: %s", request.id, exc)
            return None
        if found:
            await self.store.set_meta(_ts_key(request.id), found)
        return found

    async def _post_update(self, request: ap.ApprovalRequest) -> None:
        ts = await self._message_ts(request)
        if not ts:
            log.warning("approval message of %s not found; its state is %s", request.id, request.status.value)
            return
        target = self.service.target(request.target)
        policy = await self.policy(target)
        fallback, blocks = self.sink.render(dump(approval_message(request, approvers=policy.approvers,
                                                                  quorum=policy.quorum)))
        try:
            await self.sink.update(channel=request.channel, ts=ts, text=fallback, blocks=blocks)
        except SinkError as exc:
            log.warning("cannot update approval message %s: %s", request.id, exc)

    async def _thread_note(self, request: ap.ApprovalRequest, note: Msg) -> None:
        """A reply under the approval message (or the incident thread it lives in); never top level. The note's
        params may be text from the target: the front makes them safe when it renders it."""
        thread = request.thread_ts or await self._message_ts(request)
        if not thread:
            log.warning("no thread for %s; not posted: %s", request.id, note.en)
            return
        fallback, blocks = self.sink.render(dump(ThreadNote(note=note)))
        try:
            await self.sink.post(channel=request.channel, text=fallback, blocks=blocks,
                                 thread_ts=thread, metadata={"event_type": APPROVAL_EVENT,
                                                             "event_payload": {"op": f"{request.id}/{time.time()}"}})
        except SinkError as exc:
            log.warning("cannot post to the thread of %s: %s", request.id, exc)

    async def history(self, target: str | None, limit: int = 15) -> list[str]:
        lines = []
        for entry in await self.store.audit_entries(target=target, limit=limit):
            data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
            assert isinstance(data, dict)
            ts = entry.get("ts")
            when = ts.strftime("%Y-%m-%d %H:%M") if isinstance(ts, datetime) else str(ts)
            what = data.get("summary") or (f"{' '.join(data.get('argv', []))} → exit {data.get('exit_code')}"
                                           if entry.get("kind") == "execution" else "")
            if entry.get("kind") == "execution" and data.get("state") == "started":
                what = f"{' '.join(data.get('argv', []))} → {t('remediation.started', lang=self.lang)}"
            if entry.get("kind") == "click":
                verdict = t("remediation.allowed", lang=self.lang) if data.get("allowed") else \
                    t("remediation.refused", reason=data.get("reason"), lang=self.lang)
                what = f"{'approve' if data.get('approve') else 'deny'} {verdict}"
            actor = f" <@{entry['actor']}>" if entry.get("actor") else ""
            lines.append(f"• {when} UTC `{entry.get('kind')}`{actor} {untrusted(str(what))[:300]}")
        return lines
