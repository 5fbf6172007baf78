"""pm2.status and pm2.logs."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

from checks.details import Pm2Instance
from checks.facts import FactError, Facts
from checks.items.base import Outcome, error, fail, ok, warn
from checks.messages import Msg, msg
from checks.parsers.logs import scan_log
from checks.parsers.pm2 import Pm2Process
from checks.redact import redact
from wsmsg.duration import duration

#: PM2 counts a restart as unstable when the app lived less than min_uptime; this many is a loop.
#: `restart_time` alone cannot tell a crash from an operator's `pm2 restart` in one snapshot; the
#: monitor, which sees successive snapshots, watches its growth instead.
UNSTABLE_LOOP = 3
#: PM2 never resets `unstable_restarts`, so old crashes count only while the app is again young.
LOOP_UPTIME_S = 60


def _describe(p: Pm2Process, now_ms: float) -> dict[str, object]:
    """One `instances` entry: the typed model the bot reads back (checks/details.py), dumped for `--json`."""
    uptime = (now_ms - p.pm_uptime) / 1000 if p.pm_uptime and p.status == "online" else None
    return Pm2Instance(
        pm_id=p.pm_id,
        status=p.status,
        pid=p.pid,
        restarts=p.restart_time,
        unstable_restarts=p.unstable_restarts,
        uptime_s=round(uptime, 1) if uptime is not None else None,
        mode=p.mode,
        exec=" ".join(x for x in (p.exec_path, *p.args) if x),
        port_env=p.port_env,
    ).dump()


async def pm2_status(f: Facts) -> Outcome:
    processes = await f.pm2_processes()
    app = f.target.pm2_app
    instances = [p for p in processes if p.name == app]
    if not instances:
        names = sorted({p.name for p in processes})
        if not names:
            return fail(msg("pm2.status.jlist_empty", app=app), known_apps=[])
        return fail(msg("pm2.status.not_in_jlist", app=app, names=", ".join(names)), known_apps=names)
    now_ms = time.time() * 1000
    described = [_describe(p, now_ms) for p in instances]
    details: dict[str, object] = {"instances": described, "status": instances[0].status}
    bad = [p for p in instances if p.status != "online" or p.pid <= 0]
    looping = [
        p for p in instances
        if p.unstable_restarts >= UNSTABLE_LOOP and p.pm_uptime and (now_ms - p.pm_uptime) / 1000 < LOOP_UPTIME_S
    ]
    # Several fork-mode entries of one app: started twice. Only one can hold the port; a copy that keeps failing
    # to start shows in its unstable restarts even when this look catches it `online` between two attempts (and
    # whatever the time since: the uptime above is only a guess of "now").
    duplicates = len(instances) > 1 and all((i.exec_mode or "fork_mode") == "fork_mode" for i in instances)
    troubled = [p for p in instances
                if p in bad or p in looping or (duplicates and p.unstable_restarts >= UNSTABLE_LOOP)]
    stable = [p for p in instances if p not in troubled]
    if stable and troubled:
        # Some instances serve (cluster mode, or the app started twice in fork mode): less capacity or a duplicate,
        # not an app that is down. A fail here would name "not online" / "crash loop" while the probes prove the
        # app up (issue 12, item 10).
        p = troubled[0]
        loops = p in looping or p.unstable_restarts >= UNSTABLE_LOOP
        key = "pm2.status.partial_loop" if loops else "pm2.status.partial"
        return warn(msg(key, app=app, online=len(stable), count=len(instances), pm_id=p.pm_id, status=p.status,
                        unstable=p.unstable_restarts),
                    partial=True, culprit=p.pm_id, duplicates=duplicates, crash_loop=loops, **details)
    if bad:
        p = bad[0]
        if p.status == "online":
            return fail(msg("pm2.status.online_pid0", app=app), **details)
        if p.status == "waiting restart":
            return fail(msg("pm2.status.waiting_restart", app=app, restarts=p.restart_time), **details)
        if p.status == "errored":
            return fail(msg("pm2.status.errored", app=app, restarts=p.restart_time), **details)
        if p.status == "launching":
            return warn(msg("pm2.status.launching", app=app), **details)
        return fail(msg("pm2.status.other", app=app, status=p.status), **details)
    if looping:
        p = looping[0]
        details["crash_loop"] = True
        return fail(msg("pm2.status.crash_loop", app=app, unstable=p.unstable_restarts,
                        uptime=(now_ms - (p.pm_uptime or now_ms)) / 1000), **details)
    p = instances[0]
    uptime = described[0]["uptime_s"]
    count = msg("pm2.status.instances", count=len(instances)) if len(instances) > 1 else ""
    return ok(msg("pm2.status.ok", app=app, count=count, pid=p.pid, uptime=_human(uptime), restarts=p.restart_time),
              **details)


#: A PM2 `--time` / `time: true` prefix (`2026-11-26T14:25:04: `) or a log_date_format with an offset
#: (`2026-11-26 14:25:04 +09:00: `). The same shapes checks/parsers/logs.py strips.
_DATED = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,]\d+)?(?:\s?(Z|[+-]\d{2}:?\d{2}))?:\s?", re.ASCII
)
#: Real UTC offsets are whole quarter hours within ±14 h.
_QUARTER_H = 900
_MAX_OFFSET_S = 14 * 3600


def _line_time(line: str) -> tuple[float, bool] | None:
    """(seconds, has_offset): epoch seconds if the stamp has an offset, else the naive stamp read as UTC."""
    m = _DATED.match(line)
    if m is None:
        return None
    try:
        naive = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}")
    except ValueError:
        return None
    zone = m.group(3)
    if zone is None:
        return naive.replace(tzinfo=UTC).timestamp(), False
    if zone == "Z":
        return naive.replace(tzinfo=UTC).timestamp(), True
    sign = -1 if zone[0] == "-" else 1
    hh, mm = int(zone[1:3]), int(zone[-2:])
    return (naive.replace(tzinfo=UTC) - sign * timedelta(hours=hh, minutes=mm)).timestamp(), True


def since_start(text: str, started_s: float, mtime_s: float | None) -> tuple[str, int, bool]:
    """The lines of a log tail written since the app's current start: (kept text, lines dropped, ages known).

    Why timestamps: a log file that changed since the start still holds the lines of the previous run
    above the new ones, and only a line's own stamp (PM2 `--time`, `time: true` or log_date_format) can
    tell them apart. A stamp without an offset is in the target's local time, which the bot does not
    know: its offset is taken from the last stamped line against the file's mtime (that line was written
    when the file last changed), rounded to a quarter hour. Unstamped lines (stack traces) take the age
    of the stamped line above them; lines above the first stamp are kept unless that stamp is old.
    Without any stamp the ages are unknown and the text is kept whole (the caller's whole-file mtime
    rule still applies).
    """
    lines = text.splitlines()
    stamps = [_line_time(line) for line in lines]
    dated = [s for s in stamps if s is not None]
    if not dated:
        return text, 0, False
    offset = 0.0
    if not all(has_offset for _, has_offset in dated):
        if mtime_s is None:
            return text, 0, False
        last_naive = next(t for t, has_offset in reversed(dated) if not has_offset)
        offset = round((last_naive - mtime_s) / _QUARTER_H) * _QUARTER_H
        if abs(offset) > _MAX_OFFSET_S:
            return text, 0, False
    first = dated[0]
    old = (first[0] - (0 if first[1] else offset)) < started_s - 1
    kept: list[str] = []
    for line, stamp in zip(lines, stamps, strict=True):
        if stamp is not None:
            seconds, has_offset = stamp
            old = (seconds - (0 if has_offset else offset)) < started_s - 1
        if not old:
            kept.append(line)
    return "\n".join(kept), len(lines) - len(kept), True


def _human(seconds: object) -> str | Msg:
    """An uptime in the unit that reads best: 90 s, 5 min, 3 h, 2 d (a unit from twice its size)."""
    if not isinstance(seconds, int | float):
        return "?"
    return duration(int(seconds), parts=1, at_least=2)


async def pm2_logs(f: Facts) -> Outcome:
    f.prefetch_app_logs()  # next to `pm2 jlist`, at PM2's default paths; used only if jlist names the same files
    instances = await f.app_instances()
    if not instances:
        raise f.explained_by("pm2.status", msg("pm2.logs.unknown_app", app=f.target.pm2_app))
    app = instances[0]
    paths = tuple(dict.fromkeys(p for p in (app.err_log, app.out_log) if p))
    if not paths:
        return error(msg("pm2.logs.no_files"))
    tails, stats = await asyncio.gather(
        asyncio.gather(*(f.log_tail(p) for p in paths)),
        f.log_stat(paths),
    )
    started_s = (app.pm_uptime or 0) / 1000
    lines: list[str] = []
    known: list[str] = []
    ports: list[int] = []
    unreadable: list[str] = []
    stale: list[str] = []
    before_start = 0
    ages_known: list[str] = []
    for path, result in zip(paths, tails, strict=True):
        if not result.ok:
            unreadable.append(f"{path}: {redact(result.stderr.strip().splitlines()[-1] if result.stderr else '?')}")
            continue
        entry = stats.get(path)
        if app.status == "online" and entry is not None and started_s and entry.mtime < started_s - 1:
            stale.append(path)
            continue
        text = result.stdout
        if app.status == "online" and started_s:
            text, dropped, known_ages = since_start(text, started_s, entry.mtime if entry else None)
            before_start += dropped
            if known_ages:
                ages_known.append(path)
        scan = scan_log(text, from_error_log=(path == app.err_log))
        lines.extend(scan.error_lines)
        known.extend(k for k in scan.known if k not in known)
        ports.extend(p for p in scan.eaddrinuse_ports if p not in ports)
    details: dict[str, object] = {
        "files": list(paths),
        "error_lines": lines[-20:],
        "known": known,
        "eaddrinuse_ports": ports,
        "unreadable": unreadable,
        "unchanged_since_start": stale,
        # Lines of the previous run(s) left out, and the files whose lines carry a time (see since_start).
        "lines_before_start": before_start,
        "dated_files": ages_known,
    }
    if unreadable and len(unreadable) == len(paths):
        raise FactError(msg("pm2.logs.unreadable", files="; ".join(unreadable)), details=details)
    if lines:
        latest = lines[-1]
        tag = f" [{', '.join(known)}]" if known else ""
        return warn(msg("pm2.logs.errors", count=len(lines), tag=tag, latest=latest[:200]), **details)
    if before_start:
        return ok(msg("pm2.logs.clean_since_start", dropped=before_start), **details)
    if stale:
        return ok(msg("pm2.logs.no_new"), **details)
    return ok(msg("pm2.logs.clean"), **details)
