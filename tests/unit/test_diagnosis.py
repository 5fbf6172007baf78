"""Diagnosis rules, table-driven: which causes, in which order, with which evidence and fix."""

from __future__ import annotations

from typing import Any

import pytest

from checks.config import Target
from checks.diagnosis import CAUSES, diagnose
from checks.models import CheckResult, Status
from checks.registry import CHECK_IDS

TARGET = Target.model_validate(
    {"name": "web", "host": "203.0.113.10", "user": "deploy", "pm2_app": "kathario-saas", "app_port": 3003,
     "app_dir": "/root/kathario-saas", "pm2_home": "/home/deploy/.pm2"}
)
OK, WARN, FAIL, ERROR, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP


def results(**overrides: tuple[Status, dict[str, Any]] | Status) -> list[CheckResult]:
    out = []
    for cid in CHECK_IDS:
        spec = overrides.get(cid.replace(".", "_"), OK)
        status, details = spec if isinstance(spec, tuple) else (spec, {})
        out.append(CheckResult(id=cid, status=status, summary=f"{cid} is {status}", details=details))
    return out


UNREACH = (ERROR, {"error_kind": "unreachable"})
APP_DOWN = {
    "port_listen": FAIL, "port_match": SKIP, "http_local": FAIL, "ws_local": FAIL,
    "http_proxy": (FAIL, {"status": 502}), "ws_proxy": (FAIL, {"status": 502}), "pm2_logs": WARN,
}

CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "healthy": ({}, []),
    "unreachable, public side fine": (
        {k: UNREACH for k in ("nginx_syntax", "nginx_websocket", "pm2_status", "port_listen", "port_match",
                              "port_conflict", "next_build", "http_local", "ws_local", "pm2_logs")},
        ["target_unreachable"],
    ),
    "next build missing explains pm2 errored and everything downstream": (
        {"next_build": FAIL, "pm2_status": FAIL, **APP_DOWN}, ["next_build_missing"],
    ),
    "pm2 stopped": ({"pm2_status": FAIL, **APP_DOWN}, ["pm2_not_online"]),
    "port mismatch, app side": (
        {"port_match": (FAIL, {"side": "app"}), "port_listen": FAIL, "http_local": FAIL, "ws_local": FAIL,
         "http_proxy": FAIL, "ws_proxy": FAIL},
        ["port_mismatch"],
    ),
    "nginx without upgrade headers": (
        {"nginx_websocket": (FAIL, {"missing": ["upgrade", "connection"], "add_lines": ["x;"]}),
         "ws_proxy": (FAIL, {"status": 400})},
        ["nginx_upgrade_headers_missing"],
    ),
    "nginx -t fails": (
        {"nginx_syntax": (FAIL, {"file": "/etc/nginx/sites-enabled/k", "line": 9, "message": "unknown directive"}),
         "nginx_websocket": SKIP, "port_match": SKIP},
        ["nginx_config_invalid"],
    ),
    "foreign process holds the port": (
        {"port_conflict": (FAIL, {"foreign": [{"name": "python3", "pid": 4242}]}), "pm2_status": FAIL, **APP_DOWN},
        ["port_conflict"],
    ),
    "crash loop while online": (
        {"pm2_status": (FAIL, {"crash_loop": True}), "http_proxy": FAIL}, ["pm2_crash_loop"],
    ),
    "nothing answers publicly": (
        {"http_proxy": (FAIL, {"refused": True}), "ws_proxy": (FAIL, {"refused": True})}, ["nginx_not_running"],
    ),
    "app without websocket route": ({"ws_local": FAIL, "ws_proxy": FAIL}, ["app_websocket_missing"]),
    "short proxy_read_timeout is a warning cause": (
        {"nginx_websocket": (WARN, {"weak": ["read_timeout"]})}, ["nginx_ws_timeout_short"],
    ),
    "buffering alone is a warning check, no cause": ({"nginx_websocket": (WARN, {"weak": ["buffering"]})}, []),
    "config side of port.match": (
        {"port_match": (WARN, {"side": "config", "nginx_ports": [3000]}), "port_listen": FAIL, "http_local": FAIL,
         "ws_local": FAIL},
        ["app_port_misconfigured"],
    ),
    "independent causes keep root-first order": (
        {"nginx_syntax": (FAIL, {"message": "x"}), "next_build": FAIL, "pm2_status": FAIL, **APP_DOWN},
        ["nginx_config_invalid", "next_build_missing"],
    ),
    "unexplained failure": ({"http_proxy": (FAIL, {"status": 500})}, ["unknown"]),
    "pm2 could not be asked is not 'app down'": ({"pm2_status": ERROR}, ["unknown"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_cases(name: str) -> None:
    overrides, expected = CASES[name]
    causes = diagnose(TARGET, results(**overrides))
    assert [c.cause for c in causes] == expected
    for cause in causes:
        assert cause.cause in CAUSES
        assert cause.evidence, "a cause always names its evidence"
        assert cause.fix, "a cause always says what to do"


def test_consequences_are_evidence_of_the_root() -> None:
    (cause,) = diagnose(TARGET, results(next_build=FAIL, pm2_status=FAIL, **APP_DOWN))
    assert cause.evidence[0] == "next.build"
    assert {"pm2.status", "port.listen", "http.proxy", "ws.proxy"} <= set(cause.evidence)
    assert cause.fix[0] == "cd /root/kathario-saas && npm run build"
    assert "env PM2_HOME=/home/deploy/.pm2 pm2 restart kathario-saas" in cause.fix


def test_port_mismatch_fix_is_the_seed_fix_for_this_target() -> None:
    (cause,) = diagnose(TARGET, results(port_match=(FAIL, {"side": "app"})))
    assert cause.fix == (
        "env PM2_HOME=/home/deploy/.pm2 PORT=3003 pm2 restart kathario-saas --update-env",
        "env PM2_HOME=/home/deploy/.pm2 pm2 save",
    )


def test_port_mismatch_on_the_nginx_side_edits_nginx() -> None:
    (cause,) = diagnose(TARGET, results(port_match=(FAIL, {"side": "nginx", "file": "/etc/n/s", "line": 4})))
    assert cause.fix[0] == "edit /etc/n/s:4: proxy_pass http://127.0.0.1:3003;"
    assert "nginx -t" in cause.fix
    assert "nginx -s reload" in cause.fix


def test_unreachable_host_key_suggests_trust() -> None:
    bad = (ERROR, {"error_kind": "unreachable", "host_key": True})  # what the runner gives a HostKeyError
    res = [r.model_copy(update={"summary": "host key of 203.0.113.10:22 is not trusted"}) if r.id == "pm2.status"
           else r for r in results(pm2_status=bad)]
    (cause,) = diagnose(TARGET, res)
    assert cause.cause == "target_unreachable"
    assert cause.severity is Status.ERROR
    assert "cannot see the server" in cause.summary
    assert any("wscheck trust web" in step for step in cause.fix)


def test_partial_selection_diagnoses_what_it_saw() -> None:
    only = [r for r in results(pm2_status=FAIL) if r.id == "pm2.status"]
    assert [c.cause for c in diagnose(TARGET, only)] == ["pm2_not_online"]


def test_an_app_pm2_dropped_but_saved_is_resurrected_not_blamed_on_another_user() -> None:
    """A2: PM2 runs without the app, its dump has it: `pm2 resurrect`, and the summary says why."""
    overrides: dict[str, Any] = {
        "pm2_status": (FAIL, {"known_apps": []}),
        "pm2_saved": (SKIP, {"see": "pm2.status", "saved_not_running": True, "dump": "/home/app/.pm2/dump.pm2"}),
        **{k: v for k, v in APP_DOWN.items() if k != "port_match"},
    }
    (cause,) = diagnose(TARGET, results(**overrides))
    assert cause.cause == "pm2_not_online" and "/home/app/.pm2/dump.pm2" in cause.summary
    assert str(cause.fix[0]).endswith("pm2 resurrect"), cause.fix
    # without the saved list the fix is to start it, as before
    (plain,) = diagnose(TARGET, results(**{**overrides, "pm2_saved": (SKIP, {"see": "pm2.status"})}))
    assert "start" in str(plain.fix[0]) and "resurrect" not in " ".join(map(str, plain.fix))


def test_the_app_outside_pm2_is_a_warning_and_its_holder_is_never_killed() -> None:
    """A holder of app_port that answers the app's HTTP and WebSocket while PM2 does not run the app is the app
    itself: `app_outside_pm2` (warn), not `port_conflict` (whose fix is `kill`)."""
    foreign = {"foreign": [{"pid": 4242, "name": "node", "user": "deploy"}]}
    base: dict[str, Any] = {"port_conflict": (FAIL, foreign), "pm2_status": (FAIL, {"known_apps": []}),
                            "port_listen": FAIL, "port_match": SKIP, "pm2_logs": SKIP}
    (cause,) = diagnose(TARGET, results(**base))
    assert cause.cause == "app_outside_pm2" and cause.severity is WARN and "pid 4242" in cause.summary
    assert {"port.conflict", "pm2.status", "port.listen"} <= set(cause.evidence)
    # the holder does not answer like the app (a squatter that hangs up): the conflict it is
    squatter = diagnose(TARGET, results(**base, http_local=FAIL, ws_local=FAIL))
    assert squatter[0].cause == "port_conflict" and any("kill 4242" in str(line) for line in squatter[0].fix)
