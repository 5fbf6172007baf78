"""What one checklist run learns about a target, each fact fetched at most once.

Several checks need the same command (`pm2 jlist` feeds five of them); `Facts` starts each command
the first time any check asks and hands every later caller the same task, so a full run costs one
round of concurrent commands plus one follow-up (the log files PM2 names).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from checks import commands
from checks.config import Target
from checks.models import Status
from checks.parsers import ParseError
from checks.parsers.nginx import NginxConfig, NginxLocation, find_location, find_proxy_locations, parse_dump
from checks.parsers.pm2 import Pm2Process, find_app, parse_jlist
from checks.parsers.ps import ProcInfo, descendants, parse_ps
from checks.parsers.ss import Listener, listeners_on, parse_ss
from checks.transport.base import CommandResult, Transport

T = TypeVar("T")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "::", "*", ""})


class FactError(Exception):
    """A fact a check needs could not be established; the check reports `status` with this reason.

    `status` is `error` (could not find out) or `skip` (another selected check already explains it).
    """

    def __init__(self, reason: str, *, status: Status = Status.ERROR, kind: str = "command",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
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
        self.commands_run: list[CommandResult] = []

    # -- memoisation ----------------------------------------------------------------------------

    def _once(self, key: str, factory: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._tasks[key] = task
        return task

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def explained_by(self, check_id: str, reason: str, **details: Any) -> FactError:
        """`skip` when `check_id` runs in this report and shows the cause, else `error`."""
        status = Status.SKIP if check_id in self.selected else Status.ERROR
        return FactError(reason, status=status, kind="dependency", details={"see": check_id, **details})

    async def run(self, key: str, argv: list[str]) -> CommandResult:
        async def go() -> CommandResult:
            result = await self.transport.run(argv, timeout=self.target.command_timeout)
            self.commands_run.append(result)
            return result

        return await self._once(f"cmd:{key}", go)

    # -- nginx ------------------------------------------------------------------------------------

    async def nginx_dump(self) -> CommandResult:
        return await self.run("nginx -T", commands.nginx_dump(self.target))

    async def nginx_config(self) -> NginxConfig:
        async def go() -> NginxConfig:
            result = await self.nginx_dump()
            if not result.ok:
                raise self.explained_by("nginx.syntax", "nginx -T failed, so its config cannot be read")
            try:
                return parse_dump(result.stdout)
            except ParseError as exc:
                raise FactError(f"cannot parse the nginx -T dump: {exc}", kind="parse") from None

        return await self._once("nginx_config", go)

    async def app_location(self) -> NginxLocation:
        """The nginx location that serves ws_path on public_url and proxies to the app."""

        async def go() -> NginxLocation:
            config = await self.nginx_config()
            _, host, port = self.target.public_endpoint()
            location = find_location(config, listen_port=port, host=host, path=self.target.ws_path)
            if location is not None and location.proxy_pass:
                return location
            candidates = find_proxy_locations(config, app_port=self.target.app_port)
            if candidates:
                return candidates[0]
            loopback = [
                loc for loc in config.locations
                if loc.proxy_pass and any(h in LOOPBACK for h, _ in loc.upstream)
            ]
            if location is not None and not location.proxy_pass:
                raise FactError(
                    f"location {(location.modifier + ' ' + location.path).strip()} "
                    f"({location.file}:{location.line}) serves "
                    f"{self.target.ws_path} but has no proxy_pass",
                    status=Status.FAIL, kind="nginx", details={"file": location.file, "line": location.line},
                )
            if len(loopback) == 1:
                return loopback[0]
            raise FactError(
                f"no nginx location proxies to the app (no server on port {port} for {host}, "
                f"no proxy_pass to port {self.target.app_port})",
                status=Status.FAIL, kind="nginx", details={"files": list(config.files)},
            )

        return await self._once("app_location", go)

    # -- PM2 --------------------------------------------------------------------------------------

    async def pm2_processes(self) -> list[Pm2Process]:
        async def go() -> list[Pm2Process]:
            result = await self.run("pm2 jlist", commands.pm2(self.target, "jlist"))
            if result.exit_status == 127:
                raise FactError(
                    f"{self.target.pm2_bin} not found on the target: set pm2_bin to its absolute path "
                    "(nvm and npm -g bins are not on a non-login PATH)",
                    kind="missing_binary",
                )
            if not result.ok:
                raise FactError(f"pm2 jlist failed ({result.exit_status}): {_last_line(result.stderr)}")
            try:
                return parse_jlist(result.stdout)
            except ParseError as exc:
                raise FactError(f"cannot parse pm2 jlist output: {exc}", kind="parse") from None

        return await self._once("pm2", go)

    async def app_instances(self) -> tuple[Pm2Process, ...]:
        return tuple(find_app(await self.pm2_processes(), self.target.pm2_app))

    # -- processes and sockets ---------------------------------------------------------------------

    async def listeners(self) -> list[Listener]:
        async def go() -> list[Listener]:
            result = await self.run("ss", commands.ss_listen(self.target))
            if result.exit_status == 127:
                raise FactError("ss not found on the target (package iproute2)", kind="missing_binary")
            if not result.ok:
                raise FactError(f"ss -ltnp failed: {_sudo_hint(result)}")
            try:
                return parse_ss(result.stdout)
            except ParseError as exc:
                raise FactError(f"cannot parse ss output: {exc}", kind="parse") from None

        return await self._once("ss", go)

    async def processes(self) -> dict[int, ProcInfo]:
        async def go() -> dict[int, ProcInfo]:
            result = await self.run("ps", list(commands.PS_ARGV))
            if not result.ok:
                raise FactError(f"ps failed: {_last_line(result.stderr)}")
            try:
                return parse_ps(result.stdout)
            except ParseError as exc:
                raise FactError(f"cannot parse ps output: {exc}", kind="parse") from None

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
            ports = sorted({
                lst.port for lst in listeners if any(p.pid in pids for p in lst.processes)
            })
            return AppTree(instances=instances, pids=frozenset(pids), ports=tuple(ports))

        return await self._once("app_tree", go)

    async def port_listeners(self) -> list[Listener]:
        return listeners_on(await self.listeners(), self.target.app_port)

    # -- files ------------------------------------------------------------------------------------

    async def build_files(self) -> dict[str, StatEntry]:
        async def go() -> dict[str, StatEntry]:
            result = await self.run("stat build", commands.build_stat(self.target))
            return _parse_stat(result)

        return await self._once("build_stat", go)

    async def log_tail(self, path: str) -> CommandResult:
        return await self.run(f"tail {path}", commands.tail(path, self.target.log_lines))

    async def log_stat(self, paths: tuple[str, ...]) -> dict[str, StatEntry]:
        async def go() -> dict[str, StatEntry]:
            return _parse_stat(await self.run("stat logs", commands.file_stat(paths)))

        return await self._once("log_stat", go)


def _parse_stat(result: CommandResult) -> dict[str, StatEntry]:
    """`stat -c %n|%Y|%s` lines; missing files are simply absent (stat reports them on stderr)."""
    if result.exit_status == 127:
        raise FactError("stat not found on the target", kind="missing_binary")
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
        raise FactError(f"stat failed: {_last_line(result.stderr)}")
    return entries


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _sudo_hint(result: CommandResult) -> str:
    line = _last_line(result.stderr)
    if "password is required" in line or "a terminal is required" in line:
        return f"{line} — allow it without a password in sudoers (see deploy/target/)"
    return line


def now_s() -> float:
    return time.time()
