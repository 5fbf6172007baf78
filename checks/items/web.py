"""next.build, http.local, http.proxy, ws.local, ws.proxy."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

from checks.facts import FactError, Facts
from checks.items.base import Outcome, fail, ok, warn
from checks.items.redirects import redirect_origin
from checks.items.tls import public_probe_opener
from checks.messages import msg
from checks.parsers.pm2 import Pm2Process
from checks.probes import (
    Opener,
    ProbeError,
    ProbeTlsError,
    engineio_uri,
    http_get,
    public_opener,
    ws_handshake,
)
from checks.transport.base import ByteStream, ProbeConnectError, said
from wsmsg.duration import duration


async def next_build(f: Facts) -> Outcome:
    # Together (wt-perf): the stat needs nothing from `pm2 jlist`, and awaited after it, it was a round of its own.
    instances, files = await asyncio.gather(_instances_or_empty(f), f.build_files())
    base = f.target.app_dir.rstrip("/")
    mode = instances[0].mode if instances else "unknown"
    build_id = files.get(f"{base}/.next/BUILD_ID")
    details: dict[str, object] = {
        "app_dir": base,
        "mode": mode,
        "package_json": f"{base}/package.json" in files,
        "next_dir": f"{base}/.next" in files,
        "build_id": build_id is not None,
        "built_at": build_id.mtime if build_id else None,
    }
    if f"{base}/package.json" not in files:
        raise FactError(msg("next.build.no_package_json", app_dir=base), details=details)
    if mode == "dev":
        return warn(msg("next.build.dev"), **details)
    if build_id is None:
        what = ".next/BUILD_ID" if f"{base}/.next" in files else msg("next.build.whole_build")
        return fail(msg("next.build.missing", what=what, app_dir=base), **details)
    age = duration(max(0, int(time.time() - build_id.mtime)), parts=1)
    return ok(msg("next.build.ok", age=age), **details)


async def _instances_or_empty(f: Facts) -> tuple[Pm2Process, ...]:
    """next.build still answers when PM2 cannot be asked: the mode is then unknown."""
    try:
        return await f.app_instances()
    except FactError:
        return ()


def _status_outcome(where: str, status: int, reason: str, location: str | None,
                    details: dict[str, object]) -> Outcome:
    if 200 <= status < 300:
        return ok(msg("web.answers", url=where, status=f"{status} {reason}".rstrip(), hint=""), **details)
    if 300 <= status < 400:
        if location:
            return ok(msg("web.redirect_to", url=where, status=status, location=location), **details)
        return ok(msg("web.redirect", url=where, status=status), **details)
    if status in (502, 504):
        hint = msg("web.hint_502") if status == 502 else msg("web.hint_504")
        return fail(msg("web.answers", url=where, status=f"{status} {reason}", hint=hint), **details)
    return fail(msg("web.answers", url=where, status=f"{status} {reason}".rstrip(), hint=""), **details)


async def http_local(f: Facts) -> Outcome:
    port = f.target.app_port
    where = f"http://127.0.0.1:{port}{f.target.http_path}"

    async def opener() -> ByteStream:
        return await f.transport.open_tcp("127.0.0.1", port, timeout=f.target.probe_timeout)

    details: dict[str, object] = {"url": where}
    try:
        answer = await http_get(opener, host_header=f"127.0.0.1:{port}", path=f.target.http_path,
                                timeout=f.target.probe_timeout)
    except ProbeConnectError as exc:
        return fail(msg("web.probe_error", url=where, error=said(exc)), **details)
    except ProbeError as exc:
        return fail(msg("web.probe_error", url=where, error=said(exc)), **details)
    except TimeoutError:
        timeout = f.target.probe_timeout
        return fail(msg("web.no_answer", url=where, timeout=timeout), no_answer=True, timeout=timeout, **details)
    details.update(status=answer.status, elapsed_ms=round(answer.elapsed_ms, 1))
    return _status_outcome(where, answer.status, answer.reason, answer.headers.get("location"), details)


#: Same-site redirects the HTTP probe follows (a browser would too); the WebSocket probe follows none.
MAX_REDIRECTS = 3


async def http_proxy(f: Facts) -> Outcome:
    scheme, host, port = f.target.public_endpoint()
    url = f.target.public_join(f.target.http_path)
    details: dict[str, object] = {"url": url}
    hops: list[dict[str, object]] = []
    opener = public_probe_opener(f)
    current = url
    while True:
        parts = urlsplit(current)
        default = 443 if scheme == "https" else 80
        host_header = host if port == default else f"{host}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # `refused` (nginx_not_running) only for public_url itself: a redirect answered there already.
        said_before = {"redirects": list(hops), "refused_after_redirect": True} if hops else {"refused": True}
        followed = {"redirects": list(hops)} if hops else {}
        try:
            answer = await http_get(opener, host_header=host_header, path=path, timeout=f.target.probe_timeout)
        except ProbeTlsError as exc:
            return fail(msg("web.probe_error", url=current, error=said(exc)), tls_error=exc.seen.error,
                        **followed, **details)
        except ProbeConnectError as exc:
            return fail(msg("web.refused_nginx", url=current, error=said(exc)), **said_before, **details)
        except ProbeError as exc:
            return fail(msg("web.probe_error", url=current, error=said(exc)), **followed, **details)
        except TimeoutError:
            return fail(msg("web.no_answer", url=current, timeout=f.target.probe_timeout), no_answer=True,
                        timeout=f.target.probe_timeout, **followed, **details)
        target = _same_site(current, answer.headers.get("location"), host)
        if not (300 <= answer.status < 400) or target is None or len(hops) >= MAX_REDIRECTS:
            break
        hops.append({"status": answer.status, "from": current, "to": target})
        current = target
        scheme = urlsplit(target).scheme
        port = urlsplit(target).port or (443 if scheme == "https" else 80)
        opener = public_probe_opener(f) if (scheme, port) == f.target.public_endpoint()[::2] else \
            public_opener(scheme, host, port, timeout=f.target.probe_timeout, ca_file=f.target.ca_file or None)
    details.update(status=answer.status, server=answer.server, elapsed_ms=round(answer.elapsed_ms, 1))
    if hops:
        details.update(redirects=hops, final_url=current)
    outcome = _status_outcome(current, answer.status, answer.reason, answer.headers.get("location"), details)
    if hops and outcome.status.value == "ok":
        outcome = ok(msg("web.followed", url=url, n=len(hops), final=current, status=answer.status), **details)
    if outcome.status.value == "ok" and not answer.server.lower().startswith("nginx"):
        shown = answer.server or msg("web.no_server_header")
        return warn(msg("web.not_nginx", url=url, status=answer.status, server=shown), **details)
    return outcome


def _same_site(current: str, location: str | None, host: str) -> str | None:
    """The absolute URL of a redirect that stays on public_url's host (any scheme/port), else None."""
    if not location:
        return None
    target = urljoin(current, location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() != host.lower():
        return None
    return target


async def ws_local(f: Facts) -> Outcome:
    port = f.target.app_port
    uri = _ws_uri(f, f"ws://127.0.0.1:{port}{f.target.ws_path}")

    async def opener() -> ByteStream:
        return await f.transport.open_tcp("127.0.0.1", port, timeout=f.target.probe_timeout)

    return await _ws(uri, opener, origin=f"http://127.0.0.1:{port}", timeout=f.target.probe_timeout,
                     engineio=_socketio(f))


async def ws_proxy(f: Facts) -> Outcome:
    scheme = f.target.public_endpoint()[0]
    http_url = f.target.public_join(f.target.ws_path)
    uri = _ws_uri(f, ("wss" if scheme == "https" else "ws") + http_url[len(scheme):])
    origin = f"{scheme}://{urlsplit(f.target.public_url).netloc}"
    outcome = await _ws(uri, public_probe_opener(f), origin=origin, timeout=f.target.probe_timeout,
                        engineio=_socketio(f))
    if outcome.details.get("redirect"):
        # wt-tls: which server/location of nginx sent the redirect, when the route model can tell.
        sent_by = await redirect_origin(f)
        if sent_by:
            return replace(outcome, details={**outcome.details, "sent_by": sent_by})
    return outcome


def _socketio(f: Facts) -> bool:
    return f.target.ws_protocol == "socket.io"


def _ws_uri(f: Facts, uri: str) -> str:
    """wt-sio: a Socket.IO target's WebSocket is Engine.IO's, on ws_path with `?EIO=4&transport=websocket`."""
    return engineio_uri(uri) if _socketio(f) else uri


async def _ws(uri: str, opener: Opener, *, origin: str, timeout: float, engineio: bool = False) -> Outcome:
    details: dict[str, object] = {"url": uri}
    try:
        answer = await ws_handshake(opener, uri=uri, timeout=timeout, origin=origin, engineio=engineio)
    except ProbeConnectError as exc:
        return fail(msg("web.probe_error", url=uri, error=said(exc)), refused=True, **details)
    except ProbeTlsError as exc:
        return fail(msg("web.probe_error", url=uri, error=said(exc)), tls_error=exc.seen.error, **details)
    except ProbeError as exc:
        if exc.status is not None:
            details["status"] = exc.status
            details["server"] = exc.headers.get("server", "")
            location = exc.headers.get("location")
            if 300 <= exc.status < 400:
                # wt-tls: the probe never follows a redirect (browsers do not): the redirect is the finding.
                details |= {"redirect": True, "location": location or "",
                            "to_https": uri.startswith("ws://") and (location or "").startswith(("https://",
                                                                                                 "wss://"))}
                return fail(msg("ws.redirected", url=uri, status=exc.status, location=location or "-"),
                            **details)
        return fail(msg("web.probe_error", url=uri, error=said(exc)), **details)
    except TimeoutError:
        return fail(msg("ws.no_answer", url=uri, timeout=timeout), no_answer=True, timeout=timeout, **details)
    details.update(status=101, rtt_ms=round(answer.rtt_ms, 1), elapsed_ms=round(answer.elapsed_ms, 1))
    if answer.engineio is not None:
        details["engineio"] = answer.engineio
        return ok(msg("ws.ok_engineio", url=uri, rtt=answer.rtt_ms,
                      interval=answer.engineio.get("pingInterval", "?")), **details)
    return ok(msg("ws.ok", url=uri, rtt=answer.rtt_ms), **details)
