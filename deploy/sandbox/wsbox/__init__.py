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

The package (wsbox) is the former deploy/sandbox/sandbox.py split along its sections, mechanically:

    consts.py   MODES, limits, names, paths, SandboxError
    proc.py     process / network helpers (wait_for, http_status, pid_alive, pick_free_port, ...)
    conf.py     the nginx configuration text and the port squatter's code
    core.py     Sandbox: construction and the public API (up, down, heal, set_mode, status, target_toml)
    state.py, users.py, sshd.py, nginx.py, app.py   the parts of Sandbox, one mixin per section
    modes/      the modes, one mixin per group (basic, sio, tls, host, nginx)
    cli.py      the CLI that deploy/sandbox/sandbox.py runs

Import it with deploy/sandbox on sys.path (tests/support/sandboxpkg.py does it for the tests and the bench).
"""

from __future__ import annotations

from .cli import default_workdir, main
from .conf import (
    _MAIN_CONF_TEMPLATE,
    _NO_UPGRADE_LINES,
    _SITE_TEMPLATE,
    _SQUATTER_CODE,
    _UPGRADE_LINES,
    _WRONG_SERVER_BLOCK,
    _WS_STATIC_LOCATION,
)
from .consts import (
    _NAME_RE,
    _PATH_RE,
    _USER_RE,
    APP_SOURCE,
    DISKFULL_SIZE,
    FD_LEAK_ENV,
    FD_LIMIT,
    HANG_ENV,
    HERE,
    INSTALL_SH,
    MARKER_ENV,
    MEMCG_ROOT,
    MODES,
    OOM_ENV,
    OOM_LIMIT_BYTES,
    PROFILE_MARK,
    SANDBOX_USER,
    SANDBOX_USER_HOME,
    SIO_PING_INTERVAL_MS,
    SIO_PING_TIMEOUT_MS,
    STATE_FILE,
    SUDOERS_D,
    TLS_HOST,
    SandboxError,
)
from .core import Sandbox
from .proc import (
    _all_pids,
    _days,
    _ephemeral_range,
    _pids_with_env,
    _proc_stat,
    _tail,
    _utcnow,
    descendants,
    http_body,
    http_status,
    kill_and_wait,
    pick_free_port,
    pid_alive,
    session_members,
    tcp_accepts,
    wait_for,
    ws_handshake_status,
)

__all__ = [
    "APP_SOURCE",
    "DISKFULL_SIZE",
    "FD_LEAK_ENV",
    "FD_LIMIT",
    "HANG_ENV",
    "HERE",
    "INSTALL_SH",
    "MARKER_ENV",
    "MEMCG_ROOT",
    "MODES",
    "OOM_ENV",
    "OOM_LIMIT_BYTES",
    "PROFILE_MARK",
    "SANDBOX_USER",
    "SANDBOX_USER_HOME",
    "SIO_PING_INTERVAL_MS",
    "SIO_PING_TIMEOUT_MS",
    "STATE_FILE",
    "SUDOERS_D",
    "TLS_HOST",
    "_MAIN_CONF_TEMPLATE",
    "_NAME_RE",
    "_NO_UPGRADE_LINES",
    "_PATH_RE",
    "_SITE_TEMPLATE",
    "_SQUATTER_CODE",
    "_UPGRADE_LINES",
    "_USER_RE",
    "_WRONG_SERVER_BLOCK",
    "_WS_STATIC_LOCATION",
    "Sandbox",
    "SandboxError",
    "_all_pids",
    "_days",
    "_ephemeral_range",
    "_pids_with_env",
    "_proc_stat",
    "_tail",
    "_utcnow",
    "default_workdir",
    "descendants",
    "http_body",
    "http_status",
    "kill_and_wait",
    "main",
    "pick_free_port",
    "pid_alive",
    "session_members",
    "tcp_accepts",
    "wait_for",
    "ws_handshake_status",
]
