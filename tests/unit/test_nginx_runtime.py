"""The running nginx (wt-nginxrt, issue 11 items 4-5): `nginx -V`, the (re)load time from process ages, the
error log classified, and the diagnosis rules over them (routing findings, reload pending, capacity, unknown
with the log lines). Pure: captured text in, verdicts out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from checks.diagnosis import diagnose
from checks.models import CheckResult, Status
from checks.parsers import ParseError
from checks.parsers.nginx import parse_dump
from checks.parsers.nginx_runtime import (
    NginxBuild,
    TargetClock,
    load_time,
    most_relevant,
    parse_date,
    parse_error_log,
    parse_nginx_ps,
    parse_nginx_v,
    runtime_paths,
)
from tests.unit.test_diagnosis import TARGET, results

OK, WARN, FAIL, ERROR, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP

NGINX_V_DEBIAN = """nginx version: nginx/1.22.1
built with OpenSSL 3.0.11 19 Sep 2023 (running with OpenSSL 3.0.15 3 Sep 2024)
TLS SNI support enabled
configure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf \
--http-log-path=/var/log/nginx/access.log --error-log-path=stderr --lock-path=/var/lock/nginx.lock \
--pid-path=/run/nginx.pid --modules-path=/usr/lib/nginx/modules
"""
NGINX_V_SOURCE = """nginx version: nginx/1.29.7
built by gcc 12.2.0 (Debian 12.2.0-14)
configure arguments: --prefix=/opt/nginx --error-log-path=logs/error.log
"""


def test_nginx_v_debian_and_source_builds() -> None:
    debian = parse_nginx_v(NGINX_V_DEBIAN)
    assert debian.version == (1, 22, 1) and not debian.http11_default
    assert debian.pid_path == "/run/nginx.pid"
    source = parse_nginx_v(NGINX_V_SOURCE)
    assert source.version == (1, 29, 7) and source.http11_default
    assert source.error_log_path == "/opt/nginx/logs/error.log"
    assert source.pid_path == "/run/nginx.pid"
    assert not parse_nginx_v("nginx version: nginx/1.29.6\n").http11_default
    with pytest.raises(ParseError):
        parse_nginx_v("sudo: a password is required\n")


def dump(*files: tuple[str, str]) -> str:
    return "".join(f"# configuration file {path}:\n{text}\n" for path, text in files)


def test_runtime_paths_from_the_dump() -> None:
    text = dump(
        ("/etc/nginx/nginx.conf", "pid /run/n.pid;\nerror_log /var/log/nginx/error.log warn;\n"
                                  "events { worker_connections 768; }\nhttp { include /etc/nginx/sites/*; }\n"),
        ("/etc/nginx/sites/a", "server { listen 80; error_log logs/a.log; error_log syslog:server=x;"
                               " location / { error_log stderr; } }\n"),
    )
    build = NginxBuild(version=(1, 22, 1), version_text="1.22.1", prefix="/usr/share/nginx/")
    paths = runtime_paths(text, build)
    assert paths.error_logs == ("/var/log/nginx/error.log", "/usr/share/nginx/logs/a.log")
    assert paths.pid_file == "/run/n.pid"
    assert paths.worker_connections == 768 and paths.worker_connections_at == "/etc/nginx/nginx.conf:3"
    # no error_log in the main context: nginx logs to the compiled-in path as well; no pid: compiled-in pid
    bare = runtime_paths(dump(("/etc/nginx/nginx.conf", "events {}\nhttp {}\n")), build)
    assert bare.error_logs == ("/var/log/nginx/error.log",) and bare.pid_file == "/run/nginx.pid"


PS = """ 1093     1      16 nginx: master process /usr/sbin/nginx -c /tmp/other/nginx.conf
 1882     1     500 nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf
 2342  1093       4 nginx: worker process
 2825  1882      30 nginx: worker process
 2826  1882      12 nginx: worker process
 2700  1882      90 nginx: worker process is shutting down
 2701  1882     480 nginx: cache manager process
"""


def test_load_time_is_the_oldest_current_worker_of_our_master() -> None:
    clock = TargetClock(now=10_000, offset_s=0)
    procs = parse_nginx_ps(PS)
    load = load_time(procs, 1882, clock)
    assert load is not None and load.source == "workers" and load.loaded_at == 10_000 - 30
    assert load.workers == (2825, 2826)
    # the pid file unreadable and two masters: we cannot tell which one is ours
    assert load_time(procs, None, clock) is None
    # one master without workers (worker_processes 0 is not a thing, but a crashed worker set is)
    alone = parse_nginx_ps(" 77     1     60 nginx: master process nginx\n")
    single = load_time(alone, None, clock)
    assert single is not None and single.source == "master" and single.loaded_at == 10_000 - 60


def test_date_with_offset() -> None:
    assert parse_date("1796587012 +0900\n") == TargetClock(1796587012, 9 * 3600)
    assert parse_date("1796587012 -0130").offset_s == -5400
    with pytest.raises(ParseError):
        parse_date("Sun Dec  6 19:46:35 UTC 2026")


LOG = """==> /var/log/nginx/error.log <==
ection refused) while connecting to upstream, client: 1.2.3.4
2026/12/06 09:50:00 [error] 11#11: *1 connect() failed (111: Connection refused) while connecting to upstream, \
client: 1.2.3.4, server: chat, request: "GET /ws HTTP/1.1", upstream: "http://127.0.0.1:3000/ws", host: "chat"
2026/12/06 10:00:00 [error] 11#11: *2 connect() failed (111: Connection refused) while connecting to upstream, \
client: 1.2.3.4, server: chat, request: "GET /ws?token=abc HTTP/1.1", upstream: "http://[::1]:3003/ws", host: "chat"
2026/12/06 10:01:00 [error] 11#11: *3 upstream timed out (110: Connection timed out) while reading response header \
from upstream, client: 1.2.3.4, server: chat, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:3003/", host: "c"
2026/12/06 10:02:00 [alert] 11#11: 768 worker_connections are not enough
2026/12/06 10:02:30 [info] 11#11: *9 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) \
while SSL handshaking, client: 1.2.3.4, server: 0.0.0.0:443
2026/12/06 10:02:40 [crit] 11#11: *10 SSL_do_handshake() failed (SSL: error:0A00006C) while SSL handshaking
2026/12/06 10:03:00 [error] 11#11: *4 client intended to send too large body: 30000000 bytes, client: 1.2.3.4
2026/12/06 10:04:00 [notice] 11#11: signal process started
2026/12/06 10:04:10 [error] 11#11: *5 open() "/srv/www/favicon.ico" failed (2: No such file or directory)
2026/12/06 10:04:20 [error] 12#12: *6 connect() failed (111: Connection refused), \
Authorization: Bearer sk_live_abcdef123456 x
"""


def test_error_log_classified_recent_and_redacted() -> None:
    kst = timezone(timedelta(hours=9))
    clock = TargetClock(now=int(datetime(2026, 12, 6, 10, 5, tzinfo=kst).timestamp()), offset_s=9 * 3600)
    log = parse_error_log(LOG, "", ("/var/log/nginx/error.log",), clock, window_s=600)
    kinds = [ln.kind for ln in log.lines]
    # 09:50 is outside the 10 min window; the cut first line and info/notice lines are left out
    assert kinds == ["upstream_refused", "upstream_timeout", "worker_connections", "ssl_handshake",
                     "body_too_large", "other", "other"], kinds
    assert [ln.upstream for ln in log.of("upstream_refused")] == ["[::1]:3003"]
    assert log.of("upstream_timeout")[0].upstream == "127.0.0.1:3003"
    assert all(ln.file == "/var/log/nginx/error.log" for ln in log.lines)
    assert "sk_live_abcdef123456" not in "\n".join(ln.text for ln in log.lines)
    # classified lines first, newest first
    assert most_relevant(log, 2)[0].endswith("too large body: 30000000 bytes, client: 1.2.3.4")
    # lines from before the last reload are history, unless a current worker wrote them (the load time is
    # known to ±1 s); lines clearly after the load count whoever wrote them
    since = parse_error_log(LOG, "", ("/var/log/nginx/error.log",), clock, since=clock.now - 130, window_s=600)
    assert [ln.text[11:19] for ln in since.lines] == ["10:03:00", "10:04:10", "10:04:20"]
    edge = parse_error_log(LOG, "", ("/var/log/nginx/error.log",), clock, since=clock.now - 41, window_s=600)
    assert edge.lines == ()  # 10:04:20 is within the ±2 s of a load at 10:04:19
    mine = parse_error_log(LOG, "", ("/var/log/nginx/error.log",), clock, since=clock.now - 41,
                           workers=frozenset({12}), window_s=600)
    assert len(mine.lines) == 1 and "sk_live" not in mine.lines[0].text


def test_unreadable_log_files_are_reported() -> None:
    clock = TargetClock(now=0, offset_s=0)
    log = parse_error_log("", "tail: cannot open '/var/log/nginx/error.log' for reading: Permission denied\n",
                          ("/var/log/nginx/error.log",), clock)
    assert log.unreadable == {"/var/log/nginx/error.log": "Permission denied"} and log.lines == ()


# -- proxy_http_version and the nginx version ------------------------------------------------------------------


def _location(http_version_line: str) -> Any:
    config = parse_dump(dump(("/etc/nginx/nginx.conf", "events {}\nhttp { server { listen 80; location / { "
                                                          f"proxy_pass http://127.0.0.1:3000; {http_version_line} "
                                                          "proxy_set_header Upgrade $http_upgrade; "
                                                          "proxy_set_header Connection upgrade; } } }\n")))
    return config.locations[0]


@pytest.mark.parametrize(("line", "version", "expected"), [
    ("", (1, 22, 1), "1.0"),
    ("", (1, 29, 7), "1.1"),
    ("", None, "1.0"),
    ("proxy_http_version 1.0;", (1, 29, 7), "1.0"),
    ("proxy_http_version 2;", (1, 29, 7), "2"),
    ("proxy_http_version 1.1;", (1, 22, 1), "1.1"),
])
def test_effective_http_version(line: str, version: tuple[int, int, int] | None, expected: str) -> None:
    from checks.items.nginx import _effective_http_version

    build = NginxBuild(version=version, version_text="x") if version else None
    assert _effective_http_version(_location(line), build) == expected


# -- diagnosis --------------------------------------------------------------------------------------------------


def causes(**overrides: Any) -> list[tuple[str, Status, tuple[str, ...]]]:
    return [(c.cause, c.severity, c.evidence) for c in diagnose(TARGET, results(**overrides))]


SERVER = {"file": "/etc/nginx/sites-enabled/default", "line": 21, "names": ["_"]}
APP_SERVER = {"file": "/etc/nginx/sites-enabled/chat", "line": 3, "names": ["chat.example.com"]}


def test_wrong_server_names_both_blocks_and_explains_the_probes() -> None:
    route = {"reason": "wrong_server", "server": SERVER, "app_server": APP_SERVER,
             "request": "https://chat.example.org:443/ws"}
    report = diagnose(TARGET, results(nginx_websocket=(FAIL, route), port_match=(FAIL, route),
                                      http_proxy=(FAIL, {"status": 404}), ws_proxy=(FAIL, {"status": 404})))
    assert [c.cause for c in report] == ["nginx_wrong_server"]
    cause = report[0]
    assert set(cause.evidence) == {"nginx.websocket", "port.match", "http.proxy", "ws.proxy"}
    assert "/etc/nginx/sites-enabled/default:21" in cause.summary and "/etc/nginx/sites-enabled/chat:3" in cause.summary


def test_ws_path_answered_by_nginx_itself() -> None:
    route = {"reason": "not_proxied", "status": 403, "static": False, "server": APP_SERVER,
             "file": "/etc/nginx/sites-enabled/chat", "line": 9, "location": "= /ws", "request": "http://c/ws"}
    got = causes(nginx_websocket=(FAIL, route), port_match=(FAIL, route), ws_proxy=(FAIL, {"status": 403}))
    assert got == [("nginx_ws_not_proxied", FAIL, ("nginx.websocket", "ws.proxy", "port.match"))]
    static = diagnose(TARGET, results(nginx_websocket=(FAIL, {**route, "static": True, "status": 404}),
                                      ws_proxy=(FAIL, {"status": 404})))
    assert "static files" in static[0].summary and "/etc/nginx/sites-enabled/chat:9" in static[0].summary


def test_a_redirect_is_not_claimed_and_an_uncertain_if_guesses_nothing() -> None:
    redirect = {"reason": "redirect", "status": 301, "location_header": "https://$host$request_uri",
                "server": SERVER}
    got = causes(nginx_websocket=(FAIL, redirect), ws_proxy=(FAIL, {"status": 301}))
    assert [c for c, _, _ in got] == ["unknown"]  # the check's fail, no cause of ours (the probe's rule owns 3xx)
    # the :80 block redirects to https while the :443 block proxies: a redirect, not a wrong server
    to_https = {"reason": "wrong_server", "server": SERVER, "app_server": APP_SERVER, "request": "http://c:80/ws",
                "status": 301, "redirect": True, "location_header": "https://$host$request_uri"}
    got = causes(nginx_websocket=(FAIL, to_https), ws_proxy=(FAIL, {"status": 301}))
    assert [c for c, _, _ in got] == ["unknown"]
    uncertain = {"reason": "uncertain", "uncertain": "if_file_test", "at": "/etc/nginx/x:4"}
    assert causes(nginx_websocket=(WARN, uncertain)) == []


PENDING = {"pending": [{"file": "/etc/nginx/sites-enabled/chat", "mtime": 200, "modified": "2026-12-06 10:05:00"}],
           "loaded": "2026-12-06 10:00:00", "loaded_at": 100}


def test_reload_pending_fails_when_the_live_behaviour_contradicts_the_disk() -> None:
    got = causes(nginx_reload=(WARN, PENDING), ws_proxy=(FAIL, {"status": 400}))
    assert got == [("nginx_reload_pending", FAIL, ("nginx.reload", "ws.proxy"))]
    report = diagnose(TARGET, results(nginx_reload=(WARN, PENDING), ws_proxy=(FAIL, {"status": 400})))
    assert any("reload" in line for line in report[0].fix)
    # nothing failing yet: a warning
    assert causes(nginx_reload=(WARN, PENDING)) == [("nginx_reload_pending", WARN, ("nginx.reload",))]
    # the app itself refuses the WebSocket: that is the app's cause, and the reload is only pending
    got = causes(nginx_reload=(WARN, PENDING), ws_local=FAIL, ws_proxy=FAIL)
    assert [c for c, _, _ in got] == ["app_websocket_missing", "nginx_reload_pending"]
    assert got[1][1] is WARN


def test_broken_config_on_disk_while_nginx_serves_is_a_warning() -> None:
    syntax = (FAIL, {"file": "/etc/nginx/sites-enabled/k", "line": 9, "message": "unknown directive"})
    serving = diagnose(TARGET, results(nginx_syntax=syntax, nginx_websocket=SKIP, port_match=SKIP))
    assert [(c.cause, c.severity) for c in serving] == [("nginx_config_invalid", WARN)]
    assert "a reload now would fail" in serving[0].summary
    down = diagnose(TARGET, results(nginx_syntax=syntax, nginx_websocket=SKIP, port_match=SKIP, http_proxy=FAIL,
                                    ws_proxy=FAIL))
    assert down[0].cause == "nginx_config_invalid" and down[0].severity is FAIL


CAPACITY = {"worker_connections": 768, "worker_connections_at": "/etc/nginx/nginx.conf:12",
            "lines": [{"kind": "worker_connections", "text": "2026/12/06 10:02:00 [alert] 11#11: 768 "
                                                             "worker_connections are not enough"}]}


def test_capacity_exhausted_is_a_cause_of_its_own() -> None:
    report = diagnose(TARGET, results(nginx_errors=(FAIL, CAPACITY), http_proxy=FAIL, ws_proxy=FAIL))
    assert [(c.cause, set(c.evidence)) for c in report] == [
        ("connection_capacity_exhausted", {"nginx.errors", "http.proxy", "ws.proxy"})]
    assert "768 worker_connections are not enough" in report[0].summary
    assert any("worker_connections 4096;" in line for line in report[0].fix)


def test_unknown_carries_the_most_relevant_error_lines() -> None:
    errors = (OK, {"relevant": ["2026/12/06 10:04:10 [error] 11#11: *5 upstream prematurely closed connection"],
                   "files": ["/var/log/nginx/error.log"], "counts": {"upstream_closed": 1}})
    report = diagnose(TARGET, results(nginx_errors=errors, ws_proxy=FAIL))
    assert [c.cause for c in report] == ["unknown"]
    assert "upstream prematurely closed connection" in report[0].summary
    assert "tail -n 50 /var/log/nginx/error.log" in report[0].fix


def test_refused_lines_are_evidence_for_the_app_side_cause() -> None:
    errors = (OK, {"counts": {"upstream_refused": 3}, "upstreams_refused": ["127.0.0.1:3003"]})
    report = diagnose(TARGET, results(nginx_errors=errors, pm2_status=FAIL, port_listen=FAIL, http_local=FAIL,
                                      ws_local=FAIL, http_proxy=FAIL, ws_proxy=FAIL))
    assert report[0].cause == "pm2_not_online" and "nginx.errors" in report[0].evidence


def test_results_helper_covers_the_new_checks() -> None:
    ids = {r.id for r in results()}
    assert {"nginx.reload", "nginx.errors"} <= ids
    assert all(isinstance(r, CheckResult) for r in results())


# -- the whole path in-process: the healthy sandbox's captured outputs, with nginx -V and the site changed ----------


async def _websocket_with(version: str, site_edit: tuple[str, str]) -> CheckResult:
    from checks.runner import run_checks
    from checks.transport import CommandResult, FunctionTransport
    from tests.support.captured import TARGET as CAPTURED_TARGET
    from tests.support.captured import Replay, load

    fake = Replay(load("healthy"))

    def run(argv: tuple[str, ...]) -> CommandResult:
        result = fake.run(argv)
        if argv[-1] == "-V":
            return CommandResult(argv, 0, "", f"nginx version: nginx/{version}\nconfigure arguments: --prefix=/x\n", 1)
        if "-T" in argv:
            return CommandResult(argv, 0, result.stdout.replace(*site_edit), result.stderr, 1.0)
        return result

    report = await run_checks(CAPTURED_TARGET, FunctionTransport(run), ["nginx.websocket"])
    (check,) = report.checks
    return check


@pytest.mark.parametrize(("version", "edit", "status", "http_version"), [
    ("1.29.7", ("proxy_http_version 1.1;", ""), OK, "1.1"),
    ("1.22.1", ("proxy_http_version 1.1;", ""), FAIL, "1.0"),
    ("1.29.7", ("proxy_http_version 1.1;", "proxy_http_version 2;"), FAIL, "2"),
    ("1.22.1", ("", ""), OK, "1.1"),
])
async def test_nginx_websocket_knows_the_version(version: str, edit: tuple[str, str], status: Status,
                                                 http_version: str) -> None:
    check = await _websocket_with(version, edit)
    assert check.status is status, check
    assert check.details["http_version"] == http_version and check.details["nginx_version"] == version
    if http_version == "2":
        assert "proxy_http_version 2 breaks WebSocket" in check.summary


async def _report_with_site(edit: tuple[str, str]) -> Any:
    """The healthy capture with the site edited, every check and the diagnosis, in-process."""
    from checks.runner import run_checks
    from checks.transport import CommandResult, FunctionTransport
    from tests.support.captured import TARGET as CAPTURED_TARGET
    from tests.support.captured import Replay, load

    fake = Replay(load("healthy"))

    def run(argv: tuple[str, ...]) -> CommandResult:
        result = fake.run(argv)
        if "-T" in argv:
            assert edit[0] in result.stdout
            return CommandResult(argv, 0, result.stdout.replace(*edit, 1), result.stderr, 1.0)
        return result

    return await run_checks(CAPTURED_TARGET, FunctionTransport(run), ["nginx"])


async def test_an_if_on_a_file_test_is_uncertain_and_guesses_no_cause() -> None:
    report = await _report_with_site(("    location / {", "    if (-f /srv/maintenance) { return 503; }\n\n"
                                                          "    location / {"))
    websocket = report.result("nginx.websocket")
    assert websocket is not None and websocket.status is WARN, websocket
    assert websocket.details["reason"] == "uncertain"
    assert report.diagnosis == ()


async def test_a_location_that_redirects_is_named_a_redirect_from_the_route_model() -> None:
    """nginx's own route for ws_path ends in a 301: not `nginx_ws_not_proxied` (not this file's rules), but the
    redirect finding, from the route model alone when the live probe did not run (only the `nginx` item here)."""
    report = await _report_with_site(("    location / {", "    location = /ws { return 301 /ws/; }\n\n"
                                                          "    location / {"))
    websocket = report.result("nginx.websocket")
    assert websocket is not None and websocket.status is FAIL and websocket.details["reason"] == "redirect"
    assert [c.cause for c in report.diagnosis] == ["ws_upgrade_redirected"]


async def test_reload_time_uses_the_clock_read_with_ps_not_the_shared_date() -> None:
    """A busy host: the shared `date` fact was read seconds before `ps` (the 5 MB dump's parse ran in between).
    Ages are measured against the clock read in the same command, so a fresh reload is not older than its files
    (the CI flake of test_bounded_input: nginx_reload_pending on a healthy stack)."""
    from checks.runner import run_checks
    from checks.transport import CommandResult, FunctionTransport
    from tests.support.captured import TARGET as CAPTURED_TARGET
    from tests.support.captured import Replay, load

    fake = Replay(load("healthy"))
    ps_now = 1_800_000_000
    master = 4242

    def run(argv: tuple[str, ...]) -> CommandResult:
        if argv[:1] == ("date",):
            return CommandResult(argv, 0, f"{ps_now - 5} +0000\n", "", 1.0)  # read 5 s before ps
        if argv[:2] == ("sh", "-c") and "ps -C" in argv[2]:
            rows = (f"{ps_now}\n {master} 1 100 nginx: master process nginx\n"
                    f" {master + 1} {master} 2 nginx: worker process\n")
            return CommandResult(argv, 0, rows, "", 1.0)
        if argv[:2] == ("head", "-c"):  # the pid file
            return CommandResult(argv, 0, f"{master}\n", "", 1.0)
        result = fake.run(argv)
        if argv[:2] == ("stat", "-c"):  # every file written 3 s before ps, i.e. 1 s before the reload
            lines = [f"{line.rsplit('|', 2)[0]}|{ps_now - 3}|{line.rsplit('|', 1)[1]}"
                     for line in result.stdout.splitlines() if line.count("|") >= 2]
            return CommandResult(argv, 0, "\n".join(lines) + "\n", "", 1.0)
        return result

    report = await run_checks(CAPTURED_TARGET, FunctionTransport(run), ["nginx.reload"])
    (check,) = report.checks
    assert check.status is OK, check
    assert check.details["loaded_at"] == ps_now - 2 and check.details["pending"] == []


REWRITING = {"file": "/etc/nginx/sites-enabled/chat", "line": 9, "location": "/ws",
             "proxy_pass": "http://127.0.0.1:3003/", "path": "/ws", "upstream_path": "/"}


def test_a_proxy_pass_uri_that_hands_the_app_another_path_is_named_only_on_the_evidence() -> None:
    got = causes(nginx_websocket=(OK, REWRITING), ws_proxy=(FAIL, {"status": 502}))
    assert got == [("ws_path_routing_mismatch", FAIL, ("ws.proxy",))]
    report = diagnose(TARGET, results(nginx_websocket=(OK, REWRITING), ws_proxy=(FAIL, {"status": 400})))
    assert "/etc/nginx/sites-enabled/chat:9" in report[0].summary
    assert any("proxy_pass http://127.0.0.1:3003;" in str(line) for line in report[0].fix), report[0].fix
    # the app expects the rewritten path (its WebSocket is on /): the public handshake passes, nothing to name
    assert causes(nginx_websocket=(OK, REWRITING)) == []
    # the app refuses /ws itself: that is the app's cause, whatever nginx hands it
    assert [c for c, _, _ in causes(nginx_websocket=(OK, REWRITING), ws_local=FAIL, ws_proxy=FAIL)] == \
        ["app_websocket_missing"]
    # nginx may run another config than the one on disk: the reload is the finding
    assert [c for c, _, _ in causes(nginx_websocket=(OK, REWRITING), nginx_reload=(WARN, PENDING),
                                    ws_proxy=(FAIL, {"status": 502}))] == ["nginx_reload_pending"]
    # a redirect, silence, or a path the model could not work out: never this cause
    for probe in ({"status": 301, "redirect": True}, {"no_answer": True}, {}):
        assert "ws_path_routing_mismatch" not in [c for c, _, _ in causes(nginx_websocket=(OK, REWRITING),
                                                                          ws_proxy=(FAIL, probe))]
    unknown_path = {**REWRITING, "upstream_path": None}
    assert "ws_path_routing_mismatch" not in [c for c, _, _ in causes(nginx_websocket=(OK, unknown_path),
                                                                      ws_proxy=(FAIL, {"status": 502}))]


def test_a_public_address_no_block_listens_on_is_the_wrong_server_with_the_app_s_listens() -> None:
    route = {"reason": "wrong_server", "no_listen": True, "listens": ["[::1]:80"], "server": None,
             "app_server": APP_SERVER, "request": "http://127.0.0.1:80/ws"}
    report = diagnose(TARGET, results(nginx_websocket=(FAIL, route), port_match=(FAIL, route),
                                      http_proxy=(FAIL, {"refused": True}), ws_proxy=(FAIL, {"refused": True})))
    assert [c.cause for c in report] == ["nginx_wrong_server"]
    assert "[::1]:80" in report[0].summary and "/etc/nginx/sites-enabled/chat:3" in report[0].summary
    assert set(report[0].evidence) == {"nginx.websocket", "port.match", "http.proxy", "ws.proxy"}


def test_port_mismatch_without_a_location_names_a_file_not_none() -> None:
    route = {"reason": "no_server", "files": ["/etc/nginx/nginx.conf", "/etc/nginx/sites-enabled/default"]}
    report = diagnose(TARGET, results(nginx_websocket=(FAIL, route), port_match=(FAIL, route)))
    fix = " ".join(str(line) for c in report for line in c.fix)
    assert "None" not in fix and "/etc/nginx/nginx.conf" in fix, fix
    assert [c.cause for c in report] == ["port_mismatch"]  # nginx.websocket's same finding is its evidence
    assert "nginx.websocket" in report[0].evidence
