"""Typed outgoing messages (bot/outgoing.py): stored as data, rendered by the front at delivery, the same Slack
text and blocks as the builders they replace; an outbox row an older bot wrote (rendered text + blocks) is still
delivered as it is.

tests/fixtures/outgoing/golden.json was made once, before the builders moved, by running the old
`alerts.root_blocks`/`ops_for`/`silence_note`/`fix_outcome_note`, `remediation.approval_blocks`, the monitor's TLS
notice and the remediation's thread notes (main at 6e1a45e) on sample data — the incidents' summaries carry
`<!channel>`, `&`, backticks and code fences, in English and Korean — next to the typed message the feature now
produces for the same data. A renderer that drifts from what Slack was shown fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import outgoing as og
from bot.fronts.outgoing import slack
from bot.fronts.sinks import ConsoleSink
from bot.store import Store
from bot.store.outbox import APPROVAL_EVENT, Outbox, Payload
from wsmsg import Msg

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures" / "outgoing" / "golden.json").read_text())


def test_the_golden_samples_cover_every_kind_of_message_in_both_languages() -> None:
    kinds = {(case["message"]["kind"], case["lang"]) for case in GOLDEN}
    every = {"alert_root", "root_edit", "alert_reply", "silence_note", "fix_outcome", "tls_expiring", "approval",
             "thread_note"}
    assert kinds == {(k, lang) for k in every for lang in ("en", "ko")}


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['lang']}-{c['message']['kind']}")
def test_each_typed_message_renders_what_the_old_builders_rendered(case: dict[str, Any]) -> None:
    message = og.load(case["message"])
    # Stored as data: through JSON and back, the same message (the outbox stores exactly this).
    assert og.load(json.loads(json.dumps(og.dump(message)))) == message
    text, blocks = slack(message, lang=case["lang"])
    assert text == case["text"]
    assert blocks == case["blocks"]


def test_a_stored_message_holds_data_not_sentences_nor_blocks() -> None:
    for case in GOLDEN:
        body = json.dumps(case["message"], ensure_ascii=False)
        assert '"blocks"' not in body and '"mrkdwn"' not in body
        assert "<!date" not in body and "<!subteam" not in body and "&lt;" not in body  # markup: the renderer's
        if case["lang"] == "ko":  # the same stored message is said in Korean only when rendered
            assert not any("\uac00" <= ch <= "\ud7a3" for ch in body), body


class RecordingSink:
    """The console's rendering over a recording of what was sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.console = ConsoleSink(self.lines.append)
        self.sent: list[dict[str, Any]] = []

    def render(self, message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        return slack(og.load(message), lang="en")

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        self.sent.append({"text": text, "blocks": blocks, "thread_ts": thread_ts, "metadata": metadata})
        await self.console.post(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, metadata=metadata)
        return f"ts-{len(self.sent)}"

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.sent.append({"update": ts, "text": text, "blocks": blocks})

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        return None


async def _outbox(store: Store, sink: RecordingSink) -> Outbox:
    async def posted(target: str, incident_id: str, channel: str, ts: str) -> None: ...

    async def root_ts(target: str, incident_id: str) -> str | None:
        return "1.1"

    return Outbox(store, sink, on_root_posted=posted, root_ts=root_ts)


async def test_a_legacy_outbox_row_is_delivered_as_it_was_rendered(db: str) -> None:
    """A row written by an older bot (text + blocks, no message) survives the upgrade and is posted unchanged."""
    legacy_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*old* <@U1> rendered"}}]
    row = json.dumps({"kind": "approval", "target": "web", "incident_id": "R-1", "key": "R-1", "channel": "C1",
                      "text": "old fallback <@U1>", "blocks": legacy_blocks, "thread_ts": None})
    store = await Store.open(db)
    sink = RecordingSink()
    try:
        await store.enqueue(lane="approval:web", kind="approval", payload=row, dedup_key="R-1/post")
        box = await _outbox(store, sink)
        assert await box.drain_once() == 1
        assert sink.sent == [{"text": "old fallback <@U1>", "blocks": legacy_blocks, "thread_ts": None,
                              "metadata": {"event_type": APPROVAL_EVENT, "event_payload": {"op": "R-1"}}}]
        assert await store.outbox_depth() == 0
        assert sink.lines[0] == "old fallback @U1"  # the console shows it plain
    finally:
        await store.close()


async def test_the_outbox_stores_the_typed_message_and_renders_it_at_delivery(db: str) -> None:
    case = next(c for c in GOLDEN if c["message"]["kind"] == "alert_root" and c["lang"] == "en")
    message = og.load(case["message"])
    payload = Payload(kind="post_root", target="web", incident_id="web-1", key="web-1/opened", channel="C1",
                      message=og.dump(message))
    stored = json.loads(payload.dump())
    assert stored["message"] == og.dump(message) and "blocks" not in stored and "text" not in stored
    assert Payload.load(payload.dump()) == payload
    store = await Store.open(db)
    sink = RecordingSink()
    try:
        await store.enqueue(lane="web", kind="post_root", payload=payload.dump(), dedup_key=payload.key)
        box = await _outbox(store, sink)
        await box.drain_once()
        assert sink.sent[0]["text"] == case["text"] and sink.sent[0]["blocks"] == case["blocks"]
        assert sink.sent[0]["metadata"] == {"event_type": "wscheck_alert",
                                            "event_payload": {"op": "web-1/opened", "incident": "web-1"}}
    finally:
        await store.close()


def test_notes_make_target_text_safe_at_rendering() -> None:
    note = og.ThreadNote(note=Msg("remediation.step_running", {"label": "<!channel> ```x```"}))
    text, blocks = slack(note, lang="en")
    assert "<!channel>" not in blocks[0]["text"]["text"] and "&lt;!channel&gt;" in blocks[0]["text"]["text"]
    assert "```" not in text


def test_console_sink_renders_in_its_language() -> None:
    lines: list[str] = []
    sink = ConsoleSink(lines.append, "ko")
    message = og.SilenceNote(target="web", by="U1", until=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1))
    text, _ = sink.render(og.dump(message))
    assert text == slack(message, lang="ko")[0] != slack(message, lang="en")[0]


FEATURES = ("bot.monitoring.monitor", "bot.monitoring.alerts", "bot.monitoring.incidents", "bot.remediation.engine",
            "bot.remediation.approvals", "bot.remediation.actions", "bot.outgoing", "bot.store.outbox")
RENDERERS = ("bot.render", "bot.fronts.outgoing", "bot.fronts.sinks")


def test_the_import_contract_keeps_the_block_builders_out_of_the_features() -> None:
    """The import-linter contract (`.ci/run` runs it) names these modules; and none imports a renderer directly
    today (its import graph, indirect imports included, is lint-imports' job)."""
    import ast
    import importlib
    import tomllib

    root = Path(__file__).parents[2]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if "never build Slack blocks" in c["name"])
    assert {"bot.monitoring", "bot.remediation", "bot.outgoing", "bot.store"} <= set(contract["source_modules"])
    assert {"bot.render", "bot.fronts"} <= set(contract["forbidden_modules"])
    for name in FEATURES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            f"bot.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "bot"
            for a in n.names}
        assert not imported & set(RENDERERS), (name, imported & set(RENDERERS))
