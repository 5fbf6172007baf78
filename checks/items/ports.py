"""port.listen, port.match and port.conflict: the 3000-vs-3003 bug and its cousins."""

from __future__ import annotations

import asyncio
import re

from checks import commands
from checks.facts import LOOPBACK, FactError, Facts
from checks.items.base import Outcome, fail, ok, warn
from checks.messages import Msg, joined, msg
from checks.parsers.addr import Address, covers, ip_of, parse_getent_ahosts, parse_ip_addr
from checks.parsers.ps import ProcInfo
from checks.parsers.ss import Listener


def _owners(listeners: list[Listener], procs: dict[int, ProcInfo]) -> list[dict[str, object]]:
    seen: dict[int, dict[str, object]] = {}
    for lst in listeners:
        for p in lst.processes:
            info = procs.get(p.pid)
            seen.setdefault(p.pid, {
                "pid": p.pid,
                "name": p.name,
                "user": info.user if info else None,
                "addr": f"{lst.local_addr}:{lst.port}",
            })
    return list(seen.values())


def _who(owner: dict[str, object]) -> Msg:
    if owner.get("user"):
        return msg("port.who_user", name=owner["name"], pid=owner["pid"], user=owner["user"])
    return msg("port.who", name=owner["name"], pid=owner["pid"])


async def port_listen(f: Facts) -> Outcome:
    tree, on_port, procs = await asyncio.gather(f.app_tree(), f.port_listeners(), f.processes())
    app, port = f.target.pm2_app, f.target.app_port
    owners = _owners(on_port, procs)
    details: dict[str, object] = {
        "app_port": port,
        "app_ports": list(tree.ports),
        "listeners": owners,
        "app_running": tree.running,
    }
    if not on_port:
        elsewhere = msg("port.listen.elsewhere", app=app, ports=", ".join(map(str, tree.ports))) if tree.ports else ""
        state = "" if tree.running else msg("port.listen.not_running", app=app)
        return fail(msg("port.listen.none", port=port, elsewhere=elsewhere, state=state), **details)
    mine = [o for o in owners if o["pid"] in tree.pids]
    if mine:
        addrs = sorted({str(o["addr"]) for o in mine})
        return ok(msg("port.listen.ok", app=app, addrs=", ".join(addrs), who=_who(mine[0])), **details)
    if owners:
        return fail(msg("port.listen.held", port=port, who=_who(owners[0]), app=app), **details)
    if not tree.running:
        return fail(msg("port.listen.hidden_not_running", port=port, app=app), **details)
    return warn(msg("port.listen.hidden", port=port), **details)


def _local_ports(upstream: tuple[tuple[str, int], ...]) -> list[int]:
    return sorted({p for h, p in upstream if h in LOOPBACK or h.startswith("127.")})


async def port_match(f: Facts) -> Outcome:
    found, tree = await asyncio.gather(f.app_location(), f.app_tree(), return_exceptions=True)
    if isinstance(found, FactError) and found.kind == "nginx" and found.details.get("reason") == "redirect":
        # wt-tls: nginx answers the WebSocket path with a redirect: no upstream port to compare. nginx.websocket
        # (and ws.proxy) carry that finding; port.match has nothing of its own to say.
        raise f.explained_by("nginx.websocket", found.message,
                             route=found.details) from None
    if isinstance(found, BaseException):
        raise found
    if isinstance(tree, BaseException):
        raise tree
    loc = found
    app, port = f.target.pm2_app, f.target.app_port
    nginx_ports = _local_ports(loc.upstream)
    details: dict[str, object] = {
        "nginx_ports": nginx_ports,
        "app_ports": list(tree.ports),
        "app_port": port,
        "port_env": tree.instances[0].port_env if tree.instances else None,
        "proxy_pass": loc.proxy_pass,
        "file": loc.file,
        "line": loc.line,
    }
    lan = await _lan_upstream(f, loc.upstream, port) if not nginx_ports else None
    if lan:
        nginx_ports = [port]
    if not nginx_ports:
        return warn(msg("port.match.not_local", proxy_pass=loc.proxy_pass), **details)
    if not tree.ports:
        raise f.explained_by("port.listen", msg("port.match.no_port", app=app))
    nginx_port = nginx_ports[0]
    app_on = port in tree.ports
    nginx_on = port in nginx_ports
    if app_on and nginx_on:
        return await _address_match(f, loc.upstream, tree.pids, details)
    app_desc = ", ".join(map(str, tree.ports))
    if nginx_on:
        return fail(msg("port.match.app_side", port=port, app=app, app_ports=app_desc), side="app", **details)
    if app_on:
        return fail(msg("port.match.nginx_side", nginx_port=nginx_port, app=app, port=port), side="nginx",
                    **details)
    if nginx_port in tree.ports:
        return warn(msg("port.match.config_side", app=app, nginx_port=nginx_port, port=port), side="config",
                    **details)
    return fail(msg("port.match.nothing_agrees", nginx_port=nginx_port, app=app, app_ports=app_desc, port=port),
                side="both", **details)


async def port_conflict(f: Facts) -> Outcome:
    tree, on_port, procs = await asyncio.gather(f.app_tree(), f.port_listeners(), f.processes())
    port = f.target.app_port
    owners = _owners(on_port, procs)
    foreign = [o for o in owners if o["pid"] not in tree.pids]
    details: dict[str, object] = {"app_port": port, "holders": owners, "foreign": foreign}
    if foreign:
        return fail(msg("port.conflict.held", port=port, holders=joined([_who(o) for o in foreign], ", ")),
                    **details)
    if on_port and not owners:
        if tree.running and port in tree.ports:
            return ok(msg("port.conflict.app_only_hidden", port=port), **details)
        if not tree.running:
            return fail(msg("port.conflict.hidden_not_running", port=port, app=f.target.pm2_app), **details)
        return warn(msg("port.conflict.hidden", port=port), **details)
    if on_port:
        return ok(msg("port.conflict.only_app", app=f.target.pm2_app, port=port), **details)
    return ok(msg("port.conflict.free", port=port), **details)



# -- wt-host (issue 12 item 1): the address, not only the port --------------------------------------------------

#: A host name worth asking the target's resolver about (an nginx variable or a unix: socket is not).
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")


async def _lan_upstream(f: Facts, upstream: tuple[tuple[str, int], ...], port: int) -> bool:
    """proxy_pass to one of this host's own non-loopback addresses on app_port (`ip -o addr`)."""
    literal = [ip for h, p in upstream if p == port and (ip := ip_of(h)) is not None and not ip.is_loopback]
    if not literal:
        return False
    result = await f.run("ip addr", list(commands.IP_ADDR_ARGV))
    return result.ok and any(ip in parse_ip_addr(result.stdout) for ip in literal)


async def _dialed(f: Facts, upstream: tuple[tuple[str, int], ...], port: int) -> tuple[list[Address], list[str]]:
    """The addresses nginx dials for app_port, and the upstream names it could not resolve (left uncompared)."""
    dialed: list[Address] = []
    unresolved: list[str] = []
    for host, p in upstream:
        if p != port:
            continue
        ip = ip_of(host)
        if ip is not None:
            dialed.append(ip)
            continue
        if not _HOSTNAME.fullmatch(host):
            unresolved.append(host)
            continue
        result = await f.run(f"getent {host}", commands.getent_hosts(host))
        found = parse_getent_ahosts(result.stdout) if result.ok else []
        if found:
            dialed.extend(found)
        else:
            unresolved.append(host)
    return list(dict.fromkeys(dialed)), unresolved


async def _address_match(f: Facts, upstream: tuple[tuple[str, int], ...], pids: frozenset[int],
                         details: dict[str, object]) -> Outcome:
    """Ports agree: does some listener of the app accept every address nginx dials?"""
    app, port = f.target.pm2_app, f.target.app_port
    on_port = await f.port_listeners()
    mine = [lst for lst in on_port if any(p.pid in pids for p in lst.processes)] or \
        [lst for lst in on_port if not lst.processes]
    dialed, unresolved = await _dialed(f, upstream, port)
    listen = sorted({lst.local_addr for lst in mine})
    shown = [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in listen]
    missed = [ip for ip in dialed if not any(covers(a, ip) for a in listen)]
    details = {**details, "dialed": [str(ip) for ip in dialed], "listen_addrs": shown, "unresolved": unresolved}
    if not mine or not dialed or not missed:
        return ok(msg("port.match.ok", app=app, port=port), side=None, **details)
    dial = ", ".join(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}" for ip in missed)
    # Some dialed address is covered (a name resolving both ways): nginx retries on it, the error log fills up.
    verdict = warn if len(missed) < len(dialed) else fail
    return verdict(msg("port.match.address", app=app, listen=", ".join(shown), dialed=dial),
                   side="address", missed=[str(ip) for ip in missed], **details)
