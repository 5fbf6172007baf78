"""What one checklist run learns about a target, each fact fetched at most once.

Several checks need the same command (`pm2 jlist` feeds five of them); `Facts` starts each command
the first time any check asks and hands every later caller the same task, so a full run costs one
round of concurrent commands plus one follow-up (the log files PM2 names).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from checks import commands
from checks.config import Target
from checks.messages import Msg, msg, verbatim
from checks.models import Status
from checks.offload import parse_off_loop
from checks.parsers import ParseError
from checks.parsers.limits import LOG_TAIL_BYTES, TooLarge
from checks.parsers.nginx import NginxConfig, NginxLocation, find_proxy_locations, parse_dump
from checks.parsers.nginx_route import Proxy, Request, Return, Route, Uncertain, route
from checks.parsers.pm2 import Pm2Process, find_app, parse_jlist
from checks.parsers.ps import ProcInfo, descendants, parse_ps
from checks.parsers.ss import Listener, listeners_on, parse_ss
from checks.transport.base import CommandResult, Transport

T = TypeVar("T")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "::", "*", ""})


class FactError(Exception):
    """A fact a check needs could not be established; the check reports `status` with this reason.

    `status` is `error` (could not find out) or `skip` (another selected check already explains it).
    `message` is the reason, unrendered (a plain string is text that is not ours); `str(exc)` is its English.
    """

    def __init__(self, reason: str | Msg, *, status: Status = Status.ERROR, kind: str = "command",
                 details: dict[str, Any] | None = None) -> None:
        self.message = reason if isinstance(reason, Msg) else verbatim(reason)
        super().__init__(self.message.en)
        self.status = status
        self.kind = kind
        self.details = details or {}


@dataclass(frozen=True, slots=True)
class StatEntry:
    path: str
    mtime: int
    size: int


@dataclass(frozen=True, slots=True)
class AppTree:
    """The PM2 app's processes and what they listen on."""

    instances: tuple[Pm2Process, ...]
    pids: frozenset[int]
    ports: tuple[int, ...]

    @property
    def running(self) -> bool:
        return any(p.pid > 0 for p in self.instances)


class Facts:
    def __init__(self, target: Target, transport: Transport, selected: Collection[str]) -> None:
        self.target = target
        self.transport = transport
        self.selected = frozenset(selected)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        #: Commands asked for and not yet started: started together, as one batch (wt-perf, `_submit`).
        self._queue: list[tuple[str, list[str], asyncio.Future[CommandResult]]] = []
        self.commands_run: list[CommandResult] = []
        #: wt-host2: the previous `pm2.restarts` sample of this target ({"at": epoch, "restarts": {pm_id: n}}),
        #: passed in by the caller (bot.chat.service keeps the last one per target); None = no earlier look.
        self.restart_sample: dict[str, Any] | None = None

    # -- memoisation ----------------------------------------------------------------------------

    def _once(self, key: str, factory: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """The one run of `factory` that every check asking for `key` shares, shielded: a check that hits its own
        timeout is cancelled, and an unshielded await would cancel the shared run under the other checks too
        (they would get a CancelledError instead of the command's result)."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._tasks[key] = task
        return asyncio.shield(task)

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def explained_by(self, check_id: str, reason: str | Msg, **details: Any) -> FactError:
        """`skip` when `check_id` runs in this report and shows the cause, else `error`."""
        status = Status.SKIP if check_id in self.selected else Status.ERROR
        return FactError(reason, status=status, kind="dependency", details={"see": check_id, **details})

    async def run(self, key: str, argv: list[str]) -> CommandResult:
        return await self._command(key, argv)

    def _command(self, key: str, argv: list[str]) -> asyncio.Future[CommandResult]:
        async def go() -> CommandResult:
            result = await self._submit(key, argv)
            self.commands_run.append(result)
            return result

        return self._once(f"cmd:{key}", go)

    def prefetch(self, key: str, argv: list[str]) -> None:
        """Start a command whose answer a check will probably ask for later (a guess, wt-perf): when it asks with
        the same key it gets this run; when the guess was wrong, nothing uses it."""
        fut = self._command(key, argv)
        fut.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _submit(self, key: str, argv: list[str]) -> Awaitable[CommandResult]:
        """Start `argv` together with the other commands asked for in the same moment (wt-perf).

        The checks ask for their commands within a few event-loop iterations of each other; they are queued until
        an iteration passes with nothing new (at most QUEUE_TICKS), then handed to the transport in one go, the
        commands whose answers start follow-ups first. `pm2 jlist`, the slowest command of the round, starts at
        once on its own channel. Over SSH the rest then run as one batch in one channel
        (checks.transport.batch), which is what brings a full checklist close to its slowest command; with any
        other transport each command still runs on its own."""
        if key in ALONE:
            return self.transport.run(argv, timeout=self.target.command_timeout)
        fut: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        if not self._queue:
            asyncio.get_running_loop().call_soon(self._flush, 0, 0)
        self._queue.append((key, argv, fut))
        return fut

    def _flush(self, seen: int, ticks: int) -> None:
        if len(self._queue) != seen and ticks < QUEUE_TICKS:
            asyncio.get_running_loop().call_soon(self._flush, len(self._queue), ticks + 1)
            return
        queue = [entry for entry in self._queue if not entry[2].done()]
        self._queue = []
        queue.sort(key=lambda entry: LEAD.get(entry[0], len(LEAD)))
        for first in range(0, len(queue), MAX_BATCH):
            part = queue[first:first + MAX_BATCH]
            started = self.transport.start_many([argv for _, argv, _ in part], timeout=self.target.command_timeout)
            for (_, _, fut), src in zip(part, started, strict=True):
                _chain(src, fut)

    # -- nginx ------------------------------------------------------------------------------------

    async def nginx_dump(self) -> CommandResult:
        return await self.run("nginx -T", commands.nginx_dump(self.target))

    async def nginx_config(self) -> NginxConfig:
        async def go() -> NginxConfig:
            result = await self.nginx_dump()
            if not result.ok:
                raise self.explained_by("nginx.syntax", msg("facts.nginx_dump_failed"))
            try:
                # Off the event loop, once per distinct dump: a big one costs seconds of CPU (issue 13, 7).
                return await parse_off_loop(parse_dump, result.stdout, cache=True)
            except TooLarge as exc:
                raise _too_large(exc) from None
            except ParseError as exc:
                raise FactError(msg("facts.nginx_parse", error=str(exc)), kind="parse") from None

        return await self._once("nginx_config", go)

    async def app_location(self) -> NginxLocation:
        """The nginx location that nginx really picks for ws_path on public_url, when it proxies there.

        No fallback to another location (issue 11): when the routed request does not reach a proxy_pass,
        that is the finding — `reason` in the details says which ("wrong_server", "not_proxied",
        "redirect", "uncertain", "no_server"), naming the block(s) nginx uses with file and line.
        """
        return (await self.app_route())[0]

    async def app_route(self) -> tuple[NginxLocation, Route]:
        """app_location with the whole route that led there (the URI after rewrites, the steps)."""

        async def go() -> tuple[NginxLocation, Route]:
            config = await self.nginx_config()
            scheme, host, port = self.target.public_endpoint()
            request = Request(host=host, port=port, path=self.target.ws_path, scheme=scheme,
                              address=connect_address(host))
            found = route(config, request)
            if isinstance(found.outcome, Proxy) and found.location is not None:
                return config.locations[found.location.index], found
            raise _route_error(config, found, request, self.target.app_port)

        return await self._once("app_route", go)


    # -- PM2 --------------------------------------------------------------------------------------

    async def pm2_processes(self) -> list[Pm2Process]:
        async def go() -> list[Pm2Process]:
            result = await self.run("pm2 jlist", commands.pm2(self.target, "jlist"))
            if result.exit_status == 127:
                raise FactError(msg("facts.pm2_missing", bin=self.target.pm2_bin), kind="missing_binary")
            if not result.ok:
                raise FactError(msg("facts.pm2_failed", code=result.exit_status, error=_last_line(result.stderr)))
            try:
                return await parse_off_loop(parse_jlist, result.stdout)
            except TooLarge as exc:
                raise FactError(msg("facts.pm2_too_large", mb=exc.size / 2**20, limit_mb=exc.limit / 2**20),
                                kind="too_large") from None
            except ParseError as exc:
                raise FactError(msg("facts.pm2_parse", error=str(exc)), kind="parse") from None

        return await self._once("pm2", go)

    async def app_instances(self) -> tuple[Pm2Process, ...]:
        return tuple(find_app(await self.pm2_processes(), self.target.pm2_app))

    # -- processes and sockets ---------------------------------------------------------------------

    async def listeners(self) -> list[Listener]:
        async def go() -> list[Listener]:
            result = await self.run("ss", commands.ss_listen(self.target))
            if result.exit_status == 127:
                raise FactError(msg("facts.ss_missing"), kind="missing_binary")
            if not result.ok:
                raise FactError(msg("facts.ss_failed", error=_sudo_hint(result)))
            try:
                return parse_ss(result.stdout)
            except ParseError as exc:
                raise FactError(msg("facts.ss_parse", error=str(exc)), kind="parse") from None

        return await self._once("ss", go)

    async def processes(self) -> dict[int, ProcInfo]:
        async def go() -> dict[int, ProcInfo]:
            result = await self.run("ps", list(commands.PS_ARGV))
            if not result.ok:
                raise FactError(msg("facts.ps_failed", error=_last_line(result.stderr)))
            try:
                return parse_ps(result.stdout)
            except ParseError as exc:
                raise FactError(msg("facts.ps_parse", error=str(exc)), kind="parse") from None

        return await self._once("ps", go)

    async def app_tree(self) -> AppTree:
        """The app's PM2 instances, every process below them, and the ports those listen on."""

        async def go() -> AppTree:
            instances, listeners, procs = await asyncio.gather(
                self.app_instances(), self.listeners(), self.processes()
            )
            pids: set[int] = set()
            for inst in instances:
                if inst.pid > 0:
                    pids |= descendants(procs, inst.pid)
            ports = {lst.port for lst in listeners if any(p.pid in pids for p in lst.processes)}
            # wt-sio: in PM2 cluster mode the God Daemon (the cluster master, the instances' parent) holds the
            # listening socket, not the instances. It is the app's on the instances' PORT (or app_port) only:
            # the same daemon holds the sockets of every other cluster app too.
            masters = {procs[i.pid].ppid for i in instances
                       if i.pid > 0 and i.exec_mode == "cluster_mode" and i.pid in procs}
            if masters:
                own = {int(e) for i in instances if (e := i.port_env or "").isdigit()} or {self.target.app_port}
                ports |= {lst.port for lst in listeners
                          if lst.port in own and any(p.pid in masters for p in lst.processes)}
                pids |= masters
            return AppTree(instances=instances, pids=frozenset(pids), ports=tuple(sorted(ports)))

        return await self._once("app_tree", go)

    async def port_listeners(self) -> list[Listener]:
        return listeners_on(await self.listeners(), self.target.app_port)

    # -- files ------------------------------------------------------------------------------------

    async def build_files(self) -> dict[str, StatEntry]:
        async def go() -> dict[str, StatEntry]:
            result = await self.run("stat build", commands.build_stat(self.target))
            return _parse_stat(result)

        return await self._once("build_stat", go)

    def guessed_app_logs(self) -> tuple[str, ...]:
        """The app's PM2 log files (error, out) where PM2 puts them by default, when pm2_home is configured.

        A guess to start their reads next to `pm2 jlist` instead of after it (wt-perf): the checks still read
        the files that jlist names, and only find this read ready when those are the same files. PM2 names them
        `$PM2_HOME/logs/<name>-error.log` / `-out.log`, with every character of the name outside
        `[A-Za-z0-9.-]` as `-` (PM2 lib/Common.js prepareAppConf)."""
        home = self.target.pm2_home.rstrip("/")
        if not home:
            return ()
        name = re.sub(r"[^A-Za-z0-9.\-]", "-", self.target.pm2_app)
        return (f"{home}/logs/{name}-error.log", f"{home}/logs/{name}-out.log")

    def prefetch_app_logs(self) -> None:
        """Start the reads of the guessed app logs (tails and stat), the very commands pm2.logs would run."""
        paths = self.guessed_app_logs()
        if not paths or f"cmd:tail {paths[0]}" in self._tasks:
            return
        for path in paths:
            self.prefetch(f"tail {path}", commands.tail(path, LOG_TAIL_BYTES))
        self.prefetch(_log_stat_key(paths), commands.file_stat(paths))

    async def fd_usage(self, pids: list[int]) -> CommandResult:
        """`/proc/PID/limits` and the open fd count of `pids` (host.fds); keyed by the pids it reads."""
        pids = pids[:commands.MAX_FD_PIDS]
        return await self.run("fds " + " ".join(map(str, pids)), commands.fd_usage(pids))

    def prefetch_app_fds(self) -> None:
        """Start host.fds's read for the app's processes as guessed from `ss` and `ps` alone (wt-perf): the
        process holding app_port, walked up to the child of a PM2 God Daemon (the instance), and everything below
        that. When `pm2 jlist` then names the same processes, host.fds finds its read done; else it reads its own."""
        if "prefetch:fds" in self._tasks:
            return

        async def go() -> None:
            listeners, procs = await asyncio.gather(self.port_listeners(), self.processes())
            pids: set[int] = set()
            for pid in {p.pid for lst in listeners for p in lst.processes}:
                seen: set[int] = set()
                while pid in procs and pid not in seen:
                    seen.add(pid)
                    parent = procs.get(procs[pid].ppid)
                    if parent is not None and parent.comm.startswith("PM2 v"):
                        pids |= descendants(procs, pid)
                        break
                    pid = procs[pid].ppid
            if pids:
                self.prefetch("fds " + " ".join(map(str, sorted(pids)[:commands.MAX_FD_PIDS])),
                              commands.fd_usage(sorted(pids)))

        self._once("prefetch:fds", go).add_done_callback(lambda done: done.cancelled() or done.exception())

    async def log_tail(self, path: str) -> CommandResult:
        """The last `log_lines` lines of `path`, read as at most LOG_TAIL_BYTES bytes (issue 13, 13).

        `tail -c` rather than `tail -n`: one 30 MB line would otherwise be pulled whole on every run.
        """
        result = await self.run(f"tail {path}", commands.tail(path, LOG_TAIL_BYTES))
        if not result.ok:
            return result
        return replace(result, stdout=last_lines(result.stdout, self.target.log_lines, cut=LOG_TAIL_BYTES))

    async def log_stat(self, paths: tuple[str, ...]) -> dict[str, StatEntry]:
        async def go() -> dict[str, StatEntry]:
            return _parse_stat(await self.run(_log_stat_key(paths), commands.file_stat(paths)))

        return await self._once(f"log_stat {paths}", go)


#: Started at once on its own channel: the slowest command of the round (node starting PM2's client).
ALONE = frozenset({"pm2 jlist"})
#: First in a batch: the commands whose answers the follow-ups need (nginx's files and paths, the app's processes).
LEAD = {key: rank for rank, key in enumerate(("nginx -T", "nginx -V", "ss", "ps", "ps args"))}
#: Loop iterations a queue waits for more commands; more than this many commands make two batches.
QUEUE_TICKS = 8
MAX_BATCH = 16


def _chain(src: asyncio.Future[CommandResult], dst: asyncio.Future[CommandResult]) -> None:
    """`dst` gets `src`'s outcome; a `dst` given up (its check cancelled) gives `src` up too."""

    def forward(_: object) -> None:
        if dst.done():
            return
        if src.cancelled():
            dst.cancel()
        elif (exc := src.exception()) is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(src.result())

    def back(_: object) -> None:
        if dst.cancelled() and not src.done():
            src.cancel()

    src.add_done_callback(forward)
    dst.add_done_callback(back)


def _log_stat_key(paths: tuple[str, ...]) -> str:
    return "stat logs " + " ".join(paths)


def last_lines(text: str, count: int, *, cut: int) -> str:
    """The last `count` lines of a `tail -c cut` read; its first line is partial when the read was full."""
    lines = text.splitlines(keepends=True)
    if len(text.encode("utf-8", "replace")) >= cut and len(lines) > 1:
        lines = lines[1:]
    return "".join(lines[-count:])


def _too_large(exc: TooLarge) -> FactError:
    """`warn`, never `error`: a valid config the bot cannot model is the bot's limit, not the server's fault."""
    if exc.unit == "bytes":
        reason = msg("facts.nginx_too_large_bytes", mb=exc.size / 2**20, limit_mb=exc.limit / 2**20)
    else:
        reason = msg("facts.nginx_too_large_statements", count=exc.size, limit=exc.limit)
    return FactError(reason, status=Status.WARN, kind="too_large",
                     details={"too_large": {"size": exc.size, "limit": exc.limit, "unit": exc.unit}})


def _parse_stat(result: CommandResult) -> dict[str, StatEntry]:
    """`stat -c %n|%Y|%s` lines; missing files are simply absent (stat reports them on stderr)."""
    if result.exit_status == 127:
        raise FactError(msg("facts.stat_missing"), kind="missing_binary")
    entries: dict[str, StatEntry] = {}
    for line in result.stdout.splitlines():
        name, sep, rest = line.rpartition("|")
        path, sep2, mtime = name.rpartition("|")
        if not (sep and sep2):
            continue
        try:
            entries[path] = StatEntry(path=path, mtime=int(mtime), size=int(rest))
        except ValueError:
            continue
    if not entries and result.stderr and "No such file" not in result.stderr:
        raise FactError(msg("facts.stat_failed", error=_last_line(result.stderr)))
    return entries


def _last_line(text: str) -> Msg:
    """The last line of a command's stderr (not ours: shown as is), or "(no output)"."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return verbatim(lines[-1][:300]) if lines else msg("facts.no_output")


def _sudo_hint(result: CommandResult) -> Msg:
    line = _last_line(result.stderr)
    if "password is required" in line.en or "a terminal is required" in line.en:
        return msg("facts.sudo_hint", error=line)
    return line


def now_s() -> float:
    return time.time()


def connect_address(host: str) -> str | None:
    """The local address a client of public_url connects to, when the URL says it (IP literal, localhost)."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _server_label(config: NginxConfig, index: int) -> str:
    server = config.servers[index]
    names = " ".join(n for n in server.server_names if n) or '""'
    return f"server {names} ({server.file}:{server.line})"


def _route_error(config: NginxConfig, found: Route, request: Request, app_port: int) -> FactError:
    """The finding when nginx's own route for the WebSocket path does not reach a proxy_pass."""
    where = f"{request.scheme}://{request.host}:{request.port}{request.path}"
    details: dict[str, Any] = {"request": where, "uri": found.uri, "steps": list(found.steps)}
    if found.server is not None:
        details["server"] = {"file": found.server.file, "line": found.server.line, "names": list(found.server.names)}
    if found.location is not None:
        loc = found.location
        details |= {"file": loc.file, "line": loc.line, "location": f"{loc.modifier} {loc.uri}".strip()}
    if isinstance(found.outcome, Uncertain) and found.outcome.reason != "no_listen":
        details |= {"reason": "uncertain", "uncertain": found.outcome.reason, "at": found.outcome.where}
        return FactError(msg("facts.route_uncertain", request=where, why=found.outcome.reason,
                             at=found.outcome.where or "-"), status=Status.WARN, kind="nginx", details=details)
    if found.server is None:
        app = find_proxy_locations(config, app_port=app_port)
        if app:
            # Nothing of nginx accepts the public address:port, while a block that proxies to the app listens
            # elsewhere (`listen [::1]:80`, another port): the listen is the finding, named with that block.
            block = config.servers[app[0].server_index]
            listens = [li.raw for li in block.listen]
            details |= {"reason": "wrong_server", "no_listen": True, "listens": listens, "app_server": {
                "file": block.file, "line": block.line, "names": list(block.server_names)}}
            return FactError(msg("facts.route_no_listen", request=where, app=_server_label(config, app[0].server_index),
                                 listens=", ".join(listens)), status=Status.FAIL, kind="nginx", details=details)
        details |= {"reason": "no_server", "files": list(config.files)}
        return FactError(msg("facts.no_location", port=request.port, host=request.host, app_port=app_port),
                         status=Status.FAIL, kind="nginx", details=details)
    picked = _server_label(config, found.server.index)
    # wt-tls: a redirect nginx answers in the chosen server is the finding (naming that block), even when
    # another server proxies to the app: the classic port-80 `return 301 https://...` block.
    outcome = found.outcome
    if isinstance(outcome, Return) and outcome.redirect:
        details |= {"reason": "redirect", "status": outcome.status, "location_header": outcome.location_header}
        return FactError(msg("facts.route_redirect", request=where, picked=picked, status=outcome.status,
                             target=outcome.location_header or ""), status=Status.FAIL, kind="nginx", details=details)
    app = [loc for loc in find_proxy_locations(config, app_port=app_port) if loc.server_index != found.server.index]
    if app:
        other = app[0]
        details |= {"reason": "wrong_server", "app_server": {
            "file": config.servers[other.server_index].file, "line": config.servers[other.server_index].line,
            "names": list(config.servers[other.server_index].server_names)}}
        if isinstance(found.outcome, Return):  # wt-nginxrt: what the picked block answers (a redirect is its own)
            details |= {"status": found.outcome.status, "redirect": found.outcome.redirect,
                        "location_header": found.outcome.location_header}
        return FactError(msg("facts.route_wrong_server", request=where, picked=picked,
                             app=_server_label(config, other.server_index)),
                         status=Status.FAIL, kind="nginx", details=details)
    status = outcome.status if isinstance(outcome, Return) else 404
    details |= {"reason": "not_proxied", "status": status, "static": not isinstance(outcome, Return)}
    return FactError(msg("facts.route_not_proxied", request=where, picked=picked, status=status),
                     status=Status.FAIL, kind="nginx", details=details)
