"""Smoke test of the sandbox itself (deploy/sandbox): every mode really produces the state it claims.

The bot's integration tests trust the sandbox to be broken in a precise way; this module checks those raw
states independently of the bot, with plain tools: the OpenSSH client, `ss -ltnp`, `pm2 jlist`, `nginx -t`,
and HTTP / WebSocket requests written by hand. It also checks that `down()` leaves nothing running.

Tests run in file order and share one sandbox (module fixture); the last test takes it down.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandboxpkg import load_sandbox

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_PY = ROOT / "deploy" / "sandbox" / "sandbox.py"
TIMINGS: dict[str, float] = {}


sbmod = load_sandbox()
Sandbox = sbmod.Sandbox

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux (/proc, sshd, nginx)", allow_module_level=True)


# ------------------------------------------------------------------------------------------------------
# raw observation helpers (deliberately not the sandbox's own probes)
# ------------------------------------------------------------------------------------------------------


def listeners() -> dict[int, list[tuple[str, int]]]:
    """{port: [(process name, pid), ...]} of TCP listeners on 127.0.0.1, from `ss -ltnp`."""
    out = subprocess.run(["ss", "-H", "-ltnp"], capture_output=True, text=True, check=True).stdout
    found: dict[int, list[tuple[str, int]]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[3].startswith("127.0.0.1:"):
            continue
        port = int(fields[3].rsplit(":", 1)[1])
        users = [(name, int(pid)) for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line)]
        found.setdefault(port, []).extend(users)
    return found


def get(port: int, path: str = "/", *, timeout: float = 30) -> tuple[int | None, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    except (OSError, http.client.HTTPException):
        return None, {}
    finally:
        conn.close()


def _frame(text: str) -> bytes:
    """One masked text frame, as a browser client sends it."""
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frame(sock: socket.socket, buf: bytes) -> tuple[str, bytes]:
    while len(buf) < 2:
        buf += sock.recv(4096)
    length = buf[1] & 0x7F
    assert length < 126, "the chat only sends short messages"
    while len(buf) < 2 + length:
        buf += sock.recv(4096)
    return buf[2 : 2 + length].decode(), buf[2 + length :]


def ws_chat(port: int, message: str | None = None, *, timeout: float = 15) -> tuple[int | None, list[str]]:
    """Hand-written WebSocket upgrade to /ws; returns (status, messages received: welcome, then the echo)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
            match = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
            status = int(match.group(1)) if match else None
            if status != 101:
                return status, []
            buf = buf.split(b"\r\n\r\n", 1)[1]
            welcome, buf = _read_frame(sock, buf)
            messages = [welcome]
            if message is not None:
                sock.sendall(_frame(message))
                echo, buf = _read_frame(sock, buf)
                messages.append(echo)
            sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # close frame
            return status, messages
    except OSError:
        return None, []


def jlist(sb: Any) -> dict[str, Any]:
    """The app's pm2 jlist entry, with pm2 run over SSH exactly as the bot would run it."""
    result = ssh(sb, "env", f"PM2_HOME={sb.pm2_home}", sb.pm2_bin, "jlist")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    procs = json.loads(out[out.index("[") :])
    matches = [p for p in procs if p["name"] == sb.app_name]
    assert len(matches) == 1, procs
    return dict(matches[0])


def ssh(sb: Any, *command: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(sb.identity_file),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={sb.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        str(sb.ssh_port),
        f"{sb.user}@127.0.0.1",
        *command,
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )


def ppid_chain(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return chain


def user_processes(user: str) -> dict[int, str]:
    """Running (non-zombie) processes of `user`: {pid: args}."""
    out = subprocess.run(["ps", "-u", user, "-o", "pid=,stat=,args="], capture_output=True, text=True).stdout
    procs = {}
    for line in out.splitlines():
        pid, stat, args = [*line.strip().split(None, 2), ""][:3]
        if not stat.startswith("Z"):
            procs[int(pid)] = args
    return procs


# ------------------------------------------------------------------------------------------------------
# the sandbox
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    # Not pytest's tmp_path: /tmp/pytest-of-<user> is 0700, the sandbox user could not enter it.
    workdir = Path(tempfile.mkdtemp(prefix="wscheck-sandbox-", dir="/tmp"))
    workdir.chmod(0o755)
    box = Sandbox(workdir)
    box.preexisting = user_processes(box.user)
    started = time.monotonic()
    try:
        box.up()
        TIMINGS["up"] = time.monotonic() - started
        yield box
    finally:
        box.down()
        print("\nsandbox timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in TIMINGS.items()))
        shutil.rmtree(workdir, ignore_errors=True)


def test_ssh_login_with_strict_host_key_checking(sb: Any) -> None:
    result = ssh(sb, "id", "-un")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sb.user
    assert result.stderr == ""  # no banner, no "could not chdir", no rc-file noise: the bot parses stdout/err

    nginx_t = ssh(sb, sb.nginx_bin, "-t", "-c", str(sb.nginx_conf))
    assert nginx_t.returncode == 0, nginx_t.stderr
    assert "syntax is ok" in nginx_t.stderr
    nginx_full = ssh(sb, sb.nginx_bin, "-T", "-c", str(sb.nginx_conf))
    assert nginx_full.returncode == 0, nginx_full.stderr
    assert f"proxy_pass http://127.0.0.1:{sb.app_port};" in nginx_full.stdout
    assert f"# configuration file {sb.site_file}:" in nginx_full.stdout


def test_unknown_host_key_is_refused(sb: Any, tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    # A well-formed ed25519 key that is not the sandbox's host key.
    stranger = "AAAAC3NzaC1lZDI1NTE5AAAAIJ0uZ7oLkKq6OxWJ0x9Zb0r5G7nqJf3u4N8b7s0HcQYm"
    other.write_text(f"[127.0.0.1]:{sb.ssh_port} ssh-ed25519 {stranger}\n")
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(sb.identity_file),
        "-o",
        f"UserKnownHostsFile={other}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        str(sb.ssh_port),
        f"{sb.user}@127.0.0.1",
        "true",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0


def test_healthy_http_ws_and_pm2(sb: Any) -> None:
    status, _ = get(sb.app_port)
    assert status == 200
    status, headers = get(sb.http_port)
    assert status == 200
    assert headers["server"].startswith("nginx")
    ws_status, messages = ws_chat(sb.http_port, "hello from the smoke test")
    assert ws_status == 101
    assert messages == ["welcome", "hello from the smoke test"]

    proc = jlist(sb)
    env = proc["pm2_env"]
    assert env["status"] == "online"
    assert env["args"] == ["run", "start"]
    assert str(env["PORT"]) == str(sb.app_port)
    assert (Path(sb.app_dir) / ".next" / "BUILD_ID").is_file()
    # The listener is node, a few levels below the npm process that PM2 knows (npm -> sh -> node).
    ((name, pid),) = listeners()[sb.app_port]
    assert name == "node"
    chain = ppid_chain(pid)
    assert proc["pid"] in chain and chain.index(proc["pid"]) >= 2
    # PM2 got a minimal environment, nothing of ours.
    assert "PYTEST_CURRENT_TEST" not in env.get("env", {})
    assert set(env["env"]) >= {"PATH", "HOME", "PM2_HOME", "NEXT_TELEMETRY_DISABLED", "PORT"}


def test_target_toml_is_accepted_by_the_bot_config(sb: Any) -> None:
    data = tomllib.loads(sb.target_toml())
    (target,) = data["targets"]
    assert target["port"] == sb.ssh_port and target["app_port"] == sb.app_port
    assert target["public_url"] == f"http://127.0.0.1:{sb.http_port}/"
    assert Path(target["pm2_bin"]).is_absolute() and Path(target["pm2_bin"]).exists()
    config = pytest.importorskip("checks.config")
    parsed = config.parse_targets(data, "sandbox")
    assert parsed.get("sandbox").pm2_home == str(sb.pm2_home)


def test_cli_reads_the_state_of_a_running_sandbox(sb: Any) -> None:
    result = subprocess.run(
        [sys.executable, str(SANDBOX_PY), "status", "--workdir", str(sb.workdir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status = json.loads(result.stdout)
    assert status["mode"] == "healthy" and status["pm2"] == "online" and status["ws_through_nginx"] == 101


def test_unknown_mode_is_refused(sb: Any) -> None:
    with pytest.raises(sbmod.SandboxError, match="unknown mode"):
        sb.set_mode("on-fire")


def _assert_other_pm2_shape(sb: Any, mode: str, ports: dict[int, Any]) -> None:
    """Modes whose PM2 list is not "one app entry online" (wt-sio, and one stopped instance of two); what the bot
    says of them: test_sio_sandbox.py, test_host_sandbox.py."""
    procs = [p for p in sb.pm2_jlist() if p.get("name") == sb.app_name]
    if mode == "pm2-other-home":
        assert procs == [] and sb.app_port in ports  # the app runs, under another PM2_HOME
        return
    if mode == "pm2-started-twice":  # two fork-mode entries: the first serves, the copy cannot bind
        assert len(procs) == 2 and [name for name, _ in ports[sb.app_port]] == ["node"]
        assert get(sb.http_port)[0] == 200 and ws_chat(sb.http_port)[0] == 101
        return
    if mode == "app-outside-pm2":  # the app started by hand: PM2 does not know it, the site works
        assert procs == [] and [name for name, _ in ports[sb.app_port]] == ["node"]
        assert get(sb.http_port)[0] == 200 and ws_chat(sb.http_port)[0] == 101
        return
    if mode == "pm2-killed":  # PM2 gone with the app; the saved list still has it
        assert procs == [] and sb.app_port not in ports
        assert sb.app_name in (Path(sb.pm2_home) / "dump.pm2").read_text()
        return
    if mode == "pm2-instance-stopped":  # cluster mode, one of two stopped: the other serves
        assert sorted(p["pm2_env"]["status"] for p in procs) == ["online", "stopped"], procs
        assert get(sb.http_port)[0] == 200 and ws_chat(sb.http_port)[0] == 101
        assert sb._pm2_saved()
        return
    assert len(procs) == (2 if mode == "socketio-cluster" else 1), procs
    assert all(p["pm2_env"]["status"] == "online" for p in procs), procs
    assert sb._pm2_saved(), "the Socket.IO modes leave the PM2 list saved"


def _assert_mode(sb: Any, mode: str) -> None:
    ports = listeners()
    if mode in ("socketio", "socketio-cluster", "pm2-other-home", "pm2-instance-stopped", "pm2-killed",
                "app-outside-pm2", "pm2-started-twice"):
        _assert_other_pm2_shape(sb, mode, ports)
        return
    # A hung app never answers: nginx would hold the request for its proxy_read_timeout (60 s). A healthy stack
    # answers in milliseconds, so a few seconds tell "no answer" apart without waiting for nginx.
    wait = 3.0 if mode == "app-hung" else 30.0
    through_nginx, _ = get(sb.http_port, timeout=wait)
    ws_status, _ = ws_chat(sb.http_port, timeout=min(wait, 15.0))
    build_id = Path(sb.app_dir) / ".next" / "BUILD_ID"
    proc = jlist(sb)
    env = proc["pm2_env"]
    status = env["status"]
    error_log = Path(env["pm_err_log_path"]).read_text(errors="replace")
    nginx_t = ssh(sb, sb.nginx_bin, "-t", "-c", str(sb.nginx_conf))
    assert nginx_t.returncode == (1 if mode == "nginx-invalid" else 0), nginx_t.stderr

    if mode in ("healthy", "nginx-invalid", "dev-mode"):
        assert status == "online"
        assert [name for name, _ in ports[sb.app_port]] == ["node"]
        assert through_nginx == 200 and ws_status == 101
    if mode == "healthy":
        assert env["args"] == ["run", "start"] and build_id.is_file()
        assert not sb._diskfull_mounted()  # wt-host3
        assert "Upgrade $http_upgrade" in Path(sb.site_file).read_text()
    elif mode == "port-mismatch":
        assert status == "online" and str(env["PORT"]) == str(sb.alt_port)
        assert sb.app_port not in ports
        assert [name for name, _ in ports[sb.alt_port]] == ["node"]
        assert through_nginx == 502 and ws_status == 502
    elif mode == "no-build":
        assert status == "errored" and not build_id.exists()
        assert sb.app_port not in ports
        assert "Could not find a production build" in error_log
        assert through_nginx == 502
    elif mode == "nginx-no-upgrade":
        assert status == "online" and through_nginx == 200
        assert ws_status not in (101, None)
        assert ws_chat(sb.app_port)[0] == 101  # the app itself still upgrades
        site = Path(sb.site_file).read_text()
        assert "proxy_http_version" not in site and "Upgrade $http_upgrade" not in site
    elif mode == "nginx-invalid":
        assert "unknown directive" in nginx_t.stderr
    elif mode == "port-conflict":
        assert status == "errored"
        ((name, pid),) = ports[sb.app_port]
        assert name == "python3"
        assert Path(f"/proc/{pid}").stat().st_uid == Path(sb.pm2_home).stat().st_uid  # the sandbox user's
        assert "EADDRINUSE" in error_log
        assert through_nginx == 502
    elif mode == "pm2-stopped":
        assert status == "stopped" and sb.app_port not in ports
        assert through_nginx == 502
    elif mode == "dev-mode":
        assert env["args"] == ["run", "dev"] and str(env["PORT"]) == str(sb.app_port)
        assert build_id.is_file(), "dev mode must not touch the production build"
    elif mode == "app-ipv6-only":  # wt-host
        assert status == "online" and env["env"]["HOSTNAME"] == "::1"
        assert sb.app_port not in ports  # nothing on 127.0.0.1
        assert sbmod.tcp_accepts(sb.app_port, host="::1")
        assert through_nginx == 502
    elif mode == "app-hung":  # wt-host
        assert status == "online" and [name for name, _ in ports[sb.app_port]] == ["node"]
        assert sbmod.tcp_accepts(sb.app_port) and through_nginx is None and ws_status is None
    elif mode == "pm2-not-saved":  # wt-host
        assert status == "online" and through_nginx == 200 and ws_status == 101
        assert not sb._pm2_saved()
    # -- wt-nginxrt
    elif mode == "nginx-wrong-server":
        assert status == "online" and through_nginx == 404 and ws_status == 404
        assert ws_chat(sb.app_port)[0] == 101
        assert "default_server" in Path(sb.site_file).read_text()
    elif mode == "nginx-ws-static":
        assert status == "online" and through_nginx == 200 and ws_status == 404
    elif mode == "nginx-ws-path-rewritten":
        assert status == "online" and through_nginx == 200 and ws_status not in (101, None)
        assert ws_chat(sb.app_port)[0] == 101  # the app itself still upgrades on /ws
        assert f"proxy_pass http://127.0.0.1:{sb.app_port}/;" in Path(sb.site_file).read_text()
    elif mode == "nginx-reload-pending":
        assert status == "online" and through_nginx == 200 and ws_status not in (101, None)
        assert "Upgrade $http_upgrade" in Path(sb.site_file).read_text()  # fixed on disk, not live
    elif mode == "nginx-worker-connections":
        assert "worker_connections 2;" in Path(sb.nginx_conf).read_text()
        assert ws_status != 101
        assert "2 worker_connections are not enough" in (Path(sb.nginx_dir) / "error.log").read_text()
    # -- wt-host3: a full log file system (a tmpfs inside the workdir) and the open-files limit
    elif mode == "disk-full":
        assert status == "online" and through_nginx == 200 and ws_status == 101
        assert env["pm_out_log_path"] == str(Path(sb.diskfull_dir) / f"{sb.app_name}-out.log")
        assert sb._diskfull_mounted() and os.statvfs(sb.diskfull_dir).f_bavail == 0
    elif mode == "fd-exhausted":
        assert status == "online" and "EMFILE" in error_log
        ((name, pid),) = ports[sb.app_port]
        assert name == "node"
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(rf"^Max open files\s+{sbmod.FD_LIMIT}\s+{sbmod.FD_LIMIT}\s", limits, re.MULTILINE), limits
        assert len(os.listdir(f"/proc/{pid}/fd")) >= sbmod.FD_LIMIT - 2  # the leak holds them
    # -- wt-modes: a kernel OOM kill in the sandbox's own memory cgroup, a standalone build without its assets
    elif mode == "kernel-oom":
        assert status == "online" and through_nginx == 200 and ws_status == 101  # PM2 restarted it
        assert sb.oom_victim and not sbmod.pid_alive(sb.oom_victim)
        assert f"Killed process {sb.oom_victim} (" in subprocess.run(["dmesg"], capture_output=True, text=True,
                                                                     check=False).stdout
        assert sb.oom_cgroup.is_dir() and sb._memcg_procs() == []  # the restarted app is not in it
        assert sb.oom_sudoers.read_text().endswith(f'{sb.user} ALL=(root) NOPASSWD: /usr/bin/dmesg ""\n')
    elif mode == "static-missing":
        assert status == "online" and through_nginx == 200 and ws_status == 101
        assert env["pm_exec_path"] == str(sb.standalone_dir / "server.js")
        built = sb.standalone_dir / ".next"
        assert (built / "BUILD_ID").is_file() and not (built / "static").exists()
    # wt-host2: a restart loop re-stamps created_at at every restart, so its dump always looks older (the
    # diagnosis lets pm2_restart_loop_online explain pm2.saved's "stale").
    if mode not in ("pm2-not-saved", "restart-loop"):
        assert sb._pm2_saved(), "every other mode leaves the PM2 list saved"
    # wt-host2
    elif mode == "restart-loop":
        assert env["watch"] is True and env["pm_out_log_path"] == str(sb.watch_log)
        before = sb.restarts()
        sbmod.wait_for("PM2 to restart the watched app again", lambda: sb.restarts() > before, timeout=30)
        assert "Change detected on path" in (Path(sb.pm2_home) / "pm2.log").read_text(errors="replace")
    elif mode == "heap-oom":
        assert status == "errored" and sb.app_port not in ports
        assert "JavaScript heap out of memory" in error_log


@pytest.mark.parametrize("mode", [*sbmod.MODES[1:], "healthy"])
def test_mode(sb: Any, mode: str) -> None:
    started = time.monotonic()
    sb.set_mode(mode)
    TIMINGS[mode] = time.monotonic() - started
    assert sb.mode == mode
    _assert_mode(sb, mode)


def test_down_leaves_no_process_of_the_sandbox_user(sb: Any) -> None:
    """Only this sandbox's processes count: others (the test session's own sandbox, a developer's) may run
    as the same user at the same time. They carry the marker WSCHECK_SANDBOX=<workdir> in their environment."""
    uid = pwd.getpwnam(sb.user).pw_uid
    sb.set_mode("disk-full")  # wt-host3: down() also unmounts the mode's tmpfs (asserted below)
    assert sb._diskfull_mounted()

    def mine() -> dict[int, str]:
        marked = sbmod._pids_with_env(sbmod.MARKER_ENV, str(sb.workdir), uid)
        return {pid: args for pid, args in user_processes(sb.user).items() if pid in marked}

    while_up = mine()
    assert while_up, "the sandbox user should own PM2, nginx and the app while up"
    ports = (sb.ssh_port, sb.http_port, sb.app_port)
    started = time.monotonic()
    sb.down()
    TIMINGS["down"] = time.monotonic() - started
    after = mine()
    assert not after, f"down() left processes of this sandbox: {after}"
    assert not set(ports) & set(listeners())
    assert not any(str(sb.workdir) in args for args in user_processes(sb.user).values())
    assert not sb._diskfull_mounted()  # wt-host3: no mount left behind
