"""wt-sio: the Engine.IO client pieces, the pm2.daemon parsers, the ws_protocol setting and the three rules.

The Engine.IO probe runs against a real WebSocket server (websockets, on 127.0.0.1 port 0) that speaks like
engine.io: its open packet comes in the same TCP segment as the 101, as engine.io's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection, serve

from checks.config import SOCKETIO_PATH, Target
from checks.diagnosis import diagnose
from checks.facts import FactError, Facts
from checks.items.pm2_daemon import parse_god_daemons, parse_login_lookup, pm2_daemon
from checks.items.socketio import session_unknown
from checks.models import Status
from checks.probes import ProbeError, engineio_uri, parse_open_packet, ws_handshake
from checks.transport import CommandResult, FunctionTransport
from checks.transport.base import AsyncioStream, ByteStream
from tests.unit.test_diagnosis import ERROR, FAIL, OK, SKIP, TARGET, results

OPEN = '0{"sid":"abc123","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}'


# -- Engine.IO ----------------------------------------------------------------------------------------------------


def test_engineio_uri_and_open_packet() -> None:
    assert engineio_uri("ws://h/socket.io/") == "ws://h/socket.io/?EIO=4&transport=websocket"
    assert engineio_uri("ws://h/x/?a=1") == "ws://h/x/?a=1&EIO=4&transport=websocket"
    assert parse_open_packet(OPEN) == {"pingInterval": 300, "pingTimeout": 200, "maxPayload": 1000000,
                                       "upgrades": []}
    for bad in ("welcome", "2", '0{"pingInterval":1}', "0[1]", "0{"):
        with pytest.raises(ValueError):
            parse_open_packet(bad)


def test_session_unknown_is_engineio_error_code_1() -> None:
    assert session_unknown(400, b'{"code":1,"message":"Session ID unknown"}')
    assert not session_unknown(400, b'{"code":3,"message":"Bad request"}')
    assert not session_unknown(200, b"ok")
    assert session_unknown(400, b"Session ID unknown")


Server = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def eio_server() -> AsyncIterator[Callable[[Server], Awaitable[int]]]:
    servers: list[Any] = []

    async def start(handler: Server) -> int:
        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def opener(port: int) -> Callable[[], Awaitable[ByteStream]]:
    async def open_stream() -> ByteStream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return AsyncioStream(reader, writer)

    return open_stream


async def test_engineio_probe_reads_the_open_packet(eio_server: Any) -> None:
    seen: list[object] = []

    async def engineio(ws: ServerConnection) -> None:
        seen.append(ws.request.path if ws.request else None)
        await ws.send(OPEN)
        await ws.send("2")  # a ping the probe must answer
        seen.append(await ws.recv())
        await ws.wait_closed()

    port = await eio_server(engineio)
    answer = await ws_handshake(opener(port), uri=engineio_uri(f"ws://127.0.0.1:{port}/socket.io/"), timeout=5,
                                engineio=True)
    assert answer.status == 101 and answer.engineio == {"pingInterval": 300, "pingTimeout": 200,
                                                        "maxPayload": 1000000, "upgrades": []}
    await asyncio.sleep(0)  # let the server's handler record what it received (it did before the close)
    assert seen == ["/socket.io/?EIO=4&transport=websocket", "3"]


async def test_engineio_probe_refuses_a_plain_websocket(eio_server: Any) -> None:
    async def plain(ws: ServerConnection) -> None:
        await ws.send("welcome")
        await ws.wait_closed()

    port = await eio_server(plain)
    uri = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(ProbeError) as info:
        await ws_handshake(opener(port), uri=uri, timeout=5, engineio=True)
    assert "Engine.IO open packet" in str(info.value) and "welcome" in str(info.value)
    # The plain probe is unchanged: the same server passes it (no open packet needed).
    answer = await ws_handshake(opener(port), uri=uri, timeout=5)
    assert answer.status == 101 and answer.engineio is None


# -- the ws_protocol setting ---------------------------------------------------------------------------------------


def test_ws_protocol_sets_the_default_ws_path() -> None:
    base = {"name": "a", "pm2_app": "x", "app_port": 3000, "app_dir": "/srv/x"}
    assert Target.model_validate(base).ws_path == "/ws"
    assert Target.model_validate(base).ws_protocol == "websocket"
    assert Target.model_validate({**base, "ws_protocol": "socket.io"}).ws_path == SOCKETIO_PATH
    assert Target.model_validate({**base, "ws_protocol": "socket.io", "ws_path": "/chat/"}).ws_path == "/chat/"
    with pytest.raises(ValidationError):
        Target.model_validate({**base, "ws_protocol": "sockjs"})


# -- pm2.daemon's parsers --------------------------------------------------------------------------------------------


def test_god_daemons_from_ps() -> None:
    text = ("  812 deploy   PM2 v6.0.14: God Daemon (/home/deploy/.pm2)\n"
            " 9001 root     PM2 v5.3.0: God Daemon (/root/.pm2)\n"
            " 9100 deploy   grep -F God Daemon (\n"
            " 9200 deploy   node /srv/app/server.js --title PM2 v1: God Daemon (/x)\n")
    found = parse_god_daemons(text)
    assert [(d.pid, d.user, d.version, d.home) for d in found] == [
        (812, "deploy", "6.0.14", "/home/deploy/.pm2"), (9001, "root", "5.3.0", "/root/.pm2")]


def test_login_lookup_paths() -> None:
    text = ("/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2\n"
            "/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2\n/usr/local/bin/pm2\nbash: no job control\n")
    assert parse_login_lookup(text) == ["/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2", "/usr/local/bin/pm2"]
    assert parse_login_lookup("") == []


# -- the rules -------------------------------------------------------------------------------------------------------


def causes(found: Any) -> list[str]:
    return [c.cause for c in found]


def test_socketio_no_sticky_sessions_needs_several_instances() -> None:
    two = (FAIL, {"session_unknown": 3, "instances": 2, "polls": 6})
    (cause,) = diagnose(TARGET, results(ws_sessions=two))
    assert cause.cause == "socketio_no_sticky_sessions" and cause.evidence == ("ws.sessions",)
    assert any('transports: ["websocket"]' in line for line in cause.fix)
    assert any("pm2 scale kathario-saas 1" in line for line in cause.fix)
    one = (FAIL, {"session_unknown": 3, "instances": 1, "polls": 6})
    assert causes(diagnose(TARGET, results(ws_sessions=one))) == ["unknown"]
    assert causes(diagnose(TARGET, results(ws_sessions=(FAIL, {"instances": 2})))) == ["unknown"]


def test_pm2_home_mismatch_takes_the_foreign_holder_and_the_empty_jlist() -> None:
    mismatch = (FAIL, {"mismatch": True, "holder": {"pid": 77, "daemon": 5, "user": "root", "home": "/root/.pm2"}})
    found = diagnose(TARGET, results(pm2_daemon=mismatch, pm2_status=(FAIL, {"known_apps": []}),
                                     port_listen=FAIL, port_match=SKIP, port_conflict=(FAIL, {"foreign": []}),
                                     pm2_logs=SKIP))
    assert causes(found) == ["pm2_home_mismatch"]
    assert found[0].fix == ('set pm2_user = "root" and pm2_home = "/root/.pm2" for web in wscheck.toml '
                            "(or run the app under the PM2 the bot asks)",)
    assert {"pm2.status", "port.conflict", "port.listen"} <= set(found[0].evidence)


def test_pm2_binary_not_found_is_an_error_with_the_login_path() -> None:
    missing = (ERROR, {"error_kind": "missing_binary"})
    daemon = (OK, {"pm2_login_paths": ["/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2"]})
    (cause,) = diagnose(TARGET, results(pm2_status=missing, port_listen=missing, pm2_logs=missing,
                                        pm2_daemon=daemon))
    assert cause.cause == "pm2_binary_not_found" and cause.severity is ERROR
    assert cause.evidence == ("pm2.status", "port.listen", "pm2.logs")
    assert cause.fix == ('set pm2_bin = "/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2" for web in wscheck.toml',)
    assert "/home/deploy/.nvm/versions/node/v20.11.0/bin/pm2" in cause.summary
    # A probe that fails is not explained by a missing pm2 binary: it stays for its own cause.
    found = diagnose(TARGET, results(pm2_status=missing, ws_proxy=(FAIL, {"status": 502})))
    assert causes(found) == ["pm2_binary_not_found", "unknown"]


def test_plain_pm2_failures_keep_their_causes() -> None:
    """A `stopped` app is still pm2_not_online: the new rules need their own evidence."""
    found = diagnose(TARGET, results(pm2_status=FAIL, port_listen=FAIL, http_local=FAIL, ws_local=FAIL,
                                     http_proxy=(FAIL, {"status": 502}), ws_proxy=(FAIL, {"status": 502})))
    assert causes(found) == ["pm2_not_online"]


# -- pm2.daemon in process (FunctionTransport) ------------------------------------------------------------------------

SS_LINE = 'LISTEN 0 511 127.0.0.1:3003 0.0.0.0:* users:(("node",pid=4300,fd=20))'
PS_TABLE = "    1     0 root     systemd\n  900     1 root     PM2 v6.0.14: God\n 4242   900 root     npm start\n" \
           " 4300  4242 root     node\n"
GODS = "  900 root     PM2 v6.0.14: God Daemon (/root/.pm2)\n"


def daemon_transport(ss: str, jlist: str = "[]") -> FunctionTransport:
    def handler(argv: tuple[str, ...]) -> CommandResult:
        if "jlist" in argv:
            return CommandResult(argv, 0, jlist, "")
        if argv[:2] == ("ss", "-ltnpH"):
            return CommandResult(argv, 0, ss, "")
        if argv[0] == "ps":
            return CommandResult(argv, 0, PS_TABLE, "")
        if argv[0] == "sh" and "God Daemon" in argv[2]:
            return CommandResult(argv, 0, GODS, "")
        raise AssertionError(argv)

    return FunctionTransport(handler)


async def test_pm2_daemon_of_another_user_without_pm2_home() -> None:
    target = Target.model_validate({"name": "web", "host": "203.0.113.10", "user": "deploy", "pm2_app": "web",
                                    "app_port": 3003, "app_dir": "/srv/web"})
    result = await pm2_daemon(Facts(target, daemon_transport(SS_LINE), ["pm2.daemon"]))
    assert result.status is Status.FAIL and result.details["mismatch"] is True
    assert result.details["holder"] == {"pid": 4300, "daemon": 900, "user": "root", "home": "/root/.pm2"}
    same = target.model_copy(update={"user": "root"})
    result = await pm2_daemon(Facts(same, daemon_transport(SS_LINE), ["pm2.daemon"]))
    assert result.status is Status.OK, result.summary


async def test_pm2_daemon_cannot_tell_a_hidden_holder() -> None:
    """`ss -p` without root: a listener without its process is no evidence of any daemon (skip, see port.listen)."""
    target = Target.model_validate({"name": "web", "host": "203.0.113.10", "user": "deploy", "pm2_app": "web",
                                    "app_port": 3003, "app_dir": "/srv/web"})
    hidden = "LISTEN 0 511 127.0.0.1:3003 0.0.0.0:*"
    with pytest.raises(FactError) as info:
        await pm2_daemon(Facts(target, daemon_transport(hidden), ["pm2.daemon", "port.listen"]))
    assert info.value.status is Status.SKIP and "not shown" in str(info.value)
