"""The console sink tells a console user how to approve, for an approval request only, from the message's
metadata (it never looks inside the blocks, which are the Slack front's business)."""

from __future__ import annotations

from bot.fronts.sinks import ConsoleSink
from bot.store.outbox import APPROVAL_EVENT


async def test_an_approval_request_gets_the_approve_hint_and_nothing_else_does() -> None:
    lines: list[str] = []
    sink = ConsoleSink(lines.append)
    await sink.post(channel="C", text="fix requested", blocks=[], thread_ts=None,
                    metadata={"event_type": APPROVAL_EVENT, "event_payload": {"op": "R42"}})
    assert any("approve R42" in line for line in lines), lines
    for metadata, thread in (({"event_type": "wscheck_alert", "event_payload": {"op": "k"}}, None),
                             ({"event_type": APPROVAL_EVENT, "event_payload": {"op": "R42/1"}}, "console.000001"),
                             ({}, None)):
        lines.clear()
        await sink.post(channel="C", text="something", blocks=[{"type": "actions", "elements": []}],
                        thread_ts=thread, metadata=metadata)
        assert lines and not any("approve" in line for line in lines), (metadata, lines)
