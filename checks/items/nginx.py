"""nginx.syntax and nginx.websocket."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from checks.facts import FactError, Facts
from checks.items.base import Outcome, error, fail, ok, warn
from checks.items.nginx_runtime import nginx_build
from checks.messages import Msg, joined, msg, verbatim
from checks.parsers.nginx import NginxLocation, parse_nginx_test
from checks.parsers.nginx_route import upstream_path
from checks.parsers.nginx_runtime import NginxBuild

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
        return error(msg("nginx.syntax.missing_binary", bin=f.target.nginx_bin), kind="missing_binary")
    if "a password is required" in result.stderr or "a terminal is required" in result.stderr:
        return error(msg("nginx.syntax.sudo"), kind="sudo")
    test = parse_nginx_test(result.stderr, result.exit_status)
    details = {"message": test.message, "file": test.file, "line": test.line, "warnings": list(test.warnings)}
    if test.ok:
        if test.warnings:
            return ok(msg("nginx.syntax.ok_warnings", count=len(test.warnings)), **details)
        return ok(msg("nginx.syntax.ok"), **details)
    if test.kind == "permission":
        key = "nginx.syntax.permission" if f.target.sudo else "nginx.syntax.permission_sudo"
        return error(msg(key, message=test.message), kind="permission", **details)
    if test.kind == "missing_file":
        if test.file:
            return fail(msg("nginx.syntax.missing_file_at", file=test.file, line=test.line, message=test.message),
                        kind="missing_file", **details)
        return fail(msg("nginx.syntax.missing_file", message=test.message), kind="missing_file", **details)
    if test.kind == "syntax":
        if test.file:
            return fail(msg("nginx.syntax.syntax_at", file=test.file, line=test.line, message=test.message),
                        kind="syntax", **details)
        return fail(msg("nginx.syntax.fails", message=test.message), kind="syntax", **details)
    return fail(msg("nginx.syntax.fails", message=test.message), kind="other", **details)


def _has_upgrade_token(value: str) -> bool:
    """RFC 9110: Connection is a token list; `keep-alive, Upgrade` asks for the upgrade as well as `upgrade`."""
    return any(token.strip().strip("'\"").lower() == "upgrade" for token in value.split(","))


def location_label(loc: NginxLocation) -> str:
    modifier = f"{loc.modifier} " if loc.modifier else ""
    return f"location {modifier}{loc.path} ({loc.file}:{loc.line})"


async def _build_or_none(f: Facts) -> NginxBuild | None:
    """The nginx version when `nginx -V` tells it; None = unknown (judged as before 1.29.7, the safe side)."""
    try:
        return await nginx_build(f)
    except FactError:
        return None


def _effective_http_version(loc: NginxLocation, build: NginxBuild | None) -> str:
    """What nginx really speaks upstream: the configured value, else 1.1 since nginx 1.29.7, else 1.0."""
    if loc.http_version_set or build is None or not build.http11_default:
        return loc.http_version or "1.0"
    return "1.1"


async def nginx_websocket(f: Facts) -> Outcome:
    (loc, found), build = await asyncio.gather(f.app_route(), _build_or_none(f))
    label = location_label(loc)
    upstream = [f"{h}:{p}" for h, p in loc.upstream]
    missing: list[str] = []
    weak: list[str] = []
    http_version = _effective_http_version(loc, build)
    if http_version != "1.1":
        missing.append("http_version")
    sent = loc.header_list or tuple(loc.headers.items())  # nginx sends every non-empty repeat
    if not any(k == "upgrade" and v.lower() in ("$http_upgrade", "websocket") for k, v in sent):
        missing.append("upgrade")
    connection = loc.headers.get("connection", "")
    if not loc.connection_upgrade_map and not any(k == "connection" and _has_upgrade_token(v) for k, v in sent):
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
        "http_version": http_version,
        "http_version_set": loc.http_version_set,
        "nginx_version": build.version_text if build else None,
        "upgrade_header": loc.headers.get("upgrade"),
        "connection_header": connection or None,
        "proxy_read_timeout_s": loc.read_timeout_s,
        "proxy_buffering": loc.buffering,
        "missing": missing,
        "weak": weak,
        "add_lines": [WS_LINES[k] for k in (*missing, *weak)],
        # What the app receives: a proxy_pass with a URI part replaces the matched prefix (None = not known).
        "path": urlsplit(f.target.ws_path).path or "/",
        "upstream_path": upstream_path(loc, found),
    }
    names = {
        "http_version": msg("nginx.websocket.name.http2") if http_version == "2"
        else verbatim("proxy_http_version 1.1"),
        "upgrade": msg("nginx.websocket.name.upgrade"),
        "connection": msg("nginx.websocket.name.connection"),
    }
    if missing:
        return fail(msg("nginx.websocket.lacks", label=label, missing=joined([names[m] for m in missing], ", ")),
                    **details)
    problems: list[Msg] = []
    if "read_timeout" in weak:
        problems.append(msg("nginx.websocket.read_timeout", timeout=loc.read_timeout_s))
    if "buffering" in weak:
        problems.append(msg("nginx.websocket.buffering"))
    if problems:
        return warn(msg("nginx.websocket.weak", label=label, problems=joined(problems, "; ")), **details)
    return ok(msg("nginx.websocket.ok", label=label, upstream=", ".join(upstream) or loc.proxy_pass), **details)
