"""Fix hints that work as printed, and summaries that claim only what ran (issue 9 parts 6 and 7)."""

from __future__ import annotations

import shlex
from typing import Any

from checks.config import Target
from checks.diagnosis import diagnose
from checks.models import Cause, CheckResult, Status
from checks.registry import CHECK_IDS

OK, WARN, FAIL, ERROR, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP

SSH_TARGET = Target.model_validate(
    {"name": "web", "host": "203.0.113.10", "port": 2222, "user": "deploy", "identity_file": "/srv/keys/deploy key",
     "known_hosts": "/srv/keys/known hosts", "pm2_app": "kathario-saas", "app_port": 3003,
     "app_dir": "/root/kathario-saas", "public_url": "https://chat.example.com"}
)
UNREACH = (ERROR, {"error_kind": "unreachable"})
COMMAND_CHECKS = ("nginx_syntax", "nginx_websocket", "pm2_status", "port_listen", "port_match", "port_conflict",
                  "next_build", "http_local", "ws_local", "pm2_logs")


def results(**overrides: tuple[Status, dict[str, Any]] | Status) -> list[CheckResult]:
    out = []
    for cid in CHECK_IDS:
        spec = overrides.get(cid.replace(".", "_"), OK)
        status, details = spec if isinstance(spec, tuple) else (spec, {})
        out.append(CheckResult(id=cid, status=status, summary=f"{cid} is {status}", details=details))
    return out


def only(causes: tuple[Cause, ...]) -> Cause:
    assert len(causes) == 1, [c.cause for c in causes]
    return causes[0]


def command_of(line: str) -> list[str]:
    """The shell words of a fix line (a comment after `#` is for the human)."""
    return shlex.split(line, comments=True)


def test_ssh_hint_uses_the_targets_key_port_and_known_hosts() -> None:
    cause = only(diagnose(SSH_TARGET, results(**dict.fromkeys(COMMAND_CHECKS, UNREACH))))
    assert cause.cause == "target_unreachable"
    argv = command_of(cause.fix[0])
    assert argv == ["ssh", "-i", "/srv/keys/deploy key", "-p", "2222", "-o", "UserKnownHostsFile=/srv/keys/known hosts",
                    "deploy@203.0.113.10", "true"]


def test_unreachable_reason_is_the_first_attempts_not_the_retry_echo() -> None:
    echo = CheckResult(id="nginx.syntax", status=ERROR, summary="the key is encrypted: … (next attempt in 1 s)",
                       details={"error_kind": "unreachable"}, summary_key="transport.retry_later")
    first = CheckResult(id="pm2.status", status=ERROR, summary="the key is encrypted: …",
                        details={"error_kind": "unreachable"}, summary_key="transport.key_encrypted",
                        summary_params={"path": "/k"})
    rest = [r for r in results() if r.id not in ("nginx.syntax", "pm2.status")]
    cause = only(diagnose(SSH_TARGET, [echo, first, *rest]))
    assert "next attempt" not in cause.summary and "the key is encrypted" in cause.summary


def test_trust_hint_keeps_the_config_file() -> None:
    host_key = (ERROR, {"error_kind": "unreachable", "host_key": True})
    cause = only(diagnose(SSH_TARGET, results(**dict.fromkeys(COMMAND_CHECKS, host_key)),
                          config_file="/etc/wscheck/my config.toml"))
    trust = [command_of(line) for line in cause.fix if "trust" in line]
    assert trust == [["wscheck", "trust", "web", "--config", "/etc/wscheck/my config.toml"]]
    # without a config file (built-in default) there is nothing to keep
    plain = only(diagnose(SSH_TARGET, results(**dict.fromkeys(COMMAND_CHECKS, host_key))))
    assert [command_of(line) for line in plain.fix if "trust" in line] == [["wscheck", "trust", "web"]]


def test_public_url_is_blamed_only_when_the_public_checks_ran_and_failed() -> None:
    unreachable = dict.fromkeys(COMMAND_CHECKS, UNREACH)
    for public in (SKIP, (ERROR, {"error_kind": "internal"})):
        cause = diagnose(SSH_TARGET, results(**unreachable, http_proxy=public, ws_proxy=public))[0]
        assert cause.cause == "target_unreachable"
        assert "public_url" not in cause.summary
        assert "public_url" not in cause.message.render("ko")
    both_fail = only(diagnose(SSH_TARGET, results(**unreachable, http_proxy=FAIL, ws_proxy=FAIL)))
    assert "public_url does not answer either" in both_fail.summary
    assert set(both_fail.evidence) >= {"http.proxy", "ws.proxy"}


def test_a_check_that_could_not_run_is_not_called_failing() -> None:
    cause = only(diagnose(SSH_TARGET, results(nginx_syntax=(ERROR, {"error_kind": "internal"}))))
    assert cause.cause == "unknown"
    assert "failing" not in cause.summary and "could not run" in cause.summary
    mixed = only(diagnose(SSH_TARGET, results(nginx_syntax=(ERROR, {}), http_local=FAIL)))
    assert mixed.summary == "failing without a known cause: http.local; could not run: nginx.syntax"


def test_app_is_not_called_online_when_pm2_status_did_not_run() -> None:
    effects = {"port_listen": FAIL, "http_local": FAIL, "ws_local": FAIL, "http_proxy": FAIL, "ws_proxy": FAIL,
               "port_match": SKIP}
    ran = only(diagnose(SSH_TARGET, results(**effects)))
    assert ran.cause == "app_not_listening" and "although kathario-saas is online" in ran.summary
    not_run = [r for r in results(**effects) if r.id != "pm2.status"]  # e.g. `--only port`
    cause = only(diagnose(SSH_TARGET, not_run))
    assert cause.cause == "app_not_listening"
    assert "although" not in cause.summary and "pm2.status did not run" in cause.summary


def test_no_pm2_command_when_pm2_is_missing() -> None:
    """wt-sio: pm2 exit 127 is `pm2_binary_not_found` (the bot cannot ask PM2), never a down app: the fix sets
    pm2_bin, and no line runs the pm2 that is not there."""
    missing = (ERROR, {"error_kind": "missing_binary"})
    cause = only(diagnose(SSH_TARGET, results(pm2_status=missing, pm2_logs=missing)))
    assert cause.cause == "pm2_binary_not_found"
    assert cause.evidence == ("pm2.status", "pm2.logs")
    assert not any(command_of(line)[:1] == ["pm2"] for line in cause.fix), cause.fix
    assert any("pm2_bin" in line for line in cause.fix), cause.fix


def test_no_nginx_command_when_nginx_is_missing() -> None:
    missing = (ERROR, {"kind": "missing_binary"})  # what nginx.syntax reports for exit 127
    refused = (FAIL, {"refused": True})
    cause = diagnose(SSH_TARGET, results(nginx_syntax=missing, nginx_websocket=missing, http_proxy=refused,
                                         ws_proxy=FAIL))[0]
    assert cause.cause == "nginx_not_running"
    commands = [line for line in cause.fix if "not installed" not in line]
    assert not any(line.startswith(("nginx ", "systemctl restart nginx")) for line in commands), cause.fix
    assert any("nginx is not installed on the target" in line for line in cause.fix), cause.fix


def test_fix_lines_keep_pm2_commands_when_pm2_is_there() -> None:
    cause = only(diagnose(SSH_TARGET, results(pm2_status=FAIL, **dict.fromkeys(
        ("port_listen", "http_local", "ws_local", "http_proxy", "ws_proxy"), FAIL))))
    assert cause.cause == "pm2_not_online"
    assert any(command_of(line)[:1] == ["pm2"] for line in cause.fix)
