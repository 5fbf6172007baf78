"""Which addresses nginx dials and which ones a listener accepts (wt-host, issue 12 item 1).

Why: a port that matches is not a reachable port. Node 17+ binds `localhost` to `::1` (Debian's /etc/hosts
lists `::1 localhost`), `next start` binds tcp4 only, and nginx dials what proxy_pass says — `127.0.0.1`, or
every address a name resolves to, in turn. `port.match` said ok while nginx got `111: Connection refused`.
Pure functions over what `ss`, `getent ahosts` and `ip -o addr` printed.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(text: str) -> Address | None:
    """`[::1]` / `::1%lo` / `127.0.0.1` -> the address; a name, `*` or garbage -> None."""
    value = text.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def covers(listen_addr: str, dialed: Address) -> bool:
    """Does a socket listening on `listen_addr` (as ss prints it, brackets removed) accept `dialed`?

    ss prints a dual-stack wildcard (IPv6 with bindv6only=0) as `*`, an IPv6-only one as `::`, IPv4's as
    `0.0.0.0`; an IPv4-mapped bind (`::ffff:127.0.0.1`) accepts that IPv4 address.
    """
    addr = listen_addr.strip()
    if addr in ("*", ""):
        return True
    if addr == "0.0.0.0":
        return dialed.version == 4
    if addr in ("::", "[::]"):
        return dialed.version == 6
    ip = ip_of(addr)
    if ip is None:
        return False
    if ip == dialed:
        return True
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped is not None and mapped == dialed


def parse_getent_ahosts(text: str) -> list[Address]:
    """`getent ahosts NAME`: one `ADDRESS  STREAM|DGRAM|RAW  [NAME]` line per (address, socket type)."""
    found: list[Address] = []
    for line in text.splitlines():
        words = line.split()
        ip = ip_of(words[0]) if words else None
        if ip is not None and ip not in found:
            found.append(ip)
    return found


def parse_ip_addr(text: str) -> list[Address]:
    """`ip -o addr show`: `2: eth0    inet 10.0.0.5/24 brd ... scope global eth0` -> 10.0.0.5."""
    found: list[Address] = []
    for line in text.splitlines():
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if word in ("inet", "inet6"):
                ip = ip_of(words[i + 1].split("/", 1)[0])
                if ip is not None and ip not in found:
                    found.append(ip)
    return found
