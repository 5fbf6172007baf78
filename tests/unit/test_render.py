"""Block Kit rendering: every message Slack would accept (no `invalid_blocks`, ever), nothing from a target
becomes a mention, a link or a code fence, and the plain-text renderings stay as they were."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block

from bot import render
from bot.render import (
    ACTION_RUN_AGAIN,
    ACTION_SHARE,
    clamp_blocks,
    error_blocks,
    help_blocks,
    multi_report_blocks,
    multi_report_fallback,
    progress_blocks,
    report_blocks,
    report_fallback,
    report_text,
    targets_blocks,
)
from checks.diagnosis import CAUSES
from checks.models import Cause, CheckResult, Status, TargetReport
from checks.registry import CHECK_IDS
from tests.support.examples import examples
from wsmsg import verbatim

try:
    from tests.fakeslack.blocks import validate_blocks
except ModuleNotFoundError:  # plain `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fakeslack.blocks import validate_blocks

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=3)
OK, WARN, FAIL, ERROR, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP
EVIL = "<!channel> <!here> <@U1> <#C1|general> <http://x|y> & ```rm -rf /``` `x` *b* _i_ ~s~ 😀"

# The only `<…>` Slack markup the renderer may produce: its own date token and user mentions.
ALLOWED_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>|<@[UW][A-Z0-9]+>")


# -- validation --------------------------------------------------------------------------------------------------


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _tree(obj: JsonObject) -> Iterator[JsonObject]:
    yield obj
    for attr in sorted(obj.attributes):
        value = getattr(obj, attr, None)
        for child in value if isinstance(value, list | tuple) else [value]:
            if isinstance(child, JsonObject):
                yield from _tree(child)


def _texts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def assert_safe_mrkdwn(text: str) -> None:
    """Balanced code fences, and no Slack markup but our date tokens and user mentions."""
    assert text.count("```") % 2 == 0, text
    rest = ALLOWED_TOKEN.sub("", text)
    assert "<" not in rest and ">" not in rest, rest
    assert re.search(r"&(?!(?:amp|lt|gt);)", rest) is None, rest


def assert_valid(blocks: list[dict[str, Any]]) -> None:
    """What Slack checks (slack_sdk's offline limits + the fake's stricter rules) and what we promise."""
    assert 1 <= len(blocks) <= 50
    json.dumps(blocks, ensure_ascii=False).encode("utf-8")  # JSON-ready: no lone surrogates, no objects
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        for obj in _tree(parsed):
            obj.validate_json()
    assert validate_blocks(blocks) == []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < u16(block["text"]["text"]) <= 150
        if kind == "section":
            if "text" in block:
                assert 0 < u16(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(0 < u16(f["text"]) <= 2000 for f in block.get("fields", []))
        if kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(0 < u16(e["text"]) <= 3000 for e in block["elements"] if "text" in e)
        if kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids))
            for element in block["elements"]:
                assert 0 < u16(element["text"]["text"]) <= 75
                assert 0 < u16(element.get("value", "x")) <= 2000
                assert 0 < u16(element["action_id"]) <= 255
    for text in _texts(blocks):
        if text["type"] == "mrkdwn":
            assert_safe_mrkdwn(text["text"])


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(t["text"] for t in _texts(blocks))


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


# -- reports -----------------------------------------------------------------------------------------------------


def check(cid: str, status: Status = OK, summary: str | None = None, ms: float = 12.0, **details: Any) -> CheckResult:
    return CheckResult(id=cid, status=status, summary=summary or f"{cid} fine", duration_ms=ms, details=details)


def healthy(target: str = "web") -> TargetReport:
    return TargetReport(target=target, host="203.0.113.10", started_at=T0, duration_ms=1312.0,
                        checks=tuple(check(cid) for cid in CHECK_IDS))


def seed() -> TargetReport:
    """The story: nginx proxies to 3003, the app listens on 3000."""
    checks = [check(cid) for cid in CHECK_IDS]
    checks[CHECK_IDS.index("port.match")] = check(
        "port.match", FAIL, "nginx proxies to 3003 but kathario-saas listens on 3000", 3.0, side="app")
    checks[CHECK_IDS.index("ws.proxy")] = check("ws.proxy", FAIL, "502 from nginx", 412.0)
    checks[CHECK_IDS.index("pm2.logs")] = check(
        "pm2.logs", WARN, "2 recent error line(s)", 40.0,
        error_lines=["Error: listen EADDRINUSE: address already in use :::3000", "<!channel> & `boom`"])
    cause = Cause(cause="port_mismatch", summary="nginx proxies to 3003 but kathario-saas listens on 3000",
                  evidence=("port.match", "ws.proxy"),
                  fix=("PORT=3003 pm2 restart kathario-saas --update-env", "pm2 save"))
    return TargetReport(target="web", host="203.0.113.10", started_at=T0, duration_ms=1312.0, checks=tuple(checks),
                        diagnosis=(cause,))


def largest(target: str = "w" * 500) -> TargetReport:
    """Everything at its worst: every check failing with 3000-char summaries and huge details, 20 log lines
    of 300 characters full of markup, 13 causes with 30 fix lines each."""
    logs = [f"{i:02d} <!channel> ``` `x` & " + "é😀<>" * 80 for i in range(20)]
    logs = [line[:300] for line in logs]
    huge = {"blob": "x" * 100_000, "nested": [{"k": "<!channel>" * 1000}] * 50}
    checks = tuple(
        check(cid, FAIL if i % 2 else ERROR, (f"{cid} <!here> ```" + "ä&<" * 1500)[:3000], 1e12 * i,
              **huge, **({"error_lines": logs} if cid == "pm2.logs" else {}))
        for i, cid in enumerate(CHECK_IDS)
    )
    causes = tuple(
        Cause(cause=cid, summary=("<@U1> ```" + "x&" * 2000)[:3000], severity=WARN if i % 3 == 2 else FAIL,
              evidence=CHECK_IDS, fix=tuple(f"step {n} <!channel> ``` " + "y" * 400 for n in range(30)))
        for i, cid in enumerate(list(CAUSES)[:13])
    )
    return TargetReport(target=target, host="h" * 300, started_at=T0, duration_ms=98765.0, checks=checks,
                        diagnosis=causes)


# -- plain text stays as it was ----------------------------------------------------------------------------------


def test_report_text_is_unchanged() -> None:
    report = TargetReport(
        target="web", host="h1", started_at=T0, duration_ms=12345.0,
        checks=(check("nginx.syntax", OK, "nginx -t: syntax ok", 12.0), check("port.match", FAIL, "3003 vs 3000", 3.0)),
        diagnosis=(Cause(cause="port_mismatch", summary="3003 vs 3000", evidence=("port.match",), fix=("pm2 save",)),),
    )
    assert report_text(report, lang="en") == (
        "web (h1): FAIL in 12.3 s\n"
        "  ok    nginx.syntax  nginx -t: syntax ok  (12 ms)\n"
        "  FAIL  port.match    3003 vs 3000  (3 ms)\n"
        "\n"
        "Diagnosis (root cause first):\n"
        "  1. [port_mismatch] 3003 vs 3000\n"
        "     evidence: port.match\n"
        "     fix:\n"
        "       pm2 save"
    )
    assert report_text(healthy(), lang="en").endswith("No known problem: the stack looks healthy.")


# -- one report --------------------------------------------------------------------------------------------------


def test_seed_report() -> None:
    blocks = report_blocks(seed(), requested_by="U123ABC", now=NOW, run_again="web", lang="en")
    assert_valid(blocks)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "❌ web: FAIL", "emoji": True}}
    text = all_text(blocks)
    for cid in CHECK_IDS:
        assert f"`{cid}`" in text
    assert "❌ *ports agree* `port.match` — nginx proxies to 3003 but kathario-saas listens on 3000 · 3 ms" in text
    assert "· 412 ms" in text
    assert "*Root cause* `port_mismatch`" in text
    assert "evidence: `port.match`, `ws.proxy`" in text
    assert "```\nPORT=3003 pm2 restart kathario-saas --update-env\npm2 save\n```" in text
    assert "&lt;!channel&gt; &amp; `boom`" in text  # the log line, harmless
    context = [b for b in blocks if b["type"] == "context"][-1]["elements"][0]["text"]
    assert "<!date^1714564800^{date_short_pretty} {time}|2024-05-01 12:00 UTC>" in context
    assert "took 1.3 s" in context and "asked by <@U123ABC>" in context and "`203.0.113.10`" in context
    assert "before this message" not in context
    assert blocks[-1]["type"] == "actions"
    found = buttons(blocks)
    assert list(found) == [ACTION_SHARE, ACTION_RUN_AGAIN]
    assert found[ACTION_RUN_AGAIN]["value"] == "web"
    assert found[ACTION_SHARE]["value"] == "web"
    assert found[ACTION_SHARE]["text"]["text"].endswith("Share to channel")
    assert found[ACTION_RUN_AGAIN]["text"]["text"].endswith("Run again")


def test_healthy_report() -> None:
    blocks = report_blocks(healthy(), requested_by=None, now=NOW, lang="en")
    assert_valid(blocks)
    assert blocks[0]["text"]["text"] == "✅ web: ok"
    text = all_text(blocks)
    assert "No known problem: the stack looks healthy." in text
    assert "Root cause" not in text and "asked by" not in text
    assert len(blocks) == 6  # header, checks, divider, verdict, context, actions
    assert list(buttons(blocks)) == [ACTION_SHARE]  # no Run again without a command


def test_warnings_without_cause_and_warn_causes() -> None:
    report = TargetReport(target="web", host="h", started_at=T0, checks=(check("pm2.logs", WARN, "1 line"),))
    text = all_text(report_blocks(report, requested_by=None, now=NOW, lang="en"))
    assert "No known problem, but look at the warnings above." in text
    assert "healthy" not in text
    warn_cause = Cause(cause="nginx_ws_timeout_short", summary="60 s", severity=WARN, fix=("nginx -t",))
    report = report.model_copy(update={"diagnosis": (warn_cause,)})
    text = all_text(report_blocks(report, requested_by=None, now=NOW, lang="en"))
    assert "⚠️ *Warning* `nginx_ws_timeout_short` — 60 s" in text


def test_no_checks() -> None:
    report = TargetReport(target="web", host="h", started_at=T0)
    blocks = report_blocks(report, requested_by="U1", now=NOW, lang="en")
    assert_valid(blocks)
    assert "No checks ran" in all_text(blocks)
    assert report_fallback(report, lang="en") == "web: skip — no checks ran"


def test_largest_report_stays_within_every_limit() -> None:
    report = largest()
    blocks = report_blocks(report, requested_by="U1", now=NOW, run_again="all web",
                           extra_actions=[{"type": "button", "action_id": "wscheck_restart",
                                           "text": {"type": "plain_text", "text": "Propose restart"},
                                           "value": "web"}], lang="en")
    assert_valid(blocks)
    text = all_text(blocks)
    assert u16(blocks[0]["text"]["text"]) <= 150 and blocks[0]["text"]["text"].startswith("❌ www")
    for cid in CHECK_IDS:  # one line per check survives
        assert f"`{cid}`" in text
    for cause in report.diagnosis:  # every cause is named, root first
        assert f"`{cause.cause}`" in text
    assert text.index("`target_unreachable`") < text.index("`nginx_config_invalid`")
    assert "more lines (see `wscheck check`)" in text  # fix steps beyond the budget are named, not lost silently
    assert "19 &lt;!channel&gt;" in text  # the newest log line is kept, the oldest go first
    assert "earlier lines not shown" in text
    assert "<!channel>" not in text and "<@U1>" not in text.replace("asked by <@U1>", "")
    assert list(buttons(blocks)) == [ACTION_SHARE, ACTION_RUN_AGAIN, "wscheck_restart"]
    assert blocks[-2]["type"] == "context" and blocks[-1]["type"] == "actions"
    assert u16(report_fallback(report, lang="en")) <= 3000
    shared = report_blocks(report, requested_by="U1", now=NOW, share=False, shared_by="U2", lang="en")
    assert_valid(shared)


def test_many_checks_and_causes_fold_instead_of_overflowing() -> None:
    checks = tuple(check(f"c{i}", OK if i % 5 else FAIL, "s" * 900) for i in range(400))
    causes = tuple(Cause(cause=f"k{i}", summary="z" * 2500, fix=("f" * 280,) * 12) for i in range(60))
    report = TargetReport(target="web", host="h", started_at=T0, checks=checks, diagnosis=causes)
    blocks = report_blocks(report, requested_by="U1", now=NOW, run_again="web", lang="en")
    assert_valid(blocks)
    text = all_text(blocks)
    assert "`k0`" in text and "`c0`" in text  # the first failing check and the root cause stay
    assert "ok or skipped" in text  # ok checks are folded first
    assert "more cause" in text
    assert blocks[-1]["type"] == "actions" and blocks[-2]["type"] == "context"


def test_share_and_run_again_options() -> None:
    report = seed()
    shared = report_blocks(report, requested_by="U1", now=NOW, share=False, shared_by="U2", lang="en")
    assert_valid(shared)
    assert ACTION_SHARE not in buttons(shared)
    assert not any(b["type"] == "actions" for b in shared)  # nothing to press on the shared copy
    context = shared[-1]["elements"][0]["text"]
    assert "asked by <@U1>" in context and "shared by <@U2>" in context
    # the whole checklist everywhere: `as_text` gives "", the button carries `all` (same request)
    assert buttons(report_blocks(report, requested_by="U1", now=NOW, run_again="",
                                 lang="en"))[ACTION_RUN_AGAIN]["value"] == "all"
    # a command too long for a button value is not cut (it would re-run something else): no button
    assert ACTION_RUN_AGAIN not in buttons(report_blocks(report, requested_by="U1", now=NOW, run_again="x" * 2001,
                                                         lang="en"))
    assert buttons(report_blocks(report, requested_by="U1", now=NOW, share_value="abc",
                                 lang="en"))[ACTION_SHARE]["value"] == "abc"
    # a user id that is not one is shown as text, not as markup
    blocks = report_blocks(report, requested_by="<!channel>", now=NOW, lang="en")
    assert_valid(blocks)
    assert "asked by &lt;!channel&gt;" in all_text(blocks)


def test_old_results_say_how_old() -> None:
    blocks = report_blocks(seed(), requested_by=None, now=T0 + timedelta(minutes=12, seconds=5), lang="en")
    assert "(12 mins before this message)" in blocks[-2]["elements"][0]["text"]
    naive = seed().model_copy(update={"started_at": datetime(2024, 5, 1, 12, 0)})  # naive = UTC
    assert "<!date^1714564800^" in all_text(report_blocks(naive, requested_by=None, now=NOW, lang="en"))


def test_escaping_neutralises_markup() -> None:
    report = TargetReport(
        target="web", host="<!channel>", started_at=T0,
        checks=(check("port.match", FAIL, EVIL), check("pm2.logs", WARN, "x", error_lines=[EVIL, "```", "&amp;"])),
        diagnosis=(Cause(cause="unknown", summary=EVIL, evidence=("<@U1>",), fix=(EVIL, "```", "a ```` b")),),
    )
    blocks = report_blocks(report, requested_by="U9", now=NOW, lang="en")
    assert_valid(blocks)
    text = all_text(blocks)
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U1&gt; &lt;#C1|general&gt; &lt;http://x|y&gt; &amp;" in text
    assert "&amp;amp;" in text  # a literal entity in a log line is shown as written
    assert "```rm" not in text and "`\u200b`\u200b`rm -rf /`\u200b`\u200b`" in text
    assert "a `\u200b`\u200b`\u200b` b" in text
    fallback = report_fallback(report, lang="en")
    assert fallback.startswith("web: FAIL — unknown: &lt;!channel&gt; &lt;!here&gt; &lt;@U1&gt;")
    assert_safe_mrkdwn(fallback)


# -- fallback text -----------------------------------------------------------------------------------------------


def test_fallback_text() -> None:
    story = "port_mismatch: nginx proxies to 3003 but kathario-saas listens on 3000"
    assert report_fallback(seed(), lang="en") == f"web: FAIL — {story}"
    assert report_fallback(healthy(), lang="en") == f"web: ok — {len(CHECK_IDS)} checks ok: the stack looks healthy"
    warn_only = TargetReport(target="web", host="h",
                             checks=(check("nginx.syntax"), check("pm2.logs", WARN, "3\nlines")))
    assert report_fallback(warn_only, lang="en") == "web: WARN — pm2.logs: 3 lines"
    long = report_fallback(largest(), lang="en")
    assert u16(long) <= 3000 and long.endswith("…") and "\n" not in long
    assert_safe_mrkdwn(long)
    assert multi_report_fallback([seed()], lang="en") == report_fallback(seed(), lang="en")
    both = multi_report_fallback([healthy("api"), seed()], lang="en")
    assert both == f"2 targets: FAIL — web: FAIL — {story}"
    assert multi_report_fallback([healthy("a"), healthy("b")], lang="en") == "2 targets: ok — all ok"
    assert u16(multi_report_fallback([largest(f"t{i}") for i in range(10)], lang="en")) <= 3000


# -- several reports ---------------------------------------------------------------------------------------------


def test_multi_target_full_form_when_it_fits() -> None:
    reports = [healthy("api"), seed()]
    blocks = multi_report_blocks(reports, requested_by="U1", now=NOW, run_again="", lang="en")
    assert_valid(blocks)
    headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    assert headers == ["✅ api: ok", "❌ web: FAIL"]
    assert sum(b["type"] == "actions" for b in blocks) == 1 and sum(b["type"] == "context" for b in blocks) == 1
    assert "2 targets" in blocks[-2]["elements"][0]["text"]
    assert buttons(blocks)[ACTION_RUN_AGAIN]["value"] == "all"


def test_ten_targets() -> None:
    fine = [healthy(f"ok{i}") for i in range(10)]
    blocks = multi_report_blocks(fine, requested_by="U1", now=NOW, lang="en")
    assert_valid(blocks)
    assert sum(b["type"] == "header" for b in blocks) == 10  # 10 healthy targets fit in full

    mixed = [largest(f"bad{i}") if i % 2 else healthy(f"ok{i}") for i in range(10)]
    blocks = multi_report_blocks(mixed, requested_by="U1", now=NOW, run_again="all",
                                 share=False, shared_by="U2", lang="en")
    assert_valid(blocks)
    assert blocks[0]["text"]["text"] == "❌ 10 targets: FAIL"
    assert len(blocks) == 1 + 5 + 1 + 2  # header, one section per failing target, the ok line, footer
    text = all_text(blocks)
    for i in range(1, 10, 2):
        assert f"*bad{i}*" in text
    assert "*5 targets ok*: `ok0`, `ok2`, `ok4`, `ok6`, `ok8`" in text
    assert "*Root cause* `target_unreachable`" in text  # each failing target keeps its first cause
    assert "shared by <@U2>" in text


def test_many_failing_targets_are_trimmed_from_the_middle() -> None:
    reports = [seed().model_copy(update={"target": f"t{i}"}) for i in range(80)]
    blocks = multi_report_blocks(reports, requested_by="U1", now=NOW, run_again="all", lang="en")
    assert_valid(blocks)
    assert len(blocks) == 50
    assert blocks[-1]["type"] == "actions" and blocks[-2]["type"] == "context"
    assert "… 34 more lines trimmed" in blocks[-3]["elements"][0]["text"]
    assert multi_report_blocks([], requested_by=None, now=NOW, lang="en")[0]["type"] == "section"


# -- other messages ----------------------------------------------------------------------------------------------


def test_progress_blocks() -> None:
    blocks = progress_blocks("pm2, port on web", count=12, target="web", requested_by="U1", lang="en")
    assert_valid(blocks)
    assert blocks[0]["text"]["text"] == "⏳ Running 12 checks on *web*…"
    assert blocks[1]["elements"][0]["text"] == "pm2, port on web · asked by <@U1>"
    one = progress_blocks("", count=1, target=None, requested_by=None, lang="en")
    assert_valid(one)
    assert one == [{"type": "section", "text": {"type": "mrkdwn", "text": "⏳ Running 1 check on every target…"}}]
    assert_valid(progress_blocks(EVIL * 100, count=3, target=EVIL * 50, requested_by=EVIL, lang="en"))


def test_error_blocks() -> None:
    blocks = error_blocks("unknown command or item `pm`", suggestion="pm2", usage="*Usage*: `/wscheck [ITEM...]`",
                          targets=["web", "api"], lang="en")
    assert_valid(blocks)
    text = all_text(blocks)
    assert "❗ unknown command or item `pm`\nDid you mean `pm2`?" in text
    assert "*Targets*: `web`, `api`" in text and "*Usage*: `/wscheck [ITEM...]`" in text
    # chat words quoted back are escaped; Slack's own entities are not escaped twice
    blocks = error_blocks("unknown target `&lt;!channel&gt;` <!here> & ```", suggestion="`x`", lang="en")
    assert_valid(blocks)
    assert "`&lt;!channel&gt;` &lt;!here&gt; &amp;" in all_text(blocks)
    assert "Did you mean `'x'`?" in all_text(blocks)
    assert_valid(error_blocks("", usage="u\n" * 5000, targets=[f"t{i}" * 30 for i in range(500)], lang="en"))


def test_help_and_targets_blocks() -> None:
    from bot.chat.commands import HELP

    blocks = help_blocks(HELP, lang="en")
    assert_valid(blocks)
    assert "`/wscheck [ITEM...] [TARGET]`" in all_text(blocks)
    assert_valid(help_blocks("line of help\n" * 2000, lang="en"))
    assert_valid(help_blocks("", lang="en"))
    blocks = targets_blocks([("web", "deploy@203.0.113.10"), ("local", "local")], lang="en")
    assert_valid(blocks)
    assert "• `web` — deploy@203.0.113.10\n• `local` — local" in all_text(blocks)
    assert_valid(targets_blocks([], lang="en"))
    many = targets_blocks([(f"t{i}" * 20, EVIL * 10) for i in range(3000)], lang="en")
    assert_valid(many)
    assert "more target" in all_text(many)


# -- clamp_blocks ------------------------------------------------------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_clamp_drops_the_middle_and_keeps_the_footer() -> None:
    blocks = [section(f"line {i}") for i in range(80)]
    blocks += [{"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]},
               {"type": "actions", "elements": [{"type": "button", "action_id": "a",
                                                 "text": {"type": "plain_text", "text": "A"}}]}]
    out = clamp_blocks(blocks, lang="en")
    assert_valid(out)
    assert len(out) == 50
    assert [b["text"]["text"] for b in out[:47]] == [f"line {i}" for i in range(47)]
    assert out[47]["elements"][0]["text"].startswith("… 33 more lines trimmed")
    assert out[48]["elements"][0]["text"] == "ctx" and out[49]["type"] == "actions"
    assert len(blocks) == 82  # the input is not modified


def test_clamp_enforces_every_limit() -> None:
    code = "```\n" + "a&<" * 2000 + "\n```"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "mrkdwn", "text": "😀" * 200}, "block_id": "b"},
        {**section("&amp;" * 1000), "block_id": "b"},
        section(code.replace("&<", "&amp;&lt;")),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2500}] * 12, "block_id": "x" * 300},
        {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
        {"type": "header", "text": {"type": "plain_text", "text": "   "}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 4000}] * 12 + [{"type": "button"}]},
        {"type": "context", "elements": []},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": "ok", "text": {"type": "plain_text", "text": "t" * 100}, "value": "v"},
            {"type": "button", "action_id": "ok", "text": {"type": "plain_text", "text": "dup"}},
            {"type": "button", "action_id": "long-value", "text": {"type": "plain_text", "text": "v"},
             "value": "v" * 2001},
            {"type": "button", "action_id": "i" * 256, "text": {"type": "plain_text", "text": "id"}},
            {"type": "button", "action_id": "empty", "text": {"type": "plain_text", "text": ""}},
            *({"type": "button", "action_id": f"b{i}", "text": {"type": "plain_text", "text": "n"}}
              for i in range(30)),
        ]},
        {"type": "actions", "elements": [{"type": "button", "action_id": "gone", "value": "x" * 3000,
                                          "text": {"type": "plain_text", "text": "x"}}]},
        "not a block",  # type: ignore[list-item]
    ]
    out = clamp_blocks(blocks, lang="en")
    assert_valid(out)
    assert [b["type"] for b in out] == ["header", "section", "section", "section", "context", "actions"]
    assert out[0]["text"]["type"] == "plain_text" and u16(out[0]["text"]["text"]) <= 150
    assert out[0]["block_id"] == "b" and "block_id" not in out[1] and "block_id" not in out[3]
    assert out[1]["text"]["text"].endswith("&amp;…")  # never half an entity
    assert out[2]["text"]["text"].endswith("…\n```")  # a cut code block is closed again
    assert len(out[3]["fields"]) == 10
    assert len(out[4]["elements"]) == 10
    elements = out[5]["elements"]
    assert len(elements) == 25 and elements[0]["action_id"] == "ok"
    assert u16(elements[0]["text"]["text"]) <= 75
    assert [e["action_id"] for e in elements[1:4]] == ["b0", "b1", "b2"]


def test_clamp_never_splits_a_surrogate_pair_or_a_token() -> None:
    out = clamp_blocks([section("x" + "😀" * 2000), section("y" * 2990 + " <@U12345678>"),
                        {"type": "header", "text": {"type": "plain_text", "text": "a" + "😀" * 100}}], lang="en")
    assert_valid(out)
    assert out[0]["text"]["text"].endswith("😀…")
    assert out[1]["text"]["text"] == "y" * 2990 + " …"
    assert u16(out[2]["text"]["text"]) <= 150


# -- property: whatever a target says, Slack accepts the message -------------------------------------------------

NASTY = st.sampled_from(["<!channel>", "<@U1>", "<http://x|y>", "&", "&amp;", "```", "`", "\n", "😀", "👩‍👩‍👧",
                         "\u0000", "\ud800", "*", "_", "<", ">", "|", "\u200b", "e\u0301", "𝕏"])
WORDS = st.lists(st.one_of(st.text(max_size=30), NASTY), max_size=12).map("".join)
LONG = st.tuples(WORDS, st.integers(0, 400)).map(lambda t: t[0] * t[1])
TEXT = st.one_of(WORDS, LONG)
#: For the long lists (error lines, fix lines, evidence): drawing hundreds of fresh texts per report made these
#: tests 90 % data generation. A fixed corpus of the same nasty pieces, alone, joined and repeated to every
#: size class (past each Slack limit), keeps the coverage of sizes and markup at a fraction of the cost.
_PIECES = ["<!channel>", "<@U1>", "<http://x|y>", "&", "&amp;", "```", "`", "\n", "😀", "👩‍👩‍👧", "\u0000",
           "\ud800", "*", "_", "<", ">", "|", "\u200b", "e\u0301", "𝕏", "", "plain words", "pm2 restart app"]
CORPUS = sorted({piece * times for piece in _PIECES for times in (1, 3, 40, 160, 700, 3100)}
                | {"".join(_PIECES) * times for times in (1, 12, 90)})
BULK = st.one_of(st.sampled_from(CORPUS), WORDS)
ID = st.one_of(st.sampled_from(CHECK_IDS), TEXT)
BULK_ID = st.one_of(st.sampled_from(CHECK_IDS), BULK)
MS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1e7))


@st.composite
def reports(draw: st.DrawFn) -> TargetReport:
    checks = draw(st.lists(
        st.builds(CheckResult, id=BULK_ID, status=st.sampled_from(Status), message=BULK.map(verbatim), duration_ms=MS,
                  details=st.one_of(st.just({}), st.builds(lambda lines: {"error_lines": lines},
                                                           st.lists(BULK, max_size=25)))),
        max_size=40))
    causes = draw(st.lists(
        st.builds(Cause, cause=st.one_of(st.sampled_from(list(CAUSES)), TEXT), message=TEXT.map(verbatim),
                  severity=st.sampled_from(Status), evidence=st.lists(BULK_ID, max_size=15).map(tuple),
                  fixes=st.lists(BULK.map(verbatim), max_size=40).map(tuple)),
        max_size=20))
    return TargetReport(target=draw(st.text(min_size=1, max_size=600)), host=draw(TEXT),
                        started_at=draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                                     timezones=st.just(UTC))),
                        duration_ms=draw(MS), checks=tuple(checks), diagnosis=tuple(causes))


PROPERTY = settings(max_examples=examples(60), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(report=reports(), user=st.one_of(st.none(), st.just("U0123ABC"), TEXT), share=st.booleans(),
       run_again=st.one_of(st.none(), TEXT))
def test_any_report_is_valid(report: TargetReport, user: str | None, share: bool, run_again: str | None) -> None:
    blocks = report_blocks(report, requested_by=user, now=NOW, run_again=run_again, share=share, shared_by=user,
                           lang="en")
    assert_valid(blocks)
    fallback = report_fallback(report, lang="en")
    assert 0 < u16(fallback) <= 3000 and "\n" not in fallback
    assert_safe_mrkdwn(fallback)


@settings(PROPERTY, max_examples=examples(30))
@given(many=st.lists(reports(), min_size=1, max_size=5), copies=st.integers(1, 12))
def test_any_set_of_reports_is_valid(many: list[TargetReport], copies: int) -> None:
    blocks = multi_report_blocks(many * copies, requested_by="U1", now=NOW, run_again="all", lang="en")
    assert_valid(blocks)
    assert u16(multi_report_fallback(many * copies, lang="en")) <= 3000


@PROPERTY
@given(texts=st.lists(TEXT, max_size=70), kind=st.sampled_from(["mrkdwn", "plain_text"]))
def test_clamp_accepts_any_text(texts: list[str], kind: str) -> None:
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": "h" + t}}
                                    for t in texts[:3]]
    blocks += [{"type": "section", "text": {"type": kind, "text": render._untrusted(t) if kind == "mrkdwn" else t}}
               for t in texts]
    out = clamp_blocks(blocks, lang="en")
    if out:
        assert_valid(out)
