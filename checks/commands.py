"""Argv builders: every command wscheck runs on a target, built only from the validated Target.

One place so that the checks, the fix commands shown to humans and the remediation actions use the
very same words, and so an audit can list everything the bot may ever run.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from checks.config import Target

PS_ARGV = ("ps", "-eo", "pid=,ppid=,user=,comm=")


def _sudo(target: Target) -> list[str]:
    return ["sudo", "-n"] if target.sudo else []


def pm2(target: Target, *args: str, env: Mapping[str, str] | None = None) -> list[str]:
    """`pm2 ARGS` as the PM2 owner, with the target's PM2_HOME and any extra environment."""
    argv: list[str] = ["sudo", "-n", "-u", target.pm2_user] if target.pm2_user else []
    assignments = dict(env or {})
    if target.pm2_home:
        assignments = {"PM2_HOME": target.pm2_home, **assignments}
    if assignments:
        argv += ["env", *(f"{k}={v}" for k, v in assignments.items())]
    return [*argv, target.pm2_bin, *args]


def nginx(target: Target, *args: str) -> list[str]:
    conf = ["-c", target.nginx_conf] if target.nginx_conf else []
    return [*_sudo(target), target.nginx_bin, *args, *conf]


def nginx_dump(target: Target) -> list[str]:
    """`nginx -T`: the syntax test *and* the full config dump in one command (one SSH channel)."""
    return nginx(target, "-T")


def nginx_test(target: Target) -> list[str]:
    return nginx(target, "-t")


def nginx_reload(target: Target) -> list[str]:
    if target.nginx_reload:
        return [*_sudo(target), *target.nginx_reload]
    return nginx(target, "-s", "reload")


def ss_listen(target: Target) -> list[str]:
    """Listening TCP sockets with their processes (`-p` sees other users' sockets only as root)."""
    return [*_sudo(target), "ss", "-ltnpH"]


def build_stat(target: Target) -> list[str]:
    base = target.app_dir.rstrip("/")
    return ["stat", "-c", "%n|%Y|%s", f"{base}/package.json", f"{base}/.next", f"{base}/.next/BUILD_ID"]


def file_stat(paths: Sequence[str]) -> list[str]:
    return ["stat", "-c", "%n|%Y|%s", *paths]


def tail(path: str, lines: int) -> list[str]:
    return ["tail", "-n", str(lines), path]


def read_file(target: Target, path: str) -> list[str]:
    """`cat PATH` (a certificate nginx names; wt-tls): certbot's live/ and archive/ are root-only, hence sudo."""
    return [*_sudo(target), "cat", "--", path]


def display(argv: Sequence[str]) -> str:
    """How a command is shown to a human: exactly what would run, copy-pasteable into a shell."""
    return shlex.join(argv)


# -- wt-sio: which PM2 daemon runs the app, and where a login shell finds pm2 ---------------------------------------

#: The PM2 God Daemons with their owner and title, which carries the daemon's PM2_HOME:
#: `PM2 v6.0.14: God Daemon (/home/app/.pm2)` (PM2 lib/Daemon.js). Filtered on the target by a constant grep, so
#: that no other process's command line (which may carry secrets) ever leaves it.
PS_ARGS_ARGV = ("sh", "-c", "ps -eo pid=,user=,args= | grep -F 'God Daemon (' || true")

#: Where a login shell (nvm's lines live in ~/.bashrc or ~/.profile) and the usual places find `pm2`, asked only
#: after a non-interactive `pm2` was not found (exit 127). A constant: nothing of the target or the chat in it.
PM2_LOGIN_LOOKUP = (
    "sh", "-c",
    "bash -lic 'command -v pm2' </dev/null 2>/dev/null | tail -n 1; "
    "ls -1d \"$HOME\"/.nvm/versions/node/*/bin/pm2 /usr/local/bin/pm2 /usr/bin/pm2 2>/dev/null; true",
)
