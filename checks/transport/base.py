"""One small async interface for "run this argv on the target" and "open a TCP stream inside it".

Modelled on httpx's transport split: the checks speak only to `Transport`, and each way of reaching
a host (SSH, this machine, a test fake calling a plain function) is a few dozen lines behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from checks.messages import Msg, verbatim


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SaidError(Exception):
    """An error whose message is ours: `str(exc)` is English (logs), `exc.msg` says it in any language."""

    def __init__(self, message: str | Msg = "", *, details: dict[str, object] | None = None) -> None:
        self.msg = message if isinstance(message, Msg) else verbatim(message)
        #: The library's own words and other data for a result's `details`, kept out of the summary.
        self.details: dict[str, object] = dict(details or {})
        super().__init__(self.msg.en)


def said(exc: BaseException) -> Msg:
    """What an exception says, as a message (its own words, if it is not one of ours)."""
    return exc.msg if isinstance(exc, SaidError) else verbatim(str(exc))


class TransportError(SaidError):
    """The target cannot be reached or cannot run anything: every command-based check is `error`."""


class HostKeyError(TransportError):
    """The SSH host key is unknown or changed. Never a prompt, never accepted silently."""


class CommandTimeout(SaidError):
    """One command did not finish in time; the connection itself may be fine."""


class ProbeConnectError(SaidError):
    """A TCP stream inside the target could not be opened (refused, unreachable, channel denied)."""


def os_reason(exc: OSError) -> str:
    """"Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 3003)"."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


class ByteStream(Protocol):
    """The least a probe needs from a connection: bytes in, bytes out, close."""

    async def read(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class AsyncioStream:
    """ByteStream over asyncio's (reader, writer) pair — also fits asyncssh's SSHReader/SSHWriter."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read(self, n: int) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):  # closing must never raise: the probe's answer is what counts
            await self.writer.wait_closed()


class Transport(ABC):
    """How checks reach a target. Implementations must be safe to use from concurrent tasks."""

    kind: str = "abstract"

    @abstractmethod
    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        """Run argv (never through a local shell); raise TransportError / CommandTimeout."""

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        """Start commands that were asked for together; one future per argv, in order.

        Why a hook: over SSH every command costs its own channel, session and shell on the target, and a
        burst of twenty of them competes for the target's CPU with the slowest command of the round (wt-perf,
        bench/RESULTS.md). A transport may run them as one batch; by default each runs on its own, so every
        result is exactly what `run` gives.
        """
        return [asyncio.ensure_future(self.run(argv, timeout=timeout)) for argv in argvs]

    @abstractmethod
    async def open_tcp(self, host: str, port: int, *, timeout: float) -> ByteStream:
        """A byte stream to host:port as seen from inside the target (for HTTP/WebSocket probes)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the transport may be used again afterwards (it reconnects)."""
