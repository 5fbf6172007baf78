"""nginx.reload and nginx.errors: what the running nginx runs and what its error log says (issue 11, items 4-5).

The facts come from read-only commands that join the first concurrent round (`nginx -V`, `ps -C nginx`,
`date`) and one follow-up that needs the `nginx -T` dump (the stat of the files it lists, the pid file, the
tail of the error logs it names) — the same shape as the PM2 log follow-up.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from checks import commands
from checks.facts import FactError, Facts
from checks.items.base import Outcome, error, fail, ok, skip, warn
from checks.messages import msg
from checks.offload import parse_off_loop
from checks.parsers import ParseError
from checks.parsers.nginx_runtime import (
    CAPACITY_KINDS,
    ERROR_LOG_BYTES,
    ERROR_LOG_WINDOW_S,
    ErrorLog,
    LoadTime,
    NginxBuild,
    RuntimePaths,
    TargetClock,
    iso,
    load_time,
    most_relevant,
    parse_date,
    parse_error_log,
    parse_nginx_ps,
    parse_nginx_v,
    ps_clock,
    runtime_paths,
)

#: A file must be this much newer than the load to count (mtime, ps and date have 1 s resolution).
MTIME_SLACK_S = 1


async def nginx_build(f: Facts) -> NginxBuild:
    result = await f.run("nginx -V", commands.nginx_version(f.target))
    if result.exit_status == 127:
        raise FactError(msg("nginxrt.v_missing", bin=f.target.nginx_bin), kind="missing_binary")
    try:
        return parse_nginx_v(result.stderr + "\n" + result.stdout)
    except ParseError as exc:
        raise FactError(msg("nginxrt.v_parse", error=str(exc)), kind="parse") from None


async def target_clock(f: Facts) -> TargetClock:
    result = await f.run("date", list(commands.DATE_ARGV))
    try:
        return parse_date(result.stdout)
    except ParseError as exc:
        raise FactError(msg("nginxrt.date", error=str(exc)), kind="parse") from None


async def paths(f: Facts) -> RuntimePaths:
    dump, build = await asyncio.gather(f.nginx_dump(), nginx_build(f))
    await f.nginx_config()  # raises the nginx.syntax-explained error when the dump failed
    try:
        # Off the event loop: a 5 MB config costs seconds to read (acks must not wait for it).
        return await parse_off_loop(functools.partial(runtime_paths, build=build), dump.stdout)
    except ParseError as exc:
        raise FactError(msg("facts.nginx_parse", error=str(exc)), kind="parse") from None


async def running(f: Facts, where: RuntimePaths) -> tuple[LoadTime | None, TargetClock, bool]:
    """The last (re)load of the nginx this config belongs to; the bool says whether any master runs."""
    ps, clock, pid = await asyncio.gather(
        f.run("ps nginx", commands.nginx_ps(f.target)), target_clock(f),
        f.run(f"pid {where.pid_file}", commands.read_small(where.pid_file)))
    if ps.exit_status == 127:
        raise FactError(msg("facts.ps_failed", error=msg("facts.no_output")), kind="missing_binary")
    procs = parse_nginx_ps(ps.stdout)
    text = pid.stdout.strip()
    master = int(text) if pid.ok and text.isdigit() else None
    sampled = ps_clock(ps.stdout)  # the ages' own clock; the shared `date` may be seconds older
    at_ps = TargetClock(now=sampled, offset_s=clock.offset_s) if sampled is not None else clock
    return load_time(procs, master, at_ps), clock, any(p.role == "master" for p in procs)


def _file_mtimes(result_stdout: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in result_stdout.splitlines():
        name, sep, _size = line.rpartition("|")
        path, sep2, mtime = name.rpartition("|")
        if sep and sep2 and mtime.isdigit():
            out[path] = int(mtime)
    return out


async def nginx_reload(f: Facts) -> Outcome:
    """Does the running nginx run the files on disk? A file newer than the last (re)load is not live yet."""
    where = await paths(f)
    config = await f.nginx_config()
    (load, clock, any_master), stat = await asyncio.gather(
        running(f, where), f.run("stat:nginx-files", commands.file_stat(config.files)))
    if load is None:
        if not any_master:
            return skip(msg("nginxrt.not_running"), running=False)
        return error(msg("nginxrt.no_master", pid_file=where.pid_file), kind="no_master", pid_file=where.pid_file)
    mtimes = _file_mtimes(stat.stdout)
    if not mtimes:
        lines = stat.stderr.strip().splitlines()
        return error(msg("nginxrt.stat_failed", error=lines[-1][:200] if lines else msg("facts.no_output")),
                     kind="command")
    newer = sorted(((p, m) for p, m in mtimes.items() if m > load.loaded_at + MTIME_SLACK_S), key=lambda x: -x[1])
    details: dict[str, Any] = {
        "master": load.master, "loaded_at": load.loaded_at, "loaded": iso(load.loaded_at, clock.offset_s),
        "load_source": load.source, "files": len(mtimes),
        "pending": [{"file": p, "mtime": m, "modified": iso(m, clock.offset_s)} for p, m in newer],
    }
    loaded = iso(load.loaded_at, clock.offset_s)
    if newer:
        path, mtime = newer[0]
        return warn(msg("nginxrt.pending", file=path, modified=iso(mtime, clock.offset_s), loaded=loaded,
                        more=len(newer) - 1), **details)
    return ok(msg("nginxrt.loaded", loaded=loaded, files=len(mtimes)), **details)


async def error_log(f: Facts) -> tuple[ErrorLog, RuntimePaths, int | None]:
    where = await paths(f)
    (load, clock, _), tail = await asyncio.gather(
        running(f, where), f.run("tail:nginx-errors", commands.tail_bytes(where.error_logs, ERROR_LOG_BYTES)))
    log = parse_error_log(tail.stdout, tail.stderr, where.error_logs, clock,
                          since=load.loaded_at if load else None, workers=frozenset(load.workers if load else ()))
    return log, where, load.loaded_at if load else None


def _line_details(log: ErrorLog) -> list[dict[str, Any]]:
    return [{"file": ln.file, "at": ln.at, "level": ln.level, "kind": ln.kind, "text": ln.text,
             "upstream": ln.upstream} for ln in log.lines[-50:]]


async def nginx_errors(f: Facts) -> Outcome:
    """The recent error log, classified: evidence for the other checks; capacity exhaustion is a finding."""
    log, where, since = await error_log(f)
    readable = [p for p in where.error_logs if p not in log.unreadable]
    details: dict[str, Any] = {
        "files": list(where.error_logs), "unreadable": dict(log.unreadable), "window_s": ERROR_LOG_WINDOW_S,
        "since": since, "counts": log.counts(), "lines": _line_details(log), "relevant": most_relevant(log),
        "upstreams_refused": sorted({ln.upstream for ln in log.of("upstream_refused") if ln.upstream}),
        "upstreams_timed_out": sorted({ln.upstream for ln in log.of("upstream_timeout") if ln.upstream}),
        "worker_connections": where.worker_connections, "worker_connections_at": where.worker_connections_at,
    }
    if not readable:
        first = where.error_logs[0] if where.error_logs else "-"
        return error(msg("nginxrt.log_unreadable", file=first, error=log.unreadable.get(first, "-")),
                     kind="permission", **details)
    capacity = log.of(*CAPACITY_KINDS)
    if capacity:
        return fail(msg("nginxrt.capacity", count=len(capacity), line=capacity[-1].text,
                        minutes=ERROR_LOG_WINDOW_S // 60), **details)
    if log.lines:
        counts = ", ".join(f"{kind} ×{n}" for kind, n in sorted(log.counts().items()))
        return ok(msg("nginxrt.log_lines", count=len(log.lines), kinds=counts, minutes=ERROR_LOG_WINDOW_S // 60),
                  **details)
    return ok(msg("nginxrt.log_quiet", minutes=ERROR_LOG_WINDOW_S // 60, files=", ".join(readable)), **details)
