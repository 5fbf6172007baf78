"""The cause and fix registry (checks/causes.py) is complete, and everything that used to list causes or fixes on its
own now follows it: a new row is enough, and a row without its rule, its step or its words fails here."""

from __future__ import annotations

import ast
import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import i18n
from bot.chat import commands as grammar
from bot.monitoring import incidents, monitor
from bot.remediation import actions as act
from bot.remediation import approvals
from checks import diagnosis
from checks import messages as cm
from checks.causes import CAUSE_BY_ID, CAUSE_IDS, CAUSE_SPECS, FIX_NAMES, FIXES, HUMAN_LOOK, CauseSpec, FixSpec
from checks.config import Target
from checks.models import Cause, Status
from checks.registry import CHECKS, COMMAND_KEYWORDS, RESERVED_WORDS
from tests.unit.test_diagnosis import CASES, results
from tests.unit.test_diagnosis import TARGET as DIAG_TARGET

ROOT = Path(__file__).resolve().parents[2]
T = Target.model_validate({"name": "web", "host": "203.0.113.10", "user": "deploy", "pm2_app": "shop",
                           "app_port": 3003, "app_dir": "/srv/shop"})


def _rule_causes() -> list[tuple[str, list[str]]]:
    """(rule name, cause ids it records with `s.add("<id>", ...)`) for each rule of RULES, in RULES order."""
    tree = ast.parse((ROOT / "checks" / "diagnosis.py").read_text())
    funcs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    out = []
    for rule in diagnosis.RULES:
        ids = [node.args[0].value for node in ast.walk(funcs[rule.__name__])
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
               and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]
        out.append((rule.__name__, ids))
    return out


def test_every_cause_is_produced_by_a_rule_or_says_where() -> None:
    produced = {cid for _, ids in _rule_causes() for cid in ids}
    assert produced <= set(CAUSE_IDS), f"a rule records an unregistered cause: {produced - set(CAUSE_IDS)}"
    for spec in CAUSE_SPECS:
        if spec.produced_by:
            assert spec.id not in produced, f"{spec.id}: produced by a rule, yet says {spec.produced_by!r}"
        else:
            assert spec.id in produced, f"{spec.id}: no rule of checks.diagnosis.RULES records it"


def test_registry_order_is_the_rules_order() -> None:
    """Root first means the same thing everywhere: the rules run in the order of the rows they record."""
    ranks = [[CAUSE_IDS.index(cid) for cid in ids] for _, ids in _rule_causes() if ids]
    for before, after in itertools.pairwise(ranks):
        assert max(before) < min(after), ranks
    assert list(diagnosis.CAUSES) == list(CAUSE_IDS)
    assert {cid: i for i, cid in enumerate(CAUSE_IDS)} == incidents._RANK


def test_every_cause_has_an_action_or_a_human_step() -> None:
    for spec in CAUSE_SPECS:
        assert spec.fix in (None, *FIX_NAMES), spec
        assert spec.fix is not None or spec.human_step, spec
        entry = i18n.MESSAGES[spec.human_step]  # every cause has one: the words when its fix is not offered
        assert entry["en"] and re.search(r"[가-힣]", entry["ko"]), spec.human_step
        assert set(re.findall(r"{(\w+)", entry["en"])) <= {"summary", "target", "lines"}, spec.human_step
        assert act.ACTION_FOR_CAUSE[spec.id] == spec.fix


@pytest.mark.parametrize("spec", CAUSE_SPECS, ids=lambda s: s.id)
def test_human_step_says_the_registered_message(spec: CauseSpec) -> None:
    cause = Cause(cause=spec.id, summary="the summary", fix=("pm2 save", "    proxy_http_version 1.1;"))
    said = act.human_step(cause, T).en
    assert said == i18n.t(spec.human_step, summary="the summary", target="web", lines="proxy_http_version 1.1;",
                          lang="en")


def test_an_unregistered_cause_gets_the_generic_step_and_kind() -> None:
    cause = Cause(cause="gone_from_the_registry", summary="old", fix=())
    assert act.human_step(cause, T).en == i18n.t(HUMAN_LOOK, summary="old", lang="en")
    assert incidents._kind("gone_from_the_registry") == "down"


def test_incident_kind_follows_the_registry() -> None:
    for spec in CAUSE_SPECS:
        assert incidents._kind(spec.id) == spec.incident_kind
    # wt-host3: pm2 off the PATH is "we cannot see PM2", never "the app is down" (issue 12 item 7).
    assert [s.id for s in CAUSE_SPECS if s.incident_kind == "unreachable"] == [
        "target_unreachable", "pm2_binary_not_found"]


def test_every_description_exists_in_english_and_korean() -> None:
    assert set(cm.CAUSE_DESCRIPTIONS) == set(CAUSE_IDS)
    for spec in CAUSE_SPECS:
        assert spec.description and not re.search(r"[가-힣]", spec.description), spec.id
        assert re.search(r"[가-힣]", spec.description_ko), spec.id
        assert cm.cause_description(spec.id, "en") == spec.description == diagnosis.CAUSES[spec.id]
        assert cm.cause_description(spec.id, "ko") == spec.description_ko


def test_rules_record_the_registered_severity() -> None:
    """A rule's cause carries its row's severity unless the rule says otherwise: `unknown` (its first check's),
    `tls_certificate_not_reloaded` (a fail when the certificate still served is invalid) and
    `app_listen_address_mismatch` (a warn when nginx still reaches the app on its other address),
    `nginx_config_invalid` (a warn while the running nginx still serves), `nginx_reload_pending` (a fail
    when the live behaviour contradicts the files on disk) and `pm2_not_online` (a warn when other instances
    still serve; its fail cases below keep the registered severity)."""
    tree = ast.parse((ROOT / "checks" / "diagnosis.py").read_text())
    overriding = {func.name for func in tree.body if isinstance(func, ast.FunctionDef) for node in ast.walk(func)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
                  and any(k.arg == "severity" for k in node.keywords)}
    # wt-host2: host_disk_full is a warn at disk_warn_percent, a fail at disk_fail_percent or on ENOSPC.
    assert overriding == {"_unknown", "_tls_not_reloaded", "_address_mismatch", "_nginx_invalid", "_reload_pending",
                          "_host_disk_full", "_pm2_not_online"}
    dynamic = {"unknown", "tls_certificate_not_reloaded", "app_listen_address_mismatch", "nginx_config_invalid",
               "nginx_reload_pending", "host_disk_full"}
    seen = set()
    for overrides, _ in CASES.values():
        for cause in diagnosis.diagnose(DIAG_TARGET, results(**overrides)):
            if cause.cause in dynamic:
                assert cause.severity in (Status.WARN, Status.FAIL, Status.ERROR), cause
            else:
                assert cause.severity is CAUSE_BY_ID[cause.cause].severity, cause
                seen.add(cause.cause)
    assert {"target_unreachable", "app_port_misconfigured", "nginx_ws_timeout_short", "pm2_not_online"} <= seen


@pytest.mark.parametrize("fix", FIXES, ids=lambda f: f.name)
def test_every_fix_is_accepted_by_the_grammar_approvals_and_actions(fix: FixSpec) -> None:
    name = fix.name
    assert grammar.parse(name, ["web"]) == grammar.RequestAction(action=name, target=None)
    assert grammar.parse(f"{name} web", ["web"]) == grammar.RequestAction(action=name, target="web")
    assert name in COMMAND_KEYWORDS and name in RESERVED_WORDS
    assert name in grammar._KEYWORDS
    for lang in ("en", "ko"):
        assert name in i18n.MESSAGES["commands.help"][lang], f"/wscheck help ({lang}) does not list {name}"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    request = approvals.new_request(
        entropy=bytes(range(8)), target="web", action=name, commands=("true",), host="h", reason="r", cause=None,
        requested_by="U1", team_id="T1", channel="C1", now=now,
        policy=approvals.ApprovalPolicy(approvers=frozenset({"U1", "U2"})), fingerprint={"pid": 1})
    assert request.action == name
    try:
        plan = act.plan(name, T)
    except act.NotOffered as exc:  # needs a report (fix-port): offered or not, it is known, never "unknown"
        assert exc.reason.key != "actions.unknown_action", name
    else:
        assert plan.action == name and plan.steps and plan.long == fix.long


def test_fix_words_are_one_tuple() -> None:
    assert grammar.ACTIONS == approvals.ACTIONS == act.ACTIONS == FIX_NAMES
    with pytest.raises(ValueError, match="unknown action"):
        approvals.new_request(
            entropy=bytes(range(8)), target="web", action="reboot", commands=("true",), host="h", reason="r",
            cause=None, requested_by="U1", team_id="T1", channel="C1", now=datetime(2026, 1, 1, tzinfo=UTC),
            policy=approvals.ApprovalPolicy(approvers=frozenset({"U1", "U2"})), fingerprint={"pid": 1})
    assert isinstance(grammar.parse("reboot", ["web"]), grammar.Invalid)


def test_downstream_of_app_is_the_one_source_of_both_lists() -> None:
    downstream = {c.id for c in CHECKS if c.downstream_of_app}
    assert downstream == monitor.APP_STARTING
    port_item = {c.id for c in CHECKS if c.item == "port"}
    assert set(diagnosis._APP_DOWN_EFFECTS) == downstream | port_item
    # The deliberate difference: a failing port.conflict is a foreign holder, not a starting app.
    assert set(diagnosis._APP_DOWN_EFFECTS) - monitor.APP_STARTING == {"port.conflict"}
    # Evidence order is visible (`--json`, Slack): outward from the app, as it always was.
    assert diagnosis._APP_DOWN_EFFECTS == ("pm2.status", "port.listen", "port.match", "port.conflict",
                                           "pm2.restarts", "http.local", "ws.local", "ws.sessions", "http.proxy",
                                           "ws.proxy", "pm2.logs")


def test_architecture_doc_names_the_files_of_a_new_cause() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Adding a cause", 1)[1].split("\n## ", 1)[0]
    for path in ("checks/causes.py", "checks/diagnosis.py", "wsmsg/locales/en/checks.toml",
                 "wsmsg/locales/ko/checks.toml", "tests/unit/test_diagnosis.py"):
        assert f"`{path}`" in section, path
        assert (ROOT / path).exists(), path
    assert CAUSE_BY_ID["unknown"] is CAUSE_SPECS[-1], "`unknown` stays last: it takes what no rule explained"
