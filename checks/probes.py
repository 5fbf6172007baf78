"""HTTP and WebSocket probes over any byte stream.

The same probe code runs over a direct-tcpip SSH channel (inside the target: `127.0.0.1:app_port`,
no curl needed there), over a local TCP connection, and over TLS to the public URL. So the protocol
work is done by sans-I/O libraries — h11 for HTTP/1.1, websockets' `ClientProtocol` for RFC 6455 —
and this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from checks.messages import Msg, msg
from checks.parsers import ParseError
from checks.parsers.certs import WHY_KEYS, CertFacts, from_der
from checks.transport.base import AsyncioStream, ByteStream, ProbeConnectError, SaidError, os_reason

USER_AGENT = "wscheck/0.1 (+https://github.com/wscheck)"
_READ = 65536


class ProbeError(SaidError):
    """The peer answered, but not with what the protocol requires (or not at all)."""

    def __init__(self, message: str | Msg, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def server(self) -> str:
        return self.headers.get("server", "")


@dataclass(frozen=True, slots=True)
class WsAnswer:
    status: int
    rtt_ms: float
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    #: wt-sio: the Engine.IO open packet's settings (pingInterval, pingTimeout, maxPayload; never the sid).
    engineio: dict[str, object] | None = None


Opener = Callable[[], Awaitable[ByteStream]]


async def _next_event(conn: h11.Connection, stream: ByteStream) -> object:
    """The next h11 event, reading from `stream` as long as h11 needs data; not HTTP is a ProbeError."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProbeError(msg("probe.not_http", error=str(exc))) from None
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.read(_READ))


async def http_get(open_stream: Opener, *, host_header: str, path: str, timeout: float) -> HttpAnswer:
    """GET `path` and return the status line and headers (the body is not read)."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        stream = await open_stream()
        try:
            conn = h11.Connection(our_role=h11.CLIENT)
            request = h11.Request(
                method="GET",
                target=path,
                headers=[
                    ("Host", host_header),
                    ("User-Agent", USER_AGENT),
                    ("Accept", "text/html,*/*"),
                    ("Connection", "close"),
                ],
            )
            await stream.write(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""))
            while True:
                event = await _next_event(conn, stream)
                if isinstance(event, h11.Response):
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                    return HttpAnswer(
                        status=event.status_code,
                        reason=event.reason.decode("latin-1"),
                        headers=headers,
                        elapsed_ms=(time.perf_counter() - started) * 1000,
                    )
                if isinstance(event, h11.ConnectionClosed):
                    raise ProbeError(msg("probe.closed_no_answer"))
        except ConnectionError:
            # wt-nginxrt: a reset before any answer (nginx out of worker_connections drops the client) is a
            # finding about the server, not a crash of the check.
            raise ProbeError(msg("probe.closed_no_answer")) from None
        finally:
            await stream.aclose()


async def ws_handshake(open_stream: Opener, *, uri: str, timeout: float, origin: str | None = None,
                       engineio: bool = False) -> WsAnswer:
    """Open a WebSocket, require `101 Switching Protocols`, then time one ping/pong round trip.

    `engineio` (a Socket.IO target, wt-sio): `uri` is the Engine.IO v4 WebSocket URL (`engineio_uri`), and the
    app's answer is its open packet `0{...}`, required before the ping; an Engine.IO ping (`2`) is answered."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        stream = await open_stream()
        try:
            protocol = ClientProtocol(parse_uri(uri))
            request = protocol.connect()
            request.headers["User-Agent"] = USER_AGENT
            if origin:
                request.headers["Origin"] = origin
            protocol.send_request(request)
            await _flush(protocol, stream)
            response: Response | None = None
            early: list[Frame] = []  # frames that came with the 101 (an Engine.IO open packet does)
            while protocol.state is State.CONNECTING:
                data = await stream.read(_READ)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                for event in protocol.events_received():
                    if isinstance(event, Response):
                        response = event
                    elif isinstance(event, Frame):
                        early.append(event)
                if protocol.handshake_exc is not None:
                    break
                if not data and protocol.state is State.CONNECTING:
                    break
            if protocol.handshake_exc is not None or protocol.state is not State.OPEN:
                raise _handshake_error(protocol.handshake_exc, response)
            headers = {k.lower(): v for k, v in response.headers.raw_items()} if response else {}
            opened = await _engineio_open(protocol, stream, early) if engineio else None
            payload = os.urandom(8)
            ping_at = time.perf_counter()
            protocol.send_ping(payload)
            await _flush(protocol, stream)
            rtt = await _await_pong(protocol, stream, payload, ping_at)
            protocol.send_close(1000, "wscheck probe done")
            await _flush(protocol, stream)
            return WsAnswer(status=101, rtt_ms=rtt, headers=headers,
                            elapsed_ms=(time.perf_counter() - started) * 1000, engineio=opened)
        except ConnectionError:
            raise ProbeError(msg("probe.handshake_closed")) from None  # wt-nginxrt: a reset, see http_get
        finally:
            await stream.aclose()


async def _flush(protocol: ClientProtocol, stream: ByteStream) -> None:
    for chunk in protocol.data_to_send():
        if chunk:
            await stream.write(chunk)


async def _await_pong(protocol: ClientProtocol, stream: ByteStream, payload: bytes, ping_at: float) -> float:
    while True:
        data = await stream.read(_READ)
        if not data:
            raise ProbeError(msg("probe.ws_closed"), status=101)
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.PONG and event.data == payload:
                    return (time.perf_counter() - ping_at) * 1000
                if event.opcode is Opcode.CLOSE:
                    raise ProbeError(msg("probe.ws_closed_by_server"), status=101)
                if event.opcode is Opcode.TEXT and event.data == EIO_PING:
                    protocol.send_text(EIO_PONG)
        await _flush(protocol, stream)


# -- Engine.IO v4, enough to be a good Socket.IO client (wt-sio) --------------------------------------------------

#: Engine.IO v4 packet types, as the first character of a text frame.
EIO_OPEN, EIO_PING, EIO_PONG = "0", b"2", b"3"
#: Socket.IO's "connect to the main namespace": without it the server drops the client after connectTimeout (45 s).
SIO_CONNECT = "40"


def engineio_uri(uri: str) -> str:
    """The Engine.IO v4 WebSocket URL of a Socket.IO `path` (`/socket.io/?EIO=4&transport=websocket`)."""
    return uri + ("&" if "?" in uri else "?") + "EIO=4&transport=websocket"


def parse_open_packet(text: str) -> dict[str, object]:
    """The settings of an Engine.IO open packet `0{"sid":…,"pingInterval":…}`; ValueError when it is not one.

    The sid is left out: it identifies a session and is of no use in a report."""
    if not text.startswith(EIO_OPEN):
        raise ValueError(f"not an Engine.IO open packet: {text[:40]!r}")
    data = json.loads(text[1:])
    if not isinstance(data, dict) or "sid" not in data:
        raise ValueError(f"not an Engine.IO open packet: {text[:40]!r}")
    return {k: data[k] for k in ("pingInterval", "pingTimeout", "maxPayload", "upgrades") if k in data}


async def _engineio_open(protocol: ClientProtocol, stream: ByteStream, early: list[Frame]) -> dict[str, object]:
    """Wait for the app's Engine.IO open packet (its answer on a Socket.IO target); `early`: frames already read.

    The open packet comes first; a ping (`2`) read in the same batch is answered (`3`), never dropped."""
    opened: dict[str, object] | None = None
    while True:
        for event in [*early, *protocol.events_received()]:
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.CLOSE:
                raise ProbeError(msg("probe.ws_closed_by_server"), status=101)
            if event.opcode is not Opcode.TEXT:
                continue
            if opened is not None:
                if event.data == EIO_PING:
                    protocol.send_text(EIO_PONG)
                continue
            text = bytes(event.data).decode("utf-8", "replace")
            try:
                opened = parse_open_packet(text)
            except ValueError:
                raise ProbeError(msg("probe.eio_not_open", got=text[:60]), status=101) from None
        if opened is not None:
            await _flush(protocol, stream)
            return opened
        early = []
        data = await stream.read(_READ)
        if not data:
            raise ProbeError(msg("probe.ws_closed"), status=101)
        protocol.receive_data(data)


def _handshake_error(exc: Exception | None, response: Response | None) -> ProbeError:
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        headers = {k.lower(): v for k, v in exc.response.headers.raw_items()}
        return ProbeError(
            msg("probe.handshake_status", status=status, reason=exc.response.reason_phrase),
            status=status,
            headers=headers,
        )
    if response is not None:
        headers = {k.lower(): v for k, v in response.headers.raw_items()}
        return ProbeError(msg("probe.handshake_rejected", error=str(exc)), status=response.status_code,
                          headers=headers)
    if isinstance(exc, WebSocketException | ValueError):
        return ProbeError(msg("probe.handshake_failed", error=str(exc)))
    return ProbeError(msg("probe.handshake_closed"))


# -- TLS, seen from where the bot stands (wt-tls) -----------------------------------------------------------------

#: OpenSSL verify codes (X509_V_ERR_*) -> our words. Anything else is "other", with OpenSSL's message kept.
_VERIFY_KINDS = {
    9: "not_yet_valid",
    10: "expired",
    62: "wrong_name",
    2: "untrusted",
    18: "untrusted",
    19: "untrusted",
    20: "untrusted",
    21: "untrusted",
    24: "untrusted",
    27: "untrusted",
}


@dataclass(frozen=True, slots=True)
class TlsSeen:
    """What one TLS handshake to the public URL showed: the served leaf and the verification verdict.

    `error` is None when the chain verified for the host name; else one of `_VERIFY_KINDS`' values, "other"
    (a verify failure we do not name) or "handshake" (no certificate could be had: TLS itself failed).
    """

    cert: CertFacts | None
    error: str | None = None
    message: str = ""  # OpenSSL's own words (verify message or handshake reason), never translated
    version: str = ""


TlsSink = Callable[["TlsSeen | BaseException"], None]


class ProbeTlsError(ProbeError):
    """TLS answered but the handshake did not verify (or failed): the peer is there, nginx is running."""

    def __init__(self, message: str | Msg, seen: TlsSeen) -> None:
        super().__init__(message)
        self.seen = seen


def tls_context(ca_file: str | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """The default context (system store, or SSL_CERT_FILE / SSL_CERT_DIR as OpenSSL honours them), plus
    `ca_file` for a private CA. `verify=False` only to read the certificate of a handshake that failed."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _served(writer: asyncio.StreamWriter) -> CertFacts | None:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    try:
        return from_der(der)
    except ParseError:
        return None


async def _unverified_cert(host: str, port: int, timeout: float) -> tuple[CertFacts | None, str]:
    """Only after a failed verification: one more handshake without verifying, to read what is served.

    Python's ssl drops the peer certificate when verification fails, and there is no verify callback
    (decision in docs/decisions.md, wt-tls). The connection is closed right after the handshake."""
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls_context(verify=False), server_hostname=host), timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        return None, ""
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return _served(writer), (ssl_object.version() or "") if ssl_object is not None else ""
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def public_opener(scheme: str, host: str, port: int, *, timeout: float, ca_file: str | None = None,
                  tls_sink: TlsSink | None = None) -> Opener:
    """Stream opener for the public URL, from where the bot runs (TLS for https).

    With TLS, `tls_sink` is told what this very handshake showed (the served certificate and whether it
    verified), or the exception when no TCP connection was made: the TLS check reads the probe's own
    handshake instead of opening one more."""

    tell = tls_sink or (lambda _seen: None)

    async def open_stream() -> ByteStream:
        context = tls_context(ca_file) if scheme in ("https", "wss") else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host if context else None),
                timeout,
            )
        except TimeoutError:
            error = ProbeConnectError(msg("probe.timed_out", host=host, port=port))
            tell(error)
            raise error from None
        except ssl.SSLCertVerificationError as exc:
            kind = _VERIFY_KINDS.get(exc.verify_code, "other")
            cert, version = await _unverified_cert(host, port, timeout)
            seen = TlsSeen(cert=cert, error=kind, message=str(exc.verify_message or exc.reason or exc),
                           version=version)
            tell(seen)
            raise ProbeTlsError(msg("probe.tls_invalid", host=host, port=port, why=msg(WHY_KEYS[kind]),
                                    reason=seen.message), seen) from None
        except ssl.SSLError as exc:
            seen = TlsSeen(cert=None, error="handshake", message=str(exc.reason or exc))
            tell(seen)
            raise ProbeTlsError(msg("probe.tls_failed", host=host, port=port, reason=seen.message), seen) from None
        except OSError as exc:
            error = ProbeConnectError(msg("probe.failed", host=host, port=port, reason=os_reason(exc)))
            tell(error)
            raise error from None
        if context is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            tell(TlsSeen(cert=_served(writer), version=(ssl_object.version() or "") if ssl_object else ""))
        return AsyncioStream(reader, writer)

    return open_stream


# -- one HTTP request with its body (Engine.IO polling; wt-sio) ---------------------------------------------------

#: The most of an answer's body kept: an Engine.IO open packet or error object is far smaller.
_BODY_MAX = 4096


async def http_exchange(open_stream: Opener, *, method: str, host_header: str, path: str, timeout: float,
                        body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection (`Connection: close`): the status and the first bytes of the body.

    Its own connection on purpose: behind PM2 cluster mode each connection may land on another instance, which
    is exactly what the Socket.IO sticky-session check looks for."""
    async with asyncio.timeout(timeout):
        stream = await open_stream()
        try:
            conn = h11.Connection(our_role=h11.CLIENT)
            headers = [("Host", host_header), ("User-Agent", USER_AGENT), ("Connection", "close")]
            if method == "POST":
                headers += [("Content-Type", "text/plain;charset=UTF-8"), ("Content-Length", str(len(body)))]
            data = conn.send(h11.Request(method=method, target=path, headers=headers)) or b""
            if body:
                data += conn.send(h11.Data(data=body)) or b""
            await stream.write(data + (conn.send(h11.EndOfMessage()) or b""))
            status, got = 0, b""
            while True:
                event = await _next_event(conn, stream)
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    got = (got + bytes(event.data))[:_BODY_MAX]
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    if not status:
                        raise ProbeError(msg("probe.closed_no_answer"))
                    return status, got
        finally:
            await stream.aclose()
