"""Delivering alert messages: the SQLite outbox drained in order, nothing lost, nothing twice.

Every message is written to the outbox in the same transaction as the incident state that caused it,
then delivered here. Per target (lane) strictly in order, so a thread reply never overtakes its root.
429 waits for Retry-After; 5xx, timeouts and lost connections make the outcome *uncertain*: before such
a message is sent again, the channel (or thread) is searched for its metadata key, so a post that did
reach Slack is never posted a second time. An item is marked uncertain *before* each send, so even a
SIGKILL between "sent" and "recorded" is recovered by the same lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.store import OutboxItem, Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
IDLE_POLL = 1.0
#: A message whose outcome is still unknown this long after it was queued (every lookup failed) is reported
#: once, in the log (ERROR) and in metrics; it stays uncertain and its lookup keeps being retried, never a blind post.
UNCERTAIN_REPORT_AFTER = timedelta(minutes=10)
#: The Slack message metadata's event type of an approval request and of the notes in its thread: how a sink
#: (the console's "type approve" hint) and the lookup after an uncertain post know one, without reading blocks.
APPROVAL_EVENT = "wscheck_approval"


#: A typed outgoing message as its JSON data (`bot.outgoing.dump`: `{"kind": …, fields}`). The outbox stores it and
#: hands it to the sink, which loads and renders it; the store, below the features, never needs their types.
Message = dict[str, Any]
#: The kind of a message rendered by an older bot (its text and blocks), delivered as it is (`bot.outgoing.Rendered`).
LEGACY = "rendered"


class SinkError(Exception):
    """A delivery problem, classified: permanent (never retry), rate limited, or outcome unknown."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None,
                 uncertain: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.uncertain = uncertain


class Sink(Protocol):
    """Where alert messages go: Slack, or the console. The front's sink renders the typed messages (`render`, in
    its language, at delivery); `post` and `update` send what it rendered."""

    def render(self, message: Message) -> tuple[str, list[dict[str, Any]]]: ...

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str: ...

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Payload:
    """An outbox row: where and how to deliver (`kind`: post_root, reply, edit_root, notice, approval), the dedup and
    metadata `key`, and the typed `message` as data (`{"kind": …, fields}`), rendered by the sink at delivery. A row
    written by an older bot holds `text` and `blocks` already rendered: it loads as a `LEGACY` message and is
    delivered as it is."""

    kind: str
    target: str
    incident_id: str
    key: str
    channel: str
    message: Message
    thread_ts: str | None = None

    @classmethod
    def load(cls, text: str) -> Payload:
        data = json.loads(text)
        raw = data.get("message")
        message: Message = raw if isinstance(raw, dict) else {
            "kind": LEGACY, "text": str(data.get("text") or ""), "blocks": list(data.get("blocks") or [])}
        return cls(kind=data["kind"], target=data.get("target") or "", incident_id=data.get("incident_id") or "",
                   key=data["key"], channel=data["channel"], message=message, thread_ts=data.get("thread_ts"))

    def dump(self) -> str:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "message"}
        return json.dumps({**data, "message": self.message}, ensure_ascii=False)

    def metadata(self) -> dict[str, Any]:
        if self.kind == APPROVAL:
            return {"event_type": APPROVAL_EVENT, "event_payload": {"op": self.key}}
        return {"event_type": "wscheck_alert", "event_payload": {"op": self.key, "incident": self.incident_id}}


#: An approval request's message (bot/remediation/engine.py): posted like a root alert, its ts handed to `on_sent`.
APPROVAL = "approval"


RootPosted = Callable[[str, str, str, str], Awaitable[None]]  # (target, incident_id, channel, ts)
RootLookup = Callable[[str, str], Awaitable[str | None]]  # (target, incident_id) -> root ts


class Outbox:
    def __init__(self, store: Store, sink: Sink, *, on_root_posted: RootPosted, root_ts: RootLookup,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.sink = sink
        self.on_root_posted = on_root_posted
        self.root_ts = root_ts
        self.clock = clock or (lambda: datetime.now(UTC))
        self._wake = asyncio.Event()
        self.delivered = 0
        #: Per kind (APPROVAL): called with the payload and the message's ts once it is posted (or found) ...
        self.on_sent: dict[str, Callable[[Payload, str], Awaitable[None]]] = {}
        #: ... or with the payload and the reason when it can never be posted.
        self.on_failed: dict[str, Callable[[Payload, str], Awaitable[None]]] = {}
        #: Called with "lookup_failed" or "uncertain_overdue" (metrics).
        self.on_event: list[Callable[[str], None]] = []
        self._overdue_reported: set[int] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                items = await self.store.due_items(now=self.clock())
                if items:
                    await asyncio.gather(*(self._deliver(item) for item in items))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox drain failed; retrying")
                self._event("drain_error")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL)

    async def drain_once(self) -> int:
        """Deliver what is due now (used at shutdown, best effort)."""
        items = await self.store.due_items(now=self.clock())
        await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    def _event(self, name: str) -> None:
        for hook in self.on_event:
            hook(name)

    def _backoff(self, item: OutboxItem) -> timedelta:
        return timedelta(seconds=min(MAX_BACKOFF, 2.0 ** min(item.attempts, 6)))

    async def _deliver(self, item: OutboxItem) -> None:
        payload = Payload.load(item.payload)
        looking_up = False
        try:
            thread_ts = payload.thread_ts
            if payload.kind in ("reply", "edit_root") and not thread_ts:
                thread_ts = await self.root_ts(payload.target, payload.incident_id)
                if not thread_ts:
                    await self.store.mark_failed(item.id, error="the incident's root message was never posted")
                    log.error("dropping %s for %s: no root message to attach it to", payload.kind, payload.incident_id)
                    return
            text, blocks = self.sink.render(payload.message)  # in the front's language, with its markup
            if payload.kind == "edit_root":
                assert thread_ts is not None
                await self.sink.update(channel=payload.channel, ts=thread_ts, text=text, blocks=blocks)
                await self.store.mark_sent(item.id, result=json.dumps({"ts": thread_ts}))
                self.delivered += 1
                return
            ts: str | None = None
            if item.status == "uncertain":
                # Until this lookup succeeds, the item stays uncertain: a failed lookup is never a reason to post.
                looking_up = True
                ts = await self.sink.find(channel=payload.channel, thread_ts=thread_ts, key=payload.key,
                                          since=item.created_at - timedelta(seconds=5))
                looking_up = False
                if ts:
                    log.info("message %s had reached Slack already (found by metadata); not posting it again",
                             payload.key)
            if ts is None:
                # Uncertain from here on: a crash after the post is recovered by the metadata lookup.
                await self.store.mark_retry(item.id, next_attempt_at=self.clock(), error="sending", uncertain=True)
                ts = await self.sink.post(channel=payload.channel, text=text, blocks=blocks,
                                          thread_ts=thread_ts, metadata=payload.metadata())
            if payload.kind == "post_root":
                await self.on_root_posted(payload.target, payload.incident_id, payload.channel, ts)
            elif payload.kind in self.on_sent:
                await self.on_sent[payload.kind](payload, ts)
            await self.store.mark_sent(item.id, result=json.dumps({"ts": ts, "channel": payload.channel}))
            self.delivered += 1
        except SinkError as exc:
            if exc.permanent:
                log.error("alert message %s cannot be delivered: %s", payload.key, exc)
                await self.store.mark_failed(item.id, error=str(exc))
                if payload.kind in self.on_failed:
                    await self.on_failed[payload.kind](payload, str(exc))
                return
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else self._backoff(item)
            if looking_up:
                self._lookup_failed(item, payload, exc, delay)
            else:
                log.warning("alert message %s delayed %.0f s: %s", payload.key, delay.total_seconds(), exc)
            await self.store.mark_retry(item.id, next_attempt_at=self.clock() + delay, error=str(exc),
                                        uncertain=exc.uncertain or looking_up)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if looking_up:
                self._lookup_failed(item, payload, exc, self._backoff(item))
            log.exception("alert message %s: unexpected delivery error", payload.key)
            await self.store.mark_retry(item.id, next_attempt_at=self.clock() + self._backoff(item),
                                        error=f"{type(exc).__name__}: {exc}", uncertain=True)

    def _lookup_failed(self, item: OutboxItem, payload: Payload, exc: Exception, delay: timedelta) -> None:
        """A lookup of an uncertain message failed: it stays uncertain (retried with backoff); reported once when
        its outcome has been unknown for longer than UNCERTAIN_REPORT_AFTER."""
        self._event("lookup_failed")
        log.warning("message %s: outcome unknown and the lookup failed (%s); not posting it again, lookup retried in "
                    "%.0f s", payload.key, exc, delay.total_seconds())
        if self.clock() - item.created_at >= UNCERTAIN_REPORT_AFTER and item.id not in self._overdue_reported:
            self._overdue_reported.add(item.id)
            self._event("uncertain_overdue")
            log.error("message %s (outbox item %d, %s for %s) has had an unknown outcome for over %d min: every lookup "
                      "failed; it is not posted again until a lookup succeeds", payload.key, item.id, payload.kind,
                      payload.target, UNCERTAIN_REPORT_AFTER.total_seconds() // 60)
