"""pm2.daemon: the app's process runs under the PM2 daemon the bot talks to; where pm2 is when it is not on PATH.

Two ways the bot's `pm2` sees another PM2 than the one running the app, both misread as "the app is down"
before (research A14, A15):
- the app runs under a PM2 daemon of another user or another PM2_HOME: `pm2 jlist` is empty or lacks the app
  while its port is held by a process whose ancestor is that God Daemon, whose title names its PM2_HOME;
- `pm2` is not on the non-interactive PATH (nvm puts it there only in interactive shells): exit 127. Then a
  login shell and the usual places are asked where it is, for the target's `pm2_bin`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from checks import commands
from checks.facts import FactError, Facts
from checks.items.base import Outcome, fail, ok
from checks.messages import msg

_GOD = re.compile(r"^\s*(\d+)\s+(\S+)\s+PM2 v([0-9][0-9A-Za-z.+-]*): God Daemon \((/[^)]*)\)\s*$")


@dataclass(frozen=True, slots=True)
class GodDaemon:
    pid: int
    user: str
    version: str
    home: str


def parse_god_daemons(text: str) -> list[GodDaemon]:
    """The PM2 God Daemons of `ps -eo pid=,user=,args=` (the grep itself and anything else is not matched)."""
    found = []
    for line in text.splitlines():
        m = _GOD.match(line)
        if m:
            found.append(GodDaemon(pid=int(m.group(1)), user=m.group(2), version=m.group(3), home=m.group(4)))
    return found


def parse_login_lookup(text: str) -> list[str]:
    """Absolute paths of pm2 that the lookup printed, first (the login shell's) first, without repeats."""
    return list(dict.fromkeys(ln.strip() for ln in text.splitlines() if ln.strip().startswith("/")
                              and ln.strip().endswith("/pm2") and " " not in ln.strip()))


async def pm2_login_paths(f: Facts) -> list[str]:
    result = await f.run("pm2 login lookup", list(commands.PM2_LOGIN_LOOKUP))
    return parse_login_lookup(result.stdout)


async def pm2_daemon(f: Facts) -> Outcome:
    t = f.target
    details: dict[str, object] = {}
    # One round: pm2 jlist, the daemons, the sockets and the process table all at once (no command waits for pm2).
    pm2, ps, listeners, procs = await asyncio.gather(
        f.pm2_processes(), f.run("ps args", list(commands.PS_ARGS_ARGV)), f.port_listeners(), f.processes(),
        return_exceptions=True)
    if isinstance(pm2, FactError) and pm2.kind == "missing_binary":
        details["pm2_login_paths"] = await pm2_login_paths(f)
    if isinstance(ps, BaseException):
        raise ps
    if isinstance(listeners, BaseException):
        raise listeners
    if isinstance(procs, BaseException):
        raise procs
    if not ps.ok:
        raise FactError(msg("facts.ps_failed", error=ps.stderr.strip()[-300:] or "?"))
    daemons = {d.pid: d for d in parse_god_daemons(ps.stdout)}
    details["daemons"] = [{"pid": d.pid, "user": d.user, "home": d.home, "version": d.version}
                          for d in daemons.values()]
    holders = [p.pid for lst in listeners for p in lst.processes]
    if not holders:
        # Nothing listens, or `ss -p` does not show another user's process without root: port.listen says which.
        key = "pm2.daemon.hidden" if listeners else "pm2.daemon.no_holder"
        raise f.explained_by("port.listen", msg(key, port=t.app_port), **details)
    expected_user = t.pm2_user or t.user
    for pid in holders:
        seen: set[int] = set()
        cur = pid
        while cur > 1 and cur not in seen and cur not in daemons:
            seen.add(cur)
            cur = procs[cur].ppid if cur in procs else 0
        daemon = daemons.get(cur)
        if daemon is None:
            continue
        details["holder"] = {"pid": pid, "daemon": daemon.pid, "user": daemon.user, "home": daemon.home}
        other_home = bool(t.pm2_home) and daemon.home.rstrip("/") != t.pm2_home.rstrip("/")
        other_user = bool(expected_user) and daemon.user != expected_user
        if not t.pm2_home and not other_user and not daemon.home.endswith("/.pm2"):
            other_home = True  # the bot uses the default ~/.pm2, the app another PM2_HOME
        if other_home or other_user:
            return fail(msg("pm2.daemon.mismatch", port=t.app_port, pid=pid, user=daemon.user, home=daemon.home,
                            our_user=expected_user or "-", our_home=t.pm2_home or "~/.pm2"),
                        mismatch=True, **details)
        return ok(msg("pm2.daemon.ok", port=t.app_port, user=daemon.user, home=daemon.home), **details)
    return ok(msg("pm2.daemon.no_daemon", port=t.app_port), **details)
