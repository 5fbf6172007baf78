"""Parse the host facts wt-host2 reads: /proc/meminfo, `df -P -k`, `ls -lS`, kernel OOM lines, /proc/PID/limits,
and PM2's own log (why it restarted the app).

Pure functions over bounded text (the commands in checks/commands.py cap every read), so the unit tests feed them
captured outputs. A line that does not parse is skipped, never guessed: a check says what it could not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

# -- /proc/meminfo + /proc/uptime ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemInfo:
    total_kb: int
    available_kb: int
    swap_free_kb: int
    uptime_s: float | None


_MEM_LINE = re.compile(r"^(MemTotal|MemAvailable|SwapFree):\s+(\d+)\s*kB", re.MULTILINE)
_UPTIME = re.compile(r"^(\d+(?:\.\d+)?)\s+\d+(?:\.\d+)?\s*$", re.MULTILINE)


def parse_meminfo(text: str) -> MemInfo | None:
    """`head -c 8192 /proc/meminfo /proc/uptime` (head prints `==> file <==` headers between them)."""
    values = {m.group(1): int(m.group(2)) for m in _MEM_LINE.finditer(text)}
    if "MemTotal" not in values or "MemAvailable" not in values:
        return None
    up = _UPTIME.search(text)
    return MemInfo(total_kb=values["MemTotal"], available_kb=values["MemAvailable"],
                   swap_free_kb=values.get("SwapFree", 0), uptime_s=float(up.group(1)) if up else None)


# -- df -P -k ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileSystem:
    source: str
    size_kb: int
    used_kb: int
    available_kb: int
    use_percent: int
    mount: str


_DF_LINE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(/.*)$")


def parse_df(text: str) -> list[FileSystem]:
    """`df -P -k` lines in the order df printed them: one per argument that exists (the same mount may repeat)."""
    seen: list[FileSystem] = []
    for line in text.splitlines():
        m = _DF_LINE.match(line.strip())
        if m is None:
            continue
        fs = FileSystem(source=m.group(1), size_kb=int(m.group(2)), used_kb=int(m.group(3)),
                        available_kb=int(m.group(4)), use_percent=int(m.group(5)), mount=m.group(6))
        seen.append(fs)
    return seen


def df_problems(text: str) -> list[str]:
    """df's own complaints (`df: /x: No such file or directory`), shown as they are."""
    return [line.strip()[:200] for line in text.splitlines() if line.startswith("df: ")]


# `-rw-r--r-- 1 user group 123456 Dec  6 20:00 app-out.log`
_LS_LINE = re.compile(r"^[-l][rwxsStT-]{9}\S*\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(.+)$")


def parse_ls_sizes(text: str) -> list[tuple[str, int]]:
    """(name, bytes) of the regular files in `ls -lS` output, biggest first."""
    out: list[tuple[str, int]] = []
    for line in text.splitlines():
        m = _LS_LINE.match(line.strip())
        if m is not None:
            out.append((m.group(2), int(m.group(1))))
    return out


def split_sections(text: str) -> dict[str, str]:
    """`== name` headed sections of a script's output -> {name: body}."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


# -- kernel OOM kills ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OomKill:
    pid: int
    comm: str
    line: str
    #: dmesg: seconds since boot; journalctl: None (its `--since -6h` already bounds the age)
    since_boot: float | None
    #: journalctl `-o short-iso`: the line's epoch seconds
    at: float | None = None
    #: wt-modes: the victim's uid (`UID:n` / `uid=n`), None when the kernel's line has none
    uid: int | None = None


_OOM_KILLED = re.compile(r"(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]{1,64})\)")
_OOM_TASK = re.compile(r"oom-kill:.*?\btask=([^,\s]{1,64}),pid=(\d+)")
_OOM_UID = re.compile(r"(?:\bUID:|,uid=)(\d+)")
_DMESG_STAMP = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\]")
_ISO_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}))\s")
#: What a kernel log reader prints when it may not read: dmesg_restrict, no journal access, no journal.
UNREADABLE = re.compile(r"Operation not permitted|Permission denied|No journal files|not seeing messages from other "
                        r"users|insufficient permissions|command not found|not found|"
                        r"a password is required|not allowed to execute|not in the sudoers", re.IGNORECASE)


def parse_oom_kills(text: str) -> list[OomKill]:
    """Kernel OOM-killer victims, oldest first (one per pid: "oom-kill:" and "Killed process" name the same one)."""
    kills: dict[int, OomKill] = {}
    for raw in text.splitlines():
        line = raw.strip()
        stamp = _DMESG_STAMP.match(line)
        since_boot = float(stamp.group(1)) if stamp else None
        m = _OOM_KILLED.search(line)
        if m is not None:
            pid, comm = int(m.group(1)), m.group(2)
        else:
            t = _OOM_TASK.search(line)
            if t is None:
                continue
            pid, comm = int(t.group(2)), t.group(1)
        iso = _ISO_STAMP.match(line)
        at = None
        if iso is not None:
            try:
                at = datetime.fromisoformat(iso.group(1).replace(",", ".")).timestamp()
            except ValueError:
                at = None
        u = _OOM_UID.search(line)
        uid = int(u.group(1)) if u else None
        seen = kills.get(pid)
        if seen is None:
            kills[pid] = OomKill(pid=pid, comm=comm, line=line[:300], since_boot=since_boot, at=at, uid=uid)
        elif seen.uid is None and uid is not None:
            kills[pid] = replace(seen, uid=uid)
    return list(kills.values())


# -- /proc/PID/limits + fd counts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FdUse:
    pid: int
    soft_limit: int | None  # None: unlimited or unreadable
    open_fds: int | None  # None: unreadable (another user's process)


_LIMIT = re.compile(r"^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s+files")
_FDS = re.compile(r"^fds (\d+)$")


def parse_fd_usage(text: str) -> list[FdUse]:
    out: list[FdUse] = []
    for name, body in split_sections(text).items():
        if not name.isdigit():
            continue
        soft: int | None = None
        fds: int | None = None
        for line in body.splitlines():
            lm = _LIMIT.match(line.strip())
            if lm is not None and lm.group(1) != "unlimited":
                soft = int(lm.group(1))
            fm = _FDS.match(line.strip())
            if fm is not None:
                fds = int(fm.group(1))
        out.append(FdUse(pid=int(name), soft_limit=soft, open_fds=fds))
    return out


# -- PM2's own log: why it restarted the app ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestartReason:
    kind: str  # "memory" | "watch" | "exit"
    at: datetime | None  # the line's local, naive stamp (PM2 writes the target's local time)
    line: str


_PM2_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}):")


def parse_pm2_restarts(text: str, app: str, pm_ids: frozenset[int]) -> list[RestartReason]:
    """The lines of pm2.log (PM2 6/7 wording, lib/Worker.js, lib/Watcher.js, lib/God.js) that restart `app`."""
    memory = re.compile(r"Process (\d+) restarted because it exceeds --max-memory-restart value")
    watch = re.compile(r"Change detected on path .* for app (\S+) - restarting")
    # `exited with code [0]` is PM2's own stop of the app (a watch or memory restart), not a crash.
    exited = re.compile(r"App \[(.+):(\d+)\] exited with code \[(?!0\])")
    out: list[RestartReason] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        kind = ""
        m = memory.search(line)
        if m is not None and int(m.group(1)) in pm_ids:
            kind = "memory"
        w = watch.search(line)
        if w is not None and w.group(1) == app:
            kind = "watch"
        e = exited.search(line)
        if e is not None and e.group(1) == app and int(e.group(2)) in pm_ids:
            kind = "exit"
        if not kind:
            continue
        stamp = _PM2_STAMP.match(line)
        at = None
        if stamp is not None:
            try:
                at = datetime.fromisoformat(f"{stamp.group(1)}T{stamp.group(2)}")
            except ValueError:
                at = None
        out.append(RestartReason(kind=kind, at=at, line=line[:300]))
    return out


# -- target-side log lines: ENOSPC, EMFILE, V8 heap OOM ---------------------------------------------------------

ENOSPC = re.compile(r"\bENOSPC\b|No space left on device")
EMFILE = re.compile(r"\bEMFILE\b|Too many open files")
HEAP_OOM = re.compile(r"JavaScript heap out of memory|Reached heap limit|FATAL ERROR: .{0,80}Allocation failed")


#: Other reasons an app dies, as it logs them: a later one of these means the earlier heap/disk/fd line is history.
OTHER_CRASH = re.compile(r"Could not find a (?:production|valid) build|EADDRINUSE|Cannot find module|MODULE_NOT_FOUND|"
                         r"SyntaxError|ReferenceError|TypeError")
_SIGNATURES = (("heap", HEAP_OOM), ("enospc", ENOSPC), ("emfile", EMFILE), ("other", OTHER_CRASH))


def last_signature(text: str) -> str:
    """Which known way of dying the log says last ("heap", "enospc", "emfile", "other", or "")."""
    last = ""
    for line in text.splitlines():
        head = line[:4096]
        for kind, pattern in _SIGNATURES:
            if pattern.search(head):
                last = kind
                break
    return last


def latest_lines(texts: list[str], kind: str, pattern: re.Pattern[str], limit: int = 3) -> list[str]:
    """`pattern`'s lines from each log whose last known way of dying is `kind` (an app that died of something
    else since keeps the old lines in its log: they are no evidence of what is wrong now)."""
    out: list[str] = []
    for text in texts:
        if last_signature(text) == kind:
            out += matching_lines(text, pattern, limit)
    return out[-limit:]


def matching_lines(text: str, pattern: re.Pattern[str], limit: int = 3) -> list[str]:
    """The last `limit` lines matching `pattern`, cut to 300 characters (the caller redacts them)."""
    hits = [line.strip()[:300] for line in text.splitlines() if pattern.search(line[:4096])]
    return hits[-limit:]
