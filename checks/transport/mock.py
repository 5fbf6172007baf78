"""A fake transport that answers with plain functions (like httpx.MockTransport), for in-process tests."""

from __future__ import annotations

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
