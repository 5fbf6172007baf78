"""The check functions, keyed by the stable ids of checks.registry."""

from __future__ import annotations

from checks.items.base import CheckFn
from checks.items.host import host_disk, host_fds, host_memory, next_static, pm2_restarts
from checks.items.nginx import nginx_syntax, nginx_websocket
from checks.items.nginx_runtime import nginx_errors, nginx_reload
from checks.items.pm2 import pm2_logs, pm2_status
from checks.items.pm2_boot import pm2_saved, pm2_startup
from checks.items.pm2_daemon import pm2_daemon
from checks.items.ports import port_conflict, port_listen, port_match
from checks.items.socketio import ws_sessions
from checks.items.tls import tls_certificate
from checks.items.web import http_local, http_proxy, next_build, ws_local, ws_proxy
from checks.registry import CHECK_IDS

CHECK_FUNCTIONS: dict[str, CheckFn] = {
    "nginx.syntax": nginx_syntax,
    "nginx.websocket": nginx_websocket,
    "nginx.reload": nginx_reload,
    "nginx.errors": nginx_errors,
    "pm2.status": pm2_status,
    "port.listen": port_listen,
    "port.match": port_match,
    "port.conflict": port_conflict,
    "next.build": next_build,
    "http.local": http_local,
    "http.proxy": http_proxy,
    "ws.local": ws_local,
    "ws.proxy": ws_proxy,
    "pm2.logs": pm2_logs,
    "tls.certificate": tls_certificate,
    "pm2.saved": pm2_saved,
    "pm2.startup": pm2_startup,
    "pm2.daemon": pm2_daemon,
    "ws.sessions": ws_sessions,
    # wt-host2
    "pm2.restarts": pm2_restarts,
    "next.static": next_static,
    "host.memory": host_memory,
    "host.disk": host_disk,
    "host.fds": host_fds,
}

assert tuple(CHECK_FUNCTIONS) == CHECK_IDS, "checks.registry and checks.items disagree"
