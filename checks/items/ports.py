"""port.listen, port.match and port.conflict: the 3000-vs-3003 bug and its cousins."""

from __future__ import annotations

import asyncio

from checks.facts import LOOPBACK, Facts
from checks.items.base import Outcome, fail, ok, warn
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


def _who(owner: dict[str, object]) -> str:
    user = f", user {owner['user']}" if owner.get("user") else ""
    return f"{owner['name']} (pid {owner['pid']}{user})"


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
        elsewhere = f"; {app} listens on {', '.join(map(str, tree.ports))}" if tree.ports else ""
        state = "" if tree.running else f" ({app} is not running)"
        return fail(f"nothing listens on port {port}{elsewhere}{state}", **details)
    mine = [o for o in owners if o["pid"] in tree.pids]
    if mine:
        addrs = sorted({str(o["addr"]) for o in mine})
        return ok(f"{app} listens on {', '.join(addrs)} ({_who(mine[0])})", **details)
    if owners:
        return fail(f"port {port} is held by {_who(owners[0])}, not by {app}", **details)
    if not tree.running:
        return fail(f"something holds port {port} while {app} is not running (owner hidden: enable sudo)",
                    **details)
    return warn(f"something listens on port {port} but its owner is not visible (enable sudo for ss -p)",
                **details)


def _local_ports(upstream: tuple[tuple[str, int], ...]) -> list[int]:
    return sorted({p for h, p in upstream if h in LOOPBACK or h.startswith("127.")})


async def port_match(f: Facts) -> Outcome:
    loc, tree = await asyncio.gather(f.app_location(), f.app_tree())
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
    if not nginx_ports:
        return warn(f"nginx proxies to {loc.proxy_pass}, not to a port on this host: cannot compare", **details)
    if not tree.ports:
        raise f.explained_by("port.listen", f"{app} listens on no port, so there is nothing to compare")
    nginx_port = nginx_ports[0]
    app_on = port in tree.ports
    nginx_on = port in nginx_ports
    if app_on and nginx_on:
        return ok(f"nginx, {app} and app_port agree on {port}", side=None, **details)
    app_desc = ", ".join(map(str, tree.ports))
    if nginx_on:
        return fail(f"nginx proxies to {port} but {app} listens on {app_desc}", side="app", **details)
    if app_on:
        return fail(f"nginx proxies to {nginx_port} but {app} listens on {port}", side="nginx", **details)
    if nginx_port in tree.ports:
        return warn(
            f"nginx and {app} agree on {nginx_port}, but wscheck's app_port is {port}: update app_port",
            side="config", **details,
        )
    return fail(
        f"nginx proxies to {nginx_port}, {app} listens on {app_desc}, app_port is {port}: nothing agrees",
        side="both", **details,
    )


async def port_conflict(f: Facts) -> Outcome:
    tree, on_port, procs = await asyncio.gather(f.app_tree(), f.port_listeners(), f.processes())
    port = f.target.app_port
    owners = _owners(on_port, procs)
    foreign = [o for o in owners if o["pid"] not in tree.pids]
    details: dict[str, object] = {"app_port": port, "holders": owners, "foreign": foreign}
    if foreign:
        return fail(f"port {port} is held by {', '.join(_who(o) for o in foreign)}", **details)
    if on_port and not owners:
        if tree.running and port in tree.ports:
            return ok(f"port {port} is the app's", **details)
        if not tree.running:
            return fail(f"port {port} is held by a process whose owner is hidden (enable sudo for ss -p) "
                        f"while {f.target.pm2_app} is not running", **details)
        return warn(f"cannot tell who holds port {port}: owners hidden (enable sudo for ss -p)", **details)
    if on_port:
        return ok(f"only {f.target.pm2_app} holds port {port}", **details)
    return ok(f"port {port} is free of other processes", **details)

