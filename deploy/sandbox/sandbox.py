#!/usr/bin/env python3
"""A real Nginx -> PM2 -> Next.js 15 stack on 127.0.0.1, reachable over SSH, that can be broken on demand.

wscheck diagnoses a stack it reaches over SSH. This module builds one such stack on the local machine, made of
the real programs (OpenSSH's sshd, nginx, PM2 running `npm run start` of a Next.js 15 app with a WebSocket
chat), so the bot's checks and fixes can be tested end to end and demonstrated without a VPS. Each failure of
the seed story (deploy/sandbox/README.md lists them) is a *mode* that `set_mode()` produces for real: a moved
`.next/BUILD_ID`, a port nobody proxies to, a process squatting the app port, an nginx site without the
WebSocket upgrade headers, and so on.

Everything binds 127.0.0.1 only. As root, the stack runs as the dedicated system user `wsbox` (created on
first use), so what the bot sees over SSH is what an operator sees: PM2, nginx and the app owned by a
non-root user, `ss -p` showing that user's processes. sshd itself runs as root (it must, to switch users).
Without root, everything runs as the current user.

Stdlib only (Python 3.11+), usable as a library (tests) and as a CLI:

    python3 deploy/sandbox/sandbox.py up|down|status|toml [--workdir DIR]
    python3 deploy/sandbox/sandbox.py mode MODE [--workdir DIR]

The state of a running sandbox (ports, pids, mode) is kept in `<workdir>/sandbox.json`, so `down` and `mode`
from another process act on the sandbox that `up` started.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

MODES: tuple[str, ...] = (
    "healthy",
    "port-mismatch",
    "no-build",
    "nginx-no-upgrade",
    "nginx-invalid",
    "port-conflict",
    "pm2-stopped",
    "dev-mode",
    # wt-tls: TLS and redirects (a second server block on tls_port, certificates from the sandbox's own CA)
    "https",
    "tls-expired",
    "tls-wrong-name",
    "tls-expiring",
    "tls-not-reloaded",
    "ws-redirect",
    # wt-host (issue 12): the app and the host as they really fail.
    "app-ipv6-only",
    "app-hung",
    "pm2-not-saved",
    # wt-nginxrt (issue 11): routing, reloads and the error log, each on the real nginx
    "nginx-wrong-server",
    "nginx-ws-static",
    "nginx-reload-pending",
    "nginx-worker-connections",
    # wt-sio: Socket.IO (deploy/sandbox/app/sio-server.js) and PM2 as the bot sees it
    "socketio",
    "socketio-cluster",
    "pm2-not-on-path",
    "pm2-other-home",
    # wt-host2: PM2 restarting an online app, and the V8 heap limit
    "restart-loop",
    "heap-oom",
    # wt-host3: the host under the app, for real (a full log file system, the open-files limit)
    "disk-full",
    "fd-exhausted",
    # wt-modes: a kernel OOM kill in a memory cgroup of this sandbox's own, and a standalone build without its assets
    "kernel-oom",
    "static-missing",
)

#: Engine.IO heartbeat of the Socket.IO modes, short so that a test sees several ping rounds in seconds (ms).
SIO_PING_INTERVAL_MS = 1000
SIO_PING_TIMEOUT_MS = 1500
#: The marker of the line the pm2-not-on-path mode adds to the sandbox user's ~/.profile (login shells only).
PROFILE_MARK = "# wscheck sandbox pm2-not-on-path"

#: The name the TLS modes serve and the https target uses (resolves to loopback without DNS).
TLS_HOST = "localhost"

#: wt-host: the app's environment switch (deploy/sandbox/app/server.js) that blocks its event loop once listening.
HANG_ENV = "WSCHECK_APP_HANG"

#: wt-host3 disk-full: the size of the tmpfs the app's PM2 logs go to (filled to the last block).
DISKFULL_SIZE = "4m"
#: wt-host3 fd-exhausted: the app's open-files limit (soft and hard), and its switch (server.js) that leaks files.
FD_LIMIT = 64
FD_LEAK_ENV = "WSCHECK_APP_FD_LEAK"

#: wt-modes kernel-oom: the app's switch (server.js) that makes SIGUSR2 allocate until the kernel kills it, the memory
#: limit of the sandbox's own cgroup (charges made after the move count: node's earlier memory stays where it was),
#: where cgroup v1's memory controller is, and where the per-sandbox sudoers file for `sudo -n dmesg` goes.
OOM_ENV = "WSCHECK_APP_OOM"
OOM_LIMIT_BYTES = 64 * 1024 * 1024
MEMCG_ROOT = Path("/sys/fs/cgroup/memory")
SUDOERS_D = Path("/etc/sudoers.d")

#: The system user that runs PM2, nginx and the app when the sandbox is started as root.
SANDBOX_USER = "wsbox"
#: Its home (sshd needs an existing home to `chdir` into, or every SSH command prints a warning).
SANDBOX_USER_HOME = Path("/var/lib/wsbox")

HERE = Path(__file__).resolve().parent
APP_SOURCE = HERE / "app"
INSTALL_SH = HERE / "install.sh"
STATE_FILE = "sandbox.json"
#: Environment variable put into every process the sandbox starts as the user: `down()` finds strays by it.
MARKER_ENV = "WSCHECK_SANDBOX"

# The bot refuses paths outside this alphabet (checks/config.py), so the sandbox refuses them first.
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+@-]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
# Login names the bot accepts (checks/config.py `user`).
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

T = TypeVar("T")


class SandboxError(RuntimeError):
    """The sandbox could not reach the state it was asked for; the message says which signal never came."""


# --------------------------------------------------------------------------------------------------------
# small process / network helpers
# --------------------------------------------------------------------------------------------------------


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; raise SandboxError naming `what` after `timeout` s.

    Readiness is always a real signal (a pid file, a TCP accept, an HTTP answer, PM2's own status), never a
    fixed sleep, so a slow machine only waits longer and a broken one fails with a sentence, not a hang.
    `detail` adds context (a log tail) to the error.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = probe()
        except (OSError, SandboxError, ValueError, subprocess.SubprocessError) as exc:
            result, last_exc = None, exc
        if result:
            return result
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc})"
            if detail is not None:
                with contextlib.suppress(Exception):
                    msg += "\n" + detail()
            raise SandboxError(msg)
        time.sleep(interval)


def tcp_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0) -> int | None:
    """Status code of a GET, or None when the connection fails (refused, reset, timeout)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def http_body(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    """The body of a GET (the first 64 KB), or "" when there is no answer."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().read(65536).decode(errors="replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return ""


def ws_handshake_status(
    port: int, path: str = "/ws", host: str = "127.0.0.1", timeout: float = 5.0
) -> int | None:
    """Status code of a hand-written WebSocket upgrade request (101 when the upgrade goes through)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, session id) from /proc, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def pid_alive(pid: int | None) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    if not pid:
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def session_members(sid: int) -> set[int]:
    """Live processes whose session id is `sid`.

    nginx's master calls setsid() when it daemonizes, so its workers keep the master's pid as their session
    id even after the master is gone (kill -9): this is how its orphaned workers are still found.
    """
    found: set[int] = set()
    if sid <= 1:
        return found
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == sid and stat[0] not in ("Z", "X"):
            found.add(pid)
    return found


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live descendant of `roots` (not the roots themselves), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _pids_with_env(name: str, value: str, uid: int) -> set[int]:
    """Processes of `uid` whose initial environment holds name=value (the sandbox's marker)."""
    needle = f"{name}={value}".encode()
    found: set[int] = set()
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.add(pid)
        except OSError:
            continue
    return found


def kill_and_wait(pids: Iterable[int], *, sig: int = signal.SIGTERM, timeout: float = 5.0) -> set[int]:
    """Send `sig`, wait up to `timeout` s, SIGKILL the survivors; return the pids still alive after that."""
    targets = {p for p in pids if p and p != os.getpid() and pid_alive(p)}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = {p for p in targets if pid_alive(p)}
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(pid_alive(p) for p in survivors) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {p for p in survivors if pid_alive(p)}


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port free on 127.0.0.1 right now.

    Ports are drawn below the kernel's ephemeral range when there is room there: a port from that range
    (what binding port 0 returns) can be taken at any moment as the source port of some outgoing
    connection, which would make a later `listen` by nginx or the app fail for no visible reason. The
    caller still retries on "Address already in use", since a free port can be taken before it is bound.
    """
    excluded = set(exclude)
    low, _high = _ephemeral_range()
    lo, hi = (20000, low - 1) if low > 21000 else (1025, 65535)
    for _ in range(200):
        port = random.randint(lo, hi) if lo < hi else 0
        if port in excluded:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(sock.getsockname()[1])
        if chosen not in excluded:
            return chosen
    raise SandboxError("could not find a free TCP port on 127.0.0.1")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _days(days: float) -> datetime.timedelta:
    return datetime.timedelta(days=days)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------------
# configuration text
# --------------------------------------------------------------------------------------------------------

_SITE_TEMPLATE = """\
# {site_file}
# The seed story's site (websocket-troubleshooting-guide), on 127.0.0.1 only.
server {{
    listen 127.0.0.1:{http_port};
    server_name {server_name};

    client_max_body_size 25m;

{ws_static}    location / {{
        proxy_pass http://127.0.0.1:{app_port};
{upgrade}
        # Forwarding headers
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Port $server_port;

        # No buffering (real-time traffic)
        {buffering} off;

        # Keep WebSocket connections open
        proxy_read_timeout 86400;
        proxy_send_timeout 86400;
    }}
}}
{extra}"""

# wt-nginxrt: a default_server that answers 404 in front of the app's block, whose server_name the public
# host (127.0.0.1) does not match: nginx never picks the block that proxies to the app.
_WRONG_SERVER_BLOCK = """\
server {{
    listen 127.0.0.1:{http_port} default_server;
    server_name catch-all.invalid;
    return 404;
}}
"""

# wt-nginxrt: a static location for the WebSocket path (nginx looks for a file, answers 404 itself).
_WS_STATIC_LOCATION = """\
    location /ws {{
        root {nginx_dir}/html;
    }}

"""

_UPGRADE_LINES = """\
        proxy_http_version 1.1;

        # WebSocket upgrade headers
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection 'upgrade';
        proxy_cache_bypass $http_upgrade;
"""

# The same block minus proxy_http_version / Upgrade / Connection (no comment hinting at it: a grep-based
# check must not be fooled into a pass or a fail by our own wording).
_NO_UPGRADE_LINES = """\
        proxy_cache_bypass $http_upgrade;
"""

_MAIN_CONF_TEMPLATE = """\
# Main nginx.conf of the wscheck sandbox. nginx runs as {user} (not root), so everything it writes is in
# {nginx_dir}; the site itself is in sites-enabled/, as on Debian.
worker_processes 1;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log notice;

# Old workers holding WebSocket connections would otherwise delay a reload's takeover for a day.
worker_shutdown_timeout 3s;

events {{
    worker_connections {worker_connections};
}}

http {{
{mime}    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    server_tokens on;

    access_log {nginx_dir}/access.log;

    client_body_temp_path {nginx_dir}/tmp/client_body;
    proxy_temp_path {nginx_dir}/tmp/proxy;
    fastcgi_temp_path {nginx_dir}/tmp/fastcgi;
    uwsgi_temp_path {nginx_dir}/tmp/uwsgi;
    scgi_temp_path {nginx_dir}/tmp/scgi;

    include {nginx_dir}/sites-enabled/*;
}}
"""

_SQUATTER_CODE = """\
import socket, sys
# wscheck sandbox "port-conflict": a stray server holding the app port. It accepts and hangs up.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the app's closed connections may be in TIME_WAIT
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
"""


# --------------------------------------------------------------------------------------------------------
# the sandbox
# --------------------------------------------------------------------------------------------------------


class Sandbox:
    """One sandboxed stack living in `workdir`; see the module docstring and deploy/sandbox/README.md.

    Constructing it starts nothing. If `workdir` holds the state of a sandbox that `up()` started (maybe in
    another process), the ports, pids and mode are loaded from it, so `down()` and `set_mode()` work on it.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, app_name: str = "kathario-saas") -> None:
        self.workdir = Path(os.path.abspath(workdir))
        if not _PATH_RE.fullmatch(str(self.workdir)):
            raise SandboxError(
                f"workdir {self.workdir} has characters the bot refuses in paths; use only [A-Za-z0-9_./+@-]"
            )
        if not _NAME_RE.fullmatch(app_name):
            raise SandboxError(f"app name {app_name!r} is not a valid PM2 app name")
        self.app_name = app_name
        self.is_root = os.geteuid() == 0
        self.user = SANDBOX_USER if self.is_root else pwd.getpwuid(os.geteuid()).pw_name

        self.ssh_dir = self.workdir / "ssh"
        self.identity_file = self.ssh_dir / "id_ed25519"
        self.known_hosts = self.ssh_dir / "known_hosts"
        self.host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.ssh_dir / "authorized_keys"
        self.sshd_config = self.ssh_dir / "sshd_config"
        self.sshd_log = self.ssh_dir / "sshd.log"
        self.sshd_pid_file = self.ssh_dir / "sshd.pid"

        self.home = self.workdir / "home"
        self.pm2_home = self.workdir / "pm2"
        self.app_dir = self.workdir / "app"
        self.stash_dir = self.workdir / "stash"
        self.nginx_dir = self.workdir / "nginx"
        self.nginx_conf = self.nginx_dir / "nginx.conf"
        self.site_file = self.nginx_dir / "sites-enabled" / app_name
        self.nginx_pid_file = self.nginx_dir / "nginx.pid"
        self.nginx_bin = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/nginx"
        self.sshd_bin = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/sshd"
        self.squatter_pid_file = self.stash_dir / "squatter.pid"
        #: wt-sio: the PM2_HOME of the pm2-other-home mode's second daemon.
        self.other_pm2_home = self.workdir / "pm2-other"
        #: wt-host3: the mount point of the disk-full mode's tmpfs (inside this workdir: sandboxes never share it).
        self.diskfull_dir = self.workdir / "diskfull"
        #: wt-modes: names with this workdir's hash, so concurrent sandboxes never share a cgroup or a sudoers file.
        tag = hashlib.sha256(str(self.workdir).encode()).hexdigest()[:16]
        self.oom_cgroup = MEMCG_ROOT / f"wscheck-sandbox-{tag}"
        self.oom_sudoers = SUDOERS_D / f"wscheck-sandbox-{tag}"
        #: wt-modes: the pid and comm of the process the kernel-oom mode had killed (0 / "" before).
        self.oom_victim = 0
        self.standalone_build = ""
        self.state_file = self.workdir / STATE_FILE

        self.ssh_port = 0
        self.http_port = 0
        self.app_port = 0
        self.alt_port = 0
        self.tls_port = 0
        self.tls_dir = self.nginx_dir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.pm2_bin = ""
        self.node_modules = ""
        self.build_dir = ""
        self.mode = "down"
        self.nginx_live = "healthy"
        self.sshd_pid = 0
        self.squatter_pid = 0
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        #: Extra SSH logins besides `user` (add_login_user), keyed from their own ~/.ssh/authorized_keys.
        self.login_users: list[str] = []
        self._load_state()

    # ---- state ----------------------------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        if data.get("app_name") != self.app_name:
            return
        for key in ("ssh_port", "http_port", "app_port", "alt_port", "tls_port", "sshd_pid", "squatter_pid"):
            setattr(self, key, int(data.get(key, 0)))
        self.oom_victim = int(data.get("oom_victim", 0))
        for key in ("pm2_bin", "node_modules", "build_dir", "standalone_build", "mode", "nginx_live"):
            setattr(self, key, str(data.get(key, getattr(self, key))))
        users = data.get("login_users")
        if isinstance(users, list):
            self.login_users = [str(u) for u in users if _USER_RE.fullmatch(str(u))]

    def _save_state(self) -> None:
        data = {
            "app_name": self.app_name,
            "user": self.user,
            "mode": self.mode,
            "nginx_live": self.nginx_live,
            "ssh_port": self.ssh_port,
            "http_port": self.http_port,
            "app_port": self.app_port,
            "alt_port": self.alt_port,
            "tls_port": self.tls_port,
            "sshd_pid": self.sshd_pid,
            "squatter_pid": self.squatter_pid,
            "pm2_bin": self.pm2_bin,
            "node_modules": self.node_modules,
            "build_dir": self.build_dir,
            "standalone_build": self.standalone_build,
            "oom_victim": self.oom_victim,
        }
        if self.login_users:
            data["login_users"] = list(self.login_users)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    # ---- the user and its processes -------------------------------------------------------------------

    def _pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.user)

    def user_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a process run as the sandbox user.

        Built from nothing rather than from os.environ: the caller's environment may hold tokens (Slack,
        cloud), and PM2 copies the environment of `pm2 start` into the app and keeps it in its dump.
        """
        node_dir = os.path.dirname(shutil.which("node") or "/usr/bin/node")
        path = ":".join(dict.fromkeys([node_dir, "/usr/local/bin", "/usr/bin", "/bin"]))
        env = {
            "PATH": path,
            "HOME": str(self.home),
            "PM2_HOME": str(self.pm2_home),
            "NEXT_TELEMETRY_DISABLED": "1",
            "NPM_CONFIG_UPDATE_NOTIFIER": "false",
            "NPM_CONFIG_FUND": "false",
            "LANG": "C.UTF-8",
            MARKER_ENV: str(self.workdir),
        }
        env.update(extra or {})
        return env

    def _user_popen_kwargs(self) -> dict[str, Any]:
        if not self.is_root:
            return {}
        pw = self._pw()
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def run_as_user(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the sandbox user with the minimal environment (plus `env`), capturing text output."""
        try:
            result = subprocess.run(
                argv,
                env=self.user_env(env),
                cwd=cwd or self.workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                umask=0o022,
                check=False,
                **self._user_popen_kwargs(),
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from exc
        if check and result.returncode != 0:
            raise SandboxError(
                f"{' '.join(argv)} exited {result.returncode}\nstdout: {result.stdout.strip()[-2000:]}\n"
                f"stderr: {result.stderr.strip()[-2000:]}"
            )
        return result

    def _spawn_as_user(
        self, argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-lived process as the sandbox user, in its own session, output to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=self.user_env(env),
                cwd=cwd or self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                umask=0o022,
                **self._user_popen_kwargs(),
            )
        self._popen[proc.pid] = proc
        return proc

    def pm2(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached pm2 as the sandbox user, with this sandbox's PM2_HOME, in the app directory."""
        if not self.pm2_bin:
            raise SandboxError("pm2 is not known yet: call up() first")
        return self.run_as_user(
            [self.pm2_bin, *args], env=env, cwd=self.app_dir, check=check, timeout=timeout
        )

    def pm2_jlist(self) -> list[dict[str, Any]]:
        """`pm2 jlist`, parsed (PM2 may print a banner line before the JSON when it spawns its daemon)."""
        out = self.pm2("jlist", timeout=30).stdout
        start = out.find("\n[") + 1 if not out.startswith("[") else 0
        data = json.loads(out[start:])
        if not isinstance(data, list):
            raise SandboxError(f"pm2 jlist did not return a list: {out[:200]}")
        return data

    def app_process(self) -> dict[str, Any] | None:
        """The PM2 entry of the app, or None when PM2 does not know it."""
        for proc in self.pm2_jlist():
            if proc.get("name") == self.app_name:
                return proc
        return None

    def kill_app(self, sig: int = signal.SIGKILL) -> set[int]:
        """Crash this sandbox's app, as an OOM kill would: `sig` to PM2's app pid and every process under it.

        By pid, never by name: every sandbox on the machine runs the same `node server.js` as the same user.
        The app runs as `npm run start` -> `node server.js`, so the whole tree goes (npm alone would leave node
        holding the port). PM2 sees the exit and restarts the app. Returns the pids signalled.
        """
        proc = self.app_process()
        pid = int(proc.get("pid") or 0) if proc else 0
        if not self._is_ours(pid):
            raise SandboxError(f"{self.app_name} has no running process in this sandbox (pm2 pid {pid})")
        tree = {pid, *descendants([pid])}
        for member in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, sig)
        return tree

    def app_status(self) -> str:
        """PM2's status for the app (`online`, `errored`, `stopped`, ...), or `missing`."""
        proc = self.app_process()
        return str(proc.get("pm2_env", {}).get("status", "unknown")) if proc else "missing"

    @property
    def pm2_error_log(self) -> Path:
        """Where PM2 writes the app's stderr (the EADDRINUSE / missing-build messages land here)."""
        return self.pm2_home / "logs" / f"{self.app_name}-error.log"

    @property
    def pm2_out_log(self) -> Path:
        return self.pm2_home / "logs" / f"{self.app_name}-out.log"

    def _chown(self, path: Path, *, recursive: bool = False) -> None:
        """Give `path` to the sandbox user (no-op when not root); symlinks themselves, never their targets."""
        if not self.is_root:
            return
        pw = self._pw()
        os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        if recursive and path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    def _write_user_file(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        self._chown(tmp)
        tmp.replace(path)

    # ---- preparation ----------------------------------------------------------------------------------

    def _check_traversable(self, path: Path) -> None:
        """Fail early, with the fix in the message, when the sandbox user could not reach `path`.

        pytest's tmp_path (/tmp/pytest-of-root, mode 0700) is the usual trap: nginx, PM2 and sshd's
        AuthorizedKeysFile lookups would all fail later with much less obvious errors.
        """
        if not self.is_root:
            return
        pw = self._pw()
        for parent in [path, *path.parents]:
            if not parent.exists():
                continue
            st = parent.stat()
            if st.st_uid == pw.pw_uid or st.st_mode & 0o001:
                continue
            raise SandboxError(
                f"{parent} is not traversable by the sandbox user {self.user} "
                f"(mode {oct(st.st_mode & 0o777)}); "
                f"put the workdir somewhere world-traversable, e.g. tempfile.mkdtemp(dir='/tmp') + chmod 0755"
            )

    def _ensure_user(self) -> None:
        """Create the `wsbox` system user once (root only), usable for key-only SSH with UsePAM off.

        /bin/sh (dash) reads no rc file for `ssh host cmd`, so every command starts fast and prints nothing
        extra. The password field is `*` rather than useradd's `!`: with UsePAM off, sshd treats `!` as a
        locked account and refuses even public-key logins.
        """
        if not self.is_root:
            return
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            result = subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--shell",
                    "/bin/sh",
                    "--home-dir",
                    str(SANDBOX_USER_HOME),
                    "--no-create-home",
                    "--comment",
                    "wscheck sandbox",
                    self.user,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                try:  # another sandbox may have created it at the same moment
                    pwd.getpwnam(self.user)
                except KeyError:
                    raise SandboxError(f"useradd {self.user} failed: {result.stderr.strip()}") from None
        pw = self._pw()
        if pw.pw_shell != "/bin/sh":
            subprocess.run(["usermod", "--shell", "/bin/sh", self.user], check=True, capture_output=True)
        shadow = subprocess.run(["getent", "shadow", self.user], capture_output=True, text=True, check=False)
        fields = shadow.stdout.split(":")
        if len(fields) > 1 and fields[1].startswith("!"):
            subprocess.run(["usermod", "-p", "*", self.user], check=True, capture_output=True)
        home = Path(pw.pw_dir)
        if not home.is_dir():
            home.mkdir(mode=0o755, parents=True)
            os.chown(home, pw.pw_uid, pw.pw_gid)

    def install(self) -> None:
        """Run install.sh (a no-op taking milliseconds once the cache is warm) and read where things are.

        install.sh gets the caller's environment (proxies, CA bundles and npm settings it may need to reach
        the registry); only the processes run as the sandbox user get a minimal one. Its progress goes
        straight to our stderr, so a cold install (npm ci + next build) is not half a minute of silence.
        """
        env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
        env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        result = subprocess.run(
            ["bash", str(INSTALL_SH)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise SandboxError(f"install.sh failed with exit code {result.returncode} (its output is above)")
        values = dict(
            line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("WSCHECK_")
        )
        try:
            self.pm2_bin = values["WSCHECK_SANDBOX_PM2"]
            self.node_modules = values["WSCHECK_SANDBOX_NODE_MODULES"]
            self.build_dir = values["WSCHECK_SANDBOX_BUILD"]
            self.standalone_build = values["WSCHECK_SANDBOX_STANDALONE"]
        except KeyError as exc:
            raise SandboxError(f"install.sh did not report {exc}: {result.stdout[-1000:]}") from None
        for path in (self.pm2_bin, self.node_modules, self.build_dir, self.standalone_build):
            if not _PATH_RE.fullmatch(path):
                raise SandboxError(
                    f"cache path {path} has characters the bot refuses; set WSCHECK_SANDBOX_CACHE"
                )
            self._check_traversable(Path(path))

    def _prepare_dirs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self._check_traversable(self.workdir)
        for path in (self.ssh_dir, self.home, self.pm2_home, self.app_dir, self.stash_dir, self.nginx_dir):
            if path.exists():
                shutil.rmtree(path)
        self.ssh_dir.mkdir(mode=0o755)
        for path in (self.home, self.pm2_home, self.stash_dir):
            path.mkdir(mode=0o755)
            self._chown(path)
        (self.nginx_dir / "sites-enabled").mkdir(parents=True)
        (self.nginx_dir / "tmp").mkdir()
        self._chown(self.nginx_dir, recursive=True)

    def _prepare_app(self) -> None:
        """Copy the app, link node_modules to the cache and copy the cached build into it.

        The build is copied (not linked) so that breaking `.next/BUILD_ID` here never damages the cache.
        """
        shutil.copytree(
            APP_SOURCE,
            self.app_dir,
            symlinks=True,
            ignore=shutil.ignore_patterns("node_modules", ".next", ".next-dev"),
            dirs_exist_ok=True,
        )
        (self.app_dir / "node_modules").symlink_to(self.node_modules)
        subprocess.run(["cp", "-a", self.build_dir, str(self.app_dir / ".next")], check=True)
        self._chown(self.app_dir, recursive=True)

    # ---- sshd -----------------------------------------------------------------------------------------

    def _sshd_version(self) -> tuple[int, int]:
        result = subprocess.run([self.sshd_bin, "-V"], capture_output=True, text=True, check=False)
        match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stdout + result.stderr)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def _keygen(self, path: Path, comment: str) -> None:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )

    def _write_sshd_config(self) -> None:
        lines = [
            "# sshd of the wscheck sandbox: 127.0.0.1 only, key-only, one user, local forwarding for the bot",
            f"Port {self.ssh_port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.sshd_pid_file}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowUsers " + " ".join([self.user, *self.login_users]),
            "PermitRootLogin no",
            "AllowTcpForwarding local",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "GatewayPorts no",
            "MaxSessions 10",
            "MaxStartups 100:30:200",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        if self._sshd_version() >= (9, 8):
            # Newer sshd penalises sources that fail auth; the bot's tests fail auth on purpose.
            lines.append("PerSourcePenalties no")
        if self.login_users:
            # Extra logins authenticate like on a real server: keys from their own home, which is where
            # deploy/target/setup-target.sh puts the bot's restricted key. The sandbox key stays wsbox's only.
            lines += [
                f"Match User {','.join(self.login_users)}",
                "    AuthorizedKeysFile .ssh/authorized_keys",
            ]
        self.sshd_config.write_text("\n".join(lines) + "\n")

    def add_login_user(self, name: str) -> None:
        """Let the existing system user `name` log in over this sandbox's SSH too (root only; opt-in).

        By default only the sandbox user may log in. A test of a least-privilege login (a user that owns
        nothing and reaches PM2 and nginx through sudo) creates that user itself, installs its key in
        `~name/.ssh/authorized_keys` (sshd's usual place, restrictions included), then calls this. A running
        sshd re-reads its config (SIGHUP); open SSH sessions are not affected.
        """
        if not self.is_root:
            raise SandboxError("a second SSH login needs a root sandbox (sshd runs as the caller otherwise)")
        if not _USER_RE.fullmatch(name) or name == self.user:
            raise SandboxError(f"{name!r} is not a valid extra login user")
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise SandboxError(f"no system user {name!r}: create it first") from None
        if name in self.login_users:
            return
        self.login_users.append(name)
        try:
            self._apply_sshd_config()
        except BaseException:
            self.login_users.remove(name)
            self._save_state()
            raise

    def remove_login_user(self, name: str) -> None:
        """Undo add_login_user: `name` can no longer log in (its open sessions are not killed)."""
        if name in self.login_users:
            self.login_users.remove(name)
            self._apply_sshd_config()

    def _apply_sshd_config(self) -> None:
        """Rewrite sshd_config and have a running sshd load it; return once it listens again."""
        self._save_state()
        if not self._is_ours(self.sshd_pid):
            return  # the next up() writes it
        previous = self.sshd_config.read_text()
        self._write_sshd_config()
        test = subprocess.run(
            [self.sshd_bin, "-t", "-f", str(self.sshd_config)], capture_output=True, text=True, check=False
        )
        if test.returncode != 0:
            self.sshd_config.write_text(previous)
            raise SandboxError(f"sshd -t refused the new config: {test.stderr.strip()}")
        before = self.sshd_log.read_text(errors="replace").count("Server listening on")
        os.kill(self.sshd_pid, signal.SIGHUP)  # sshd -D re-executes itself: same pid, same port
        wait_for(
            "sshd to listen again after SIGHUP",
            lambda: self.sshd_log.read_text(errors="replace").count("Server listening on") > before,
            timeout=20,
            detail=lambda: _tail(self.sshd_log),
        )
        wait_for(
            f"an SSH login as {self.user}",
            self._ssh_login_works,
            timeout=20,
            interval=0.3,
            detail=lambda: _tail(self.sshd_log),
        )

    def _start_sshd(self) -> None:
        """sshd -D -e with its own config; ready when it logs "Server listening on" (retries busy ports)."""
        if self.is_root:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._keygen(self.host_key, "wscheck-sandbox-host")
        self._keygen(self.identity_file, "wscheck-sandbox-client")
        self.authorized_keys.write_text(Path(f"{self.identity_file}.pub").read_text())
        self.authorized_keys.chmod(0o644)
        for _attempt in range(5):
            self.ssh_port = pick_free_port(self._ports())
            self._write_sshd_config()
            self.sshd_log.write_bytes(b"")
            with self.sshd_log.open("ab") as log:
                proc = subprocess.Popen(
                    [self.sshd_bin, "-D", "-e", "-f", str(self.sshd_config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                )
            self._popen[proc.pid] = proc
            self.sshd_pid = proc.pid
            self._save_state()

            def listening(proc: subprocess.Popen[bytes] = proc) -> str | None:
                text = self.sshd_log.read_text(errors="replace")
                if "Server listening on" in text:
                    return "listening"
                if proc.poll() is not None:
                    return "exited"
                return None

            outcome = wait_for(
                "sshd to log 'Server listening on'",
                listening,
                timeout=20,
                detail=lambda: _tail(self.sshd_log),
            )
            if outcome == "listening":
                break
            if "Address already in use" not in self.sshd_log.read_text(errors="replace"):
                raise SandboxError(f"sshd exited at start\n{_tail(self.sshd_log)}")
        else:
            raise SandboxError(f"sshd could not bind a port after 5 tries\n{_tail(self.sshd_log)}")
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[{self.host}]:{self.ssh_port} {key_type} {key}\n")
        wait_for(
            f"an SSH login as {self.user}",
            self._ssh_login_works,
            timeout=20,
            interval=0.3,
            detail=lambda: _tail(self.sshd_log),
        )

    def ssh_argv(self, *command: str) -> list[str]:
        """OpenSSH client argv for this sandbox, with strict host key checking against our known_hosts."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.identity_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.ssh_port),
            f"{self.user}@{self.host}",
            *command,
        ]

    def _ssh_login_works(self) -> bool:
        result = subprocess.run(
            self.ssh_argv("true"),
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"ssh exited {result.returncode}: {result.stderr.strip()}")
        return True

    # ---- nginx ----------------------------------------------------------------------------------------

    def site_text(self, *, upgrade: bool = True, invalid: bool = False, tls: bool = False,
                  ws_redirect: bool = False, wrong_server: bool = False, ws_static: bool = False) -> str:
        """The nginx site: the seed's, or without the upgrade lines, or with a misspelt directive; or (wt-nginxrt)
        behind a 404 default_server its host does not match, or with a static location for /ws.

        `tls` adds a second server block, the same site on 127.0.0.1:tls_port with `ssl` and the certificate in
        tls_dir; `ws_redirect` (implies `tls`) makes the plain-http block answer /ws with an http->https 301,
        the way a certbot-made port-80 block does."""
        text = _SITE_TEMPLATE.format(
            site_file=self.site_file,
            http_port=self.http_port,
            app_port=self.app_port,
            upgrade=_UPGRADE_LINES if upgrade else _NO_UPGRADE_LINES,
            buffering="proxy_bufering" if invalid else "proxy_buffering",
            server_name="chat.example.test" if wrong_server else "127.0.0.1 localhost",
            ws_static=_WS_STATIC_LOCATION.format(nginx_dir=self.nginx_dir) if ws_static else "",
            extra="\n" + _WRONG_SERVER_BLOCK.format(http_port=self.http_port) if wrong_server else "",
        )
        if not (tls or ws_redirect):
            return text
        plain = f"    listen 127.0.0.1:{self.http_port};\n"
        secure = (
            f"    listen 127.0.0.1:{self.tls_port} ssl;\n"
            f"    ssl_certificate {self.tls_dir}/site.pem;\n"
            f"    ssl_certificate_key {self.tls_dir}/site.key;\n"
        )
        body = text.split("\n", 2)[2]  # the server block without the file's two comment lines
        tls_block = "\n# The same site over TLS (wscheck sandbox TLS modes).\n" + body.replace(plain, secure)
        if ws_redirect:
            redirect = (
                "    location /ws {\n"
                f"        return 301 https://$host:{self.tls_port}$request_uri;\n"
                "    }\n\n"
            )
            text = text.replace("    location / {", redirect + "    location / {", 1)
        return text + tls_block

    def main_conf_text(self, *, worker_connections: int = 512) -> str:
        """The main nginx.conf; `worker_connections` 2 (wt-nginxrt) leaves no room for one proxied request."""
        mime = "    include /etc/nginx/mime.types;\n" if Path("/etc/nginx/mime.types").is_file() else ""
        return _MAIN_CONF_TEMPLATE.format(user=self.user, nginx_dir=self.nginx_dir, mime=mime,
                                          worker_connections=worker_connections)

    def _write_nginx_conf(self) -> None:
        self._write_user_file(self.nginx_conf, self.main_conf_text())
        self._write_user_file(self.site_file, self.site_text())

    def nginx(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run nginx as the sandbox user against the sandbox's main conf (`-t`, `-T`, `-s reload`, ...)."""
        return self.run_as_user([self.nginx_bin, "-c", str(self.nginx_conf), *args], check=check, timeout=30)

    def nginx_master_pid(self) -> int:
        """The running nginx master of this sandbox, or 0."""
        pid = self._nginx_pid_recorded()
        return pid if pid_alive(pid) else 0

    def _nginx_pid_recorded(self) -> int:
        try:
            return int(self.nginx_pid_file.read_text().strip())
        except (OSError, ValueError):
            return 0

    def _nginx_orphans(self) -> set[int]:
        """Workers left by a master that died without cleaning up (kill -9): same session, still ours."""
        leader = self._nginx_pid_recorded()
        if pid_alive(leader) and not self._is_ours(leader):
            return set()  # the pid was reused: that session is somebody else's
        uid = os.stat(self.nginx_dir).st_uid
        orphans = set()
        for pid in session_members(leader):
            with contextlib.suppress(OSError):
                if (
                    os.stat(f"/proc/{pid}").st_uid == uid
                    and Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
                ):
                    orphans.add(pid)
        return orphans

    def _nginx_workers(self) -> set[int]:
        master = self.nginx_master_pid()
        return descendants([master]) if master else set()

    def _start_nginx(self, *, new_port: bool = True) -> None:
        """Start nginx (daemonized) as the user; ready when the master's pid file exists and the port accepts.

        With `new_port`, a port taken between picking and binding ("Address already in use") is retried
        with another one; without it (a restart by `heal`), the target's public_url must not change.
        """
        for _attempt in range(5 if new_port else 1):
            if new_port:
                self.http_port = pick_free_port(self._ports() - {self.http_port})
            self._write_nginx_conf()
            test = self.nginx("-t")
            if test.returncode != 0:
                raise SandboxError(f"nginx -t failed on the sandbox's own config:\n{test.stderr}")
            start = self.nginx()
            if start.returncode == 0:
                break
            if "Address already in use" not in start.stderr:
                raise SandboxError(f"nginx did not start:\n{start.stderr}")
        else:
            raise SandboxError(f"nginx could not bind 127.0.0.1:{self.http_port}:\n{start.stderr}")
        self._save_state()
        wait_for(
            "nginx's pid file",
            self.nginx_master_pid,
            timeout=15,
            detail=lambda: _tail(self.nginx_dir / "error.log"),
        )
        wait_for(
            f"nginx accepting on 127.0.0.1:{self.http_port}",
            lambda: tcp_accepts(self.http_port),
            timeout=15,
            detail=lambda: _tail(self.nginx_dir / "error.log"),
        )
        self.nginx_live = "healthy"

    def _reload_nginx(self, live: str, confirm: Callable[[], bool], what: str) -> None:
        """Reload nginx and return once its new workers serve the new config (as judged by `confirm`).

        nginx answers a reload signal at once but switches over asynchronously: new workers start, old ones
        finish their requests (bounded by worker_shutdown_timeout). We wait until none of the old workers is
        left and `confirm` sees the new behaviour from outside.
        """
        before = self._nginx_workers()
        result = self.nginx("-s", "reload")
        if result.returncode != 0:
            raise SandboxError(f"nginx -s reload failed:\n{result.stderr}")

        def switched() -> bool:
            workers = self._nginx_workers()
            return bool(workers) and not (workers & before) and confirm()

        wait_for(what, switched, timeout=20, interval=0.1, detail=lambda: _tail(self.nginx_dir / "error.log"))
        self.nginx_live = live
        self._save_state()

    # ---- the app under PM2 ----------------------------------------------------------------------------

    def _start_app(self, *, port: int, script: str = "start", env: Mapping[str, str] | None = None,
                   save: bool = True, extra: Mapping[str, Any] | None = None) -> None:
        """The seed's `PORT=<port> pm2 start npm --name <app> -- run <script>`, plus a restart policy.

        npm -> sh -> node: the listener is several levels below the PM2 pid, as on the real server.
        The app is described in a one-app ecosystem file rather than on the command line only because the
        PM2 CLI has no `--min-uptime`: with PM2's default (1 s, counted only within min_uptime x max_restarts
        of the start), a crash loop that takes a little over a second per round on a busy machine never
        ends `errored`. With 10 s, every failing start counts and PM2 gives up after 3, within seconds.
        What PM2 records (name, script npm, args, cwd, PORT) is what the seed's command records.

        No restart_delay: PM2 7 sets `errored` on the last unstable exit and then, when a restart_delay is
        configured, overwrites it with `waiting restart` without ever restarting (God.handleExit), so the
        app would hang in `waiting restart` instead of showing `errored`.
        """
        ecosystem = self.stash_dir / "pm2-app.json"
        app = {
            "name": self.app_name,
            "script": "npm",
            "args": ["run", script],
            "cwd": str(self.app_dir),
            "env": {"PORT": str(port), **(env or {})},
            "max_restarts": 3,
            "min_uptime": 10000,
            "vizion": False,
            **(extra or {}),
        }
        self._write_user_file(ecosystem, json.dumps({"apps": [app]}, indent=2) + "\n")
        self.pm2("delete", self.app_name, check=False)
        self.pm2("start", str(ecosystem), env={"PORT": str(port), **(env or {})})
        if save:  # as an operator would; only the pm2-not-saved mode leaves the list unsaved
            self.pm2("save")

    def _app_is(self, status: str) -> bool:
        return self.app_status() == status

    def _wait_app_status(self, status: str, timeout: float = 45) -> None:
        wait_for(
            f"PM2 to show {self.app_name} {status}",
            lambda: self._app_is(status),
            timeout=timeout,
            interval=0.3,
            detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}",
        )

    def _wait_app_listening(self, port: int, timeout: float = 60, host: str = "127.0.0.1") -> None:
        def ready() -> bool:
            return tcp_accepts(port, host=host) and self._app_is("online")

        wait_for(
            f"{self.app_name} online in PM2 and accepting on {host}:{port}",
            ready,
            timeout=timeout,
            interval=0.25,
            detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}",
        )

    def _app_healthy(self) -> bool:
        proc = self.app_process()
        if not proc:
            return False
        env = proc.get("pm2_env", {})
        inner = env.get("env", {})
        return (
            env.get("status") == "online"
            and not env.get("watch")  # wt-host2: restart-loop
            and "NODE_OPTIONS" not in (env.get("env") or {})  # wt-host2: heap-oom
            and list(env.get("args") or []) == ["run", "start"]
            and str(env.get("PORT") or inner.get("PORT")) == str(self.app_port)
            and not (env.get("HOSTNAME") or inner.get("HOSTNAME"))  # app-ipv6-only
            and not (env.get(HANG_ENV) or inner.get(HANG_ENV))  # app-hung
            and not (env.get(FD_LEAK_ENV) or inner.get(FD_LEAK_ENV))  # wt-host3: fd-exhausted
            and not (env.get(OOM_ENV) or inner.get(OOM_ENV))  # wt-modes: kernel-oom
            and str(env.get("pm_out_log_path") or self.pm2_out_log) == str(self.pm2_out_log)  # wt-host3: disk-full
            and str(env.get("pm_err_log_path") or self.pm2_error_log) == str(self.pm2_error_log)
            and tcp_accepts(self.app_port)
        )

    # ---- the saved PM2 list (wt-host) -----------------------------------------------------------------

    @property
    def pm2_dump(self) -> Path:
        return self.pm2_home / "dump.pm2"

    def _pm2_saved(self) -> bool:
        """The dump lists the app with its current unique_id (what the bot's pm2.saved asks)."""
        proc = self.app_process()
        try:
            saved = json.loads(self.pm2_dump.read_text())
        except (OSError, ValueError):
            return False
        # As the bot's pm2.saved: a recreated app gets a new unique_id; a stop/start or restart keeps it.
        entries = [e for e in saved if isinstance(e, dict)] if isinstance(saved, list) else []
        ids = {e.get("unique_id") for e in entries if e.get("name") == self.app_name}
        return proc is not None and proc.get("pm2_env", {}).get("unique_id") in ids

    def _pm2_save(self) -> None:
        """`pm2 save`, as an operator ends every change; a healthy sandbox survives a reboot."""
        self.pm2("save")
        wait_for("PM2 to write its dump with the app in it", self._pm2_saved, timeout=15)

    # ---- the port squatter ----------------------------------------------------------------------------

    def _start_squatter(self) -> None:
        """A stray python3 server on app_port, owned by the sandbox user so `ss -p` shows it to that user."""
        log = self.stash_dir / "squatter.log"
        proc = self._spawn_as_user(["python3", "-c", _SQUATTER_CODE, str(self.app_port)], log)
        self.squatter_pid = proc.pid
        self.squatter_pid_file.write_text(f"{proc.pid}\n")
        self._save_state()

        def up() -> bool:
            if proc.poll() is not None:
                raise SandboxError(f"the port squatter exited\n{_tail(log)}")
            return tcp_accepts(self.app_port)

        wait_for(f"the squatter accepting on 127.0.0.1:{self.app_port}", up, timeout=10)

    def _stop_squatter(self) -> None:
        if self._is_ours(self.squatter_pid):
            kill_and_wait([self.squatter_pid])
            self._reap()
        self.squatter_pid = 0
        self.squatter_pid_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        for pid, proc in list(self._popen.items()):
            if proc.poll() is not None:
                del self._popen[pid]

    # ---- public API -----------------------------------------------------------------------------------

    def _is_ours(self, pid: int) -> bool:
        """True when `pid` still is a process of this sandbox (guards against a recycled pid in the state).

        sshd's, nginx's and PM2's titles name a file in the workdir; processes spawned as the user carry the
        marker variable in their environment.
        """
        if not pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(self.workdir) + "/" in cmdline:
                return True
            marker = f"{MARKER_ENV}={self.workdir}".encode()
            return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def _ports(self) -> set[int]:
        return {p for p in (self.ssh_port, self.http_port, self.app_port, self.alt_port, self.tls_port) if p}

    def up(self) -> None:
        """Install if needed, then start sshd, nginx and the app healthy; return when all three really are.

        A sandbox already running in this workdir is taken down first. On any failure, whatever was started
        is stopped again before the exception propagates.
        """
        if self.state_file.exists():
            self.down()
        self._ensure_user()
        self.install()
        self._prepare_dirs()
        self.ssh_port = self.http_port = 0
        self.app_port = pick_free_port()
        self.alt_port = pick_free_port({self.app_port})
        self.mode = "starting"
        self._save_state()
        try:
            self._prepare_app()
            self._start_sshd()
            self._start_nginx()
            self._start_app(port=self.app_port)
            self._wait_app_listening(self.app_port)
            wait_for(
                f"HTTP 200 through nginx on 127.0.0.1:{self.http_port}",
                lambda: http_status(self.http_port) == 200,
                timeout=30,
                detail=lambda: _tail(self.nginx_dir / "error.log"),
            )
            self._pm2_save()
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise
        self.mode = "healthy"
        self._save_state()
        (self.workdir / "wscheck.toml").write_text(self.target_toml())

    def down(self) -> None:
        """Stop everything this sandbox started, even after a partial `up()` or a crashed caller.

        Order: PM2 (kills the app tree), nginx, the squatter, sshd (and the SSH sessions under it). Then a
        sweep: every process of the sandbox user carrying this workdir's marker variable, and every process
        found under the recorded pids, gets SIGTERM then SIGKILL. Files stay, for the logs.
        """
        errors: list[str] = []
        roots = [
            p
            for p in (self.sshd_pid, self.squatter_pid, self.nginx_master_pid(), self._pm2_daemon_pid())
            if self._is_ours(p)
        ]
        tree = descendants(roots) | set(roots)
        # Only when its daemon runs: any pm2 command, even `kill`, would otherwise spawn a fresh daemon.
        if self.pm2_bin and self._is_ours(self._pm2_daemon_pid()) and Path(self.pm2_bin).exists():
            try:
                self.pm2("kill", check=False, timeout=60)
            except SandboxError as exc:
                errors.append(str(exc))
        with contextlib.suppress(SandboxError):
            self._stop_other_pm2()
        master = self.nginx_master_pid()
        if master and self._is_ours(master):
            kill_and_wait([master, *descendants([master])], timeout=5)
        if self.nginx_dir.is_dir():
            kill_and_wait(self._nginx_orphans())
        self._stop_squatter()
        if self._is_ours(self.sshd_pid):
            kill_and_wait([self.sshd_pid, *descendants([self.sshd_pid])])
        strays = tree | descendants(tree)
        with contextlib.suppress(KeyError):
            strays |= _pids_with_env(MARKER_ENV, str(self.workdir), self._pw().pw_uid)
        left = kill_and_wait(strays, timeout=3)
        if left:
            errors.append(f"processes still alive after SIGKILL: {sorted(left)}")
        for proc in self._popen.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self._popen.clear()
        try:
            self._release_diskfull()  # wt-host3: never leave a mount behind (the workdir could not be removed)
        except SandboxError as exc:
            errors.append(str(exc))
        try:
            self._release_kernel_oom()  # wt-modes: no cgroup or sudoers file left behind
        except (OSError, SandboxError) as exc:
            errors.append(str(exc))
        self.sshd_pid = 0
        self.mode = "down"
        if self.state_file.exists():
            self._save_state()
        if errors:
            raise SandboxError("down() could not stop everything: " + "; ".join(errors))

    def _pm2_daemon_pid(self) -> int:
        try:
            pid = int((self.pm2_home / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return 0
        return pid if pid_alive(pid) else 0

    def heal(self) -> None:
        """Bring every part back to healthy, touching only what is not (cheap when already healthy).

        Decisions are made on what is observed, not only on the recorded mode, since the bot under test
        may have "fixed" (or further broken) things in between: a reload, a `pm2 start`, a rebuild.
        """
        self._stop_squatter()
        self._stop_other_pm2()
        if self.mode == "restart-loop":  # wt-host2: stop the loop first, then nothing of it may hold the port
            self.pm2("delete", self.app_name, check=False)
        if self.mode == "heap-oom":
            # wt-host2: the last crash's lines must be older than the healed app's start by more than the 1 s the
            # log checks allow for clock granularity, as they are when a person fixes it (not milliseconds later).
            wait_for("the heap-oom crash log to be 2 s old",
                     lambda: time.time() - self.pm2_error_log.stat().st_mtime > 2, timeout=15, interval=0.2)
        self.kill_strays()  # wt-host2
        stashed = self.stash_dir / "BUILD_ID"
        build_id = self.app_dir / ".next" / "BUILD_ID"
        if stashed.exists():
            if build_id.exists():  # rebuilt meanwhile (`npm run build`): that build is coherent, keep it
                stashed.unlink()
            else:
                shutil.move(stashed, build_id)
        if not self._app_healthy():
            self._start_app(port=self.app_port)
            self._wait_app_listening(self.app_port)
        self._release_diskfull()  # wt-host3: the app writes its logs back in PM2_HOME, so nothing holds the tmpfs
        self._release_kernel_oom()  # wt-modes: the cgroup (empty: its one process was killed) and the sudoers file
        if self.standalone_dir.exists():  # wt-modes: static-missing; the healthy app runs from app_dir
            shutil.rmtree(self.standalone_dir)
        # A file rewritten here is reloaded too: a config on disk newer than the running nginx's last load is
        # itself a finding (nginx.reload), so a healed sandbox must not leave one behind.
        rewritten = False
        for path, healthy_text in ((self.site_file, self.site_text()), (self.nginx_conf, self.main_conf_text())):
            if path.read_text() != healthy_text:
                self._write_user_file(path, healthy_text)
                rewritten = True
        if not self.nginx_master_pid():
            kill_and_wait(self._nginx_orphans())  # they would still hold the port
            self._start_nginx(new_port=False)
        elif rewritten or self.nginx_live != "healthy" or ws_handshake_status(self.http_port) != 101:
            self._reload_nginx(
                "healthy",
                lambda: ws_handshake_status(self.http_port) == 101,
                "nginx to pass WebSocket upgrades again after a reload",
            )
        if not self._pm2_saved():
            self._pm2_save()
        # A clean slate for the next mode: PM2's log lines carry no timestamps, so what an earlier mode wrote
        # (a heap OOM, EADDRINUSE, a missing build) would read as this mode's evidence. An operator's healthy
        # stack has no such history in view either.
        self.pm2("flush", self.app_name, check=False)
        self.mode = "healthy"
        self._save_state()

    def set_mode(self, mode: str) -> None:
        """Heal, then break the stack the way `mode` says; return only once that state is observable."""
        if mode not in MODES:
            raise SandboxError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        if self.mode in ("down", "starting") or not self.sshd_pid:
            raise SandboxError("the sandbox is not up: call up() first")
        self.heal()
        try:
            getattr(self, "_break_" + mode.replace("-", "_"))()
        finally:
            self._save_state()
        self.mode = mode
        self._save_state()

    def _break_healthy(self) -> None:
        """Nothing to break."""

    def _break_port_mismatch(self) -> None:
        """The seed's cause 2: the app on another port (Next's default, here alt_port), nginx unchanged."""
        self._start_app(port=self.alt_port)
        self._wait_app_listening(self.alt_port)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_no_build(self) -> None:
        """The seed's cause 1: no .next/BUILD_ID, so `next start` cannot run and PM2 ends `errored`."""
        shutil.move(self.app_dir / ".next" / "BUILD_ID", self.stash_dir / "BUILD_ID")
        self._start_app(port=self.app_port)
        self._wait_app_status("errored")

    def _break_nginx_no_upgrade(self) -> None:
        """The site minus proxy_http_version 1.1 / Upgrade / Connection, reloaded: upgrades stop at nginx."""
        self._write_user_file(self.site_file, self.site_text(upgrade=False))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the no-upgrade site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(
            "no-upgrade",
            lambda: (
                http_status(self.http_port) == 200 and ws_handshake_status(self.http_port) not in (101, None)
            ),
            "nginx to refuse WebSocket upgrades after the reload",
        )

    def _break_nginx_invalid(self) -> None:
        """A misspelt directive in the site; not reloaded, so nginx keeps serving the old config."""
        self._write_user_file(self.site_file, self.site_text(invalid=True))
        wait_for("nginx -t to fail on the site", lambda: self.nginx("-t").returncode != 0, timeout=10)

    def _break_port_conflict(self) -> None:
        """Another process holds app_port; the restarted app dies with EADDRINUSE and PM2 ends `errored`."""
        self.pm2("stop", self.app_name)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self._start_squatter()
        self._start_app(port=self.app_port)
        self._wait_app_status("errored")

    def _break_pm2_stopped(self) -> None:
        """`pm2 stop <app>`: PM2 keeps the entry with status `stopped`, nothing listens."""
        self.pm2("stop", self.app_name)
        self._wait_app_status("stopped")
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_dev_mode(self) -> None:
        """The seed's stop-gap: `npm run dev` on the right port (works, but it is not a production build)."""
        self._start_app(port=self.app_port, script="dev")
        self._wait_app_listening(self.app_port, timeout=90)
        wait_for(
            "the dev server to answer 200 through nginx",
            lambda: http_status(self.http_port, timeout=60) == 200,
            timeout=120,
            interval=0.5,
            detail=lambda: _tail(self.pm2_out_log) + "\n" + _tail(self.pm2_error_log),
        )

    # ---- Socket.IO and PM2 as the bot sees it (wt-sio) -------------------------------------------------------

    def _start_sio(self, *, instances: int) -> None:
        """The Socket.IO chat (sio-server.js) as the app, PM2 cluster mode with `instances` > 1 (no sticky)."""
        ecosystem = self.stash_dir / "pm2-sio.json"
        app: dict[str, Any] = {
            "name": self.app_name,
            "script": "sio-server.js",
            "cwd": str(self.app_dir),
            "env": {"PORT": str(self.app_port), "SIO_PING_INTERVAL": str(SIO_PING_INTERVAL_MS),
                    "SIO_PING_TIMEOUT": str(SIO_PING_TIMEOUT_MS)},
            "max_restarts": 3,
            "min_uptime": 10000,
            "vizion": False,
        }
        if instances > 1:
            app |= {"exec_mode": "cluster", "instances": instances}
        self._write_user_file(ecosystem, json.dumps({"apps": [app]}, indent=2) + "\n")
        self.pm2("delete", self.app_name, check=False)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self.pm2("start", str(ecosystem))
        path = "/socket.io/?EIO=4&transport=polling"

        def ready() -> bool:
            online = [p for p in self.pm2_jlist() if p.get("name") == self.app_name
                      and p.get("pm2_env", {}).get("status") == "online"]
            return len(online) == instances and http_status(self.app_port, path) == 200 \
                and http_status(self.http_port, path) == 200

        wait_for(f"{instances} Socket.IO instance(s) online and answering {path} directly and through nginx",
                 ready, timeout=60, interval=0.3, detail=lambda: _tail(self.pm2_error_log))
        self._pm2_save()  # as every mode but pm2-not-saved: the one finding is the mode's own

    def _break_socketio(self) -> None:
        """Healthy, but the chat is Socket.IO: one instance, the target says ws_protocol = "socket.io"."""
        self._start_sio(instances=1)

    def _break_socketio_cluster(self) -> None:
        """Socket.IO in PM2 cluster mode, 2 instances, no sticky sessions: polling gets "Session ID unknown"."""
        self._start_sio(instances=2)

    def _break_pm2_not_on_path(self) -> None:
        """`pm2` only on a login shell's PATH (as nvm leaves it): ~/.profile of the user adds its directory.

        The app stays healthy; the mode's target (`target_toml(pm2_bin="pm2")`) names the bare `pm2`, which
        the non-interactive SSH command (`/bin/sh -c`, no profile read) does not find. The line is added once
        per directory and left there: the user's home is shared by every sandbox on the machine, and it only
        affects login shells."""
        home = Path(self._pw().pw_dir)
        profile = home / ".profile"
        directory = str(Path(self.pm2_bin).parent)
        line = f'PATH="{directory}:$PATH"  {PROFILE_MARK}\n'
        text = profile.read_text() if profile.exists() else ""
        if line not in text:
            with profile.open("a") as fh:
                fh.write(line)
            self._chown(profile)
        check = self.run_as_user(["sh", "-c", "command -v pm2 || echo none"], check=False)
        if check.stdout.strip() != "none":
            raise SandboxError(f"pm2 is on the sandbox user's non-interactive PATH: {check.stdout.strip()}")

    def _break_pm2_other_home(self) -> None:
        """The app runs under a second PM2 daemon (PM2_HOME = workdir/pm2-other); the bot's PM2 lists nothing."""
        self.pm2("delete", self.app_name)
        wait_for(f"127.0.0.1:{self.app_port} to be free", lambda: not tcp_accepts(self.app_port), timeout=15)
        self.other_pm2_home.mkdir(exist_ok=True)
        self._chown(self.other_pm2_home)
        ecosystem = self.stash_dir / "pm2-app.json"
        self.run_as_user([self.pm2_bin, "start", str(ecosystem)], cwd=self.app_dir,
                         env={"PM2_HOME": str(self.other_pm2_home), "PORT": str(self.app_port)})
        self._wait_app_listening_any(self.app_port)

    def _wait_app_listening_any(self, port: int) -> None:
        wait_for(f"the app under the other PM2 accepting on 127.0.0.1:{port}", lambda: http_status(port) == 200,
                 timeout=60, interval=0.3)

    def _stop_other_pm2(self) -> None:
        """`pm2 kill` of the pm2-other-home daemon, only when it runs (any pm2 command would spawn one)."""
        try:
            pid = int((self.other_pm2_home / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if self._is_ours(pid) and self.pm2_bin:
            self.run_as_user([self.pm2_bin, "kill"], env={"PM2_HOME": str(self.other_pm2_home)}, check=False)
            kill_and_wait([pid])

    def sio_target_toml(self, name: str = "sandbox-sio") -> str:
        """The target of the Socket.IO modes: ws_protocol = "socket.io", ws_path left to its default."""
        return self.target_toml(name).replace('ws_path = "/ws"\n', 'ws_protocol = "socket.io"\n')
    # ---- wt-host2: PM2 restarting an online app, the V8 heap limit ----------------------------------------

    @property
    def watch_log(self) -> Path:
        """restart-loop: the app's stdout inside its own (watched) directory, as in the PM2 threads."""
        return self.app_dir / "logs" / "app-out.log"

    def restarts(self) -> int:
        proc = self.app_process() or {}
        return int(proc.get("pm2_env", {}).get("restart_time") or 0)

    def _break_restart_loop(self) -> None:
        """`watch: true` with the app's own log written into the watched app dir: every line it prints (its
        "ready" line at each start) is a change, so PM2 restarts it again and again while it reads `online`."""
        logs = self.watch_log.parent
        logs.mkdir(exist_ok=True)
        self._chown(logs)
        # `pm2 start server.js --watch` (the threads' usual form): PM2 stops the node process itself at each change.
        # Through npm (npm -> sh -> node) a stop can leave the node child holding the port for a moment.
        # watch_delay: each restart waits a second after the change, so that PM2 does not restart an instance
        # still starting (under load it then loses one, which keeps the port: a port conflict on top of the loop).
        self._start_app(port=self.app_port, env={"NODE_ENV": "production"},
                        extra={"script": "server.js", "args": [], "watch": True, "watch_delay": 1000,
                               "out_file": str(self.watch_log)})
        before = self.restarts()
        wait_for("PM2 to restart the watched app at least 3 times while online",
                 lambda: self.restarts() >= before + 3 and self._app_is("online"), timeout=60, interval=0.3,
                 detail=lambda: f"pm2 status: {self.app_status()}, restarts {self.restarts()}")
        self.kill_strays()

    def kill_strays(self) -> set[int]:
        """This sandbox's app processes that PM2 no longer tracks (not below its daemon): PM2 can lose one when a
        restart hits an instance still starting. They would hold app_port for every later mode."""
        daemon = self._pm2_daemon_pid()
        tracked = descendants([daemon]) if daemon else set()
        strays = set()
        for pid in _pids_with_env(MARKER_ENV, str(self.workdir), self._pw().pw_uid) - tracked:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"server.js" in cmdline and str(self.app_dir).encode() in cmdline + str(self._cwd(pid)).encode():
                strays.add(pid)
        return kill_and_wait(strays, sig=signal.SIGKILL) if strays else set()

    @staticmethod
    def _cwd(pid: int) -> str:
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return ""

    def _break_heap_oom(self) -> None:
        """NODE_OPTIONS=--max-old-space-size=20: npm starts, the app's node dies with "JavaScript heap out of
        memory" (V8's own message, exit 134) at every start, and PM2 ends `errored` after max_restarts."""
        # In the app's own env only: PM2's CLI (node too) must not get the tiny heap.
        self._start_app(port=self.app_port, extra={"env": {"PORT": str(self.app_port),
                                                          "NODE_OPTIONS": "--max-old-space-size=20"}})
        self._wait_app_status("errored", timeout=90)

    # ---- TLS and redirects (wt-tls) -------------------------------------------------------------------

    def _ca(self) -> tuple[Any, Any]:
        """The sandbox's own CA (made once per workdir): certificate and key, as `cryptography` objects.

        `cryptography` is imported here only, so the rest of the sandbox stays standard library: the TLS modes
        need the project's environment (it comes with asyncssh)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key_file = self.tls_dir / "ca.key"
        if self.ca_file.exists() and key_file.exists():
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            return cert, key
        self.tls_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._chown(self.tls_dir)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"wscheck sandbox CA {self.workdir.name}")])
        now = _utcnow()
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _days(1)).not_valid_after(now + _days(3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        self._write_user_file(self.ca_file, cert.public_bytes(serialization.Encoding.PEM).decode())
        return cert, key

    def write_site_cert(self, *, names: tuple[str, ...] = (TLS_HOST, "127.0.0.1"), not_before_days: float = -1,
                        not_after_days: float = 90) -> int:
        """Issue a leaf from the sandbox CA into tls_dir/site.pem (+ site.key) and return its serial.

        Days are relative to now (negative = in the past). Only the files change: nginx serves the new one
        after a reload, exactly like a certbot renewal without a deploy hook."""
        import ipaddress as _ip

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        ca_cert, ca_key = self._ca()
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(_ip.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        now = _utcnow()
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now + _days(not_before_days)).not_valid_after(now + _days(not_after_days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key_text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        self._write_user_file(self.tls_dir / "site.key", key_text)
        (self.tls_dir / "site.key").chmod(0o600)
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
        self._write_user_file(self.tls_dir / "site.pem", chain.decode())
        return int(serial)

    def served_serial(self, timeout: float = 3.0) -> int | None:
        """Serial of the certificate nginx serves on tls_port right now (no verification: any is read)."""
        import ssl

        from cryptography import x509

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((self.host, self.tls_port), timeout=timeout) as sock, \
                    context.wrap_socket(sock, server_hostname=TLS_HOST) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            return None
        return int(x509.load_der_x509_certificate(der).serial_number) if der else None

    def _serve_tls(self, live: str, serial: int, *, ws_redirect: bool = False) -> None:
        """Put the TLS server block in the site and reload; return once nginx serves certificate `serial`."""
        if not self.tls_port:
            self.tls_port = pick_free_port(self._ports())
            self._save_state()
        self._write_user_file(self.site_file, self.site_text(tls=True, ws_redirect=ws_redirect))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the TLS site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(live, lambda: self.served_serial() == serial,
                           f"nginx to serve certificate {serial:x} on 127.0.0.1:{self.tls_port}")

    def _break_https(self) -> None:
        """Healthy, over https too: a valid certificate for localhost from the sandbox CA (ca_file)."""
        self._serve_tls("https", self.write_site_cert())

    def _break_tls_expired(self) -> None:
        """The served certificate expired yesterday (and nothing newer is on disk)."""
        self._serve_tls("tls-expired", self.write_site_cert(not_before_days=-91, not_after_days=-1))

    def _break_tls_wrong_name(self) -> None:
        """A valid certificate, but for another name than the one public_url uses."""
        self._serve_tls("tls-wrong-name", self.write_site_cert(names=("chat.other.test",)))

    def _break_tls_expiring(self) -> None:
        """Valid, but five days left: under the 14-day warning."""
        self._serve_tls("tls-expiring", self.write_site_cert(not_before_days=-85, not_after_days=5))

    def _break_tls_not_reloaded(self) -> None:
        """nginx serves an expired certificate; the file was renewed since, and nginx never reloaded."""
        self._serve_tls("tls-not-reloaded", self.write_site_cert(not_before_days=-91, not_after_days=-1))
        renewed = self.write_site_cert()
        if self.served_serial() == renewed:
            raise SandboxError("nginx picked up the renewed certificate without a reload")

    def _break_ws_redirect(self) -> None:
        """The plain-http block answers the WebSocket path with an http->https 301 (certbot's port-80 block)."""
        serial = self.write_site_cert()
        self._serve_tls("ws-redirect", serial, ws_redirect=True)
        wait_for("a 301 to the upgrade on the http port", lambda: ws_handshake_status(self.http_port) == 301,
                 timeout=10)

    def tls_target_toml(self, name: str = "sandbox-tls") -> str:
        """The https target of the TLS modes: public_url on tls_port by name, trusting the sandbox CA."""
        text = self.target_toml(name)
        text = text.replace(f'public_url = "http://{self.host}:{self.http_port}/"',
                            f'public_url = "https://{TLS_HOST}:{self.tls_port}/"')
        return text + f'ca_file = "{self.ca_file}"\n'

    # ---- wt-host modes (issue 12) ----------------------------------------------------------------------

    def _break_app_ipv6_only(self) -> None:
        """Node 17+ `localhost` → `::1`: the app listens on [::1]:app_port only, nginx dials 127.0.0.1."""
        self._start_app(port=self.app_port, env={"HOSTNAME": "::1"})
        self._wait_app_listening(self.app_port, host="::1")
        wait_for(f"127.0.0.1:{self.app_port} to refuse", lambda: not tcp_accepts(self.app_port), timeout=15)

    def _break_app_hung(self) -> None:
        """A blocked event loop: PM2 `online`, the port accepts (kernel backlog), nothing answers."""
        self._start_app(port=self.app_port, env={HANG_ENV: "1"})
        self._wait_app_listening(self.app_port)
        wait_for("the app to stop answering HTTP", lambda: http_status(self.app_port, timeout=1.0) is None,
                 timeout=20)

    def _break_pm2_not_saved(self) -> None:
        """The app recreated (`pm2 delete` + `pm2 start`) after the last `pm2 save`: a reboot brings the old list."""
        saved_at = int(self.pm2_dump.stat().st_mtime)
        # stat's mtime is in whole seconds: start in a later second than the save, or the two look simultaneous.
        wait_for("a second after the last pm2 save", lambda: time.time() >= saved_at + 1, timeout=5, interval=0.05)
        self._start_app(port=self.app_port, save=False)
        self._wait_app_listening(self.app_port)
        wait_for("the app answering through nginx", lambda: http_status(self.http_port) == 200, timeout=30)
        if self._pm2_saved():
            raise SandboxError("the PM2 dump still covers the recreated app")

    # ---- wt-host3 modes (issue 12): a full disk and the open-files limit, for real ----------------------------

    def _diskfull_mounted(self) -> bool:
        """True when this sandbox's tmpfs is mounted (its exact mount point in /proc/self/mountinfo)."""
        want = str(self.diskfull_dir)
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return False
        # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped (none in our paths).
        return any(len(f) > 4 and f[4] == want for f in (line.split(" ") for line in lines))

    def _release_diskfull(self) -> None:
        """Unmount the disk-full tmpfs if it is mounted. Its files go with it (they were only filler and the
        mode's own log lines). Lazily (`-l`) only if a process still holds a file on it: it is detached at once
        and freed when that process lets go, so the next mode and `down()` never wait on it."""
        if not self._diskfull_mounted():
            return
        done = subprocess.run(["umount", str(self.diskfull_dir)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            done = subprocess.run(["umount", "-l", str(self.diskfull_dir)], capture_output=True, text=True,
                                  check=False)
        if done.returncode != 0 or self._diskfull_mounted():
            raise SandboxError(f"cannot unmount {self.diskfull_dir}: {done.stderr.strip()}")

    def _break_disk_full(self) -> None:
        """The app's PM2 logs on a small file system that unrotated logs filled: a tmpfs of DISKFULL_SIZE mounted
        inside this workdir, the app's `out_file` / `error_file` there, the out log grown to the last block.

        A tmpfs needs root (as the sandbox's user `wsbox` does); without root the mode says so instead."""
        if not self.is_root:
            raise SandboxError("disk-full mounts a tmpfs for the app's logs: run the sandbox as root")
        self.diskfull_dir.mkdir(mode=0o755, exist_ok=True)
        if not self._diskfull_mounted():
            pw = self._pw()
            subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={DISKFULL_SIZE},mode=0755,uid={pw.pw_uid},gid={pw.pw_gid}",
                            "wscheck-diskfull", str(self.diskfull_dir)], capture_output=True, text=True, check=True)
        out = self.diskfull_dir / f"{self.app_name}-out.log"
        err = self.diskfull_dir / f"{self.app_name}-error.log"
        self._start_app(port=self.app_port, extra={"out_file": str(out), "error_file": str(err)})
        self._wait_app_listening(self.app_port)
        wait_for("the app's ready line in its log on the tmpfs", lambda: out.exists() and out.stat().st_size > 0,
                 timeout=15, interval=0.1)
        # What months of unrotated request logging look like, appended to the app's own out log until ENOSPC.
        line = b"[kathario-saas] GET / 200 - 1.2 ms\n" * 1024
        with out.open("ab") as log:
            while True:
                try:
                    log.write(line)
                    log.flush()
                except OSError:
                    break
        wait_for(f"{self.diskfull_dir} to have no free block", lambda: os.statvfs(self.diskfull_dir).f_bavail == 0,
                 timeout=5, interval=0.1)
        wait_for("the app to answer through nginx with its log file system full",
                 lambda: http_status(self.http_port) == 200, timeout=15)

    def _break_fd_exhausted(self) -> None:
        """The app started under `ulimit -n 64` (prlimit, as a systemd `LimitNOFILE=64` or a shell's ulimit gives it)
        leaks open files (server.js, FD_LEAK_ENV) until EMFILE, logs it as node does and keeps them: new connections
        are closed at once (node's EMFILE accept path), /proc/PID/limits shows 64."""
        prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
        if prlimit is None:
            raise SandboxError("fd-exhausted needs prlimit (util-linux)")
        self._start_app(port=self.app_port, env={FD_LEAK_ENV: "1"},
                        extra={"script": prlimit, "interpreter": "none",
                               "args": [f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--", "npm", "run", "start"]})
        self._wait_app_status("online")
        wait_for("EMFILE in the app's PM2 error log",
                 lambda: self.pm2_error_log.exists() and "EMFILE" in self.pm2_error_log.read_text(errors="replace"),
                 timeout=60, interval=0.25,
                 detail=lambda: f"pm2 status: {self.app_status()}\n{_tail(self.pm2_error_log)}")

    # ---- wt-modes: a kernel OOM kill, a standalone build without its static assets ---------------------------

    def _memcg_procs(self) -> list[int]:
        try:
            text = (self.oom_cgroup / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(w) for w in text.split() if w.isdigit()]

    def _release_kernel_oom(self) -> None:
        """Remove this sandbox's sudoers file and memory cgroup (any process still in it goes back to the root
        cgroup first: a cgroup with a task cannot be removed). Only these two names: never another sandbox's."""
        if self.oom_sudoers.exists():
            self.oom_sudoers.unlink()
        if self.oom_cgroup.is_dir():
            for pid in self._memcg_procs():
                with contextlib.suppress(OSError):
                    (MEMCG_ROOT / "cgroup.procs").write_text(str(pid))
            self.oom_cgroup.rmdir()

    def _write_dmesg_sudoers(self) -> None:
        """`<user> may run exactly `dmesg` (no arguments) as root`, in a file of this sandbox's own, validated by
        visudo before it is put in place (a broken file in sudoers.d breaks sudo for the whole machine)."""
        dmesg = shutil.which("dmesg", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if dmesg is None or shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise SandboxError("kernel-oom needs dmesg, sudo and visudo")
        text = (f"# wscheck sandbox {self.workdir}: kernel-oom mode (removed by healing and down)\n"
                f'{self.user} ALL=(root) NOPASSWD: {dmesg} ""\n')
        tmp = SUDOERS_D / f".{self.oom_sudoers.name}.tmp"  # a name with a dot: sudo's includedir skips it
        tmp.write_text(text)
        tmp.chmod(0o440)
        check = subprocess.run(["visudo", "-c", "-q", "-f", str(tmp)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            tmp.unlink()
            raise SandboxError(f"visudo rejected the kernel-oom sudoers file: {check.stdout}{check.stderr}")
        os.replace(tmp, self.oom_sudoers)

    def _app_node_pid(self) -> int:
        """The app's `node server.js`, under PM2's pid (npm -> sh -> node)."""
        proc = self.app_process()
        root = int(proc.get("pid") or 0) if proc else 0
        for pid in sorted(descendants([root]) | {root}) if root else ():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"server.js") for a in argv) and Path(argv[0].decode(errors="replace")).name == "node":
                return pid
        raise SandboxError(f"no node server.js under PM2's pid {root}")

    def _break_kernel_oom(self) -> None:
        """The kernel's OOM killer kills the app's node: a memory cgroup of this sandbox's own (OOM_LIMIT_BYTES), the
        running node moved into it, then SIGUSR2 (server.js, OOM_ENV) makes it allocate until the kernel kills it.
        PM2 restarts the app outside the cgroup (its God Daemon is not in it), and the new node does not allocate.

        The kernel log is machine-wide and `kernel.dmesg_restrict` keeps it from the sandbox user: the mode's target
        (`target_toml(kernel_log_sudo=True)`) reads it with `sudo -n dmesg`, which a sudoers file of this sandbox's own
        allows (exactly `dmesg`, no arguments). Other sandboxes' targets read it without sudo and cannot see it.
        Root only (a cgroup, a sudoers file), like disk-full."""
        if not self.is_root:
            raise SandboxError("kernel-oom creates a memory cgroup and a sudoers file: run the sandbox as root")
        if not (MEMCG_ROOT / "cgroup.procs").exists():
            raise SandboxError(f"kernel-oom needs cgroup v1's memory controller at {MEMCG_ROOT}")
        self._write_dmesg_sudoers()
        self._start_app(port=self.app_port, env={OOM_ENV: "1"})
        self._wait_app_listening(self.app_port)
        victim = self._app_node_pid()
        self.oom_cgroup.mkdir(exist_ok=True)
        (self.oom_cgroup / "memory.limit_in_bytes").write_text(str(OOM_LIMIT_BYTES))
        (self.oom_cgroup / "cgroup.procs").write_text(str(victim))
        self.oom_victim = victim
        self._save_state()
        os.kill(victim, signal.SIGUSR2)
        wait_for(f"the kernel to OOM-kill node {victim}", lambda: not pid_alive(victim), timeout=30, interval=0.1)
        wait_for(f"'Killed process {victim}' in the kernel log",
                 lambda: f"Killed process {victim} (" in subprocess.run(
                     ["dmesg"], capture_output=True, text=True, check=False).stdout, timeout=10, interval=0.2)
        self._wait_app_listening(self.app_port)
        wait_for("the restarted app answering through nginx", lambda: http_status(self.http_port) == 200, timeout=30)
        if self._memcg_procs():
            raise SandboxError(f"the restarted app is in the OOM cgroup: {self._memcg_procs()}")

    @property
    def standalone_dir(self) -> Path:
        return self.app_dir / ".next" / "standalone"

    def _break_static_missing(self) -> None:
        """A standalone deployment without its assets: install.sh's traced `output: "standalone"` build copied to
        `<app_dir>/.next/standalone` without `.next/static` (Next's docs: copy it yourself), the generated server.js
        replaced by the app's custom server (app/standalone-server.js: Next from the standalone files, plus /ws) as
        apps with a WebSocket deploy it, run by PM2 as `node .next/standalone/server.js`. HTML 200, assets 404."""
        if not self.standalone_build or not Path(self.standalone_build, "server.js").exists():
            raise SandboxError("no standalone build in the cache: run install.sh")
        if self.standalone_dir.exists():
            shutil.rmtree(self.standalone_dir)
        subprocess.run(["cp", "-a", self.standalone_build, str(self.standalone_dir)], check=True)
        shutil.copyfile(APP_SOURCE / "standalone-server.js", self.standalone_dir / "server.js")
        self._chown(self.standalone_dir, recursive=True)
        self._start_app(port=self.app_port, extra={"script": str(self.standalone_dir / "server.js"), "args": [],
                                                   "cwd": str(self.standalone_dir)})
        self._wait_app_listening(self.app_port)
        page = http_body(self.app_port)
        asset = re.search(r'/_next/static/[^"]+\.js', page)
        if asset is None:
            raise SandboxError(f"no /_next/static asset in the standalone app's page: {page[:300]}")
        wait_for(f"{asset.group(0)} to be 404 through nginx",
                 lambda: http_status(self.http_port, asset.group(0)) == 404, timeout=15)
        wait_for("the page through nginx", lambda: http_status(self.http_port) == 200, timeout=15)

    # ---- wt-nginxrt modes (issue 11) -------------------------------------------------------------------------

    def _apply_site(self, live: str, text: str, confirm: Callable[[], bool], what: str) -> None:
        self._write_user_file(self.site_file, text)
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the {live} site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(live, confirm, what)

    def _break_nginx_wrong_server(self) -> None:
        """The app's block answers only chat.example.test; a 404 default_server answers 127.0.0.1."""
        self._apply_site("wrong-server", self.site_text(wrong_server=True),
                         lambda: http_status(self.http_port) == 404 and ws_handshake_status(self.http_port) == 404,
                         "nginx to answer 127.0.0.1 from the 404 default_server")

    def _break_nginx_ws_static(self) -> None:
        """`location /ws { root ...; }`: nginx looks for a file and answers 404; `/` still proxies."""
        self._apply_site("ws-static", self.site_text(ws_static=True),
                         lambda: http_status(self.http_port) == 200 and ws_handshake_status(self.http_port) == 404,
                         "nginx to answer /ws with its own 404")

    def _break_nginx_reload_pending(self) -> None:
        """The seed's fix written to disk but never reloaded: nginx still runs the site without the upgrade lines.

        The running config is the no-upgrade one (reloaded); then, once the clock has moved past the reload by
        more than the 1 s resolution of mtimes and process ages, the healthy site is written and not reloaded."""
        self._apply_site("reload-pending", self.site_text(upgrade=False),
                         lambda: http_status(self.http_port) == 200
                         and ws_handshake_status(self.http_port) not in (101, None),
                         "nginx to refuse WebSocket upgrades after the reload")
        reloaded = time.time()
        # 1 s resolution on three clocks (mtime, the worker's age, the target's now): 3.5 s is past all of them.
        wait_for("the clock to pass the reload by 3.5 s", lambda: time.time() > reloaded + 3.5,
                 timeout=10, interval=0.1)
        self._write_user_file(self.site_file, self.site_text())
        self.nginx_live = "reload-pending"

    def _break_nginx_worker_connections(self) -> None:
        """`worker_connections 2`: the listening socket and one client fill it, so every proxied request fails
        with `2 worker_connections are not enough` in the error log."""
        self._write_user_file(self.nginx_conf, self.main_conf_text(worker_connections=2))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"worker_connections 2 does not pass nginx -t:\n{test.stderr}")
        log = self.nginx_dir / "error.log"

        def exhausted() -> bool:
            http_status(self.http_port, timeout=2)
            return "worker_connections are not enough" in log.read_text(errors="replace")[-4096:]

        self._reload_nginx("worker-connections", exhausted, "nginx to log `worker_connections are not enough`")

    def target_toml(self, name: str = "sandbox", *, pm2_bin: str = "", kernel_log_sudo: bool = False) -> str:
        """The `[[targets]]` table that points wscheck at this sandbox over SSH (`pm2_bin`: another pm2;
        `kernel_log_sudo`: the kernel-oom mode's target, reading the kernel log with `sudo -n dmesg`)."""
        return (
            "[[targets]]\n"
            f'name = "{name}"\n'
            f'host = "{self.host}"\n'
            f"port = {self.ssh_port}\n"
            f'user = "{self.user}"\n'
            f'identity_file = "{self.identity_file}"\n'
            f'known_hosts = "{self.known_hosts}"\n'
            f'pm2_app = "{self.app_name}"\n'
            f"app_port = {self.app_port}\n"
            f'app_dir = "{self.app_dir}"\n'
            f'public_url = "http://{self.host}:{self.http_port}/"\n'
            'ws_path = "/ws"\n'
            'http_path = "/"\n'
            f'pm2_bin = "{pm2_bin or self.pm2_bin}"\n'
            f'pm2_home = "{self.pm2_home}"\n'
            f'nginx_bin = "{self.nginx_bin}"\n'
            f'nginx_conf = "{self.nginx_conf}"\n'
            + ("kernel_log_sudo = true\n" if kernel_log_sudo else "")
        )

    def status(self) -> dict[str, Any]:
        """What is running right now, observed (not just the recorded mode)."""
        info: dict[str, Any] = {
            "workdir": str(self.workdir),
            "mode": self.mode,
            "user": self.user,
            "ports": {
                "ssh": self.ssh_port,
                "http": self.http_port,
                "app": self.app_port,
                "alt": self.alt_port,
            },
            "sshd": pid_alive(self.sshd_pid),
            "nginx": bool(self.nginx_master_pid()),
            "squatter": pid_alive(self.squatter_pid),
        }
        if self.pm2_bin and self._pm2_daemon_pid():
            with contextlib.suppress(Exception):
                info["pm2"] = self.app_status()
        if self.http_port:
            info["http_through_nginx"] = http_status(self.http_port, timeout=3)
            info["ws_through_nginx"] = ws_handshake_status(self.http_port, timeout=3)
        if self.app_port:
            info["app_port_accepts"] = tcp_accepts(self.app_port)
        return info


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def default_workdir() -> Path:
    """One well-known workdir per user, so `up` and a later `down` agree without flags."""
    if os.geteuid() == 0:
        return Path("/tmp/wscheck-sandbox")
    return Path(f"/tmp/wscheck-sandbox-{pwd.getpwuid(os.geteuid()).pw_name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sandbox.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("command", choices=("up", "down", "mode", "status", "toml"))
    parser.add_argument("mode", nargs="?", help=f"for `mode`: one of {', '.join(MODES)}")
    parser.add_argument("--workdir", type=Path, default=None, help=f"default: {default_workdir()}")
    parser.add_argument("--tls", action="store_true", help="for `toml`: the https target of the TLS modes")
    parser.add_argument("--kernel-log", action="store_true",
                        help="for `toml`: the kernel-oom mode's target (kernel_log_sudo = true)")
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.workdir or default_workdir())
    try:
        if args.command == "up":
            started = time.monotonic()
            sandbox.up()
            print(
                f"# sandbox up in {time.monotonic() - started:.1f}s; saved as {sandbox.workdir}/wscheck.toml",
                file=sys.stderr,
            )
            print(sandbox.target_toml(), end="")
        elif args.command == "down":
            sandbox.down()
        elif args.command == "mode":
            if not args.mode:
                parser.error(f"mode needs one of: {', '.join(MODES)}")
            started = time.monotonic()
            sandbox.set_mode(args.mode)
            print(f"mode {args.mode} reached in {time.monotonic() - started:.1f}s", file=sys.stderr)
        elif args.command == "status":
            print(json.dumps(sandbox.status(), indent=2))
        else:
            text = sandbox.tls_target_toml() if args.tls else sandbox.target_toml(kernel_log_sudo=args.kernel_log)
            print(text, end="")
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
