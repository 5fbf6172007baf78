"""The one harness for a real child process (the bot, or any program) in the tests and the benchmarks.

Start it, collect its stderr/stdout lines with their arrival times, wait for a line matching a pattern (the
"started" signal, never a sleep), write to its stdin, stop it by its own pid with a signal. The tests start the
bot as `python -m bot.cli ARGS` (`BotProcess(args, env)`); the benchmarks also start it through
bench/_instrumented_bot.py and start bench/simtargets.py (`BotProcess.command(argv, env)`). bench/ imports this
module (its scripts put the repository root on sys.path).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
              "NO_PROXY", "no_proxy")
READY = r"wscheck ready"


def bot_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: no proxies (slack_sdk would route 127.0.0.1 through them), no stray settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in PROXY_VARS and not k.startswith(("WSCHECK_", "SLACK_"))}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    if env.get("WSCHECK_DB", "").startswith("postgresql") and "WSCHECK_LEADER_TTL" not in extra:
        # WSCHECK_TEST_DB=postgresql (tests/conftest.py): a bot SIGKILLed and started again waits for its own old
        # lease to expire; the default 15 s would only make the test slower, not different.
        env["WSCHECK_LEADER_TTL"] = "5s"
    return env


@dataclass(frozen=True)
class Line:
    """One line of output and when the harness read it (the benchmarks measure latencies from these)."""

    at: float  # time.monotonic()
    wall: float  # time.time()
    text: str


@dataclass(frozen=True)
class Hit:
    """The line `wait_line` found and its regex match: `.group(1)` for the tests, `.at` / `.text` for the bench."""

    line: Line
    match: re.Match[str]

    @property
    def at(self) -> float:
        return self.line.at

    @property
    def wall(self) -> float:
        return self.line.wall

    @property
    def text(self) -> str:
        return self.line.text

    def group(self, *groups: int | str) -> str | Any:
        return self.match.group(*groups)

    def groups(self) -> tuple[str | Any, ...]:
        return self.match.groups()

    def groupdict(self) -> dict[str, str | Any]:
        return self.match.groupdict()

    def __getitem__(self, group: int | str) -> str | Any:
        return self.match[group]


class BotProcess:
    """A child process whose stderr (`err`) and stdout (`out`) lines are collected with their arrival times.

    At most `keep` lines of each stream are kept (the oldest are dropped), so a long benchmark stays bounded.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str], *, cwd: Path = ROOT, name: str = "bot",
                 keep: int = 200_000) -> None:
        """The bot: `python -m bot.cli ARGS`, in `bot_env(env)`."""
        self.args = list(args)
        self.argv = [sys.executable, "-m", "bot.cli", *self.args]
        self.env = bot_env(env)
        self.cwd = cwd
        self.name = name
        self.keep = keep
        self.proc: asyncio.subprocess.Process | None = None
        self.err: list[Line] = []
        self.out: list[Line] = []
        self._changed = asyncio.Condition()
        self._readers: list[asyncio.Task[None]] = []
        self._eof = 0

    @classmethod
    def command(cls, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path = ROOT, name: str = "child",
                keep: int = 200_000) -> BotProcess:
        """Any program (`argv` whole), in `env` as given (pass it through `bot_env` for the bot)."""
        child = cls([], {}, cwd=cwd, name=name, keep=keep)
        child.argv = list(argv)
        child.env = dict(env)
        return child

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    @property
    def lines(self) -> list[str]:
        """The stderr lines' text (the bot logs there)."""
        return [x.text for x in self.err]

    @property
    def stdout_lines(self) -> list[str]:
        return [x.text for x in self.out]

    async def start(self, *, ready: str | None = READY, timeout: float = 30.0, stdin: bool = False) -> Hit | None:
        """Start it; with `ready`, wait for a stderr line matching it and return that (None without)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 20,
        )
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self._readers = [
            asyncio.ensure_future(self._pump(self.proc.stderr, self.err)),
            asyncio.ensure_future(self._pump(self.proc.stdout, self.out)),
        ]
        if ready is None:
            return None
        return await self.wait_line(ready, timeout=timeout)

    async def _pump(self, stream: asyncio.StreamReader, into: list[Line]) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: skip it
                continue
            if not raw:
                break
            into.append(Line(time.monotonic(), time.time(), raw.decode("utf-8", "replace").rstrip("\n")))
            if len(into) > self.keep:
                del into[: len(into) - self.keep]
            async with self._changed:
                self._changed.notify_all()
        self._eof += 1
        if self._eof == 2 and self.proc is not None:
            await self.proc.wait()  # both pipes closed: the exit status is what waiters need next
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(self, pattern: str, *, timeout: float = 30.0, stdout: bool = False,
                        start: int = 0) -> Hit:
        """Wait for a line matching `pattern` (stderr by default, from index `start`); fail with the log if the
        process exits first or nothing matches within `timeout` seconds."""
        regex = re.compile(pattern)
        source = self.out if stdout else self.err

        def found() -> Hit | None:
            for line in source[start:]:
                if m := regex.search(line.text):
                    return Hit(line, m)
            return None

        async def wait() -> Hit:
            async with self._changed:
                while True:
                    if hit := found():
                        return hit
                    if self.proc is not None and self.proc.returncode is not None:
                        raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {pattern!r}:\n"
                                             f"{self.log()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: no line matching {pattern!r} within {timeout} s:\n{self.log()}") \
                from None

    def tail(self, n: int = 40) -> str:
        return "\n".join(["--- stderr ---", *(x.text for x in self.err[-n:]),
                          "--- stdout ---", *(x.text for x in self.out[-n:])])

    def log(self) -> str:
        return self.tail(80)

    async def send(self, line: str) -> None:
        """One line to its stdin (started with `stdin=True`)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal its pid, wait up to `timeout` s (then SIGKILL); the exit status, None if never started."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def kill(self) -> int | None:
        return await self.stop(signal.SIGKILL)
