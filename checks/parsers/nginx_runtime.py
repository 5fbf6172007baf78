"""What the *running* nginx is, as opposed to the config on disk: version, (re)load time, recent error log.

Why: `nginx -T` shows the files on disk, but nginx serves what it loaded at its last (re)load. A site fixed on
disk and never reloaded passes every config check while the public probe fails; a broken file on disk is
harmless until the next reload. So we read, with no extra tool on the target:

* `nginx -V` (stderr): the version (1.29.7 changed the `proxy_http_version` default to 1.1) and the
  compiled-in paths (`--prefix`, `--error-log-path`, `--pid-path`) used when the config does not name them;
* `ps -C nginx -o pid=,ppid=,etimes=,args=` and `date '+%s %z'`: the master and its current workers with
  their ages in seconds. A reload starts new workers, so the oldest current worker (one that is not "shutting
  down") started at the last successful (re)load; without workers, the master's start;
* the error log files the config names (`tail -c`), classified into the failures they are evidence of.

Pure functions over text, tested against captured outputs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from checks.parsers import ParseError
from checks.parsers.nginx import _build, _Stmt, _tokens, split_dump
from checks.redact import redact

#: Since this version nginx proxies with HTTP/1.1 by default (ngx_http_proxy_module: "Since 1.29.7").
HTTP11_DEFAULT_SINCE = (1, 29, 7)

#: How much of each error log is read, and how far back a line may be to count as "recent".
ERROR_LOG_BYTES = 65536
ERROR_LOG_WINDOW_S = 900
MAX_LINE = 300
#: The load time is known to ±1 s (process ages and the clock are whole seconds): a line up to this much older
#: than it may come from the new workers already.
LOAD_SLACK_S = 2

# ------------------------------------------------------------------------------------------------ nginx -V

_VERSION = re.compile(r"nginx version: \S*?/(?P<v>\d+\.\d+\.\d+)")
_CONFIGURE_ARG = re.compile(r"--(?P<name>prefix|error-log-path|pid-path|conf-path)=(?P<value>\S+)")


@dataclass(frozen=True, slots=True)
class NginxBuild:
    """`nginx -V`: version and the compiled-in defaults the config may leave out."""

    version: tuple[int, int, int] | None
    version_text: str
    prefix: str = "/usr/share/nginx/"
    error_log_path: str = "/var/log/nginx/error.log"
    pid_path: str = "/run/nginx.pid"

    @property
    def http11_default(self) -> bool:
        return self.version is not None and self.version >= HTTP11_DEFAULT_SINCE


def parse_nginx_v(text: str) -> NginxBuild:
    """Parse `nginx -V` output (it writes to stderr); ParseError when no version line is there."""
    match = _VERSION.search(text)
    if match is None:
        raise ParseError("no 'nginx version:' line in nginx -V output")
    major, minor, patch = (int(p) for p in match["v"].split("."))
    args = {m["name"]: m["value"] for m in _CONFIGURE_ARG.finditer(text)}
    prefix = args.get("prefix", "/usr/share/nginx")
    prefix = prefix if prefix.endswith("/") else prefix + "/"

    def under_prefix(value: str | None, default: str) -> str:
        if value is None:
            return default
        return value if value.startswith("/") else posixpath.join(prefix, value)

    return NginxBuild(
        version=(major, minor, patch),
        version_text=match["v"],
        prefix=prefix,
        error_log_path=under_prefix(args.get("error-log-path"), "/var/log/nginx/error.log"),
        pid_path=under_prefix(args.get("pid-path"), "/run/nginx.pid"),
    )


# ------------------------------------------------------------------------------------- paths from the dump


@dataclass(frozen=True, slots=True)
class RuntimePaths:
    """The files the running nginx writes: its error logs and its pid file."""

    error_logs: tuple[str, ...]
    pid_file: str
    worker_connections: int | None = None
    worker_connections_at: str = ""


def _walk(stmts: Iterable[_Stmt]) -> Iterable[_Stmt]:
    for stmt in stmts:
        yield stmt
        if stmt.block:
            yield from _walk(stmt.block)


def runtime_paths(dump: str, build: NginxBuild) -> RuntimePaths:
    """Every file `error_log` names in any dumped file (plus the compiled-in one when the main context has
    none: nginx then logs there too), and the `pid` file. Not files: `stderr`, `syslog:`, `memory:`."""
    files = split_dump(dump)
    logs: list[str] = []
    pid = ""
    main_has_log = False
    workers: int | None = None
    workers_at = ""
    for number, (path, content) in enumerate(files):
        top = _build(_tokens(content, path), path)
        if number == 0:
            main_has_log = any(s.name == "error_log" for s in top)
        for stmt in _walk(top):
            if stmt.name == "error_log" and stmt.args:
                target = stmt.args[0]
                if target == "stderr" or target.startswith(("syslog:", "memory:")) or target == "/dev/null":
                    continue
                logs.append(target if target.startswith("/") else posixpath.join(build.prefix, target))
            elif stmt.name == "pid" and stmt.args and number == 0:
                value = stmt.args[0]
                pid = value if value.startswith("/") else posixpath.join(build.prefix, value)
            elif stmt.name == "worker_connections" and stmt.args and stmt.args[0].isdigit():
                workers, workers_at = int(stmt.args[0]), stmt.where
    if not main_has_log:
        logs.insert(0, build.error_log_path)
    return RuntimePaths(error_logs=tuple(dict.fromkeys(logs)), pid_file=pid or build.pid_path,
                        worker_connections=workers, worker_connections_at=workers_at)


# ----------------------------------------------------------------------------------- processes, load time


@dataclass(frozen=True, slots=True)
class NginxProc:
    pid: int
    ppid: int
    age_s: int
    role: str  # "master", "worker", "old_worker" (shutting down), "other" (cache manager/loader)


def _role(args: str) -> str:
    if "master process" in args:
        return "master"
    if "worker process" in args:
        return "old_worker" if "shutting down" in args else "worker"
    return "other"


def ps_clock(text: str) -> int | None:
    """The epoch seconds `date +%s` printed before the `ps` rows (commands.nginx_ps); None when absent."""
    first = text.lstrip().split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


def parse_nginx_ps(text: str) -> list[NginxProc]:
    """`ps -C nginx -o pid=,ppid=,etimes=,args=` rows; malformed lines (and the clock line) are skipped."""
    out: list[NginxProc] = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
            continue
        out.append(NginxProc(int(parts[0]), int(parts[1]), int(parts[2]), _role(parts[3] if len(parts) > 3 else "")))
    return out


@dataclass(frozen=True, slots=True)
class TargetClock:
    """The target's own `date '+%s %z'`: its now and its UTC offset (nginx's error log is in local time)."""

    now: int
    offset_s: int


def parse_date(text: str) -> TargetClock:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not re.fullmatch(r"[+-]\d{4}", parts[1]):
        raise ParseError(f"unexpected date output: {text.strip()[:80]!r}")
    sign = -1 if parts[1][0] == "-" else 1
    offset = sign * (int(parts[1][1:3]) * 3600 + int(parts[1][3:5]) * 60)
    return TargetClock(now=int(parts[0]), offset_s=offset)


@dataclass(frozen=True, slots=True)
class LoadTime:
    master: int
    loaded_at: int  # epoch seconds on the target's clock
    source: str  # "workers" or "master"
    workers: tuple[int, ...] = ()


def load_time(procs: list[NginxProc], master: int | None, clock: TargetClock) -> LoadTime | None:
    """When the running nginx last (re)loaded its config; None when its master is not among `procs`.

    `master` is the pid file's content; None (unreadable) is accepted only when exactly one master runs."""
    masters = [p for p in procs if p.role == "master"]
    chosen = next((p for p in masters if p.pid == master), None) if master else (
        masters[0] if len(masters) == 1 else None)
    if chosen is None:
        return None
    workers = [p for p in procs if p.ppid == chosen.pid and p.role == "worker"]
    if workers:
        return LoadTime(chosen.pid, clock.now - max(w.age_s for w in workers), "workers",
                        tuple(sorted(w.pid for w in workers)))
    return LoadTime(chosen.pid, clock.now - chosen.age_s, "master")


def iso(epoch: int, offset_s: int = 0) -> str:
    """Epoch seconds as the target's local time, for humans (`2026-12-06 19:46:35 +0000`)."""
    tz = timezone(timedelta(seconds=offset_s))
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M:%S %z")


# ---------------------------------------------------------------------------------------------- error log

_LOG_LINE = re.compile(r"^(?P<ts>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>[a-z]+)\] (?P<rest>.*)$")
_PID = re.compile(r"^(?P<pid>\d+)#\d+: ")
_TAIL_HEADER = re.compile(r"^==> (?P<path>.+) <==$")
_UPSTREAM = re.compile(r'upstream: "(?:[a-z]+://)?(?P<addr>\[[0-9A-Fa-f:.]+\]:\d+|[^/":]+:\d+|unix:[^"]+?)(?:/[^"]*)?"')

#: (kind, pattern) in priority order; the first match classifies a line.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("worker_connections", re.compile(r"\d+ worker_connections are not enough")),
    ("too_many_open_files", re.compile(r"\(24: Too many open files\)")),
    ("upstream_refused", re.compile(r"\(111: Connection refused\) while connecting to upstream")),
    ("upstream_timeout", re.compile(r"upstream timed out \(110: Connection timed out\)|"
                                    r"\(110: Connection timed out\) while connecting to upstream")),
    ("upstream_closed", re.compile(r"upstream prematurely closed connection")),
    ("ssl_handshake", re.compile(r"SSL_do_handshake\(\) failed|while SSL handshaking|"
                                 r"no \"ssl_certificate\" is defined")),
    ("body_too_large", re.compile(r"client intended to send too large body")),
)

#: The kinds that say nginx itself is out of connections (a cause of their own).
CAPACITY_KINDS = frozenset({"worker_connections", "too_many_open_files"})


@dataclass(frozen=True, slots=True)
class ErrorLine:
    file: str
    at: int  # epoch seconds
    level: str
    kind: str  # one of _KINDS, or "other"
    text: str  # redacted, cut to MAX_LINE
    upstream: str = ""


@dataclass(frozen=True, slots=True)
class ErrorLog:
    lines: tuple[ErrorLine, ...]
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> reason

    def of(self, *kinds: str) -> list[ErrorLine]:
        return [ln for ln in self.lines if ln.kind in kinds]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ln in self.lines:
            out[ln.kind] = out.get(ln.kind, 0) + 1
        return out


_LEVELS = frozenset({"emerg", "alert", "crit", "error", "warn"})


def classify(message: str) -> str:
    return next((kind for kind, pattern in _KINDS if pattern.search(message)), "other")


def parse_error_log(stdout: str, stderr: str, files: tuple[str, ...], clock: TargetClock, *,
                    since: int | None = None, workers: frozenset[int] = frozenset(),
                    window_s: int = ERROR_LOG_WINDOW_S) -> ErrorLog:
    """`tail -v -c N FILE...` output -> the recent problem lines (warn and worse), oldest first.

    "Recent" is within `window_s` of the target's now and, when `since` is given (the last reload), from the
    running config: written by one of its `workers` (the pid in `PID#TID:`), or clearly after the load (the
    load time is known to ±1 s only). Lines about a config nginx no longer runs are history. The first line of
    each tail may be cut in the middle, so a line that does not start with a timestamp is skipped."""
    current = files[0] if len(files) == 1 else ""
    out: list[ErrorLine] = []
    tz = timezone(timedelta(seconds=clock.offset_s))
    floor = clock.now - window_s
    for raw in stdout.splitlines():
        header = _TAIL_HEADER.match(raw)
        if header:
            current = header["path"]
            continue
        match = _LOG_LINE.match(raw)
        if match is None or match["level"] not in _LEVELS:
            continue
        try:
            stamp = datetime.strptime(match["ts"], "%Y/%m/%d %H:%M:%S").replace(tzinfo=tz)
        except ValueError:
            continue
        at = int(stamp.astimezone(UTC).timestamp())
        rest = match["rest"]
        pid = _PID.match(rest)
        ours = pid is not None and int(pid["pid"]) in workers
        if at < floor or (since is not None and not ours and at <= since + LOAD_SLACK_S):
            continue
        upstream = _UPSTREAM.search(rest)
        out.append(ErrorLine(file=current, at=at, level=match["level"], kind=classify(rest),
                             text=redact(raw)[:MAX_LINE], upstream=upstream["addr"] if upstream else ""))
    unreadable: dict[str, str] = {}
    for line in stderr.splitlines():
        m = re.match(r"^tail: cannot open '(?P<path>[^']+)' for reading: (?P<why>.+)$", line.strip())
        if m:
            unreadable[m["path"]] = m["why"]
    return ErrorLog(lines=tuple(out), unreadable=unreadable)


def most_relevant(log: ErrorLog, limit: int = 5) -> list[str]:
    """The lines a human should see first: classified ones before "other", newest first within a kind."""
    ranked = sorted(log.lines, key=lambda ln: (ln.kind == "other", -ln.at))
    return [ln.text for ln in ranked[:limit]]
