"""Guarded remediation: a fix proposed in chat, approved by a second person, run once, verified after.

The decisions are the pure approval state machine's (bot/approvals.py); this module does the I/O around
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

from bot import actions as act
from bot import approvals as ap
from bot.alerts import ACTION_PROPOSE as ACTION_PROPOSE_BUTTON
from bot.outbox import Sink, SinkError
from bot.render import clamp_blocks, fix_block, slack_date, untrusted
from bot.service import CheckService
from bot.settings import Settings
from bot.store import Store
from checks.config import Target
from checks.models import Status, TargetReport
from checks.redact import redact
from checks.transport.base import CommandTimeout, TransportError

log = logging.getLogger(__name__)

ACTION_APPROVE = "wscheck_approve"
ACTION_DENY = "wscheck_deny"
ACTION_PROPOSE = ACTION_PROPOSE_BUTTON
VERIFY_EVERY = 2.0
TAIL = 1500
EXPIRY_SWEEP = 5.0

Reply = Callable[[str], Awaitable[None]]


def _ts_key(request_id: str) -> str:
    """Where the approval message's Slack ts is kept: beside the request, not in its versioned state, so
    learning it (late, after a crash) never races with a decision."""
    return f"approval_message_ts:{request_id}"


class RemediationError(Exception):
    """A request cannot be made; the message tells the requester why and what to do instead."""


def approval_blocks(request: ap.ApprovalRequest, policy: ap.ApprovalPolicy) -> tuple[str, list[dict[str, Any]]]:
    """The approval message in each state: pending (with buttons) or final (what happened, no buttons)."""
    status = request.status
    icon = {ap.Status.PENDING: "🛠️", ap.Status.APPROVED: "▶️", ap.Status.RUNNING: "⏳", ap.Status.SUCCEEDED: "✅",
            ap.Status.FAILED: "❌", ap.Status.ABORTED: "⏹️", ap.Status.DENIED: "🚫", ap.Status.EXPIRED: "⌛",
            ap.Status.SUPERSEDED: "↪️", ap.Status.INTERRUPTED: "⚠️"}[status]
    title = f"{icon} {request.action} on {request.target}: {status.value}"
    lines = [f"*{untrusted(request.action)}* on *{untrusted(request.target)}* ({untrusted(request.host)}) "
             f"requested by <@{request.requested_by}>",
             f"Why: {untrusted(request.reason)}"]
    if status is ap.Status.PENDING:
        quorum = f"{policy.quorum} approval(s) from " + ", ".join(f"<@{a}>" for a in sorted(policy.approvers))
        votes = ", ".join(f"<@{v.user}>" for v in request.approvals)
        lines.append(f"Needs {quorum}" + (f" — so far: {votes}" if votes else "")
                     + f". Expires {slack_date(request.expires_at)}.")
    else:
        if request.approvals:
            lines.append("Approved by " + ", ".join(f"<@{v.user}>" for v in request.approvals))
        if request.denied_by:
            lines.append(f"Denied by <@{request.denied_by}>")
        if request.exit_code is not None:
            took = ""
            if request.started_at and request.finished_at:
                took = f" in {(request.finished_at - request.started_at).total_seconds():.1f} s"
            lines.append(f"Exit code {request.exit_code}{took}")
        if request.outcome_note:
            lines.append(untrusted(request.outcome_note))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        fix_block(request.commands, title=f"Will run on {request.host}" if status is ap.Status.PENDING
                  else f"Commands on {request.host}"),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"request `{request.id}`"}]},
    ]
    if status is ap.Status.PENDING:
        blocks.append({"type": "actions", "block_id": "approval", "elements": [
            {"type": "button", "action_id": ACTION_APPROVE, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": request.id},
            {"type": "button", "action_id": ACTION_DENY, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}, "value": request.id},
        ]})
    text = f"{title} — requested by <@{request.requested_by}>: {request.reason}"
    return text[:3000], clamp_blocks(blocks)


class Remediation:
    def __init__(self, settings: Settings, service: CheckService, store: Store, sink: Sink, *,
                 bot_team_id: Callable[[], str], approvers: Callable[[Target], Awaitable[frozenset[str]]],
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.service = service
        self.store = store
        self.sink = sink
        self.bot_team_id = bot_team_id
        self.resolve_approvers = approvers
        self.clock = clock or (lambda: datetime.now(UTC))
        self.locks: dict[str, asyncio.Lock] = {t.name: asyncio.Lock() for t in service.targets}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        #: Called with a request's final status (metrics).
        self.on_final: list[Callable[[str], None]] = []

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

    async def start(self) -> None:
        """Requests found running are interrupted (never re-run by themselves); approved ones aborted."""
        now = self.clock()
        for status in ("running", "approved"):
            for raw in await self.store.requests_by_status(status):
                request = ap.ApprovalRequest.model_validate_json(raw)
                changed = ap.interrupt(request, now=now)
                if changed is not None and await self._save(request, changed):
                    await self._audit("interrupted", changed, actor=None, data={"was": status})
                    await self._post_update(changed)
                    await self._thread_note(changed, f"⚠️ The bot restarted while `{changed.id}` was {status}: "
                                                     "it was not run again. Check the target and ask again if needed.")
        task = asyncio.ensure_future(self._expiry_loop())
        self._tasks.add(task)

    async def stop(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _expiry_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.expire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
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
        if action not in act.ACTIONS:
            raise RemediationError(f"unknown action {action}")
        policy = await self.policy(target)
        if not policy.enabled:
            raise RemediationError(
                "Remediation is off: no approvers are configured. Set WSCHECK_APPROVERS (Slack user or user-group "
                "IDs) or `approvers` in the [remediation] table of wscheck.toml.")
        await self._cooldown_check(target)
        report = await self.service.run(target.name)
        try:
            plan = act.plan(action, target, report)
        except act.NotOffered as exc:
            raise RemediationError(str(exc)) from None
        cause = report.diagnosis[0] if report.diagnosis else None
        reason = f"{cause.cause}: {cause.summary}" if cause else "requested by hand (no known problem right now)"
        now = self.clock()
        try:
            request = ap.new_request(
                entropy=os.urandom(ap.ID_BYTES), target=target.name, action=action, commands=plan.commands,
                host=plan.host, reason=redact(reason)[:500], cause=cause.cause if cause else None,
                requested_by=requested_by, team_id=team_id or self.bot_team_id() or "console", channel=channel,
                now=now, policy=policy, fingerprint=act.fingerprint(report), thread_ts=thread_ts,
                incident_id=incident_id)
        except ValueError as exc:
            raise RemediationError(str(exc)[:1].upper() + str(exc)[1:]) from None
        latest = await self.store.latest_request(target=target.name, action=action)
        await self.store.insert_request(id=request.id, target=request.target, action=request.action,
                                        status=request.status.value, version=request.version,
                                        expires_at=request.expires_at, data=request.model_dump_json())
        await self._audit("request", request, actor=requested_by, data={"commands": list(plan.commands)})
        if latest is not None:
            older = ap.ApprovalRequest.model_validate_json(latest)
            superseded = ap.supersede(older, by_request_id=request.id, now=now)
            if superseded is not None and await self._save(older, superseded):
                await self._audit("superseded", superseded, actor=requested_by, data={"by": request.id})
                await self._post_update(superseded)
        text, blocks = approval_blocks(request, policy)
        try:
            ts = await self.sink.post(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
                                      metadata={"event_type": "wscheck_approval", "event_payload": {"op": request.id}})
        except SinkError as exc:
            log.error("cannot post approval request %s: %s", request.id, exc)
            raise RemediationError(f"Could not post the approval request here ({exc}); invite the bot to this "
                                   "channel or ask in the alert channel.") from None
        await self.store.set_meta(_ts_key(request.id), ts)
        return request.model_copy(update={"message_ts": ts})

    async def _cooldown_check(self, target: Target) -> None:
        count, window = self.settings.cooldown
        since = self.clock() - timedelta(seconds=window)
        recent: list[dict[str, object]] = []
        for entry in await self.store.audit_entries(target=target.name, limit=200):
            ts = entry.get("ts")
            if entry.get("kind") == "execution" and isinstance(ts, datetime) and ts >= since and \
                    entry.get("request_id") not in {e.get("request_id") for e in recent}:
                recent.append(entry)
        if len(recent) >= count:
            raise RemediationError(
                f"Cooldown: {len(recent)} fixes ran on {target.name} in the last {window / 3600:g} h "
                f"(at most {count}). Something keeps breaking it: a human should look before another restart.")

    # -- clicks ----------------------------------------------------------------------------------

    async def click(self, request_id: str, *, user: str, team_id: str, approve: bool) -> str:
        """Apply an Approve/Deny click; returns the sentence for the clicker. Runs the fix if approved."""
        for _ in range(3):
            row = await self.store.get_request(request_id)
            if row is None:
                await self.store.audit(kind="click", target=None, actor=user, request_id=request_id,
                                       data={"approve": approve, "allowed": False, "reason": "unknown_request"},
                                       at=self.clock())
                return "That request does not exist (any more)."
            request = ap.ApprovalRequest.model_validate_json(row[1])
            target = self.service.target(request.target)
            result = ap.click(request, request_id=request_id, user=user, team_id=team_id or "console",
                              bot_team_id=self.bot_team_id() or request.team_id, approve=approve,
                              policy=await self.policy(target), now=self.clock())
            if result.changed and not await self._save(request, result.request):
                continue  # somebody else decided first: look again
            await self.store.audit(kind="click", target=request.target, actor=user, request_id=request_id,
                                   data={"approve": approve, "allowed": result.outcome != "refused",
                                         "outcome": result.outcome, "reason": result.reason}, at=self.clock())
            if result.changed:
                await self._post_update(result.request)
            if result.outcome == "approved":
                self._spawn(self.execute(result.request))
            return result.message
        return "Someone else decided this request at the same moment; look at the message."

    # -- execution -------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("remediation failed unexpectedly")

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def execute(self, approved: ap.ApprovalRequest) -> None:
        """Pre-check, run once, verify. One remediation per target at a time."""
        target = self.service.target(approved.target)
        async with self.locks[target.name]:
            now = self.clock()
            try:
                await self._cooldown_check(target)
            except RemediationError as exc:
                await self._finish_abort(approved, str(exc))
                return
            pre = await self.service.run(target.name, act.PRECHECK)
            if not [c for c in pre.diagnosis if c.severity in (Status.FAIL, Status.ERROR)] and approved.cause:
                await self._finish_abort(approved, "Already recovered: the checks pass now, nothing was run.")
                return
            if ap.fingerprint_changed(approved.fingerprint, act.fingerprint(pre)):
                await self._finish_abort(approved, "The PM2 process changed since the request (pid or restart "
                                                   "count): ask again so the approver sees the current state.")
                return
            report = await self.service.run(target.name)
            try:
                plan = act.plan(approved.action, target, report)
            except act.NotOffered as exc:
                await self._finish_abort(approved, f"No longer applicable: {exc}")
                return
            if plan.commands != approved.commands:
                await self._finish_abort(approved, "The commands would differ from the approved ones (the config "
                                                   "changed): ask again.")
                return
            running = ap.start(approved, now=now)
            if not await self._save(approved, running):
                return  # another worker started it: exactly once
            await self._post_update(running)
            ok, exit_code, note = await self._run(plan, running, target)
            finished = ap.finish(running, ok=ok, exit_code=exit_code, note=note, now=self.clock())
            await self._save(running, finished)
            await self._post_update(finished)
            await self._verify(finished, target)

    async def _run(self, plan: act.Plan, request: ap.ApprovalRequest, target: Target) -> tuple[bool, int, str]:
        transport = self.service.transport(target)
        for step in plan.steps:
            if plan.long:
                await self._thread_note(request, f"⏳ `{untrusted(step.label)}` running…")
            started = time.perf_counter()
            try:
                result = await transport.run(list(step.argv), timeout=step.timeout)
                code, out, err = result.exit_status, result.stdout, result.stderr
            except (TransportError, CommandTimeout) as exc:
                code, out, err = 255, "", str(exc)
            took = time.perf_counter() - started
            await self.store.audit(kind="execution", target=target.name, actor=None, request_id=request.id, data={
                "argv": list(step.argv), "exit_code": code, "duration_s": round(took, 2),
                "stdout_tail": redact(out[-TAIL:]), "stderr_tail": redact(err[-TAIL:])}, at=self.clock())
            if plan.long:
                await self._thread_note(request, f"{'✅' if code == 0 else '❌'} `{untrusted(step.label)}` exit "
                                                 f"{code} in {took:.1f} s")
            if code != 0:
                last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
                why = "refused to continue" if step.gate else "failed"
                return False, code, redact(f"{step.label} {why} (exit {code}): {last[0][:300]}")
        return True, 0, "done"

    async def _verify(self, request: ap.ApprovalRequest, target: Target) -> None:
        started = time.perf_counter()
        deadline = started + self.settings.verify_timeout
        report: TargetReport | None = None
        while True:
            report = await self.service.run(target.name)
            failing = [c for c in report.diagnosis if c.severity in (Status.FAIL, Status.ERROR)]
            if not failing:
                took = time.perf_counter() - started
                await self._thread_note(request, f"✅ Verified healthy in {took:.0f} s after `{request.action}`.")
                await self._audit("verification", request, actor=None, data={"healthy": True, "after_s": took})
                return
            if time.perf_counter() >= deadline:
                break
            try:
                await asyncio.wait_for(self._stop.wait(), VERIFY_EVERY)
                return
            except TimeoutError:
                pass
        cause = failing[0]
        await self._thread_note(request, f"❌ Still failing {self.settings.verify_timeout:.0f} s after "
                                         f"`{request.action}`: *{untrusted(cause.cause)}* {untrusted(cause.summary)}")
        await self._audit("verification", request, actor=None, data={"healthy": False, "cause": cause.cause})

    async def _finish_abort(self, approved: ap.ApprovalRequest, note: str) -> None:
        aborted = ap.abort(approved, note=note, now=self.clock())
        if await self._save(approved, aborted):
            await self._audit("aborted", aborted, actor=None, data={"note": note})
            await self._post_update(aborted)

    # -- plumbing --------------------------------------------------------------------------------

    async def _save(self, before: ap.ApprovalRequest, after: ap.ApprovalRequest) -> bool:
        """Conditional update: true only if nobody changed the request since `before` was read."""
        saved = await self.store.update_request(before.id, expected_version=before.version,
                                                new_version=after.version, status=after.status.value,
                                                data=after.model_dump_json())
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
        text, blocks = approval_blocks(request, await self.policy(target))
        try:
            await self.sink.update(channel=request.channel, ts=ts, text=text, blocks=blocks)
        except SinkError as exc:
            log.warning("cannot update approval message %s: %s", request.id, exc)

    async def _thread_note(self, request: ap.ApprovalRequest, text: str) -> None:
        """A reply under the approval message (or the incident thread it lives in); never top level."""
        thread = request.thread_ts or await self._message_ts(request)
        if not thread:
            log.warning("no thread for %s; not posted: %s", request.id, text)
            return
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
        try:
            await self.sink.post(channel=request.channel, text=text.replace("*", "")[:3000], blocks=blocks,
                                 thread_ts=thread, metadata={"event_type": "wscheck_approval",
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
            if entry.get("kind") == "click":
                verdict = "allowed" if data.get("allowed") else f"refused ({data.get('reason')})"
                what = f"{'approve' if data.get('approve') else 'deny'} {verdict}"
            actor = f" <@{entry['actor']}>" if entry.get("actor") else ""
            lines.append(f"• {when} UTC `{entry.get('kind')}`{actor} {untrusted(str(what))[:300]}")
        return lines
