"""Parse `ss -ltnpH` (or `ss -ltnH`) into listening sockets and, where visible, their owning processes.

This answers the field note's "no port conflict" and "is the app on the port Nginx proxies to" items
(`netstat -tulpn | grep 3003` by hand). ss only shows a socket's owner to root or to the owner itself, so an
empty process list means "not visible", not "nobody".

Format facts the parser relies on (iproute2 6.x, checked against captured output):
- columns: [Netid] [State] Recv-Q Send-Q Local:Port Peer:Port [users:((...),...)]; `-H` drops the header,
  Netid appears only when several protocols are asked for;
- IPv6 addresses are bracketed (`[::1]:22`), the wildcard is `*` or `[::]`, a bound device follows a `%`
  (`127.0.0.53%lo:53`);
- process names are quoted but not escaped, cut to 15 characters, and may contain spaces, commas and `(`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from checks.parsers import ParseError

# One users: entry. The name is everything up to the `",pid=` that is followed by a well-formed tail, so a
# name containing `,(` or `"` still parses. Older ss printed `("name",pid,fd)` without the `pid=`/`fd=`.
_ENTRY = re.compile(
    r'\("(?P<name>.{0,64}?)",(?:pid=)?(?P<pid>\d{1,10})(?:,(?:fd=)?(?P<fd>\d{1,10}))?[^()]{0,200}?\)(?=,\(|\)|$)',
    re.ASCII,
)
_STATES = frozenset(
    {
        "LISTEN",
        "UNCONN",
        "ESTAB",
        "SYN-SENT",
        "SYN-RECV",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "CLOSE-WAIT",
        "LAST-ACK",
        "CLOSING",
        "CLOSED",
        "UNKNOWN",
    }
)
_LISTENING = frozenset({"LISTEN", "UNCONN"})
_NETIDS = frozenset({"tcp", "udp", "raw", "sctp", "mptcp", "u_str", "u_dgr", "u_seq", "p_raw", "p_dgr", "nl"})


class SockProc(BaseModel):
    """A process holding the socket (several when workers share it, as Nginx's do)."""

    model_config = ConfigDict(frozen=True)

    name: str
    pid: int
    fd: int | None = None


class Listener(BaseModel):
    """A listening socket: the address as ss prints it (brackets removed), the port, and visible owners."""

    model_config = ConfigDict(frozen=True)

    local_addr: str
    port: int
    processes: tuple[SockProc, ...] = ()


def _split_addr(token: str) -> tuple[str, int] | None:
    """`[::ffff:127.0.0.1]:3003` -> ("::ffff:127.0.0.1", 3003), `*:3003` -> ("*", 3003); numeric port."""
    host, sep, port_text = token.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not port_text.isascii():
        return None
    port = int(port_text)
    if port > 65535:
        return None
    if host.startswith("["):
        inner, close, rest = host[1:].partition("]")
        if not close:
            return None
        host = inner + rest  # `[fe80::1]%eth0` -> `fe80::1%eth0`
    return host, port


def _parse_users(text: str) -> tuple[SockProc, ...]:
    start = text.find("users:(")
    if start < 0:
        return ()
    body = text[start + len("users:(") :].rstrip()
    procs: list[SockProc] = []
    for match in _ENTRY.finditer(body):
        fd = match.group("fd")
        procs.append(
            SockProc(name=match.group("name"), pid=int(match.group("pid")), fd=int(fd) if fd else None)
        )
    return tuple(procs)


def _valid_peer(token: str) -> bool:
    host, sep, port = token.rpartition(":")
    return bool(sep and host) and (port == "*" or (port.isascii() and port.isdigit()))


def _parse_line(line: str) -> tuple[bool, Listener | None]:
    """(recognised as an ss socket line, the listener if it is one); non-listening states are recognised."""
    users_at = line.find("users:(")
    head = line if users_at < 0 else line[:users_at]
    tokens = head.split()
    state: str | None = None
    if tokens and tokens[0].lower() in _NETIDS:
        tokens = tokens[1:]
    if tokens and tokens[0].upper() in _STATES:
        state = tokens[0].upper()
        tokens = tokens[1:]
    if (
        len(tokens) < 4
        or not (tokens[0] + tokens[1]).isascii()
        or not tokens[0].isdigit()
        or not tokens[1].isdigit()
    ):
        return False, None
    local = _split_addr(tokens[2])
    if local is None or not _valid_peer(tokens[3]):
        return False, None
    if state is not None and state not in _LISTENING:
        return True, None
    host, port = local
    processes = _parse_users(line[users_at:]) if users_at >= 0 else ()
    return True, Listener(local_addr=host, port=port, processes=processes)


def parse_ss(text: str) -> list[Listener]:
    """Listening sockets from `ss -ltn[p]H` (a header line, blank lines and unknown lines are skipped).

    Raises ParseError only when the text is not blank and not a single line looks like ss output, which
    means the command was not ss (or failed) rather than "nothing listens".
    """
    listeners: list[Listener] = []
    recognised = False
    for line in text.splitlines():
        if not line.strip():
            continue
        ok, listener = _parse_line(line)
        recognised = recognised or ok
        if listener is not None:
            listeners.append(listener)
    if not recognised and text.strip() and not _is_header_only(text):
        raise ParseError("no socket line in ss output")
    return listeners


def _is_header_only(text: str) -> bool:
    """`ss -ltn` without -H on a host with no listener prints only its header: valid and empty."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].split()[:3] in (
        ["State", "Recv-Q", "Send-Q"],
        ["Netid", "State", "Recv-Q"],
    )


def listeners_on(listeners: list[Listener], port: int) -> list[Listener]:
    """Every listener on `port`, whatever the address (a port may be bound on IPv4 and IPv6 separately)."""
    return [listener for listener in listeners if listener.port == port]
