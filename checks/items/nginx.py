"""nginx.syntax and nginx.websocket."""

from __future__ import annotations

from checks.facts import Facts
from checks.items.base import Outcome, error, fail, ok, warn
from checks.parsers.nginx import NginxLocation, parse_nginx_test

#: nginx cuts a proxied connection that is idle this long; 60 s is its default.
NGINX_DEFAULT_TIMEOUT_S = 60.0

#: The lines the seed's fix added, shown when they are missing.
WS_LINES = {
    "http_version": "proxy_http_version 1.1;",
    "upgrade": "proxy_set_header Upgrade $http_upgrade;",
    "connection": "proxy_set_header Connection 'upgrade';",
    "read_timeout": "proxy_read_timeout 86400;",
    "buffering": "proxy_buffering off;",
}


async def nginx_syntax(f: Facts) -> Outcome:
    result = await f.nginx_dump()
    if result.exit_status == 127:
        return error(f"{f.target.nginx_bin} not found on the target (set nginx_bin)", kind="missing_binary")
    if "a password is required" in result.stderr or "a terminal is required" in result.stderr:
        return error("sudo -n asks for a password: allow nginx -t/-T in sudoers (see deploy/target/)",
                     kind="sudo")
    test = parse_nginx_test(result.stderr, result.exit_status)
    details = {"message": test.message, "file": test.file, "line": test.line, "warnings": list(test.warnings)}
    if test.ok:
        note = f" ({len(test.warnings)} warning(s))" if test.warnings else ""
        return ok(f"nginx -t: syntax ok{note}", **details)
    if test.kind == "permission":
        hint = "" if f.target.sudo else " — set sudo = true for this target"
        return error(f"cannot test the config: permission denied ({test.message}){hint}", kind="permission",
                     **details)
    where = f" in {test.file}:{test.line}" if test.file else ""
    if test.kind == "missing_file":
        return fail(f"nginx -t fails: a file it needs is missing{where}: {test.message}", kind="missing_file",
                    **details)
    if test.kind == "syntax":
        return fail(f"nginx -t fails{where}: {test.message}", kind="syntax", **details)
    return fail(f"nginx -t fails: {test.message}", kind="other", **details)


def location_label(loc: NginxLocation) -> str:
    modifier = f"{loc.modifier} " if loc.modifier else ""
    return f"location {modifier}{loc.path} ({loc.file}:{loc.line})"


async def nginx_websocket(f: Facts) -> Outcome:
    loc = await f.app_location()
    label = location_label(loc)
    upstream = [f"{h}:{p}" for h, p in loc.upstream]
    missing: list[str] = []
    weak: list[str] = []
    if loc.http_version != "1.1":
        missing.append("http_version")
    if loc.headers.get("upgrade", "").lower() not in ("$http_upgrade", "websocket"):
        missing.append("upgrade")
    connection = loc.headers.get("connection", "")
    if connection.lower() != "upgrade" and not loc.connection_upgrade_map:
        missing.append("connection")
    if loc.read_timeout_s <= NGINX_DEFAULT_TIMEOUT_S:
        weak.append("read_timeout")
    if loc.buffering:
        weak.append("buffering")
    details = {
        "file": loc.file,
        "line": loc.line,
        "location": f"{loc.modifier} {loc.path}".strip(),
        "proxy_pass": loc.proxy_pass,
        "upstream": upstream,
        "http_version": loc.http_version,
        "upgrade_header": loc.headers.get("upgrade"),
        "connection_header": connection or None,
        "proxy_read_timeout_s": loc.read_timeout_s,
        "proxy_buffering": loc.buffering,
        "missing": missing,
        "weak": weak,
        "add_lines": [WS_LINES[k] for k in (*missing, *weak)],
    }
    names = {
        "http_version": "proxy_http_version 1.1",
        "upgrade": "Upgrade $http_upgrade forwarding",
        "connection": "Connection upgrade forwarding",
    }
    if missing:
        return fail(f"{label} lacks the WebSocket upgrade setup: " + ", ".join(names[m] for m in missing),
                    **details)
    problems: list[str] = []
    if "read_timeout" in weak:
        problems.append(
            f"proxy_read_timeout {loc.read_timeout_s:g} s: nginx cuts idle WebSockets after it "
            "(a classic cause of 'the chat keeps dropping')"
        )
    if "buffering" in weak:
        problems.append("proxy_buffering is on (set it off for real-time traffic)")
    if problems:
        return warn(f"{label}: " + "; ".join(problems), **details)
    return ok(f"{label} proxies to {', '.join(upstream) or loc.proxy_pass} with WebSocket upgrade", **details)
