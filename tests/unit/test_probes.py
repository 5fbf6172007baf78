"""HTTP/WebSocket probes and the local transport against real servers on loopback (port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from checks.probes import ProbeError, http_get, ws_handshake
from checks.transport.base import ByteStream, CommandTimeout, ProbeConnectError
from checks.transport.local import LocalTransport

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(reply: Reply) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def opener(port: int) -> Callable[[], Awaitable[ByteStream]]:
    transport = LocalTransport()

    async def open_stream() -> ByteStream:
        return await transport.open_tcp("127.0.0.1", port, timeout=2)

    return open_stream


def canned(raw: bytes) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return reply


async def test_http_redirect_is_an_answer_with_headers() -> None:
    server, port = await raw_server(canned(b"HTTP/1.1 302 Found\r\nLocation: /login\r\nServer: nginx/1.22.1\r\n"
                                           b"Content-Length: 0\r\n\r\n"))
    async with server:
        answer = await http_get(opener(port), host_header="example", path="/", timeout=2)
    assert answer.status == 302
    assert answer.headers["location"] == "/login"
    assert answer.server.startswith("nginx")


async def test_http_request_is_well_formed() -> None:
    seen: list[bytes] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, port = await raw_server(reply)
    async with server:
        answer = await http_get(opener(port), host_header="127.0.0.1:9", path="/health?x=1", timeout=2)
    assert answer.status == 200
    head = seen[0].decode()
    assert head.startswith("GET /health?x=1 HTTP/1.1\r\n")
    assert "host: 127.0.0.1:9" in head.lower()


@pytest.mark.parametrize("raw", [b"", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n"])
async def test_http_garbage_is_a_probe_error(raw: bytes) -> None:
    server, port = await raw_server(canned(raw))
    async with server:
        with pytest.raises(ProbeError):
            await http_get(opener(port), host_header="x", path="/", timeout=2)


async def test_http_hung_server_times_out() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client gives up

    server, port = await raw_server(hang)
    async with server:
        with pytest.raises(TimeoutError):
            await http_get(opener(port), host_header="x", path="/", timeout=0.3)


async def test_refused_port_is_a_connect_error() -> None:
    server, port = await raw_server(canned(b""))
    server.close()
    await server.wait_closed()
    with pytest.raises(ProbeConnectError, match="refused"):
        await http_get(opener(port), host_header="x", path="/", timeout=2)


@pytest.fixture
async def ws_server() -> AsyncIterator[int]:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("welcome")
        async for _ in ws:
            pass

    def only_ws_path(conn: ServerConnection, request: Request) -> Response | None:
        if request.path != "/ws":
            return conn.respond(404, "no such socket\n")
        return None

    async with serve(handler, "127.0.0.1", 0, process_request=only_ws_path) as server:
        yield next(iter(server.sockets)).getsockname()[1]


async def test_ws_handshake_and_ping(ws_server: int) -> None:
    answer = await ws_handshake(opener(ws_server), uri=f"ws://127.0.0.1:{ws_server}/ws", timeout=2)
    assert answer.status == 101
    assert answer.rtt_ms >= 0


async def test_ws_wrong_path_reports_status(ws_server: int) -> None:
    with pytest.raises(ProbeError) as info:
        await ws_handshake(opener(ws_server), uri=f"ws://127.0.0.1:{ws_server}/chat", timeout=2)
    assert info.value.status == 404


async def test_ws_plain_http_server_is_not_a_websocket() -> None:
    server, port = await raw_server(canned(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n"))
    async with server:
        with pytest.raises(ProbeError) as info:
            await ws_handshake(opener(port), uri=f"ws://127.0.0.1:{port}/ws", timeout=2)
    assert info.value.status == 200
    assert info.value.headers.get("server") == "nginx"


async def test_ws_without_pong_times_out() -> None:
    """A server that completes the handshake but never answers frames (a stuck proxy)."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from websockets.server import ServerProtocol

        proto = ServerProtocol()
        proto.receive_data(await reader.readuntil(b"\r\n\r\n"))
        (request,) = proto.events_received()
        proto.send_response(proto.accept(request))
        for chunk in proto.data_to_send():
            writer.write(chunk)
        await writer.drain()
        await reader.read()

    server, port = await raw_server(mute)
    async with server:
        with pytest.raises(TimeoutError):
            await ws_handshake(opener(port), uri=f"ws://127.0.0.1:{port}/ws", timeout=0.5)


async def test_local_transport_runs_argv_without_shell() -> None:
    t = LocalTransport()
    result = await t.run(["printf", "%s|", "a b", "$(id)", ";"], timeout=5)
    assert result.ok
    assert result.stdout == "a b|$(id)|;|"


async def test_local_transport_exit_codes_and_missing_binary() -> None:
    t = LocalTransport()
    assert (await t.run(["false"], timeout=5)).exit_status == 1
    missing = await t.run(["definitely-not-a-binary-wscheck"], timeout=5)
    assert missing.exit_status == 127


async def test_local_transport_timeout_kills(tmp_path: Path) -> None:
    """The timed-out child is killed (not left running, not waited for): its pid is gone when `run` returns."""
    pid_file = tmp_path / "pid"
    try:
        async with asyncio.timeout(10):  # without the kill, `run` would wait the full 30 s for sleep to end
            with pytest.raises(CommandTimeout):
                await LocalTransport().run(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], timeout=0.5)
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)  # only the child this test started


async def test_local_transport_does_not_leak_bot_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    monkeypatch.setenv("WSCHECK_APPROVERS", "U1")
    result = await LocalTransport().run(["env"], timeout=5)
    assert "xoxb-must-not-leak" not in result.stdout
    assert "WSCHECK_" not in result.stdout
    assert "PATH=" in result.stdout
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-must-not-leak"
