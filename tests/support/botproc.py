"""Run the real `wscheck run` process in tests: start, wait for its "ready" line, stop with a signal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


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


class BotProcess:
    def __init__(self, args: list[str], env: Mapping[str, str], *, cwd: Path) -> None:
        self.args = args
        self.env = bot_env(env)
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._changed = asyncio.Condition()
        self._readers: list[asyncio.Task[None]] = []
        self._eof = 0

    async def start(self, *, ready: str = r"wscheck ready", timeout: float = 30.0,
                    stdin: bool = False) -> re.Match[str]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *self.args,
            cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self._readers = [
            asyncio.ensure_future(self._pump(self.proc.stderr, self.lines)),
            asyncio.ensure_future(self._pump(self.proc.stdout, self.stdout_lines)),
        ]
        return await self.wait_line(ready, timeout=timeout)

    async def _pump(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                break
            into.append(raw.decode("utf-8", "replace").rstrip("\n"))
            async with self._changed:
                self._changed.notify_all()
        self._eof += 1
        if self._eof == 2 and self.proc is not None:
            await self.proc.wait()  # both pipes closed: the exit status is what waiters need next
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(self, pattern: str, *, timeout: float = 30.0, stdout: bool = False,
                        start: int = 0) -> re.Match[str]:
        """Wait for a line matching `pattern` (stderr by default); fail with the log if the process dies."""
        regex = re.compile(pattern)
        source = self.stdout_lines if stdout else self.lines

        def found() -> re.Match[str] | None:
            for line in source[start:]:
                if m := regex.search(line):
                    return m
            return None

        async def wait() -> re.Match[str]:
            async with self._changed:
                while True:
                    if m := found():
                        return m
                    if self.proc is not None and self.proc.returncode is not None:
                        raise AssertionError(f"bot exited ({self.proc.returncode}) before {pattern!r}:\n{self.log()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.log()}") from None

    def log(self) -> str:
        return "\n".join(["--- stderr ---", *self.lines[-80:], "--- stdout ---", *self.stdout_lines[-80:]])

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)
