"""ws.sessions: a Socket.IO session's polling requests reach the process that holds it (wt-sio).

Socket.IO starts every session with HTTP long-polling, and each request of a session must reach the process
that made it. Behind PM2 cluster mode (or several instances) without sticky sessions they land round-robin,
and every request on another process gets `400 {"code":1,"message":"Session ID unknown"}` (socket.io docs,
"Using multiple nodes"). The WebSocket probes do not see it: one WebSocket is one connection, to one process.
So this check makes one polling handshake and a few requests of that session, each on its own connection,
inside the target (127.0.0.1:app_port, through the SSH connection like http.local).

The requests are harmless: noop packets (`6`), then a close (`1`) so that the app forgets the session.
"""

from __future__ import annotations

import json

from checks.facts import FactError, Facts
from checks.items.base import Outcome, fail, ok
from checks.messages import msg
from checks.probes import ProbeError, http_exchange, parse_open_packet
from checks.transport.base import ByteStream, ProbeConnectError, said

#: Requests of the one session; with two instances round-robin, half of them land on the other one.
POLLS = 6
SESSION_UNKNOWN = "Session ID unknown"


def session_unknown(status: int, body: bytes) -> bool:
    """Engine.IO's answer to a request for a session this process does not hold (error code 1)."""
    if status != 400:
        return False
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return SESSION_UNKNOWN in body.decode("utf-8", "replace")
    return isinstance(data, dict) and (data.get("code") == 1 or data.get("message") == SESSION_UNKNOWN)


async def ws_sessions(f: Facts) -> Outcome:
    t = f.target
    if t.ws_protocol != "socket.io":
        return ok(msg("ws.sessions.not_socketio", protocol=t.ws_protocol), protocol=t.ws_protocol)
    port = t.app_port
    base = t.ws_path + ("&" if "?" in t.ws_path else "?") + "EIO=4&transport=polling"
    where = f"http://127.0.0.1:{port}{base}"
    host = f"127.0.0.1:{port}"

    async def opener() -> ByteStream:
        return await f.transport.open_tcp("127.0.0.1", port, timeout=f.target.probe_timeout)

    details: dict[str, object] = {"url": where}
    try:
        instances = await f.app_instances()
        details |= {"instances": len(instances), "exec_mode": instances[0].exec_mode if instances else None}
    except FactError:
        details["instances"] = None
    try:
        status, body = await http_exchange(opener, method="GET", host_header=host, path=base,
                                           timeout=f.target.probe_timeout)
        text = body.decode("utf-8", "replace")
        if status != 200:
            return fail(msg("ws.sessions.handshake_status", url=where, status=status), status=status, **details)
        try:
            parse_open_packet(text)
            sid = str(json.loads(text[1:])["sid"])
        except (ValueError, KeyError, TypeError):
            return fail(msg("ws.sessions.not_engineio", url=where, got=text[:60]), **details)
        path = f"{base}&sid={sid}"
        statuses: list[int] = []
        unknown = 0
        for _ in range(POLLS):
            status, body = await http_exchange(opener, method="POST", host_header=host, path=path, body=b"6",
                                               timeout=f.target.probe_timeout)
            statuses.append(status)
            unknown += session_unknown(status, body)
        await http_exchange(opener, method="POST", host_header=host, path=path, body=b"1",
                            timeout=f.target.probe_timeout)
    except (ProbeConnectError, ProbeError) as exc:
        return fail(msg("web.probe_error", url=where, error=said(exc)), **details)
    except TimeoutError:
        return fail(msg("web.no_answer", url=where, timeout=f.target.probe_timeout), **details)
    details |= {"polls": POLLS, "statuses": statuses, "session_unknown": unknown}
    if unknown:
        return fail(msg("ws.sessions.unknown", n=unknown, polls=POLLS, instances=details["instances"] or "?"),
                    **details)
    bad = [s for s in statuses if s != 200]
    if bad:
        return fail(msg("ws.sessions.status", polls=POLLS, statuses=", ".join(map(str, statuses))), **details)
    return ok(msg("ws.sessions.ok", polls=POLLS, instances=details["instances"] or "?"), **details)
