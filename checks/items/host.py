"""wt-host2: the host under the app, and PM2 restarting an app that reads `online`.

host.memory (kernel OOM kills, V8 heap OOM, MemAvailable), host.disk (df of app_dir / PM2 home / nginx's log dirs /
the app's PM2 log dirs when elsewhere, ENOSPC, the biggest PM2 logs), host.fds (EMFILE against /proc/PID/limits),
pm2.restarts (the restart count growing while `online`) and next.static (a standalone server without
`.next/static` / `public` next to it).

Every command joins the checklist's one concurrent round (Facts memoises them; the app's log tails are the very
ones pm2.logs reads). A source that cannot be read (dmesg restricted, another user's /proc/PID/fd) is said in the
details, never guessed: it is no evidence either way.

The previous restart sample (pm2.restarts) is data the caller passes in (`Facts.restart_sample`, filled by
bot.chat.service from its last report of the target), so the check and the diagnosis stay pure functions of their input.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from checks import commands
from checks.details import Pm2Details
from checks.facts import FactError, Facts
from checks.items.base import Outcome, error, fail, ok, warn
from checks.items.pm2 import since_start
from checks.messages import msg
from checks.parsers.host import (
    EMFILE,
    ENOSPC,
    HEAP_OOM,
    UNREADABLE,
    FileSystem,
    OomKill,
    df_problems,
    latest_lines,
    parse_df,
    parse_fd_usage,
    parse_ls_sizes,
    parse_meminfo,
    parse_oom_kills,
    parse_pm2_restarts,
    split_sections,
)
from checks.redact import redact
from checks.transport.base import CommandResult

#: An app log line (ENOSPC, EMFILE, heap OOM) counts when its file changed this recently.
RECENT_S = 1800
#: Kernel OOM kills counted from dmesg within this many seconds (journalctl reads `--since -6h` itself).
KERNEL_WINDOW_S = 6 * 3600
#: pm2.log restart lines within this window: this many, while `online`, is a loop without any earlier sample.
LOOP_WINDOW = timedelta(minutes=10)
LOOP_LINES = 3
#: ... and only while the app's current run is younger than this.
YOUNG_MS = 300_000
PM2_LOG_LINES = 300
_LOOP_STATES = frozenset({"online", "stopping", "launching"})
#: Why PM2 restarts the app, as the summary says it.
_WHY = {"memory": "pm2.restarts.why.memory", "watch": "pm2.restarts.why.watch", "exit": "pm2.restarts.why.exit",
        "unknown": "pm2.restarts.why.unknown"}
#: Processes whose OOM kill is the app's or its build's (`next-server (v15…)` is Next's process title).
_APP_COMMS = ("node", "next", "npm", "next-server")
_LOG_DIRECTIVE = re.compile(r"^\s*(?:error_log|access_log)\s+(/[^\s;]+)", re.MULTILINE)
MAX_NGINX_LOG_DIRS = 4


# -- shared facts -------------------------------------------------------------------------------------------------


async def _clock(f: Facts) -> tuple[float, datetime] | None:
    """The target's clock (epoch, local wall time: PM2's pm2.log stamps are local and naive), or None when `date`
    did not answer. The same `date +%s %z` as nginx_runtime's (wt-nginxrt), so one command serves both."""
    result = await f.run("date", list(commands.DATE_ARGV))
    words = result.stdout.split()
    if not result.ok or len(words) < 2 or not re.fullmatch(r"[+-]\d{4}", words[1]):
        return None
    try:
        epoch = float(words[0])
    except ValueError:
        return None
    sign = -1 if words[1][0] == "-" else 1
    offset = timedelta(hours=int(words[1][1:3]), minutes=int(words[1][3:5])) * sign
    return epoch, datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) + offset


async def _recent_app_logs(f: Facts) -> tuple[list[str], list[str]]:
    """(texts, files) of the app's PM2 log tails changed within RECENT_S (the same reads as pm2.logs)."""
    f.prefetch_app_logs()
    try:
        instances = await f.app_instances()
    except FactError:
        return [], []
    if not instances:
        return [], []
    app = instances[0]
    paths = tuple(dict.fromkeys(p for p in (app.err_log, app.out_log) if p))
    if not paths:
        return [], []
    tails, stats, clock = await asyncio.gather(
        asyncio.gather(*(f.log_tail(p) for p in paths)), f.log_stat(paths), _clock(f))
    now = clock[0] if clock else time.time()
    started_s = (app.pm_uptime or 0) / 1000 if app.status == "online" else 0.0
    texts: list[str] = []
    used: list[str] = []
    for path, result in zip(paths, tails, strict=True):
        entry = stats.get(path)
        if not result.ok or entry is None or entry.mtime < now - RECENT_S:
            continue
        if started_s and entry.mtime < started_s - 1:
            continue  # an online app's file unchanged since its start: what it says is over (as pm2.logs reads it)
        text = since_start(result.stdout, started_s, entry.mtime)[0] if started_s else result.stdout
        texts.append(text)
        used.append(path)
    return texts, used


async def _pm2_home(f: Facts) -> str:
    """PM2_HOME: the target's setting, else the directory above the app's PM2 logs (`<home>/logs/app-out.log`),
    else "" (the login's $PM2_HOME or ~/.pm2, which is right when the bot logs in as the PM2 owner)."""
    if f.target.pm2_home:
        return f.target.pm2_home
    try:
        instances = await f.app_instances()
    except FactError:
        return ""
    for p in instances[:1]:
        for path in (p.out_log, p.err_log):
            if path and posixpath.basename(posixpath.dirname(path)) == "logs":
                return posixpath.dirname(posixpath.dirname(path))
    return ""


async def _pm2_log(f: Facts) -> CommandResult:
    home = await _pm2_home(f)
    return await f.run("pm2.log", commands.pm2_daemon_log(home, PM2_LOG_LINES))


def _lines(lines: list[str]) -> list[str]:
    return [redact(line) for line in lines]


# -- host.memory --------------------------------------------------------------------------------------------------


def _kernel_source(journal: CommandResult, dmesg: CommandResult, uptime: float | None) -> tuple[str, str, list[Any]]:
    """(source, why unreadable, OOM kills): journalctl where it reads the kernel log, else dmesg, else neither."""
    jtext = journal.stdout + journal.stderr
    # wt-modes: `-q` silences "No journal files were found": an empty answer (exit 0) is no proof of a readable
    # journal (seen on a host without journald but with an empty /var/log/journal), so dmesg is asked then.
    if journal.ok and journal.stdout.strip() and not UNREADABLE.search(jtext[:2000]):
        return "journalctl", "", parse_oom_kills(journal.stdout)
    if journal.ok and not jtext.strip():
        jtext = "no output (exit 0)"  # said like "exit N": what the command did, no sentence
    # `sudo -n dmesg` (kernel_log_sudo) prints the whole ring buffer: only its end, as the plain read's `tail` keeps.
    dlines = dmesg.stdout.splitlines()[-commands.DMESG_LINES:]
    dtext = "\n".join(dlines[:20]) + dmesg.stderr
    if dmesg.ok and dmesg.stdout.strip() and not UNREADABLE.search(dtext[:2000]):
        kills = parse_oom_kills("\n".join(dlines))
        if uptime is not None:
            kills = [k for k in kills if k.since_boot is None or k.since_boot >= uptime - KERNEL_WINDOW_S]
        return "dmesg", "", kills
    said = [f"{name}: " + next((ln.strip() for ln in text.splitlines() if UNREADABLE.search(ln)),
                                 text.strip()[:200] if result.ok else f"exit {result.exit_status}")
            for name, text, result in (("journalctl", jtext, journal), ("dmesg", dtext, dmesg))]
    return "", "; ".join(s[:200] for s in said), []


def _kill_epoch(kill: OomKill, now: float, uptime: float | None) -> float | None:
    """When the kernel killed it: journalctl's own stamp, or dmesg's seconds since boot against /proc/uptime."""
    if kill.at is not None:
        return kill.at
    if kill.since_boot is not None and uptime is not None:
        return now - (uptime - kill.since_boot)
    return None


async def host_memory(f: Facts) -> Outcome:
    meminfo, journal, dmesg, uid, (logs, files), clock = await asyncio.gather(
        f.run("meminfo", list(commands.MEMINFO_ARGV)),
        f.run("journalctl -k", list(commands.JOURNAL_KERNEL_ARGV)),
        f.run("dmesg", commands.dmesg(f.target)),
        f.run("id -u", commands.app_uid(f.target)),
        _recent_app_logs(f),
        _clock(f),
    )
    mem = parse_meminfo(meminfo.stdout) if meminfo.ok else None
    if mem is None:
        return error(msg("host.memory.unreadable", error=(meminfo.stderr.strip() or "?")[:200]))
    source, why, seen = _kernel_source(journal, dmesg, mem.uptime_s)
    # wt-modes: the kernel log is the machine's. A kill of another user's process (the line's UID) is not this app's
    # evidence; without the app's uid, or a uid in the line, the kill stays counted as before.
    app_uid = int(uid.stdout.strip()) if uid.ok and uid.stdout.strip().isdigit() else None
    kills = [k for k in seen if app_uid is None or k.uid is None or k.uid == app_uid]
    others = len(seen) - len(kills)
    heap = _lines(latest_lines(logs, "heap", HEAP_OOM))
    # A kill before the app's current start is history once the app is back online: a warning, not the cause.
    try:
        instances = await f.app_instances()
    except FactError:
        instances = ()
    up = [p for p in instances if p.status == "online" and p.pm_uptime]
    started = min((p.pm_uptime or 0) / 1000 for p in up) if up and len(up) == len(instances) else None
    now = clock[0] if clock else time.time()
    ages = [_kill_epoch(k, now, mem.uptime_s) for k in kills]
    current = [k for k, at in zip(kills, ages, strict=True) if started is None or at is None or at >= started - 60]
    details: dict[str, Any] = {
        "mem_available_mb": mem.available_kb // 1024, "mem_total_mb": mem.total_kb // 1024,
        "swap_free_mb": mem.swap_free_kb // 1024, "kernel_log": source or "unreadable",
        "oom_kills": [{"pid": k.pid, "comm": k.comm, "uid": k.uid, "app": k.comm.startswith(_APP_COMMS),
                       "line": redact(k.line)} for k in kills[-5:]],
        "app_uid": app_uid, "other_users_oom_kills": others,
        "heap_oom_lines": heap, "log_files": files,
    }
    if why:
        details["kernel_log_unreadable"] = why
    avail = msg("host.memory.numbers", available=mem.available_kb // 1024, total=mem.total_kb // 1024,
                swap=mem.swap_free_kb // 1024)
    if current:
        last = current[-1]
        details["kind"] = "kernel"
        return fail(msg("host.memory.oom_kernel", count=len(current), comm=last.comm, pid=last.pid, source=source,
                        numbers=avail), **details)
    if heap:
        details["kind"] = "heap"
        return fail(msg("host.memory.oom_heap", line=heap[-1], numbers=avail), **details)
    if kills:
        last = kills[-1]
        details["before_app_start"] = True
        return warn(msg("host.memory.oom_earlier", count=len(kills), comm=last.comm, pid=last.pid, source=source,
                        numbers=avail), **details)
    if not source:
        return ok(msg("host.memory.ok_no_kernel_log", numbers=avail, why=why), **details)
    return ok(msg("host.memory.ok", numbers=avail, source=source), **details)


# -- host.disk ----------------------------------------------------------------------------------------------------


async def _nginx_log_dirs(f: Facts) -> list[str]:
    try:
        dump = await f.nginx_dump()
    except FactError:
        return []
    if not dump.ok:
        return []
    dirs = dict.fromkeys(posixpath.dirname(m.group(1)) for m in _LOG_DIRECTIVE.finditer(dump.stdout[:2_000_000]))
    return [d for d in dirs if d and d != "/dev"][:MAX_NGINX_LOG_DIRS]


async def _app_log_dirs(f: Facts, home: str) -> tuple[list[FileSystem], list[tuple[str, int]], list[str]]:
    """wt-host3: (file systems, biggest files as full paths, dirs) of the app's PM2 log files outside
    `<PM2 home>/logs` (`error_file` / `out_file` elsewhere): the df of the PM2 home does not see those, and a small
    log partition filled by unrotated logs is the usual full disk. Nothing to run (no command) in the usual layout,
    so the common case adds no round trip after jlist."""
    try:
        instances = await f.app_instances()
    except FactError:
        return [], [], []
    usual = f"{home.rstrip('/')}/logs" if home else ""
    dirs = list(dict.fromkeys(posixpath.dirname(p) for app in instances[:1] for p in (app.out_log, app.err_log)
                              if p and posixpath.dirname(p) != usual))[:commands.MAX_LOG_DIRS]
    if not dirs:
        return [], [], []
    result = await f.run("df pm2 logs", commands.log_dirs_usage(dirs))
    sections = split_sections(result.stdout)
    biggest = [(f"{d}/{name}", size) for d in dirs for name, size in parse_ls_sizes(sections.get(f"logs {d}", ""))]
    return parse_df(sections.get("df", "")), biggest, dirs


async def host_disk(f: Facts) -> Outcome:
    t = f.target
    home, nginx_dirs = await asyncio.gather(_pm2_home(f), _nginx_log_dirs(f))
    paths = [t.app_dir, *(nginx_dirs or ["/var/log/nginx"])]
    result, (logs, _files), (log_fss, log_biggest, log_dirs) = await asyncio.gather(
        f.run("df", commands.disk_usage(home, paths)), _recent_app_logs(f), _app_log_dirs(f, home))
    if result.exit_status == 127:
        raise FactError(msg("host.disk.no_df"), kind="missing_binary")
    sections = split_sections(result.stdout)
    df_text = sections.get("df", "")
    filesystems = parse_df(df_text)
    if not filesystems:
        return error(msg("host.disk.unreadable", error=(df_problems(df_text) or [result.stderr.strip() or "?"])[0]))
    labels = ["pm2_home", "app_dir", *(["nginx_logs"] * len(paths[1:]))]
    by_mount: dict[str, tuple[FileSystem, list[str]]] = {}
    mapped = len(filesystems) == len(labels)
    for i, fs in enumerate(filesystems):
        entry = by_mount.setdefault(fs.mount, (fs, []))
        if mapped and labels[i] not in entry[1]:
            entry[1].append(labels[i])
    for fs in log_fss:
        entry = by_mount.setdefault(fs.mount, (fs, []))
        if "pm2_logs" not in entry[1]:
            entry[1].append("pm2_logs")
    logs_key = next((k for k in sections if k.startswith("logs ")), "")
    biggest = sorted([*parse_ls_sizes(sections.get(logs_key, "")), *log_biggest], key=lambda e: -e[1])[:3]
    enospc = _lines(latest_lines(logs, "enospc", ENOSPC))
    details: dict[str, Any] = {
        "filesystems": [{"mount": fs.mount, "use_percent": fs.use_percent, "available_mb": fs.available_kb // 1024,
                         "size_mb": fs.size_kb // 1024, "holds": holds} for fs, holds in by_mount.values()],
        "biggest_pm2_logs": [{"file": name, "bytes": size} for name, size in biggest],
        "pm2_logs_dir": logs_key[5:], "app_log_dirs": log_dirs, "enospc_lines": enospc[-3:],
        "warn_percent": t.disk_warn_percent, "fail_percent": t.disk_fail_percent,
        "df_problems": df_problems(df_text),
    }
    worst = max((fs for fs, _ in by_mount.values()), key=lambda fs: fs.use_percent)
    big = msg("host.disk.biggest", file=biggest[0][0], mb=round(biggest[0][1] / 1048576, 1)) if biggest else ""
    say = {"mount": worst.mount, "percent": worst.use_percent, "free": worst.available_kb // 1024, "biggest": big}
    if enospc:
        details["enospc"] = True
        return fail(msg("host.disk.enospc", line=enospc[-1], **say), **details)
    if worst.use_percent >= t.disk_fail_percent:
        return fail(msg("host.disk.full", limit=t.disk_fail_percent, **say), **details)
    if worst.use_percent >= t.disk_warn_percent:
        return warn(msg("host.disk.almost_full", limit=t.disk_warn_percent, **say), **details)
    return ok(msg("host.disk.ok", count=len(by_mount), **say), **details)


# -- host.fds -----------------------------------------------------------------------------------------------------


async def host_fds(f: Facts) -> Outcome:
    f.prefetch_app_fds()  # the read for the processes guessed before `pm2 jlist` answers (wt-perf)
    try:
        tree = await f.app_tree()
    except FactError as exc:
        raise f.explained_by("pm2.status", msg("host.fds.no_app", app=f.target.pm2_app)) from exc
    pids = sorted(tree.pids)
    if not pids:
        raise f.explained_by("pm2.status", msg("host.fds.no_app", app=f.target.pm2_app))
    result, (logs, files) = await asyncio.gather(f.fd_usage(pids), _recent_app_logs(f))
    usage = parse_fd_usage(result.stdout)
    emfile = _lines(latest_lines(logs, "emfile", EMFILE))
    details: dict[str, Any] = {
        "processes": [{"pid": u.pid, "open_fds": u.open_fds, "limit": u.soft_limit} for u in usage],
        "emfile_lines": emfile, "log_files": files,
    }
    readable = [u for u in usage if u.open_fds is not None and u.soft_limit]
    top = max(readable, key=lambda u: (u.open_fds or 0) / (u.soft_limit or 1), default=None)
    where = msg("host.fds.usage", pid=top.pid, open=top.open_fds, limit=top.soft_limit) if top else \
        msg("host.fds.usage_unreadable")
    if emfile:
        return fail(msg("host.fds.emfile", line=emfile[-1], usage=where), **details)
    if top is not None and top.soft_limit and (top.open_fds or 0) >= 0.9 * top.soft_limit:
        return warn(msg("host.fds.near_limit", usage=where), **details)
    return ok(msg("host.fds.ok", usage=where), **details)


# -- pm2.restarts -------------------------------------------------------------------------------------------------


def restart_sample(details: Pm2Details, at: float) -> dict[str, Any] | None:
    """The sample pm2.restarts compares with next time, from a pm2.status result's details (bot.chat.service
    keeps it)."""
    counts = {str(i.pm_id): i.restarts for i in details.instances if i.pm_id is not None}
    return {"at": at, "restarts": counts} if counts else None


async def pm2_restarts(f: Facts) -> Outcome:
    # pm2.log and the clock do not depend on jlist when pm2_home is set: all three in the same round.
    log_task = asyncio.ensure_future(_pm2_log(f))
    clock_task = asyncio.ensure_future(_clock(f))
    try:
        instances = await f.app_instances()
    except BaseException:
        log_task.cancel()
        clock_task.cancel()
        await asyncio.gather(log_task, clock_task, return_exceptions=True)
        raise
    app = f.target.pm2_app
    # A loop passes through stopping and launching between its `online`s: a look may land on either.
    moving = [p for p in instances if p.status in _LOOP_STATES]
    if not instances or len(moving) != len(instances):
        log_task.cancel()
        clock_task.cancel()
        await asyncio.gather(log_task, clock_task, return_exceptions=True)
        raise f.explained_by("pm2.status", msg("pm2.restarts.not_online", app=app))
    log, clock = await asyncio.gather(log_task, clock_task)
    pm_ids = frozenset(p.pm_id for p in instances)
    reasons = parse_pm2_restarts(log.stdout, app, pm_ids) if log.ok else []
    now_local = clock[1] if clock else None
    recent = [r for r in reasons if now_local and r.at and r.at >= now_local - LOOP_WINDOW]
    sample = f.restart_sample
    restarts = {str(p.pm_id): p.restart_time for p in instances}
    delta: int | None = None
    since_prev: list[Any] = []
    seconds = None
    if sample and isinstance(sample.get("restarts"), dict) and set(sample["restarts"]) == set(restarts):
        delta = sum(max(0, restarts[k] - int(v)) for k, v in sample["restarts"].items())
        if any(restarts[k] < int(v) for k, v in sample["restarts"].items()):
            delta = None  # the counter was reset (pm2 reset / delete + start): not comparable
        seconds = max(0.0, time.time() - float(sample.get("at") or 0))
        if now_local is not None:
            since_prev = [r for r in reasons if r.at and r.at >= now_local - timedelta(seconds=seconds + 2)]
    first = instances[0]
    kinds = Counter(r.kind for r in (since_prev or recent))
    # What PM2 says triggered the restarts wins over the exits they cause.
    kind = next((k for k in ("memory", "watch", "exit") if kinds[k]), "") or (
        "memory" if first.max_memory_restart and first.memory and first.memory >= 0.8 * first.max_memory_restart
        else "unknown")
    details: dict[str, Any] = {
        "restarts": sum(restarts.values()), "previous": sample, "delta": delta,
        "seconds_since_previous": round(seconds, 1) if seconds is not None else None,
        "recent_restart_lines": len(recent), "kind": kind,
        "max_memory_restart": first.max_memory_restart, "memory": first.memory, "watch": first.watch,
        "reason_lines": _lines([r.line for r in (since_prev or recent or reasons)][-3:]),
        "pm2_log": "read" if log.ok else redact((log.stderr.strip().splitlines() or ["?"])[-1][:200]),
    }
    # PM2's lines alone: only as many as the counter holds (a `pm2 delete` + start resets both the counter and the
    # story), and only while the app's current run is young (a loop that stopped leaves its lines behind).
    now_ms = (clock[0] if clock else time.time()) * 1000  # pm_uptime is the target's clock
    young = any(p.status != "online" or not p.pm_uptime or now_ms - p.pm_uptime < YOUNG_MS
                for p in instances)
    by_lines = young and min(len(recent), details["restarts"]) >= LOOP_LINES
    looping = (delta is not None and (delta >= 2 or (delta >= 1 and bool(since_prev)))) or by_lines
    if looping:
        details["loop"] = True
        count = delta if delta else len(recent)
        window = f"{seconds:.0f} s" if delta else f"{int(LOOP_WINDOW.total_seconds() // 60)} min"
        return fail(msg("pm2.restarts.loop", app=app, count=count, window=window, why=msg(_WHY[kind])),
                    **details)
    if delta is None:
        return ok(msg("pm2.restarts.ok_first", app=app, restarts=details["restarts"], recent=len(recent)), **details)
    return ok(msg("pm2.restarts.ok", app=app, restarts=details["restarts"], delta=delta), **details)


# -- next.static --------------------------------------------------------------------------------------------------


def _standalone_paths(base: str, root: str) -> dict[str, str]:
    return {"static": f"{root}/.next/static", "public": f"{root}/public",
            "built_static": f"{base}/.next/static", "app_public": f"{base}/public"}


async def next_static(f: Facts) -> Outcome:
    t = f.target
    base = t.app_dir.rstrip("/")
    # The usual layout (`<app_dir>/.next/standalone/server.js`) is looked at in the same round as jlist.
    usual = _standalone_paths(base, f"{base}/.next/standalone")
    instances, config, usual_stat = await asyncio.gather(
        f.app_instances(), f.run("next.config", commands.next_config_grep(t)),
        f.run("stat standalone", commands.file_stat(tuple(usual.values()))))
    declared = [ln.strip() for ln in config.stdout.splitlines() if ln.strip()] if config.exit_status == 0 else []
    server = next((p.exec_path for p in instances if p.exec_path and p.exec_path.endswith("/server.js")
                   and "/.next/standalone" in p.exec_path), None)
    if server is None:
        if declared:
            return ok(msg("next.static.standalone_not_run", config=declared[0]), standalone=True, config=declared)
        return ok(msg("next.static.not_standalone"), standalone=False)
    root = posixpath.dirname(server)
    wanted = _standalone_paths(base, root)
    result = usual_stat if wanted == usual else await f.run(
        f"stat {root}", commands.file_stat(tuple(wanted.values())))
    present = {line.split("|", 1)[0] for line in result.stdout.splitlines()}
    has = {k: v in present for k, v in wanted.items()}
    missing = [wanted[k] for k in ("static", "public") if not has[k] and (k == "static" or has["app_public"])]
    details: dict[str, Any] = {"standalone": True, "server": server, "config": declared, "present": has,
                               "missing": missing}
    if missing:
        return fail(msg("next.static.missing", server=server, missing=", ".join(missing)), **details)
    return ok(msg("next.static.ok", server=server), **details)
