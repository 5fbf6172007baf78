"""Issue 13, defect 2, in-process: an uncertain message whose lookup keeps failing is never posted again; it stays
uncertain, the lookup is retried with growing delays, and after UNCERTAIN_REPORT_AFTER it is reported once
(log and the `uncertain_overdue` event the app counts in metrics)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.store import Store
from bot.store.outbox import LEGACY, UNCERTAIN_REPORT_AFTER, Outbox, Payload, SinkError
from tests.support.sinks import SlackRendering

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class LostSink(SlackRendering):
    """Every post times out after reaching Slack; every lookup fails (500) until `lookups_work`."""

    def __init__(self) -> None:
        self.posts = 0
        self.finds = 0
        self.lookups_work = False

    async def post(self, **_: Any) -> str:
        self.posts += 1
        raise SinkError("no answer from Slack: TimeoutError", uncertain=True)

    async def update(self, **_: Any) -> None: ...

    async def find(self, **_: Any) -> str | None:
        self.finds += 1
        if not self.lookups_work:
            raise SinkError("Slack error 500 fatal_error")
        return "111.222"


async def test_failed_lookups_keep_the_item_uncertain_and_report_it_once(db: str,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    now = [T0]
    async with await Store.open(db, clock=lambda: now[0]) as store:
        sink = LostSink()
        posted: list[str] = []

        async def root_posted(target: str, incident: str, channel: str, ts: str) -> None:
            posted.append(ts)

        async def root_ts(target: str, incident: str) -> str | None:
            return None

        outbox = Outbox(store, sink, on_root_posted=root_posted, root_ts=root_ts, clock=lambda: now[0])
        events: list[str] = []
        outbox.on_event.append(events.append)
        payload = Payload(kind="post_root", target="web", incident_id="I-1", key="I-1/root", channel="C1",
                          message={"kind": LEGACY, "text": "down", "blocks": []})
        item_id = await store.enqueue(lane="web", kind="post_root", payload=payload.dump())
        assert await outbox.drain_once() == 1  # the post: answer lost
        assert sink.posts == 1
        delays = []
        with caplog.at_level(logging.WARNING, logger="bot.store.outbox"):
            for _ in range(16):
                item = await store.item(item_id)
                assert item is not None and item.status == "uncertain"
                delays.append(item.next_attempt_at - now[0])
                now[0] = item.next_attempt_at
                await outbox.drain_once()
        assert sink.posts == 1, "never posted blindly while the lookup fails"
        assert sink.finds == 16
        assert delays[1:] == sorted(delays[1:]) and delays[-1] > delays[1], delays  # backoff grows
        assert now[0] - T0 >= UNCERTAIN_REPORT_AFTER
        assert events.count("uncertain_overdue") == 1 and events.count("lookup_failed") == 16
        assert any("unknown outcome for over" in r.message and r.levelno == logging.ERROR for r in caplog.records)
        sink.lookups_work = True
        item = await store.item(item_id)
        assert item is not None
        now[0] = item.next_attempt_at + timedelta(seconds=1)
        await outbox.drain_once()
        item = await store.item(item_id)
        assert item is not None and item.status == "sent" and posted == ["111.222"] and sink.posts == 1
