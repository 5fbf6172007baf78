"""The sandbox's constants: its modes, fixed limits, names and paths, and its one exception."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

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
    "pm2-instance-stopped",
    "pm2-killed",
    "app-outside-pm2",
    "pm2-started-twice",
    # wt-nginxrt (issue 11): routing, reloads and the error log, each on the real nginx
    "nginx-wrong-server",
    "nginx-ws-static",
    "nginx-ws-path-rewritten",
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

HERE = Path(__file__).resolve().parent.parent  # deploy/sandbox (this package is deploy/sandbox/wsbox)
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

