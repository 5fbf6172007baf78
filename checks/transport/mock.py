"""A fake transport that answers with plain functions (like httpx.MockTransport), for in-process tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from checks.messages import msg
from checks.transport.base import ByteStream, CommandResult, ProbeConnectError, Transport

Handler = Callable[[tuple[str, ...]], "CommandResult | Awaitable[CommandResult]"]


@dataclass
class FunctionTransport(Transport):
    """A fake that answers commands with a plain function (like httpx.MockTransport).

    For unit tests of checks and diagnosis: `handler(argv)` returns a CommandResult (or raises
    TransportError/CommandTimeout). `open_tcp` uses `tcp_handler` when given, else refuses.
    """

    handler: Handler
    tcp_handler: Callable[[str, int], Awaitable[ByteStream]] | None = None
    calls: list[tuple[str, ...]] = field(default_factory=list)
    kind: str = "fake"

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        result = self.handler(key)
        if isinstance(result, CommandResult):
            return result
        return await result

    async def open_tcp(self, host: str, port: int, *, timeout: float) -> ByteStream:
        if self.tcp_handler is None:
            raise ProbeConnectError(msg("probe.refused", host=host, port=port))
        return await self.tcp_handler(host, port)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a `FunctionStream` server sends back for the bytes it just received, and whether it then closes."""

    data: bytes = b""
    close: bool = False


StreamServer = Callable[[bytes], Reply]


class FunctionStream:
    """A ByteStream whose other end is a plain function: each `write` is passed to `server`, whose reply is what
    the following `read`s return. A read with nothing queued waits for the next write (so a server that never
    answers looks like a peer that never answers: the probe's own timeout ends it)."""

    def __init__(self, server: StreamServer) -> None:
        self._server = server
        self._queued = bytearray()
        self._closed = False
        self._written = asyncio.Event()

    async def read(self, n: int) -> bytes:
        while not self._queued and not self._closed:
            self._written.clear()
            await self._written.wait()
        chunk = bytes(self._queued[:n])
        del self._queued[:n]
        return chunk

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError  # the fake peer closed: what a real socket raises
        reply = self._server(data)
        self._queued += reply.data
        self._closed = self._closed or reply.close
        self._written.set()

    async def aclose(self) -> None:
        self._closed = True
        self._written.set()


def serve_streams(connect: Callable[[str, int], StreamServer]) -> Callable[[str, int], Awaitable[ByteStream]]:
    """A `tcp_handler` for FunctionTransport from a plain function: `connect(host, port)` returns the server of
    one new connection (a fresh closure per connection) or raises ProbeConnectError (refused)."""

    async def open_tcp(host: str, port: int) -> ByteStream:
        return FunctionStream(connect(host, port))

    return open_tcp
