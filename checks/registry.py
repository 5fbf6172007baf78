"""The ordered checklist: stable check ids, the `/wscheck` item aliases, and reserved words.

The ids are a public interface (JSON output, Slack buttons, the store, alert history): never rename one.
The `/wscheck` grammar's keywords live here too, not in `bot/`, so that target-name validation in
`checks.config` can refuse a target called `pm2` or `status` without `checks/` importing `bot/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.causes import FIX_NAMES


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    item: str
    title: str
    description: str
    #: A down or (re)starting app explains this check failing: PM2 itself, what listens on the app's port and
    #: answers for it (directly and through nginx), and its logs. The monitor sets aside a failure made only
    #: of such checks while PM2 restarts the app (bot.monitoring.monitor.APP_STARTING), and the diagnosis'
    #: down-app rules take them as their evidence (checks.diagnosis._APP_DOWN_EFFECTS, which says why it adds
    #: port.conflict).
    downstream_of_app: bool = False


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("nginx.syntax", "nginx", "nginx config syntax", "`nginx -t`: the configuration parses and loads"),
    CheckSpec(
        "nginx.websocket",
        "nginx",
        "nginx WebSocket proxy",
        "the location serving ws_path proxies to the app with HTTP/1.1, Upgrade/Connection forwarding, "
        "a long proxy_read_timeout and proxy_buffering off",
    ),
    # -- wt-nginxrt: the running nginx vs the files on disk, and its error log as evidence
    CheckSpec(
        "nginx.reload",
        "nginx",
        "nginx runs what is on disk",
        "no file that `nginx -T` lists is newer than the running nginx's last (re)load (worker start times)",
    ),
    CheckSpec(
        "nginx.errors",
        "nginx",
        "nginx error log",
        "recent lines of the error_log files nginx names, classified (upstream refused/timed out, "
        "worker_connections, SSL handshake, body too large); capacity exhaustion fails",
    ),
    CheckSpec(
        "pm2.status",
        "pm2",
        "PM2 process",
        "the PM2 app is `online`, has a pid and is not crash-looping",
        downstream_of_app=True,
    ),
    CheckSpec(
        "port.listen",
        "port",
        "app listens on app_port",
        "something listens on app_port and it belongs to the PM2 app's process tree",
        downstream_of_app=True,
    ),
    CheckSpec(
        "port.match",
        "port",
        "ports agree",
        "nginx's upstream port = the port the app really listens on = app_port (the 3000-vs-3003 bug)",
        downstream_of_app=True,
    ),
    # A failing port.conflict is a foreign process on the port: a down app does not explain that.
    CheckSpec("port.conflict", "port", "no port conflict", "no foreign process holds app_port"),
    CheckSpec(
        "next.build",
        "build",
        "Next.js build",
        "production mode has `.next/BUILD_ID`; dev mode is detected and reported",
    ),
    CheckSpec(
        "http.local",
        "http",
        "HTTP on the host",
        "GET http_path on 127.0.0.1:app_port inside the target",
        downstream_of_app=True,
    ),
    CheckSpec(
        "http.proxy",
        "http",
        "HTTP through nginx",
        "GET public_url + http_path answers 2xx/3xx from nginx",
        downstream_of_app=True,
    ),
    CheckSpec(
        "ws.local",
        "ws",
        "WebSocket on the host",
        "101 handshake + ping/pong on 127.0.0.1:app_port + ws_path",
        downstream_of_app=True,
    ),
    CheckSpec(
        "ws.proxy",
        "ws",
        "WebSocket through nginx",
        "101 handshake + ping/pong on public_url + ws_path",
        downstream_of_app=True,
    ),
    CheckSpec(
        "pm2.logs",
        "logs",
        "PM2 logs",
        "recent error lines of the app's PM2 log files (secrets redacted)",
        downstream_of_app=True,
    ),
    CheckSpec(
        "tls.certificate",
        "tls",
        "TLS certificate",
        "for an https public_url: the served certificate verifies (dates, name, chain), is not close to expiry, "
        "and is the one in the ssl_certificate file nginx names (not renewed-but-never-reloaded)",
    ),
    # wt-host (issue 12): will the app come back after a reboot?
    CheckSpec("pm2.saved", "pm2", "PM2 list saved",
              "the app is in PM2's saved list ($PM2_HOME/dump.pm2), saved after the app's last (re)creation"),
    CheckSpec("pm2.startup", "pm2", "PM2 starts at boot",
              "an enabled pm2-<user> systemd unit whose binaries exist (skipped where systemd is not the init)"),
    # wt-sio: PM2 as the bot sees it, and Socket.IO sessions
    CheckSpec(
        "pm2.daemon",
        "pm2",
        "PM2 daemon of the app",
        "the process on app_port runs under the PM2 daemon (user, PM2_HOME) the bot talks to; "
        "when `pm2` is not on the non-interactive PATH, where a login shell finds it",
    ),
    CheckSpec(
        "ws.sessions",
        "ws",
        "Socket.IO sessions",
        "for ws_protocol = \"socket.io\": the polling requests of one session all reach the process holding it "
        "(no 400 \"Session ID unknown\": sticky sessions with several instances)",
        downstream_of_app=True,
    ),
    # wt-host2: the host under the app, and PM2 restarting an app that reads `online` (checks/items/host.py)
    CheckSpec(
        "pm2.restarts",
        "pm2",
        "PM2 restarts while online",
        "the app's restart count does not climb while it reads `online` (max_memory_restart, watch), compared "
        "with the previous look and PM2's own log",
        downstream_of_app=True,
    ),
    CheckSpec(
        "next.static",
        "build",
        "Next.js standalone assets",
        "a standalone `server.js` run by PM2 has `.next/static` and `public` next to it",
    ),
    CheckSpec("host.memory", "host", "host memory", "no recent kernel OOM kill or V8 heap OOM; MemAvailable"),
    CheckSpec(
        "host.disk",
        "host",
        "host disk",
        "the file systems of app_dir, the PM2 logs and nginx's logs are below disk_warn_percent (90) / "
        "disk_fail_percent (98) and no ENOSPC in the logs",
    ),
    CheckSpec("host.fds", "host", "open files", "no EMFILE in the app's logs; its open fds against its limit"),
)

CHECK_IDS: tuple[str, ...] = tuple(c.id for c in CHECKS)
BY_ID: dict[str, CheckSpec] = {c.id: c for c in CHECKS}

#: `/wscheck ITEM` -> the check ids it runs, in checklist order.
ITEMS: dict[str, tuple[str, ...]] = {}
for _spec in CHECKS:
    ITEMS.setdefault(_spec.item, ())
    ITEMS[_spec.item] = (*ITEMS[_spec.item], _spec.id)

#: Words of the `/wscheck` grammar that are not items (see bot/chat/commands.py); the fix words are checks.causes.FIXES.
COMMAND_KEYWORDS: frozenset[str] = frozenset(
    {
        "all",
        "help",
        "targets",
        "status",
        "silence",
        "unsilence",
        "history",
        *FIX_NAMES,
        "approve",
        "deny",
        "as",
    }
)

#: A target may not be called any of these (the parser could not tell them apart).
RESERVED_WORDS: frozenset[str] = frozenset(
    {*COMMAND_KEYWORDS, *ITEMS.keys(), *CHECK_IDS}
)


def resolve_selection(words: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Turn item aliases and check ids into check ids, in checklist order; unknown words raise KeyError.

    An empty selection means the whole checklist.
    """
    if not words:
        return CHECK_IDS
    wanted: set[str] = set()
    for word in words:
        key = word.strip().lower()
        if key in BY_ID:
            wanted.add(key)
        elif key in ITEMS:
            wanted.update(ITEMS[key])
        elif key == "all":
            wanted.update(CHECK_IDS)
        else:
            raise KeyError(word)
    return tuple(cid for cid in CHECK_IDS if cid in wanted)
