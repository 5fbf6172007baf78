"""Socket Mode server: single-use tickets, hello, envelopes, ack tracking, disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from .models import JSON, Envelope

if TYPE_CHECKING:
    from .server import FakeSlack


@dataclass
class Connection:
    id: int
    ws: web.WebSocketResponse = field(repr=False)
    ticket: str
    opened_at: float
    hello: JSON
    closed_at: float | None = None
    disconnect_sent: str | None = None
    received: int = 0

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


class SocketMode:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self._tickets: dict[str, float] = {}
        self.used_tickets: set[str] = set()
        self.all_connections: list[Connection] = []
        #: Slack spreads envelopes over an app's open connections (each replica gets its share, which one is not
        #: said). The fake hands each to the newest open connection, or, with `route_to` set, only to that
        #: connection (a test aims a command or click at one replica); waits for it like for any connection.
        self.route_to: int | None = None
        #: connection attempts refused (unknown / reused ticket), as human-readable reasons
        self.refused: list[str] = []
        self.envelopes: list[Envelope] = []
        self.ack_failures: list[Envelope] = []
        #: acks whose envelope_id matches no pending delivery (double ack, made-up id)
        self.unmatched_acks: list[Any] = []
        #: anything else the client sent over the socket (not an ack)
        self.client_messages: list[Any] = []
        self._timers: set[asyncio.Task[None]] = set()

    # -- connecting --------------------------------------------------------------------------------------
    def issue_url(self) -> str:
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = time.monotonic()
        return f"ws://127.0.0.1:{self.fake.port}/socket?ticket={ticket}&app_id={self.fake.app_id}"

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.all_connections if c.open]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            reason = "reused ticket" if ticket in self.used_tickets else f"unknown ticket {ticket!r}"
            self.refused.append(reason)
            self.fake._problem(f"socket connection refused: {reason}")
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        del self._tickets[ticket]
        self.used_tickets.add(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        hello: JSON = {
            "type": "hello",
            "num_connections": len(self.open_connections) + 1,
            "debug_info": {
                "host": "applink-fakeslack",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.fake.app_id},
        }
        await ws.send_str(json.dumps(hello))
        conn = Connection(
            id=len(self.all_connections) + 1, ws=ws, ticket=ticket, opened_at=time.monotonic(), hello=hello
        )
        self.all_connections.append(conn)
        self.fake._notify()
        try:
            async for msg in ws:
                conn.received += 1
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.client_messages.append(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.closed_at = time.monotonic()
            self.fake._notify()
        return ws

    def _on_text(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            self.client_messages.append(data)  # e.g. a "ping" text frame: tolerated
            self.fake._notify()
            return
        if isinstance(message, dict) and "envelope_id" in message:
            self._on_ack(message)
        else:
            self.client_messages.append(message)
        self.fake._notify()

    def _on_ack(self, message: JSON) -> None:
        envelope_id = message["envelope_id"]
        delivery = next(
            (e for e in reversed(self.envelopes) if e.envelope_id == envelope_id and not e.acked), None
        )
        if delivery is None:
            self.unmatched_acks.append(message)
            self.fake._problem(f"ack for unknown or already acked envelope {envelope_id!r}")
            return
        delivery.acked_at = time.monotonic()
        latency = delivery.acked_at - delivery.sent_at
        if latency > self.fake.ack_timeout:
            delivery.ack_problems.append(f"late ack after {latency:.3f}s (limit {self.fake.ack_timeout}s)")
            if delivery not in self.ack_failures:
                self.ack_failures.append(delivery)
        payload = message.get("payload")
        if payload is not None and payload != {}:
            delivery.ack_payload = payload
            if not delivery.accepts_response_payload:
                delivery.ack_problems.append(
                    f"ack carries a payload but {delivery.type} envelopes accept none (Slack ignores it)"
                )
            else:
                self.fake._apply_ack_payload(delivery, payload)
        for problem in delivery.ack_problems:
            self.fake._problem(f"envelope {delivery.envelope_id} ({delivery.type}): {problem}")
        delivery.ack_event.set()

    # -- sending -----------------------------------------------------------------------------------------
    async def _pick_connection(self, timeout: float) -> Connection:
        def usable() -> Connection | None:
            candidates = [c for c in self.open_connections if c.disconnect_sent is None]
            if self.route_to is not None:
                candidates = [c for c in candidates if c.id == self.route_to]
            return candidates[-1] if candidates else None

        return await self.fake.wait_for(
            usable,
            timeout=timeout,
            what="an open Socket Mode connection (is the bot running, pointed at fake.api_url?)",
        )

    async def send(self, raw: JSON, *, wait_ack: bool, response_url: str | None = None) -> Envelope:
        conn = await self._pick_connection(self.fake.connect_wait)
        envelope_id = raw.get("envelope_id")
        payload = raw.get("payload")
        delivery = Envelope(
            envelope_id=str(envelope_id) if envelope_id is not None else "",
            type=str(raw.get("type", "")),
            payload=payload if isinstance(payload, dict) else {},
            accepts_response_payload=bool(raw.get("accepts_response_payload", False)),
            retry_attempt=int(raw.get("retry_attempt", 0) or 0),
            retry_reason=str(raw.get("retry_reason", "") or ""),
            raw=raw,
            connection_id=conn.id,
            response_url=response_url,
        )
        track = envelope_id is not None
        if track:
            self.envelopes.append(delivery)
        delivery.sent_at = time.monotonic()
        await conn.ws.send_str(json.dumps(raw))
        self.fake._notify()
        if track:
            timer = asyncio.get_running_loop().create_task(self._ack_deadline(delivery))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
            if wait_ack:
                # the deadline task ends on the ack or after ack_timeout (having recorded the failure)
                await asyncio.shield(timer)
        return delivery

    async def _ack_deadline(self, delivery: Envelope) -> None:
        try:
            await asyncio.wait_for(delivery.ack_event.wait(), self.fake.ack_timeout)
        except TimeoutError:
            if not delivery.acked and delivery not in self.ack_failures:
                delivery.ack_problems.append(f"not acked within {self.fake.ack_timeout}s")
                self.ack_failures.append(delivery)
                self.fake._problem(
                    f"envelope {delivery.envelope_id} ({delivery.type}) "
                    f"not acked within {self.fake.ack_timeout}s"
                )

    @staticmethod
    def new_envelope_id() -> str:
        return str(uuid.uuid4())

    @staticmethod
    def new_trigger_id() -> str:
        return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**13)}.{secrets.token_hex(16)}"

    # -- disconnecting -----------------------------------------------------------------------------------
    async def disconnect(self, reason: str, grace: float) -> int:
        """Send `disconnect` to every open connection, give clients `grace` seconds to close, then close."""
        targets = [c for c in self.open_connections if c.disconnect_sent is None]
        for conn in targets:
            conn.disconnect_sent = reason
            message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fakeslack"}}
            with contextlib.suppress(ConnectionError):
                await conn.ws.send_str(json.dumps(message))
        self.fake._notify()
        await self.fake._wait_quietly(lambda: not any(c.open for c in targets), grace)
        for conn in targets:
            if conn.open:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode())
        return len(targets)

    async def close_all(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        for conn in self.open_connections:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fakeslack stopping")
