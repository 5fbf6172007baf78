"""WSCHECK_LANG=ko: every message id exists in English and Korean with the same placeholders, every id is used,
no English sentence of ours survives in a Korean rendering, and every Korean message fits Slack's limits."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import re
import string
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import tests.unit.test_actions_alerts as taa
import tests.unit.test_approvals as tap
import tests.unit.test_diagnosis as tdi
import tests.unit.test_render as tre
from bot import i18n, render
from bot import outgoing as og
from bot.chat import commands as cmd
from bot.chat.core import Bot, Requester, Responder
from bot.fronts import outgoing as ro
from bot.fronts.console import ConsoleFront, ConsoleResponder
from bot.monitoring import alerts
from bot.monitoring import incidents as inc
from bot.remediation import actions as act
from bot.remediation import approvals as ap
from bot.remediation import engine as remediation
from bot.settings import Settings
from checks import messages as cm
from checks.config import TargetsConfig, load_targets
from checks.diagnosis import CAUSES, diagnose
from checks.models import CheckResult, Status, TargetReport
from checks.registry import BY_ID, CHECK_IDS
from wsmsg import Msg

ROOT = Path(__file__).resolve().parents[2]
CATALOGS: dict[str, dict[str, dict[str, str]]] = {"checks": cm.MESSAGES, "bot": i18n.MESSAGES}
ALL_KEYS = [(name, key) for name, catalog in CATALOGS.items() for key in catalog]
_FMT = string.Formatter()


@pytest.fixture
def ko() -> Iterator[None]:
    """Marks a test that renders in Korean (the language is a parameter of every renderer: no global to set)."""
    yield


def fields(template: str) -> list[tuple[str, str]]:
    return [(name, spec or "") for _, name, spec, _ in _FMT.parse(template) if name is not None]


def sample(template: str) -> dict[str, Any]:
    """Params for a template: numbers where a format spec needs one, else a token with no English word in it."""
    return {name: (12.0 if spec else f"⟨{i}⟩") for i, (name, spec) in enumerate(fields(template))}


# -- the catalogs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("catalog", "key"), ALL_KEYS, ids=[f"{c}:{k}" for c, k in ALL_KEYS])
def test_every_key_in_both_languages_with_the_same_placeholders(catalog: str, key: str) -> None:
    entry = CATALOGS[catalog][key]
    assert set(entry) == {"en", "ko"}, entry
    assert entry["en"].strip() and entry["ko"].strip()
    assert cm.placeholders(entry["en"]) == cm.placeholders(entry["ko"]), key
    assert dict(fields(entry["en"])) == dict(fields(entry["ko"])), "the same format specs"
    params = sample(entry["en"])
    for lang in ("en", "ko"):
        entry[lang].format(**params)
    assert not re.search(r"[가-힣]", entry["en"]), "Korean in the English template"
    if len(re.findall(r"[A-Za-z]{3,}", re.sub(r"`[^`]*`|\{[^}]*\}", "", entry["en"]))) >= 3:
        assert re.search(r"[가-힣]", entry["ko"]), f"{key}: not translated"


def test_plural_forms_come_in_pairs() -> None:
    for key in i18n.MESSAGES:
        if key.endswith((".one", ".other")):
            base = key.rsplit(".", 1)[0]
            assert f"{base}.one" in i18n.MESSAGES and f"{base}.other" in i18n.MESSAGES


def test_english_sides_are_the_registry_and_causes() -> None:
    for check_id, spec in BY_ID.items():
        assert cm.check_title(check_id, "en") == spec.title
        assert cm.check_description(check_id, "en") == spec.description
        assert cm.check_title(check_id, "ko") != spec.title
    assert set(cm.CAUSE_DESCRIPTIONS) == set(CAUSES)
    for cause, text in CAUSES.items():
        assert cm.cause_description(cause, "en") == text
    assert i18n.MESSAGES["commands.help"]["en"] == cmd.HELP
    assert i18n.MESSAGES["render.healthy"]["en"] == render.HEALTHY


def _sources() -> str:
    """Every .py of checks/ and bot/, with the catalogs' own dict literals blanked out."""
    texts = []
    for path in sorted([*ROOT.joinpath("checks").rglob("*.py"), *ROOT.joinpath("bot").rglob("*.py")]):
        source = path.read_text()
        if path.name in ("messages.py", "i18n.py"):
            lines = source.splitlines()
            for node in ast.parse(source).body:
                targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
                if any(isinstance(t, ast.Name) and t.id in ("MESSAGES", "CAUSE_DESCRIPTIONS", "_CHECK_KO")
                       for t in targets):
                    for n in range(node.lineno - 1, node.end_lineno or node.lineno):
                        lines[n] = ""
            source = "\n".join(lines)
        texts.append(source)
    return "\n".join(texts)


def test_every_key_is_used() -> None:
    code = _sources()
    dynamic = ("title.", "check_desc.", "cause_desc.")  # built from check and cause ids in checks/messages.py
    unused = []
    for _, key in ALL_KEYS:
        if key.startswith(dynamic):
            assert f'f"{key.split(".", 1)[0]}.{{' in code
            continue
        base = key.rsplit(".", 1)[0] if key.endswith((".one", ".other")) else key
        if f'"{base}"' not in code and f"'{base}'" not in code:
            unused.append(key)
    assert unused == []


# -- nothing of ours is left in English --------------------------------------------------------------------------

#: String constants in user-facing modules that are not messages, with why.
NOT_MESSAGES: dict[str, str] = {
    "No known problem: the stack looks healthy.": "render.HEALTHY: the English constant, kept for importers",
    "proxy_set_header Connection 'upgrade';": "an nginx config line (WS_LINES)",
    "a password is required": "compared with sudo's stderr",
    "a terminal is required": "compared with sudo's stderr",
    "password is required": "compared with sudo's stderr",
    "No such file": "compared with stat's stderr",
    "body is not UTF-8": "an HTTP 400 body for a malformed POST (a client, not a Slack user, reads it)",
    "body is not JSON": "an HTTP 400 body for a malformed POST (a client, not a Slack user, reads it)",
    "payload is not JSON": "an HTTP 400 body for a malformed POST (a client, not a Slack user, reads it)",
    "checks.registry and checks.items disagree": "an import-time assertion",
    " && npm run build": "a command",
    "npm run build": "a step label (a command)",
    "fast probe failed": "a reason that is only logged",
    "PM2 restarted the app a moment ago": "a reason that is only logged",
    "no pong within ": "a canary reason that is only logged",
    "no close frame": "a canary reason that is only logged",
    "Session ID unknown": "Engine.IO's own error message, matched in its answers (wt-sio)",
    "WebSocket handshake failed: ": "a canary reason that is only logged",
    "cannot reach Slack at ": "a startup retry reason that is only logged (wt-rel2)",
    "wscheck probe done": "the close reason the probe sends to the server",
    ": command not found": "a local command's stderr, as a shell would write it",
}
#: Calls whose text goes to logs, to operators at startup, or is a programming error.
LOG_CALLS = re.compile(r"^(log|_BOLT_LOG|logging)\.|^(StartupError|SinkError|ValueError|TypeError|KeyError|"
                       r"AssertionError|RuntimeError)$")
USER_FACING = ["bot/chat/core.py", "bot/chat/commands.py", "bot/monitoring/alerts.py", "bot/fronts/outgoing.py",
               "bot/chat/handlers.py", "bot/remediation/engine.py", "bot/fronts/console.py", "bot/fronts/slack.py",
               "bot/fronts/sinks.py", "bot/monitoring/incidents.py", "bot/monitoring/monitor.py",
               "bot/remediation/actions.py", "checks/facts.py", "checks/runner.py",
               "checks/diagnosis.py", "checks/probes.py",
               *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("bot/render/*.py")),
               *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("checks/items/*.py")),
               *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("checks/transport/*.py"))]
ENGLISH_RUN = re.compile(r"[A-Za-z']+(?: [A-Za-z']+){2,}")


def _call_name(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> str:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Call):
            return ast.unparse(node.func)
    return ""


def test_no_english_sentence_is_hard_coded_in_user_facing_code() -> None:
    """Every sentence a user reads comes from a catalog: a string constant with three English words in a row
    (outside backticks) is a log line, a programming error, or listed in NOT_MESSAGES."""
    found = []
    for rel in USER_FACING:
        tree = ast.parse((ROOT / rel).read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if isinstance(parents.get(node), ast.Expr):  # a docstring
                continue
            if not ENGLISH_RUN.search(re.sub(r"`[^`]*`", "", node.value)) or node.value in NOT_MESSAGES:
                continue
            if rel == "checks/diagnosis.py" and node.value in CAUSES.values():
                continue  # CAUSES: English for docs and --json; Korean in cm.CAUSE_DESCRIPTIONS
            if LOG_CALLS.search(_call_name(node, parents)) or _call_name(node, parents) == "self.confirm":
                continue
            found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []


def _english_fragments() -> dict[str, str]:
    """Runs of 3+ English words in our English templates (outside `code`, "quotes" and {fields}) -> key."""
    out: dict[str, str] = {}
    for name, catalog in CATALOGS.items():
        for key, entry in catalog.items():
            if entry["en"] == entry["ko"]:
                continue
            literal = "".join(text for text, *_ in _FMT.parse(entry["en"]))
            literal = re.sub(r"`[^`]*`|\"[^\"]*\"", " ", literal)
            for run in ENGLISH_RUN.findall(literal):
                if run not in entry["ko"]:  # kept on purpose in both languages (a command in a fix line)
                    out[run] = f"{name}:{key}"
    return out


FRAGMENTS = _english_fragments()


def assert_korean(text: str) -> None:
    """No English sentence of ours in `text` (text that is not ours, e.g. a command, may stay)."""
    left = {frag: key for frag, key in FRAGMENTS.items() if frag in text}
    assert left == {}, text[:3000]
    assert re.search(r"[가-힣]", text), text[:500]


# -- reports as the checks really produce them ---------------------------------------------------------------------

CHECK_KEYS = [k for k in cm.MESSAGES if k.split(".")[0] in ("nginx", "pm2", "port", "next", "web", "ws", "facts",
                                                             "runner", "transport", "probe")]


def keyed(check_id: str, status: Status, key: str, **details: Any) -> CheckResult:
    params = sample(cm.MESSAGES[key]["en"])
    m = cm.msg(key, **params)
    return CheckResult(id=check_id, status=status, message=m, details=details, duration_ms=12.0)


def every_summary_report() -> TargetReport:
    """One check result per check message of the catalog (more than 12: ids repeat, that is fine here)."""
    checks = tuple(keyed(CHECK_IDS[i % len(CHECK_IDS)], Status.FAIL if i % 3 else Status.WARN, key)
                   for i, key in enumerate(CHECK_KEYS))
    return TargetReport(target="web", host="203.0.113.10", started_at=tre.T0, duration_ms=1312.0, checks=checks)


#: A realistic keyed summary for each check, ok and failing, with nested messages where the checks nest them.
def real_summary(check_id: str, status: Status) -> cm.Msg:
    app, port = "kathario-saas", 3003
    good = status in (Status.OK, Status.SKIP)
    if check_id == "nginx.syntax":
        if good:
            return cm.msg("nginx.syntax.ok")
        return cm.msg("nginx.syntax.syntax_at", file="/etc/nginx/sites-enabled/k", line=9,
                      message='unknown directive "proxy_pas"')
    if check_id == "nginx.websocket":
        label = "location / (/etc/nginx/sites-enabled/k:12)"
        if good:
            return cm.msg("nginx.websocket.ok", label=label, upstream="127.0.0.1:3003")
        if status is Status.WARN:
            return cm.msg("nginx.websocket.weak", label=label, problems=cm.joined(
                [cm.msg("nginx.websocket.read_timeout", timeout=60.0), cm.msg("nginx.websocket.buffering")], "; "))
        return cm.msg("nginx.websocket.lacks", label=label, missing=cm.joined(
            [cm.verbatim("proxy_http_version 1.1"), cm.msg("nginx.websocket.name.upgrade"),
             cm.msg("nginx.websocket.name.connection")], ", "))
    if check_id == "pm2.status":
        if good:
            return cm.msg("pm2.status.ok", app=app, count=cm.msg("pm2.status.instances", count=2), pid=4242,
                          uptime="5 min", restarts=0)
        return cm.msg("pm2.status.other", app=app, status="stopped")
    if check_id == "port.listen":
        if good:
            return cm.msg("port.listen.ok", app=app, addrs="0.0.0.0:3003",
                          who=cm.msg("port.who_user", name="node", pid=4242, user="deploy"))
        return cm.msg("port.listen.none", port=port, elsewhere=cm.msg("port.listen.elsewhere", app=app, ports="3000"),
                      state=cm.msg("port.listen.not_running", app=app))
    if check_id == "port.match":
        if good:
            return cm.msg("port.match.ok", app=app, port=port)
        return cm.msg("port.match.app_side", port=port, app=app, app_ports="3000")
    if check_id == "port.conflict":
        if good:
            return cm.msg("port.conflict.free", port=port)
        return cm.msg("port.conflict.held", port=port, holders=cm.joined(
            [cm.msg("port.who", name="python3", pid=777)], ", "))
    if check_id == "next.build":
        if good:
            return cm.msg("next.build.ok", age="3 h")
        return cm.msg("next.build.missing", what=cm.msg("next.build.whole_build"), app_dir="/root/kathario-saas")
    if check_id in ("http.local", "http.proxy"):
        url = "http://127.0.0.1:3003/" if check_id == "http.local" else "http://203.0.113.10/"
        if good:
            return cm.msg("web.answers", url=url, status="200 OK", hint="")
        return cm.msg("web.answers", url=url, status="502 Bad Gateway", hint=cm.msg("web.hint_502"))
    if check_id in ("ws.local", "ws.proxy"):
        url = "ws://127.0.0.1:3003/ws"
        return cm.msg("ws.ok", url=url, rtt=3.2) if good else cm.msg("ws.no_answer", url=url, timeout=5.0)
    if check_id == "tls.certificate":  # wt-tls
        if good:
            return cm.msg("tls.not_https", url="http://203.0.113.10/")
        return cm.msg("tls.invalid", host="chat.example.com", port=443, why=cm.msg("tls.why.expired"),
                      names="chat.example.com", not_after="2026-01-01", issuer="CN=R11")
    if check_id == "pm2.saved":  # wt-host
        dump = "/root/.pm2/dump.pm2"
        return cm.msg("pm2.saved.ok" if good else "pm2.saved.stale", app=app, dump=dump)
    if check_id == "pm2.startup":  # wt-host
        return cm.msg("pm2.startup.ok" if good else "pm2.startup.not_enabled", unit="pm2-root", state="disabled")
    if check_id == "nginx.reload":  # wt-nginxrt
        if good:
            return cm.msg("nginxrt.loaded", loaded="2026-12-06 19:00:00 +0000", files=3)
        return cm.msg("nginxrt.pending", file="/etc/nginx/sites-enabled/k", modified="2026-12-06 19:05:00 +0000",
                      loaded="2026-12-06 19:00:00 +0000", more=0)
    if check_id == "nginx.errors":  # wt-nginxrt
        if good:
            return cm.msg("nginxrt.log_quiet", minutes=15, files="/var/log/nginx/error.log")
        return cm.msg("nginxrt.capacity", count=3, minutes=15, line="768 worker_connections are not enough")
    if check_id == "pm2.daemon":  # wt-sio
        if good:
            return cm.msg("pm2.daemon.ok", port=port, user="deploy", home="/home/deploy/.pm2")
        return cm.msg("pm2.daemon.mismatch", port=port, pid=4242, user="root", home="/root/.pm2",
                      our_user="deploy", our_home="~/.pm2")
    if check_id == "ws.sessions":  # wt-sio
        if good:
            return cm.msg("ws.sessions.not_socketio", protocol="websocket")
        return cm.msg("ws.sessions.unknown", n=3, polls=6, instances=2)
    # wt-host2
    numbers = cm.msg("host.memory.numbers", available=512, total=2048, swap=0)
    if check_id == "pm2.restarts":
        if good:
            return cm.msg("pm2.restarts.ok", app=app, restarts=2, delta=0)
        return cm.msg("pm2.restarts.loop", app=app, count=4, window="30 s", why=cm.msg("pm2.restarts.why.watch"))
    if check_id == "next.static":
        if good:
            return cm.msg("next.static.not_standalone")
        return cm.msg("next.static.missing", server="/srv/app/.next/standalone/server.js",
                      missing="/srv/app/.next/standalone/.next/static")
    if check_id == "host.memory":
        if good:
            return cm.msg("host.memory.ok", numbers=numbers, source="journalctl")
        return cm.msg("host.memory.oom_kernel", count=1, comm="node", pid=4242, source="dmesg", numbers=numbers)
    if check_id == "host.disk":
        if good:
            return cm.msg("host.disk.ok", count=2, mount="/", percent=40, free=9000, biggest="")
        return cm.msg("host.disk.full", mount="/", percent=99, free=12, limit=98,
                      biggest=cm.msg("host.disk.biggest", file="app-out.log", mb=812.0))
    if check_id == "host.fds":
        usage = cm.msg("host.fds.usage", pid=4242, open=1024, limit=1024)
        if good:
            return cm.msg("host.fds.ok", usage=usage)
        return cm.msg("host.fds.emfile", line="Error: accept EMFILE", usage=usage)
    assert check_id == "pm2.logs"
    if good:
        return cm.msg("pm2.logs.clean")
    return cm.msg("pm2.logs.errors", count=2, tag=" [eaddrinuse]", latest="Error: listen EADDRINUSE :::3003")


def real_results(overrides: Mapping[str, Any]) -> list[CheckResult]:
    """test_diagnosis's results, with summaries as the checks word them."""
    out = []
    for r in tdi.results(**overrides):
        m = real_summary(r.id, r.status)
        out.append(r.model_copy(update={"message": m, "duration_ms": 12.0}))
    return out


def diagnosed(name: str) -> TargetReport:
    overrides, _ = tdi.CASES[name]
    results = real_results(overrides)
    if name.startswith("unreachable"):
        results = [r.model_copy(update={"message": cm.verbatim("cannot reach 203.0.113.10:22: Connection refused")})
                   if r.details.get("error_kind") == "unreachable" else r for r in results]
    return TargetReport(target="web", host="deploy@203.0.113.10", started_at=tre.T0, duration_ms=1312.0,
                        checks=tuple(results), diagnosis=diagnose(tdi.TARGET, results))


def _all_reports() -> list[TargetReport]:
    return [*(diagnosed(name) for name in tdi.CASES), every_summary_report()]


def test_english_is_what_the_checks_always_said() -> None:
    """A result's and a cause's message in English is its summary (and fix lines); the JSON output has no keys;
    a message survives its JSON reference (incidents persist causes)."""
    for report in _all_reports():
        for c in report.checks:
            assert c.message.render("en") == c.summary
            assert cm.Msg.from_ref(json.loads(json.dumps(c.message.to_ref()))).en == c.summary
        for cause in report.diagnosis:
            assert len(cause.fixes) == len(cause.fix)
            assert [m.render("en") for m in cause.fixes] == list(cause.fix)
            loaded = type(cause).model_validate_json(cause.model_dump_json())
            assert loaded.model_dump(mode="json") == cause.model_dump(mode="json") and loaded.fix == cause.fix
        assert cm.localize(report, "en") is report
        dumped = json.dumps(report.to_json_dict())
        assert "summary_key" not in dumped and "fix_keys" not in dumped and "$msg" not in dumped


@pytest.mark.parametrize("name", list(tdi.CASES))
def test_diagnosis_in_korean(name: str, ko: None) -> None:
    report = diagnosed(name)
    shown = i18n.localize_report(report, lang="ko")
    for before, after in zip(report.checks, shown.checks, strict=True):
        assert (after.summary != before.summary) == (not before.message.is_plain), before.summary
    for before, cause in zip(report.diagnosis, shown.diagnosis, strict=True):
        assert cause.cause == before.cause and cause.evidence == before.evidence
        assert len(cause.fix) == len(before.fix)
        for old, new, line in zip(before.fix, cause.fix, before.fixes, strict=True):
            assert (old == new) == line.is_plain, (old, new)  # commands stay, sentences change
    text = render.report_text(report, lang="ko")
    if report.diagnosis and not name.startswith("unreachable"):
        assert_korean(text)
    blocks = render.report_blocks(report, requested_by="U123ABC", now=tre.NOW, run_again="web", lang="ko")
    tre.assert_valid(blocks)
    assert_korean(tre.all_text(blocks))
    assert_korean(render.report_fallback(report, lang="ko")) if report.diagnosis else None


def test_the_seed_story_reads_like_the_team_writes(ko: None) -> None:
    report = diagnosed("port mismatch, app side")
    text = render.report_text(report, lang="ko")
    assert "kathario-saas 프로세스가 3000 포트에서 실행 중인데 nginx는 3003 포트로 프록시합니다" in text
    assert "진단 (근본 원인부터):" in text
    stopped = i18n.localize_report(diagnosed("pm2 stopped"), lang="ko")
    assert stopped.diagnosis[0].summary == "kathario-saas 프로세스가 `stopped` 상태입니다"
    assert "nginx 설정 문법 오류" in render.report_text(diagnosed("nginx -t fails"), lang="ko")


def test_every_check_message_in_korean_within_slack_limits(ko: None) -> None:
    report = every_summary_report()
    for lang_text in (render.report_text(report, lang="ko"), render.report_fallback(report, lang="ko")):
        assert_korean(lang_text)
    blocks = render.report_blocks(report, requested_by="U1", now=tre.NOW + timedelta(hours=3), run_again="", lang="ko")
    tre.assert_valid(blocks)
    assert_korean(tre.all_text(blocks))
    for original, c in zip(report.checks, i18n.localize_report(report, lang="ko").checks, strict=True):
        entry = cm.MESSAGES[original.message.key]
        assert re.search(r"[가-힣]", c.summary) or entry["en"] == entry["ko"], c


def test_many_targets_and_the_largest_report_in_korean(ko: None) -> None:
    reports = [diagnosed(name).model_copy(update={"target": f"t{i}"}) for i, name in enumerate(tdi.CASES)]
    compact = render.multi_report_blocks(reports, requested_by="U1", now=tre.NOW, run_again="", share=False,
                                         shared_by="U2", lang="ko")
    tre.assert_valid(compact)
    assert_korean(tre.all_text(compact))
    assert_korean(render.multi_report_fallback(reports, lang="ko"))
    full = render.multi_report_blocks(reports[:3], requested_by="U1", now=tre.NOW, run_again="", lang="ko")
    tre.assert_valid(full)
    assert_korean(tre.all_text(full))
    largest = tre.largest()
    blocks = render.report_blocks(largest, requested_by="U123", now=tre.NOW, run_again="x" * 1000, lang="ko")
    tre.assert_valid(blocks)
    assert any("근본 원인" in t for t in map(str, blocks))
    many = [tre.healthy(f"t{i}") for i in range(60)]
    tre.assert_valid(render.multi_report_blocks(many, requested_by=None, now=tre.NOW, lang="ko"))


def test_small_messages_in_korean(ko: None) -> None:
    progress = render.progress_blocks(cmd.describe(cmd.RunChecks(("pm2",), None)).render("ko"), count=3, target=None,
                                      requested_by="U1", lang="ko")
    tre.assert_valid(progress)
    assert_korean(tre.all_text(progress))
    errors = render.error_blocks("x", suggestion="pm2", usage=i18n.text("commands.help").render("ko"), targets=["web"],
                                 lang="ko")
    tre.assert_valid(errors)
    assert "혹시 `pm2`인가요?" in tre.all_text(errors)
    targets = render.targets_blocks([(f"t{i}", "local") for i in range(80)], lang="ko")
    tre.assert_valid(targets)
    assert_korean(tre.all_text(targets))
    tre.assert_valid(render.targets_blocks([], lang="ko"))
    assert_korean(tre.all_text(render.targets_blocks([], lang="ko")))
    assert_korean(tre.all_text(render.report_blocks(TargetReport(target="w", host="h"), requested_by=None,
                                                    now=tre.NOW, lang="ko")))
    assert_korean(tre.all_text(render.report_blocks(tre.healthy(), requested_by=None, now=tre.NOW, lang="ko")))


def test_buttons_and_headers_fit(ko: None) -> None:
    labels = [i18n.t(k, action="reload-nginx", lang="ko") for k in ("render.button_share", "render.button_run_again",
                                                         "alerts.button_run", "alerts.button_silence",
                                                         "alerts.button_propose", "remediation.approve",
                                                         "remediation.deny")]
    assert all(0 < tre.u16(label) <= 75 for label in labels)
    header = render.report_blocks(tre.healthy("w" * 500), requested_by=None, now=tre.NOW, lang="ko")[0]
    assert tre.u16(header["text"]["text"]) <= 150


# -- the grammar, the bot and the console --------------------------------------------------------------------------


def test_help_and_grammar_errors_in_korean(ko: None) -> None:
    assert isinstance(cmd.parse("help", ["web"]), cmd.ShowHelp)
    help_text = i18n.text("commands.help").render("ko")
    assert help_text.startswith("*사용법*: `/wscheck [ITEM...] [TARGET]`")
    for keyword in ("`/wscheck targets`", "`/wscheck status`", "`/wscheck silence TARGET 30m|2h|until HH:MM`",
                    "`/wscheck restart|reload-nginx|fix-port|rebuild [TARGET]`", "`nginx.syntax`"):
        assert keyword in help_text  # the grammar itself stays English
    tre.assert_valid(render.help_blocks(help_text, lang="ko"))
    for text, needle in [("pm3", "알 수 없는 명령 또는 항목 `pm3`"), ("pm2 wbe", "알 수 없는 대상 `wbe`"),
                         ("pm2 logz", "알 수 없는 항목 `logz`"), ("silence web forever", "사용법: `silence"),
                         ("silence web 0m", "1m부터 30d까지"), ("help me", "`help` 뒤에는"),
                         ("web staging", "대상은 하나만"), ("approve $(reboot)", "사용법: `approve REQUEST_ID`"),
                         ("x" * 400, "명령이 너무 깁니다"), ("unsilence", "사용법: `unsilence TARGET`"),
                         ("restart web staging", "대상을 하나까지만")]:
        result = cmd.parse(text, ["web", "staging"])
        assert isinstance(result, cmd.Invalid), text
        assert needle in result.message.render("ko"), (text, result.message)
    assert cmd.describe(cmd.RunChecks((), "web")).render("ko") == "web: 전체 검사"
    assert cmd.describe(cmd.RunChecks(("pm2", "port"), None)).render("ko") == "모든 대상: pm2, port"


class Collect(Responder):
    """A front in Korean: it renders what the bot answers."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def progress(self, description: Msg, *, count: int, target: str | None) -> None:
        self.texts.append(description.render("ko"))

    async def reports(self, reports: Any, *, command: cmd.RunChecks) -> None:
        self.texts.extend(render.report_text(r, lang="en") for r in reports)

    async def invalid(self, problem: cmd.Invalid, *, targets: Any) -> None:
        self.texts.append(problem.message.render("ko"))

    async def text(self, text: Msg) -> None:
        self.texts.append(text.render("ko"))

    async def announce(self, text: Msg) -> None:
        self.texts.append(text.render("ko"))


def _bot(config: TargetsConfig | None = None) -> Bot:
    from bot.chat.service import CheckService

    return Bot(settings=Settings(lang="ko", rate_limit=2, rate_window=60),
               service=CheckService(config or load_targets(None)))


async def test_bot_answers_and_refusals_in_korean(ko: None) -> None:
    bot = _bot()
    out = Collect()
    for command in (cmd.ShowHelp(), cmd.ShowTargets(), cmd.ShowStatus()):
        await bot.handle(command, Requester("U1"), out)
    assert out.texts[0] == i18n.HELP_KO
    assert out.texts[1].startswith("*대상*\n• `local` — 이 서버, 앱 `kathario-saas` (3003 포트), http"), out.texts
    assert out.texts[2] == "이 봇에서는 아직 그 명령을 쓸 수 없습니다."
    guest = bot.access.refusal(Requester("U1", is_guest=True))
    assert guest is not None and guest.render("ko") == "이 워크스페이스에서 게스트는 /wscheck를 사용할 수 없습니다."
    assert bot.admit(Requester("U2")) is None and bot.admit(Requester("U2")) is None
    refusal = bot.admit(Requester("U2"))
    assert refusal is not None and refusal.render("ko").startswith("잠시만요: 60초마다 명령은 최대 2개까지입니다.")


async def test_console_in_korean(ko: None) -> None:
    bot = _bot()
    out = io.StringIO()
    front = ConsoleFront(bot, stdin=io.StringIO("help\npm3\nsilence\n"), stdout=out)
    await front.run(asyncio.Event())
    text = out.getvalue()
    assert "wscheck 콘솔 모드: `/wscheck help`(또는 `help`)를 입력하세요; 끝내려면 `quit`." in text
    assert "대상: local" in text
    assert "사용법: /wscheck [ITEM...] [TARGET]" in text and "• /wscheck targets: 설정된 대상 목록" in text
    assert "✗ 알 수 없는 명령 또는 항목 pm3" in text and "  혹시 pm2인가요?" in text
    assert "(자세한 내용은 help 입력)" in text
    assert "입력이 닫혔습니다; 모니터링은 계속됩니다; Ctrl-C로 멈춥니다" in text
    lines: list[str] = []
    responder = ConsoleResponder(lines.append, "ko")
    await responder.progress(i18n.text("render.every_target"), count=12, target=None)
    await responder.reports([diagnosed("pm2 stopped")], command=cmd.RunChecks((), None))
    assert lines[0] == "⏳ 모든 대상에서 검사 12개 실행 중…"
    assert_korean(lines[1])
    assert "kathario-saas 프로세스가 `stopped` 상태입니다" in lines[1]
    for line in text.splitlines():
        assert not {frag for frag in FRAGMENTS if frag in line}, line


# -- alerts, remediation, incidents ---------------------------------------------------------------------------------


def _incident(report: TargetReport, kind: str = "down") -> inc.Incident:
    causes = report.diagnosis
    return inc.Incident(id="web-1", target="web", kind=kind, cause=causes[0].cause,  # type: ignore[arg-type]
                        summary=causes[0].summary, causes=causes, opened_at=taa.NOW,
                        first_failure_at=taa.NOW - timedelta(seconds=30), announced=True, root_ts="1.1",
                        channel="C1")


def test_alerts_in_korean(ko: None) -> None:
    report = diagnosed("independent causes keep root-first order")
    i = _incident(report)
    # Causes survive the state machine's JSON round trip with everything needed to say them in Korean.
    state = inc.TargetState(target="web", incident=i)
    i = inc.TargetState.model_validate_json(state.model_dump_json()).incident  # type: ignore[assignment]
    assert i is not None and i.causes == report.diagnosis
    events: list[inc.Event] = [
        inc.IncidentOpened(incident=i), inc.IncidentOpened(incident=i, reused_root=True),
        inc.CauseChanged(incident=i, previous_cause="x", previous_summary="y"), inc.Reminder(incident=i, open_for=3600),
        inc.Flapping(incident=i, transitions=3, window=1800), inc.FlapSettled(incident=i, still_failing=True),
        inc.FlapSettled(incident=i, still_failing=False), inc.IncidentResolved(incident=i, duration=61),
        inc.ManualRun(incident=i, by="U1", healthy=False, summary=i.summary, cause=i.causes[0]),
        inc.ManualRun(incident=i, by="U1", healthy=True, summary="all 12 checks pass"),
        inc.BotWasDown(incident=i, down_for=600),
    ]
    for seq, event in enumerate(events):
        for op in alerts.ops_for(event, mention="U0ONCALL", now=taa.NOW, seq=seq, remediation=True):
            op_text, op_blocks = ro.slack(op.message, lang="ko")
            tre.assert_valid(op_blocks)
            assert_korean(op_text)
            assert_korean(tre.all_text(op_blocks))
    text, blocks = ro.root_blocks(_incident(diagnosed("pm2 stopped")), mention="", remediation=True, lang="ko")
    assert text.startswith("🔴 web: 앱이 다운되었습니다 (pm2_not_online): "
                           "kathario-saas 프로세스가 `stopped` 상태입니다")
    assert "restart 제안" in json.dumps(blocks, ensure_ascii=False)
    text, _ = ro.root_blocks(_incident(diagnosed("unreachable, public side fine"), "unreachable"), mention="",
                             lang="ko")
    assert "봇이 서버를 볼 수 없습니다" in text
    note = alerts.silence_note(i, by="U1", until=taa.NOW, now=taa.NOW)
    assert_korean(ro.slack(note.message, lang="ko")[0])
    assert_korean(ro.slack(alerts.silence_note(i, by="U1", until=None, now=taa.NOW).message, lang="ko")[0])


def test_status_lines_in_korean(ko: None) -> None:
    report = diagnosed("pm2 stopped")
    i = _incident(report)
    state = inc.TargetState(target="web", incident=i.model_copy(update={"flapping": True, "announced": False}))
    line = inc.summarize(state).render("ko")
    assert line.startswith("web: ")
    assert "부터 다운 — pm2_not_online: kathario-saas 프로세스가 `stopped` 상태입니다" in line
    assert "오락가락" in line and "알리지 않음 (알림 중지)" in line
    unreachable = inc.summarize(inc.TargetState(target="web", incident=i.model_copy(update={"kind": "unreachable"})
                                                )).render("ko")
    assert "접속 불가: 봇이 서버를 볼 수 없습니다" in unreachable
    assert inc.summarize(inc.TargetState(target="web")).render("ko") == "web: 정상"
    obs = inc.Observation(target="web", at=taa.NOW, kind="canary", checked=("ws.proxy",), failing_checks=("ws.proxy",))
    (unknown,) = obs.failing_causes
    assert i18n.localize_cause(unknown, lang="ko").summary == "알려진 원인 없이 실패 중: ws.proxy"


def test_approval_messages_in_korean(ko: None) -> None:
    policy = ap.ApprovalPolicy(approvers=frozenset({"U2", "U3"}), quorum=2)
    request = ap.new_request(entropy=b"\x01" * 8, target="web", action="restart", commands=("pm2 restart x",) * 60,
                             host="deploy@web", reason="pm2_not_online: 앱", cause="pm2_not_online",
                             requested_by="U1", team_id="T1", channel="C1", now=taa.NOW, policy=policy,
                             fingerprint={"pid": 0, "restart_time": 1})
    voted = ap.click(request, request_id=request.id, user="U2", team_id="T1", bot_team_id="T1", approve=True,
                     policy=policy, now=taa.NOW).request
    approved = ap.click(voted, request_id=request.id, user="U3", team_id="T1", bot_team_id="T1", approve=True,
                        policy=policy, now=taa.NOW).request
    denied = ap.click(voted, request_id=request.id, user="U3", team_id="T1", bot_team_id="T1", approve=False,
                      policy=policy, now=taa.NOW).request
    running = ap.start(approved, now=taa.NOW)
    done = ap.finish(running, ok=True, exit_code=0, now=taa.NOW + timedelta(seconds=3),
                     note=i18n.text("remediation.done"))
    failed = ap.finish(running, ok=False, exit_code=1, now=taa.NOW,
                       note=i18n.text("remediation.step_failed", label="pm2 restart x", code=1, output="boom"))
    aborted = ap.abort(approved, now=taa.NOW, note=i18n.text(
        "remediation.abort_not_applicable", why=i18n.text(
            "actions.port_not_from_pm2", port=3003,
            why=i18n.text("actions.listens_elsewhere", listening="[3000]", port="3001"))))
    states = [request, voted, approved, denied, running, done, failed, aborted,
              ap.supersede(request, by_request_id="R-NEXT", now=taa.NOW),
              ap.expire(request, now=taa.NOW + timedelta(days=1)),
              ap.interrupt(running, now=taa.NOW), ap.interrupt(approved, now=taa.NOW)]
    for state in [s for s in states if s is not None]:
        fallback, blocks = ro.approval_blocks(og.approval_message(state, approvers=policy.approvers,
                                                                  quorum=policy.quorum), lang="ko")
        tre.assert_valid(blocks)
        assert_korean(tre.all_text(blocks))
        assert_korean(fallback)
    _, blocks = ro.approval_blocks(og.approval_message(aborted, approvers=policy.approvers, quorum=policy.quorum),
                                   lang="ko")
    assert ("더 이상 해당하지 않음: PM2로는 앱 포트를 바꿀 수 없습니다 (앱은 [3000]에서 수신 대기하는데 PORT는 3001임)"
            in tre.all_text(blocks))


def test_stored_notes_are_references_said_in_any_language() -> None:
    """A note is stored as its key and params: read back from the request's JSON, it is said in Korean (nested
    messages too). A note an older version stored as English is shown as it was, in every language."""
    policy = ap.ApprovalPolicy(approvers=frozenset({"U2", "U3"}), quorum=1, ttl=900)
    request = ap.new_request(entropy=b"\x01" * ap.ID_BYTES, target="web", action="restart", commands=("pm2 x",),
                             host="h", reason="r", cause=None, requested_by="U1", team_id="T1", channel="C1",
                             now=taa.NOW, policy=policy, fingerprint={})
    note = i18n.text("remediation.abort_not_applicable", why=i18n.text("actions.listens_elsewhere",
                                                                       listening="[3000]", port="3001"))
    approved = ap.click(request, request_id=request.id, user="U2", team_id="T1", bot_team_id="T1", approve=True,
                        policy=policy, now=taa.NOW).request
    stored = ap.abort(approved, note=note, now=taa.NOW).model_dump_json()
    assert "$msg" in stored and "listens on" not in stored
    loaded = ap.ApprovalRequest.model_validate_json(stored)
    assert loaded.outcome_note is not None
    assert loaded.outcome_note.render("en") == note.render("en")
    korean = loaded.outcome_note.render("ko")
    assert re.search(r"[가-힣]", korean) and "[3000]" in korean and "3001" in korean
    legacy = json.loads(stored) | {"outcome_note": "no longer applicable: the app listens on [3000]"}
    old = ap.ApprovalRequest.model_validate(legacy).outcome_note
    assert old is not None and old.render("ko") == old.render("en") == legacy["outcome_note"]


@pytest.mark.parametrize("case", tap.TABLE, ids=[c.name for c in tap.TABLE])
def test_click_messages_are_approvals_own_in_english_and_korean_in_korean(case: Any) -> None:
    before = case.state()
    result = tap.do(before, case.policy, user=case.user, approve=case.approve, seconds=case.seconds,
                    team_id=case.team_id, bot_team_id=case.bot_team_id,
                    request_id=ap.new_request_id(tap.OTHER_ENTROPY) if case.wrong_id else None)
    said = remediation.click_message(result, approve=case.approve, policy=case.policy)
    assert said.render("en") == result.message
    korean = said.render("ko")
    assert korean != result.message and re.search(r"[가-힣]", korean)


def test_not_offered_and_human_steps_in_korean(ko: None) -> None:
    rep = taa.port_report("app", [4000], "3001", "/usr/bin/npm run start")
    with pytest.raises(act.NotOffered) as caught:
        act.plan("fix-port", taa.T, rep)
    assert "a human must change the start command" in str(caught.value)  # stored and logged: English
    assert caught.value.reason.render("ko").startswith(
        "PM2로는 앱 포트를 바꿀 수 없습니다 (앱은 [4000]에서 수신 대기하는데 PORT는 3001임)")
    for cause_id in CAUSES:
        if act.ACTION_FOR_CAUSE[cause_id] is None:
            step = act.human_step(diagnosed("pm2 stopped").diagnosis[0].model_copy(update={"cause": cause_id}),
                                  taa.T)
            assert "사람이" in step.render("ko")
    action, why = act.proposal(TargetReport(target="web", host="h"), taa.T)
    assert (action, why.render("ko")) == (None, "알려진 문제 없음")


def test_settings_refuse_unknown_languages_and_nothing_global_is_left() -> None:
    """WSCHECK_LANG is validated once, by the settings; no module keeps a current language any more."""
    with pytest.raises(ValueError, match="en"):
        Settings(lang="fr")  # type: ignore[arg-type]
    assert Settings(lang="ko").lang == "ko"
    assert not hasattr(i18n, "set_language") and not hasattr(i18n, "language") and not hasattr(i18n, "_STATE")


def test_templates_carry_no_slack_markup() -> None:
    """Mentions and dates are the Slack renderer's (render.mention, render.slack_date): a template says `{user}`."""
    for key, entry in cm.CATALOG.entries.items():
        for lang, template in entry.items():
            assert not re.search(r"<[@#!]", template), (key, lang)


def test_locale_files_are_shipped_with_the_package() -> None:
    """The catalog is read through importlib.resources, and pyproject ships the files as package data."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"wsmsg" = ["locales/*/*.toml"]' in pyproject
    for lang in cm.LANGS:
        for domain in ("common", "checks", "bot"):
            assert (ROOT / "wsmsg" / "locales" / lang / f"{domain}.toml").is_file()
