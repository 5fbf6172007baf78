"""Process-side parsers (pm2 jlist, ss, ps, PM2 logs) and redaction.

Fixtures under tests/fixtures/captured/ are real outputs of PM2 7.0.4, Next.js 15.5, ss (iproute2 6.1) and
ps (procps-ng 4.0.2), captured with a throwaway PM2_HOME and a minimal environment (see
pm2_capture_notes.md there). Cases no real run here could produce are hand-made variants, marked as such.
"""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checks.parsers import ParseError
from checks.parsers.logs import LogScan, scan_log
from checks.parsers.pm2 import Pm2Process, find_app, parse_jlist
from checks.parsers.ps import ProcInfo, ancestors, descendants, parse_ps
from checks.parsers.ss import Listener, SockProc, listeners_on, parse_ss
from checks.redact import redact
from tests.support.examples import examples

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------- pm2 jlist


@pytest.fixture(scope="module")
def states() -> list[Pm2Process]:
    return parse_jlist(captured("pm2_jlist_states.json"))


def by_name(processes: list[Pm2Process], name: str) -> Pm2Process:
    (proc,) = find_app(processes, name)
    return proc


def test_jlist_real_states(states: list[Pm2Process]) -> None:
    statuses = {p.name: p.status for p in states}
    assert statuses["kathario-saas"] == "online"
    assert statuses["web-prod"] == "errored"  # next start without a build, crash loop until max_restarts
    assert statuses["crasher"] == "errored"
    assert statuses["idle"] == "stopped"
    assert statuses["dup-port"] == "waiting restart"
    assert len(states) == 17


def test_jlist_real_npm_dev_process(states: list[Pm2Process]) -> None:
    app = by_name(states, "kathario-saas")
    assert app.pm_id == 0
    assert app.pid == 5177  # npm, not the node process that listens (see ps fixture)
    assert app.exec_path == "/usr/bin/npm"
    assert app.args == ("run", "dev")
    assert app.interpreter == "/usr/bin/node"
    assert app.exec_mode == "fork_mode"
    assert app.cwd == "/tmp/wsparse/apps/web"
    assert app.out_log == "/tmp/wsparse/home/logs/kathario-saas-out.log"
    assert app.err_log == "/tmp/wsparse/home/logs/kathario-saas-error.log"
    assert app.port_env == "13003"
    assert app.node_env is None
    assert app.mode == "dev"
    assert app.autorestart is True
    assert app.pm_uptime is not None and app.created_at is not None
    assert app.restart_time == 0


def test_jlist_real_errored_and_stopped_have_pid_zero(states: list[Pm2Process]) -> None:
    web = by_name(states, "web-prod")
    assert web.pid == 0
    assert web.restart_time == 3
    assert web.max_restarts == 3
    assert web.mode == "production"
    assert web.node_env == "production"
    assert by_name(states, "idle").pid == 0


def test_jlist_real_waiting_restart_keeps_stale_pid(states: list[Pm2Process]) -> None:
    dup = by_name(states, "dup-port")
    assert dup.restart_delay == 60000
    assert dup.pid != 0  # PM2 keeps the dead pid: status, not pid, says whether it runs
    assert dup.mode == "unknown"


def test_jlist_real_cluster_mode_gives_several(states: list[Pm2Process]) -> None:
    cluster = find_app(states, "cluster-app")
    assert [p.pm_id for p in cluster] == [5, 6]
    assert {p.exec_mode for p in cluster} == {"cluster_mode"}
    assert all(p.status == "online" and p.pid > 0 for p in cluster)
    assert find_app(states, "nope") == []


def test_jlist_real_ecosystem_numeric_port_and_settings(states: list[Pm2Process]) -> None:
    eco = by_name(states, "eco-api")  # ecosystem file: PORT: 13011 (a number), args: "run start" (a string)
    assert eco.port_env == "13011"
    assert eco.args == ("run", "start")
    assert eco.max_restarts == 5 and eco.restart_delay == 2000
    assert eco.mode == "production"


def test_jlist_real_next_binary_direct(states: list[Pm2Process]) -> None:
    direct = by_name(states, "next-direct")
    assert direct.args == ("start", "-p", "13004")
    assert direct.mode == "production"
    assert by_name(states, "reject-npm").mode == "production"  # `npm start`


def test_jlist_fresh_home_banner_then_empty_array() -> None:
    text = captured("pm2_jlist_fresh_home.txt")
    assert "[PM2] \x1b[39mSpawning PM2 daemon" in text or "Spawning PM2 daemon" in text
    assert parse_jlist(text) == []


def test_jlist_respawn_lines_then_empty_array() -> None:
    assert parse_jlist(captured("pm2_jlist_respawn.txt")) == []


def test_jlist_daemon_lines_before_real_list() -> None:
    # hand-made: the respawn prefix in front of a non-empty list (daemon resurrected from a dump)
    text = captured("pm2_jlist_respawn.txt").replace("[]", "") + captured("pm2_jlist_states.json")
    assert len(parse_jlist(text)) == 17
    plain = "[PM2] Spawning PM2 daemon with pm2_home=/x\n[PM2] PM2 Successfully daemonized\n[]\n"
    assert parse_jlist(plain) == []
    glued = "[PM2][WARN] something [] \n" + captured("pm2_jlist_states.json") + "\n[PM2] trailing note\n"
    assert len(parse_jlist(glued)) == 17


def test_jlist_environment_does_not_survive_parsing() -> None:
    secret = "s3cr3t-Zq81-never-show"
    data = json.loads(captured("pm2_jlist_states.json"))
    for entry in data:
        env = entry["pm2_env"]
        env["env"]["DATABASE_URL"] = f"postgres://app:{secret}@db/app"
        env["env"]["STRIPE_SECRET_KEY"] = secret
        env["DATABASE_URL"] = f"postgres://app:{secret}@db/app"
        env["SLACK_BOT_TOKEN"] = secret
    processes = parse_jlist(json.dumps(data))
    for proc in processes:
        assert secret not in repr(proc)
        assert secret not in str(proc.model_dump())
        assert secret not in proc.model_dump_json()
    assert secret not in repr(processes)


def test_jlist_args_are_redacted() -> None:
    entry = {
        "name": "api",
        "pm_id": 3,
        "pid": 10,
        "pm2_env": {
            "status": "online",
            "args": ["--db-password", "hunter2hunter2", "--token=abcdef123456", "--port", "3003"],
        },
    }
    (proc,) = parse_jlist(json.dumps([entry]))
    assert "hunter2hunter2" not in repr(proc) and "abcdef123456" not in repr(proc)
    assert proc.args == ("--db-password", "***", "--token=***", "--port", "3003")


def test_jlist_hand_made_variants() -> None:
    entries: list[dict[str, Any]] = [
        {"name": "a", "pm_id": "7", "pid": None, "pm2_env": {"status": "launching", "args": "run  dev"}},
        {
            "name": "b",
            "pm_id": 8,
            "pid": 5,
            "pm2_env": {"PORT": 3003, "NODE_ENV": "production", "autorestart": "false"},
        },
        {
            "name": "c",
            "pm_id": 9,
            "pm2_env": {"env": {"PORT": "3000"}, "PORT": "3003", "status": "one-launch-status"},
        },
    ]
    a, b, c = parse_jlist(json.dumps(entries))
    assert (a.pm_id, a.pid, a.status, a.args, a.mode) == (7, 0, "launching", ("run", "dev"), "dev")
    assert (b.port_env, b.node_env, b.mode, b.autorestart, b.status) == (
        "3003",
        "production",
        "production",
        False,
        "unknown",
    )
    assert c.port_env == "3000"  # pm2_env.env wins over the top-level copy


def test_jlist_garbage_raises() -> None:
    for text in [
        "",
        "   ",
        "not json",
        "[PM2] Spawning PM2 daemon\n",
        '[{"name": "x", "pm_id": 1',
        "{}",
        "[1, 2]",
        '"[]"',
    ]:
        with pytest.raises(ParseError):
            parse_jlist(text)
    with pytest.raises(ParseError):
        parse_jlist(json.dumps([{"pm2_env": {"status": "online"}, "pm_id": 1}]))  # no name
    with pytest.raises(ParseError):
        parse_jlist("[" * 100_000)  # deep nesting must not escape as RecursionError


def proc(args: tuple[str, ...] = (), exec_path: str | None = None, node_env: str | None = None) -> Pm2Process:
    return Pm2Process(
        name="x", pm_id=0, pid=1, status="online", restart_time=0, unstable_restarts=0,
        exec_path=exec_path, args=args, node_env=node_env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("exec_path", "args", "node_env", "mode"),
    [
        ("/usr/bin/npm", ("run", "dev"), None, "dev"),
        ("/usr/bin/npm", ("run", "dev", "--", "-p", "3003"), "production", "dev"),
        ("/usr/local/bin/yarn", ("dev",), None, "dev"),
        ("/usr/bin/pnpm", ("dev",), None, "dev"),
        ("/app/node_modules/.bin/next", ("dev", "-p", "3003"), None, "dev"),
        ("/app/node_modules/next/dist/bin/next", ("dev",), None, "dev"),
        ("/usr/bin/npx", ("next", "dev"), None, "dev"),
        ("/app/server.js", (), "development", "dev"),
        ("/usr/bin/npm", ("start",), "development", "dev"),
        ("/usr/bin/npm", ("run", "start"), None, "production"),
        ("/usr/bin/npm", ("start",), None, "production"),
        ("/usr/lib/node_modules/npm/bin/npm-cli.js", ("run", "start"), None, "production"),
        ("/usr/bin/yarn", ("start",), None, "production"),
        ("/app/node_modules/.bin/next", ("start", "-p", "3003"), None, "production"),
        ("/app/server.js", (), "production", "production"),
        ("/app/server.js", (), None, "unknown"),
        ("/usr/bin/npm", ("run", "build"), None, "unknown"),
        ("/app/devtools.js", ("--dev-mode",), None, "unknown"),
        ("/app/server.js", ("dev",), None, "unknown"),  # "dev" as an argument of a plain script is not a mode
        (None, (), None, "unknown"),
    ],
)
def test_mode(exec_path: str | None, args: tuple[str, ...], node_env: str | None, mode: str) -> None:
    assert proc(args, exec_path, node_env).mode == mode


def test_models_are_frozen(states: list[Pm2Process]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        states[0].status = "x"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------- ss


def test_ss_real_root_with_several_users() -> None:
    listeners = parse_ss(captured("ss_ltnpH_root.txt"))
    assert len(listeners) == 9
    (shared,) = listeners_on(listeners, 13080)
    assert shared.local_addr == "0.0.0.0"
    assert [p.pid for p in shared.processes] == [7824, 7823, 7822, 7780]
    assert shared.processes[1] == SockProc(name="web,app (v2", pid=7823, fd=7)  # comma and parenthesis
    assert shared.processes[3].name == "nginx: master"
    (next_dev,) = listeners_on(listeners, 13003)
    assert next_dev == Listener(
        local_addr="*", port=13003, processes=(SockProc(name="next-server (v1", pid=5326, fd=19),)
    )
    (api,) = listeners_on(listeners, 13010)
    assert (api.local_addr, api.processes[0].name, api.processes[0].pid) == ("127.0.0.1", "node", 5270)
    addrs = {listener.port: listener.local_addr for listener in listeners}
    assert addrs[13053] == "127.0.0.53%lo"
    assert addrs[13041] == "::ffff:127.0.0.1"
    assert addrs[13042] == "::1"
    assert addrs[13044] == "*"
    (god,) = listeners_on(listeners, 13020)
    assert god.processes[0].name == "PM2 v7.0.4: God"  # cluster mode: the PM2 daemon holds the socket


def test_ss_real_variants_agree() -> None:
    root = parse_ss(captured("ss_ltnpH_root.txt"))
    assert parse_ss(captured("ss_ltnp_header.txt")) == root
    assert parse_ss(captured("ss_ltunpH_netid.txt")) == root
    no_p = parse_ss(captured("ss_ltnH.txt"))
    nonroot = parse_ss(captured("ss_ltnpH_nonroot.txt"))
    assert no_p == nonroot
    assert [(x.local_addr, x.port) for x in no_p] == [(x.local_addr, x.port) for x in root]
    assert all(x.processes == () for x in nonroot)


def test_ss_hand_made_forms() -> None:
    text = "\n".join(
        [
            "",
            'LISTEN 0 511 [::]:3003 [::]:* users:(("node",pid=42,fd=20))',
            '0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=1,fd=6),("nginx",pid=2,fd=6))',  # no State column
            "   ",
            'LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=500,fd=14))',
            "LISTEN 0 128 [fe80::1]%eth0:22 [::]:*",
            'LISTEN 0 128 *:3003 *:* users:(("a),(\\"b",pid=7,fd=3),("we ird, name",pid=8,fd=4))',
            'LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",812,3))',  # pre-2013 ss
            'ESTAB 0 0 10.0.0.1:22 10.0.0.2:5555 users:(("sshd",pid=9,fd=4))',  # not a listener
            "garbage line here",
        ]
    )
    listeners = parse_ss(text)
    assert [(x.local_addr, x.port) for x in listeners] == [
        ("::", 3003),
        ("0.0.0.0", 80),
        ("127.0.0.53%lo", 53),
        ("fe80::1%eth0", 22),
        ("*", 3003),
        ("0.0.0.0", 22),
    ]
    assert [p.pid for p in listeners[1].processes] == [1, 2]
    assert listeners[3].processes == ()
    assert [(p.name, p.pid, p.fd) for p in listeners[4].processes] == [
        ('a),(\\"b', 7, 3),
        ("we ird, name", 8, 4),
    ]
    assert listeners[5].processes == (SockProc(name="sshd", pid=812, fd=3),)
    assert [x.local_addr for x in listeners_on(listeners, 3003)] == ["::", "*"]
    assert listeners_on(listeners, 9) == []


def test_ss_empty_and_garbage() -> None:
    assert parse_ss("") == []
    assert parse_ss("\n  \n") == []
    assert parse_ss("State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n") == []
    for text in ["command not found: ss", "LISTEN a b c d", "LISTEN 0 128 0.0.0.0:http 0.0.0.0:*", "{}"]:
        with pytest.raises(ParseError):
            parse_ss(text)


# ------------------------------------------------------------------------------------------------- ps


@pytest.fixture(scope="module")
def ps_table() -> dict[int, ProcInfo]:
    return parse_ps(captured("ps_eo_pid_ppid_user_comm.txt"))


def test_ps_real_npm_sh_node_tree(ps_table: dict[int, ProcInfo]) -> None:
    assert ps_table[5140].comm == "PM2 v7.0.4: God"
    assert ps_table[5177] == ProcInfo(pid=5177, ppid=5140, user="root", comm="npm run dev")
    assert [ps_table[p].comm for p in (5246, 5247, 5326)] == ["sh", "node", "next-server (v1"]
    # ss says 5326 listens on 13003; PM2 says kathario-saas is pid 5177: the tree connects them
    assert ancestors(ps_table, 5326) == [5326, 5247, 5246, 5177, 5140, 1]
    assert descendants(ps_table, 5177) == {5177, 5246, 5247, 5326}
    assert {5215, 5269, 5270, 5358, 5375} <= descendants(ps_table, 5140)
    assert ps_table[7824].comm == 'x),("y",pid=9,'
    assert ps_table[2].comm == "kthreadd" and ps_table[2].ppid == 0
    assert ancestors(ps_table, 2) == [2]
    assert ancestors(ps_table, 1) == [1]


def test_ps_walks_are_cycle_safe() -> None:
    procs = parse_ps("10 11 u a\n11 10 u b\n12 12 u self\n13 10 u c\n")
    assert ancestors(procs, 13) == [13, 10, 11]
    assert descendants(procs, 10) == {10, 11, 13}
    assert ancestors(procs, 12) == [12]
    assert descendants(procs, 12) == {12}
    assert descendants(procs, 999) == {999}
    assert ancestors(procs, 999) == [999]


def test_ps_hand_made_and_garbage() -> None:
    procs = parse_ps(
        "  PID  PPID USER     COMMAND\n  1  0 root systemd\n 77 1 1000 my app (v2)  \n\n 78 1 www\n"
    )
    assert procs[77] == ProcInfo(pid=77, ppid=1, user="1000", comm="my app (v2)")
    assert procs[78].comm == ""
    assert parse_ps("") == {} and parse_ps("\n") == {}
    for text in ["error: unknown user-defined format specifier", "PID PPID USER COMMAND", "a b c d"]:
        with pytest.raises(ParseError):
            parse_ps(text)


# ----------------------------------------------------------------------------------------------- logs


def test_logs_real_no_production_build_timestamped() -> None:
    scan = scan_log(captured("logs_web-prod-error_timestamped.log"))
    assert scan.known == ("no_production_build",)
    assert len(scan.error_lines) == 4
    assert scan.error_lines[-1].startswith(
        "[Error: Could not find a production build in the '.next' directory."
    )


def test_logs_real_eaddrinuse() -> None:
    scan = scan_log(captured("logs_dup-port-error_eaddrinuse_timestamped.log"))
    assert scan.known == ("eaddrinuse",)
    assert scan.eaddrinuse_ports == (13010,)
    assert len(scan.error_lines) == 20  # the file has more: the newest 20 are kept
    assert not any(line.startswith("2026-") for line in scan.error_lines)
    dev = scan_log(captured("logs_web-dup-error_next_dev_eaddrinuse.log"))
    assert dev.known == ("eaddrinuse",) and dev.eaddrinuse_ports == (13003,)
    assert dev.error_lines[0] == " ⨯ Failed to start server"


def test_logs_real_other_known_problems() -> None:
    assert scan_log(captured("logs_missing-mod-error.log")).known == ("module_not_found",)
    assert scan_log(captured("logs_oom-error.log")).known == ("out_of_memory",)
    assert scan_log(captured("logs_econn-error.log")).known == ("econnrefused",)
    assert scan_log(captured("logs_reject-cluster-error_pm2_unhandled.log")).known == ("unhandled_rejection",)
    assert scan_log(captured("logs_reject-npm-error_node_unhandled.log")).known == ("unhandled_rejection",)
    assert scan_log(captured("logs_crasher-error.log")).known == ()


def test_logs_real_out_logs_keep_only_errors() -> None:
    quiet = scan_log(captured("logs_kathario-saas-out_next_dev.log"), from_error_log=False)
    assert quiet == LogScan(error_lines=(), known=(), eaddrinuse_ports=())
    assert scan_log(captured("logs_web-prod-out_timestamped.log"), from_error_log=False).error_lines == ()
    assert scan_log(captured("logs_web-dup-out_ansi.log"), from_error_log=False).error_lines == ()
    # the same out log read as an error log: every non-blank line counts, ANSI-only lines are blank
    as_err = scan_log(captured("logs_web-dup-out_ansi.log"))
    assert as_err.error_lines == ("> web@0.1.0 dev", "> next dev")


def test_logs_real_pm2_logs_output() -> None:
    scan = scan_log(captured("logs_pm2_logs_nostream_web-prod.txt"), from_error_log=False)
    assert scan.known == ("no_production_build",)
    assert len(scan.error_lines) == 4
    assert all(line.startswith("[Error: Could not find") for line in scan.error_lines)
    everything = scan_log(captured("logs_pm2_logs_nostream_all.txt"), from_error_log=True, limit=500)
    assert not any(
        "[TAILING]" in line or "last 3 lines:" in line or "\x1b" in line for line in everything.error_lines
    )
    assert not any(line.startswith(("2|api", "3|crasher", "PM2  ")) for line in everything.error_lines)
    assert "PM2 log: App [eco-api:16] online" in everything.error_lines  # the daemon's own log, prefix gone
    assert "api listening on 127.0.0.1:13010" in everything.error_lines


def test_logs_hand_made() -> None:
    text = "\n".join(
        [
            "2025-01-02 03:04:05 +09:00: Error: listen EADDRINUSE: address already in use 127.0.0.1:3003",
            "\x1b[31mError: listen EADDRINUSE: address already in use 0.0.0.0:3000\x1b[39m",
            "GET /api/chat 200 in 12ms",
            "npm ERR! code ELIFECYCLE",
            "npm error code 1",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            "Error: connect failed DATABASE_URL=postgres://app:pw-Secret-99@db:5432/app token=abc123xyz",
            "Error: " + "x" * 1000,
            "Error: ENOENT: no such file or directory, open '/srv/app/.next/BUILD_ID'",
        ]
    )
    scan = scan_log(text, from_error_log=False)
    assert scan.eaddrinuse_ports == (3003, 3000)
    assert scan.known == ("eaddrinuse", "out_of_memory", "no_production_build")
    assert "GET /api/chat 200 in 12ms" not in scan.error_lines
    assert "npm ERR! code ELIFECYCLE" in scan.error_lines and "npm error code 1" in scan.error_lines
    assert scan.error_lines[0] == "Error: listen EADDRINUSE: address already in use 127.0.0.1:3003"
    leaked = [line for line in scan.error_lines if "pw-Secret-99" in line or "abc123xyz" in line]
    assert leaked == []
    assert all(len(line) <= 300 for line in scan.error_lines)
    assert scan_log(text, limit=2).error_lines == scan_log(text).error_lines[-2:]
    assert scan_log(text, limit=0).error_lines == ()
    assert scan_log("") == LogScan(error_lines=(), known=(), eaddrinuse_ports=())


# --------------------------------------------------------------------------------------------- redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DATABASE_URL=postgres://u:p@h/db", "DATABASE_URL=postgres://u:***@h/db"),
        ("redis://:hunter2@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("SECRET_KEY=abc123", "SECRET_KEY=***"),
        ("STRIPE_SECRET_KEY=sk_live_abcdefghijk1234", "STRIPE_SECRET_KEY=***"),
        ("password=hunter2&user=bob", "password=***&user=bob"),
        ("Password: hunter2", "Password: ***"),
        ('{"password": "a\\"b", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{ token: 'abc', passwd: 'x' }", "{ token: '***', passwd: '***' }"),
        (
            "api_key=1 apikey=2 API-KEY=3 access_key=4 client_secret=5",
            "api_key=*** apikey=*** API-KEY=*** access_key=*** client_secret=***",
        ),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ('curl -H "Authorization: token ghp_x" x', 'curl -H "Authorization: token ***" x'),
        ("xoxb-123456-abcdef and xapp-1-A0-xyz123", "xoxb-*** and xapp-***"),
        ("ghp_" + "a1" * 18 + " github_pat_" + "B2_" * 10, "ghp_*** github_pat_***"),
        ("key id AKIAIOSFODNN7EXAMPLE", "key id AKIA***"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dBjftJeZ4CVP", "jwt ***"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\nok",
            "-----BEGIN OPENSSH PRIVATE KEY-----***-----END OPENSSH PRIVATE KEY-----\nok",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIEv (truncated", "-----BEGIN PRIVATE KEY-----***"),
        ("node app.js --db-password hunter2 --port 3003", "node app.js --db-password *** --port 3003"),
        ("Cookie: sid=abc; theme=dark", "Cookie: ***"),
    ],
)
def test_redact_forms(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize(
    "line",
    [
        " GET /api/chat?room=1 200 in 42ms",
        " ✓ Compiled /_not-found in 896ms (534 modules)",
        "Error: listen EADDRINUSE: address already in use :::3003",
        "    at Server.setupListenHandle [as _listen2] (node:net:1908:16)",
        "  code: 'EADDRINUSE',",
        "[Error: Could not find a production build in the '.next' directory. Try building your app]",
        "token bucket refilled",
        "password reset email sent to user 42",
        "the bearer of bad news",
        "PWD=/srv/app",
        "http://localhost:3000/@me and https://registry.npmjs.org/@next/swc",
        "2026-11-26T14:25:04: PM2 log: App [web:1] exited with code [1] via signal [SIGINT]",
        "TypeError: Cannot read properties of undefined (reading 'token')",
    ],
)
def test_redact_leaves_ordinary_lines(line: str) -> None:
    assert redact(line) == line


# ----------------------------------------------------------------------------------------- hypothesis

GARBAGE = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400).map(lambda b: b.decode("utf-8", errors="replace")),
    st.builds(
        lambda text, cut: text[:cut],
        st.sampled_from(
            [
                captured("pm2_jlist_states.json")[:3000],
                captured("pm2_jlist_fresh_home.txt"),
                captured("ss_ltnpH_root.txt"),
                captured("ps_eo_pid_ppid_user_comm.txt"),
                captured("logs_dup-port-error_eaddrinuse_timestamped.log"),
            ]
        ),
        st.integers(min_value=0, max_value=3000),
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["name", "pm_id", "pid", "pm2_env", "env", "args", "status", "PORT", "NODE_ENV", "x"]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    ).map(json.dumps),
    st.lists(
        st.sampled_from(
            [
                "[",
                "]",
                "{",
                "}",
                '"',
                ",",
                ":",
                "[PM2] ",
                "\n",
                "users:((",
                '"n",pid=1,fd=2)',
                "LISTEN",
                " 0 ",
                "*:3003",
                "[::]:",
                "%lo",
                "\x1b[31m",
                "1|app | ",
                "EADDRINUSE ",
                "Error",
                " 12 ",
                "root",
            ]
        ),
        max_size=40,
    ).map("".join),
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GARBAGE)
def test_no_parser_crashes_on_garbage(text: str) -> None:
    parsers: tuple[Callable[[str], object], ...] = (parse_jlist, parse_ss, parse_ps)
    for parser in parsers:
        with contextlib.suppress(ParseError):
            parser(text)
    for from_error_log in (True, False):
        scan = scan_log(text, from_error_log=from_error_log, limit=5)
        assert len(scan.error_lines) <= 5
        assert all(len(line) <= 300 for line in scan.error_lines)
    procs: dict[int, ProcInfo] = {}
    with contextlib.suppress(ParseError):
        procs = parse_ps(text)
    for pid in list(procs)[:5]:
        assert ancestors(procs, pid)[0] == pid
        assert pid in descendants(procs, pid)


# Pieces of every redaction rule, shuffled together: the inputs most likely to make two rules disagree.
REDACT_PIECES = st.lists(
    st.sampled_from(
        [
            "password",
            "Token",
            "secret_key",
            "=",
            ":",
            ": ",
            '"',
            "'",
            " ",
            "\n",
            "\t",
            "\\",
            "Bearer ",
            "Basic ",
            "Authorization",
            "://",
            "u",
            "@",
            "/",
            "-----BEGIN PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
            "xoxb-",
            "ghp_",
            "github_pat_",
            "eyJ",
            ".",
            "abc123XYZ789",
            "--token",
            "-",
            "Cookie:",
            "AKIA",
            "0123456789ABCDEF",
            "***",
            "&",
            ",",
            "(",
            "{",
            "}",
            "sk_live_",
            "https",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=examples(300), deadline=None)
@given(GARBAGE | REDACT_PIECES)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


SECRET = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)
FORMS = [
    "password={s}",
    "Password: {s}",
    '"password": "{s}"',
    "'passwd': '{s}'",
    "PASSWORD={s}",
    "DB_PASSWORD={s}",
    "secret={s}",
    "client_secret={s}",
    "token={s}",
    "access_token: {s}",
    "api_key={s}",
    "apikey={s}",
    "x-api-key: {s}",
    "access_key={s}",
    "AWS_SECRET_ACCESS_KEY={s}",
    "SECRET_KEY={s}",
    "STRIPE_SECRET_KEY={s}",
    'export GITHUB_TOKEN="{s}"',
    "Authorization: Bearer {s}",
    "authorization: Basic {s}",
    '"Authorization": "Bearer {s}"',
    "DATABASE_URL=postgres://app:{s}@db.internal:5432/app",
    "redis://:{s}@localhost:6379",
    "https://user:{s}@example.com/path",
    "xoxb-123456789-{s}",
    "xoxp-1-{s}",
    "xapp-1-{s}",
    "github_pat_{s}",
    "--db-password {s}",
    "-----BEGIN RSA PRIVATE KEY-----\n{s}\n-----END RSA PRIVATE KEY-----",
]


@settings(max_examples=examples(400), deadline=None)
@given(
    SECRET,
    st.sampled_from(FORMS),
    st.text(max_size=60),
    st.text(max_size=60),
    st.sampled_from([" ", "\n", "\t", " | "]),
)
def test_redact_never_leaks_a_secret_in_a_supported_form(
    secret: str, form: str, prefix: str, suffix: str, sep: str
) -> None:
    assume(secret not in prefix and secret not in suffix)
    text = prefix + sep + form.format(s=secret) + sep + suffix
    out = redact(text)
    assert secret not in out
    assert redact(out) == out


@settings(max_examples=examples(200), deadline=None)
@given(
    st.text(alphabet=string.ascii_letters + string.digits, min_size=36, max_size=36),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16),
    st.lists(
        st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=30),
        min_size=3,
        max_size=3,
    ),
    st.text(max_size=40),
)
def test_redact_never_leaks_shaped_tokens(gh: str, aws: str, jwt: list[str], noise: str) -> None:
    token = "eyJ" + ".".join(jwt)
    text = f"{noise} ghp_{gh} \n AKIA{aws} \n {token} \n{noise}"
    assume(gh not in noise and aws not in noise and jwt[1] not in noise)
    out = redact(text)
    assert gh not in out and aws not in out and jwt[1] not in out
    assert redact(out) == out
