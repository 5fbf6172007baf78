"""next.build, http.local, http.proxy, ws.local, ws.proxy."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from checks.facts import FactError, Facts
from checks.items.base import Outcome, fail, ok, warn
from checks.parsers.pm2 import Pm2Process
from checks.probes import Opener, ProbeError, http_get, public_opener, ws_handshake
from checks.transport.base import ByteStream, ProbeConnectError

#: A probe must answer faster than this; a hung app is a failure, not an endless wait.
PROBE_TIMEOUT_S = 5.0


async def next_build(f: Facts) -> Outcome:
    instances, files = await _instances_or_empty(f), await f.build_files()
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
        raise FactError(f"app_dir {base} has no package.json on the target: is app_dir right?", details=details)
    if mode == "dev":
        return warn("the app runs in dev mode (next dev): no production build needed, but dev mode is slow "
                    "and not meant for production", **details)
    if build_id is None:
        what = ".next/BUILD_ID" if f"{base}/.next" in files else ".next (the whole build)"
        return fail(f"no production build: {what} missing in {base}, so `next start` fails with "
                    "\"Could not find a production build\"", **details)
    age = _age(build_id.mtime)
    return ok(f"production build present (.next/BUILD_ID, built {age} ago)", **details)


async def _instances_or_empty(f: Facts) -> tuple[Pm2Process, ...]:
    """next.build still answers when PM2 cannot be asked: the mode is then unknown."""
    try:
        return await f.app_instances()
    except FactError:
        return ()


def _age(mtime: int) -> str:
    seconds = max(0, int(time.time() - mtime))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _status_outcome(where: str, status: int, reason: str, location: str | None,
                    details: dict[str, object]) -> Outcome:
    if 200 <= status < 300:
        return ok(f"{where} answers {status} {reason}".rstrip(), **details)
    if 300 <= status < 400:
        target = f" to {location}" if location else ""
        return ok(f"{where} answers {status} (redirect{target})", **details)
    hint = ""
    if status in (502, 504):
        hint = ": nginx cannot reach the app" if status == 502 else ": the app did not answer nginx in time"
    return fail(f"{where} answers {status} {reason}{hint}".rstrip(), **details)


async def http_local(f: Facts) -> Outcome:
    port = f.target.app_port
    where = f"http://127.0.0.1:{port}{f.target.http_path}"

    async def opener() -> ByteStream:
        return await f.transport.open_tcp("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)

    details: dict[str, object] = {"url": where}
    try:
        answer = await http_get(opener, host_header=f"127.0.0.1:{port}", path=f.target.http_path,
                                timeout=PROBE_TIMEOUT_S)
    except ProbeConnectError as exc:
        return fail(f"{where}: {exc}", **details)
    except ProbeError as exc:
        return fail(f"{where}: {exc}", **details)
    except TimeoutError:
        return fail(f"{where}: no answer within {PROBE_TIMEOUT_S:g} s", **details)
    details.update(status=answer.status, elapsed_ms=round(answer.elapsed_ms, 1))
    return _status_outcome(where, answer.status, answer.reason, answer.headers.get("location"), details)


async def http_proxy(f: Facts) -> Outcome:
    scheme, host, port = f.target.public_endpoint()
    url = f.target.public_join(f.target.http_path)
    path = urlsplit(url).path or "/"
    default = 443 if scheme == "https" else 80
    host_header = host if port == default else f"{host}:{port}"
    details: dict[str, object] = {"url": url}
    try:
        answer = await http_get(public_opener(scheme, host, port, timeout=PROBE_TIMEOUT_S),
                                host_header=host_header, path=path, timeout=PROBE_TIMEOUT_S)
    except ProbeConnectError as exc:
        return fail(f"{url}: {exc} (is nginx running?)", refused=True, **details)
    except ProbeError as exc:
        return fail(f"{url}: {exc}", **details)
    except TimeoutError:
        return fail(f"{url}: no answer within {PROBE_TIMEOUT_S:g} s", **details)
    details.update(status=answer.status, server=answer.server, elapsed_ms=round(answer.elapsed_ms, 1))
    outcome = _status_outcome(url, answer.status, answer.reason, answer.headers.get("location"), details)
    if outcome.status.value == "ok" and not answer.server.lower().startswith("nginx"):
        shown = answer.server or "no Server header"
        return warn(f"{url} answers {answer.status}, but not from nginx ({shown})", **details)
    return outcome


async def ws_local(f: Facts) -> Outcome:
    port = f.target.app_port
    uri = f"ws://127.0.0.1:{port}{f.target.ws_path}"

    async def opener() -> ByteStream:
        return await f.transport.open_tcp("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)

    return await _ws(uri, opener, origin=f"http://127.0.0.1:{port}")


async def ws_proxy(f: Facts) -> Outcome:
    scheme, host, port = f.target.public_endpoint()
    http_url = f.target.public_join(f.target.ws_path)
    uri = ("wss" if scheme == "https" else "ws") + http_url[len(scheme):]
    origin = f"{scheme}://{urlsplit(f.target.public_url).netloc}"
    return await _ws(uri, public_opener(scheme, host, port, timeout=PROBE_TIMEOUT_S), origin=origin)


async def _ws(uri: str, opener: Opener, *, origin: str) -> Outcome:
    details: dict[str, object] = {"url": uri}
    try:
        answer = await ws_handshake(opener, uri=uri, timeout=PROBE_TIMEOUT_S, origin=origin)
    except ProbeConnectError as exc:
        return fail(f"{uri}: {exc}", refused=True, **details)
    except ProbeError as exc:
        if exc.status is not None:
            details["status"] = exc.status
            details["server"] = exc.headers.get("server", "")
        return fail(f"{uri}: {exc}", **details)
    except TimeoutError:
        return fail(f"{uri}: no WebSocket answer within {PROBE_TIMEOUT_S:g} s", **details)
    details.update(status=101, rtt_ms=round(answer.rtt_ms, 1), elapsed_ms=round(answer.elapsed_ms, 1))
    return ok(f"{uri}: 101 Switching Protocols, ping/pong {answer.rtt_ms:.0f} ms", **details)
