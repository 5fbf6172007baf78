"""Replaying the captured sandbox modes (tests/fixtures/captured/modes/) through FunctionTransport: commands by
argv, probe streams served by plain functions. Shared by the in-process unit tests."""

from __future__ import annotations

import base64
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.http11 import Request
from websockets.server import ServerProtocol

from checks.config import Target, parse_targets
from checks.messages import msg
from checks.transport import CommandResult, FunctionTransport, ProbeConnectError
from checks.transport.mock import Reply, StreamServer, serve_streams

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "captured" / "modes"
TARGET: Target = parse_targets(tomllib.loads((CAPTURED / "target.toml").read_text()), "captured").targets[0]


#: wt-modes: the target a mode is captured and replayed with when it is not TARGET as it is (kernel-oom reads the kernel
#: log with `sudo -n dmesg`, as the sandbox's own sudoers file allows for that mode only).
MODE_TARGET_UPDATES: dict[str, dict[str, Any]] = {"kernel-oom": {"kernel_log_sudo": True}}


def mode_target(mode: str, target: Target | None = None) -> Target:
    return (target or TARGET).model_copy(update=MODE_TARGET_UPDATES.get(mode, {}))


def load(mode: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURED / f"{mode}.json").read_text())
    return data


def http_server(response: bytes) -> StreamServer:
    """Answer the request with the captured response, then close (the probe asks `Connection: close`)."""
    return lambda _data: Reply(response, close=True)


def silent_server() -> StreamServer:
    """A peer that accepted and never says anything (a blocked event loop): the probe's own timeout ends it."""
    return lambda _data: Reply(b"", close=False)


def ws_server(response: bytes) -> StreamServer:
    """A 101 is redone by a sans-I/O websockets server (the accept key depends on the probe's random key; it then
    answers the ping and the close); any other captured answer is replayed as it was, then closed."""
    if not response.startswith(b"HTTP/1.1 101"):
        return http_server(response)
    protocol = ServerProtocol()

    def serve(data: bytes) -> Reply:
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Request):  # pings and closes are answered by the protocol itself
                protocol.send_response(protocol.accept(event))
        return Reply(b"".join(protocol.data_to_send()), close=protocol.close_expected())

    return serve


class Replay:
    """Serves one mode's capture: commands by argv, streams by (port, request line, upgrade) in capture order."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.commands = {tuple(c["argv"]): c for c in data["commands"]}
        self.streams: dict[tuple[int, bool], list[dict[str, Any]]] = {}
        for stream in data["streams"]:
            self.streams.setdefault((stream["port"], stream["upgrade"]), []).append(stream)
        self.uncaptured: list[tuple[str, ...]] = []

    def run(self, argv: tuple[str, ...]) -> CommandResult:
        captured = self.commands.get(argv)
        if captured is None:
            self.uncaptured.append(argv)
            return CommandResult(argv, 127, "", "not captured", 0.0)
        return CommandResult(argv, captured["exit_status"], captured["stdout"], captured["stderr"], 1.0)

    def connect(self, host: str, port: int) -> StreamServer:
        """The stream's kind is only known from the request: pick the captured one when it arrives."""
        candidates = [s for (p, _), streams in self.streams.items() if p == port for s in streams]
        if not candidates:
            raise ProbeConnectError(msg("probe.refused", host=host, port=port))
        if all(s["refused"] for s in candidates):
            raise ProbeConnectError(msg("probe.refused", host=host, port=port))
        server: StreamServer | None = None

        def serve(data: bytes) -> Reply:
            nonlocal server
            if server is None:
                upgrade = b"upgrade: websocket" in data.lower()
                (stream, *_) = self.streams[(port, upgrade)]
                response = base64.b64decode(stream["response"])
                if not response and stream.get("eof") is False:
                    server = silent_server()  # wt-host: a hung peer, as captured (app-hung)
                else:
                    server = ws_server(response) if upgrade else http_server(response)
            return server(data)

        return serve


def replay_transport(mode: str) -> tuple[FunctionTransport, Replay]:
    fake = Replay(load(mode))
    return FunctionTransport(fake.run, tcp_handler=serve_streams(fake.connect)), fake


def route_public_probes(monkeypatch: Any, transport: Callable[[], FunctionTransport]) -> None:
    """The public probes (to nginx) open their own sockets: send them to the current fake transport too."""
    import checks.items.tls as tls
    import checks.items.web as web

    def opener(scheme: str, host: str, port: int, *, timeout: float, **_tls: Any) -> Any:
        return lambda: transport().open_tcp(host, port, timeout=timeout)

    monkeypatch.setattr(web, "public_opener", opener)
    monkeypatch.setattr(tls, "public_opener", opener)
