"""tls.certificate: the certificate an https public_url really serves, seen from where the bot stands (wt-tls).

The facts come from the public probes' own handshake (http.proxy / ws.proxy open the TLS connection and tell
`public_probe_opener`'s sink what it showed); only when neither probe runs in this report does the check open
the connection itself. The served certificate is then compared with the `ssl_certificate` files that
`nginx -T` names, read over the same SSH round with `cat` (no extra tool on the target): a file with a newer
certificate than the one nginx serves means "renewed, never reloaded".
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from checks import commands
from checks.config import DEFAULT_TLS_EXPIRY_WARNING
from checks.facts import FactError, Facts
from checks.items.base import Outcome, fail, ok, warn
from checks.messages import msg
from checks.offload import parse_off_loop
from checks.parsers import ParseError
from checks.parsers.certs import CERT_INVALID_KINDS, WHY_KEYS, CertFacts, cert_names, from_pem, ssl_certificate_files
from checks.parsers.nginx import split_dump
from checks.probes import Opener, ProbeError, TlsSeen, public_opener
from checks.transport.base import ProbeConnectError, said

#: At most this many `ssl_certificate` files are read (a dump with hundreds of vhosts is not ours to walk).
MAX_CERT_FILES = 8
#: Where certbot lives when installed (apt, pip/venv, snap): `stat` of these says whether it is there.
CERTBOT_PATHS = ("/usr/bin/certbot", "/usr/local/bin/certbot", "/snap/bin/certbot")

_SEEN: weakref.WeakKeyDictionary[Facts, asyncio.Future[TlsSeen | BaseException]] = weakref.WeakKeyDictionary()


def _seen_future(f: Facts) -> asyncio.Future[TlsSeen | BaseException]:
    fut = _SEEN.get(f)
    if fut is None:
        fut = asyncio.get_running_loop().create_future()
        _SEEN[f] = fut
    return fut


def public_probe_opener(f: Facts) -> Opener:
    """The public URL's opener for this report: its first TLS handshake is remembered for tls.certificate."""
    scheme, host, port = f.target.public_endpoint()
    fut = _seen_future(f)

    def sink(seen: TlsSeen | BaseException) -> None:
        if not fut.done():
            fut.set_result(seen)

    return public_opener(scheme, host, port, timeout=f.target.probe_timeout, ca_file=f.target.ca_file or None,
                         tls_sink=sink)


async def served(f: Facts) -> TlsSeen:
    """The probes' handshake when one of them runs in this report, else a handshake of our own."""
    fut = _seen_future(f)
    if not fut.done() and not ({"http.proxy", "ws.proxy"} & f.selected):
        try:
            stream = await public_probe_opener(f)()
            await stream.aclose()
        except (ProbeError, ProbeConnectError, OSError, TimeoutError):
            pass  # the sink has the facts, or the reason there are none
    seen = await asyncio.wait_for(asyncio.shield(fut), f.target.probe_timeout * 2 + 1)
    if isinstance(seen, BaseException):
        probe = "http.proxy" if "http.proxy" in f.selected else "ws.proxy"
        raise f.explained_by(probe, msg("tls.no_connection", error=said(seen) if isinstance(seen, Exception)
                                        else str(seen)))
    return seen


async def _certbot(f: Facts) -> str:
    result = await f.run("stat certbot", commands.file_stat(CERTBOT_PATHS))
    for line in result.stdout.splitlines():
        path = line.split("|", 1)[0]
        if path in CERTBOT_PATHS:
            return path
    return ""


def _named_certificates(dump: str) -> list[tuple[str, str, int]]:
    return ssl_certificate_files(split_dump(dump))


async def _disk_certs(f: Facts) -> tuple[list[dict[str, Any]], str]:
    """The `ssl_certificate` files nginx names, each with its facts or the reason it could not be read."""
    dump = await f.nginx_dump()
    if not dump.ok:
        return [], "nginx_dump_failed"
    try:
        named = await parse_off_loop(_named_certificates, dump.stdout)
    except ParseError:
        return [], "nginx_dump_unparsed"
    unique: dict[str, tuple[str, int]] = {}
    for path, conf, line in named:
        unique.setdefault(path, (conf, line))
    paths = list(unique)[:MAX_CERT_FILES]
    results = await asyncio.gather(*(f.run(f"cat {p}", commands.read_file(f.target, p)) for p in paths))
    out: list[dict[str, Any]] = []
    for path, result in zip(paths, results, strict=True):
        conf, line = unique[path]
        entry: dict[str, Any] = {"path": path, "file": conf, "line": line}
        if not result.ok:
            entry["error"] = (result.stderr.strip().splitlines() or [f"exit {result.exit_status}"])[-1][:200]
        else:
            try:
                entry["cert"] = from_pem(result.stdout)
            except ParseError as exc:
                entry["error"] = str(exc)
        out.append(entry)
    return out, ""


def _not_reloaded(served_cert: CertFacts, disk: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    """The file whose certificate nginx should serve for `host` but does not: newer (later not-after) and
    another serial. None when a file holds the served certificate, or no file says otherwise."""
    certs = [(e, e["cert"]) for e in disk if isinstance(e.get("cert"), CertFacts)]
    if any(c.serial == served_cert.serial for _, c in certs):
        return None
    newer = [(e, c) for e, c in certs if c.covers(host) and c.not_after_ts > served_cert.not_after_ts]
    if not newer:
        return None
    entry, cert = max(newer, key=lambda ec: ec[1].not_after_ts)
    return {"path": entry["path"], "file": entry["file"], "line": entry["line"], "serial": cert.serial,
            "not_after": cert.not_after, "not_before": cert.not_before}


async def tls_certificate(f: Facts) -> Outcome:
    scheme, host, port = f.target.public_endpoint()
    if scheme != "https":
        return ok(msg("tls.not_https", url=f.target.public_url), tls=False)
    certbot_task = asyncio.ensure_future(_certbot(f))
    disk_task = asyncio.ensure_future(_disk_certs(f))
    try:
        seen = await served(f)
        # Both are extras: an SSH problem must not hide what the handshake showed (the other checks report it).
        try:
            disk, disk_error = await disk_task
        except FactError as exc:
            disk, disk_error = [], exc.kind
        except Exception as exc:  # transport errors, command timeouts
            disk, disk_error = [], type(exc).__name__
        try:
            certbot = await certbot_task
        except Exception:  # same: "certbot not found" is then the honest default for the fix line
            certbot = ""
    finally:
        for task in (certbot_task, disk_task):
            task.cancel()
    warning = f.target.tls_expiry_warning
    days_warn = DEFAULT_TLS_EXPIRY_WARNING if warning is None else warning
    details: dict[str, Any] = {
        "tls": True, "host": host, "port": port, "verify_error": seen.error, "verify_message": seen.message,
        "tls_version": seen.version, "certbot": certbot, "expiry_warning_days": days_warn,
        "disk": [{k: (v.as_details() if isinstance(v, CertFacts) else v) for k, v in e.items()} for e in disk],
    }
    if disk_error:
        details["disk_error"] = disk_error
    cert = seen.cert
    if cert is None:
        return fail(msg("tls.handshake_failed", host=host, port=port, reason=seen.message), **details)
    now = time.time()
    days = cert.days_left(now)
    details |= {"cert": cert.as_details(), "days_left": round(days, 1)}
    stale = _not_reloaded(cert, disk, host)
    if stale is not None:
        details["not_reloaded"] = stale
    if seen.error is not None:
        why = msg(WHY_KEYS[seen.error]) if seen.error in CERT_INVALID_KINDS else seen.message
        return fail(msg("tls.invalid", host=host, port=port, why=why, names=cert_names(cert),
                        not_after=cert.not_after[:10], issuer=cert.issuer), **details)
    if stale is not None:
        return warn(msg("tls.not_reloaded", path=stale["path"], served=cert.not_after[:10],
                        disk=stale["not_after"][:10]), **details)
    if days < days_warn:
        details["expiring"] = True
        return warn(msg("tls.expiring", days=max(0, int(days)), not_after=cert.not_after[:10],
                        names=cert_names(cert)), **details)
    return ok(msg("tls.ok", names=cert_names(cert), not_after=cert.not_after[:10], days=int(days),
                  issuer=cert.issuer), **details)
