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


def tail_lines(path: str, lines: int) -> list[str]:
    """For a person to run (a fix line): the last lines of a log. The checks read logs by bytes (`tail`)."""
    return ["tail", "-n", str(lines), path]


def tail(path: str, max_bytes: int) -> list[str]:
    """The end of a log, bounded in bytes (not lines: one line can be 30 MB); facts.py keeps the last lines."""
    return ["tail", "-c", str(max_bytes), path]


def read_file(target: Target, path: str) -> list[str]:
    """`cat PATH` (a certificate nginx names; wt-tls): certbot's live/ and archive/ are root-only, hence sudo."""
    return [*_sudo(target), "cat", "--", path]


def display(argv: Sequence[str]) -> str:
    """How a command is shown to a human: exactly what would run, copy-pasteable into a shell."""
    return shlex.join(argv)


# -- wt-host (issue 12): bind addresses, the saved PM2 list, the PM2 startup unit ----------------------------------

def getent_hosts(name: str) -> list[str]:
    """What a name in proxy_pass resolves to on the target (nginx dials every address, in turn)."""
    return ["getent", "ahosts", "--", name]


IP_ADDR_ARGV = ("ip", "-o", "addr", "show")

#: sd_booted(3): systemd is the init exactly when this directory exists.
SYSTEMD_RUN_DIR = "/run/systemd/system"


def dump_names(dump: str) -> list[str]:
    """Only the `"name":"…"` and `"unique_id":"…"` fields of PM2's dump (it also holds every saved process's
    environment: secrets)."""
    return ["grep", "-o", "-E", '"(name|unique_id)": ?"[^"]*"', dump]


def systemctl(*args: str) -> list[str]:
    return ["systemctl", *args]
# -- wt-nginxrt: the running nginx (version, (re)load time, error log); all read-only, none needs sudo ----------

#: `date +%s` first, in the same command: an age (`etimes`) means something only against the clock read with it.
#: The shared `date` fact may be read seconds earlier (the `nginx -T` parse runs in between on a busy host), and
#: the skew made a freshly reloaded nginx look older than its files (nginx_reload_pending on a healthy stack).
_NGINX_PS_SCRIPT = 'date +%s; exec ps -C "$1" -o pid=,ppid=,etimes=,args='


def nginx_ps(target: Target) -> list[str]:
    """The target's epoch seconds, then nginx's master and workers with their ages in seconds (`etimes`) and titles
    (role, "shutting down").

    Selected by command name, the binary's own (`openresty` too); the kernel keeps 15 characters of it."""
    return ["sh", "-c", _NGINX_PS_SCRIPT, "sh", target.nginx_bin.rsplit("/", 1)[-1][:15]]

#: The target's clock and UTC offset: process ages, file mtimes and the error log's local times share it.
DATE_ARGV = ("date", "+%s %z")


def nginx_version(target: Target) -> list[str]:
    """`nginx -V`: version and compiled-in paths (prints to stderr; needs no root, so no sudo)."""
    return [target.nginx_bin, "-V"]


def read_small(path: str) -> list[str]:
    """A pid file's content (a few bytes; `head -c` bounds it whatever the file is)."""
    return ["head", "-c", "32", path]


def tail_bytes(paths: Sequence[str], size: int) -> list[str]:
    """The last `size` bytes of each file, each under a `==> path <==` header (-v: even for one file)."""
    return ["tail", "-v", "-c", str(size), *paths]
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
# -- wt-host2: host facts (checks/items/host.py); every read bounded, only tools every Linux has ----------------

#: MemAvailable/MemTotal/SwapFree and the uptime (dmesg stamps are seconds since boot); both files are tiny.
MEMINFO_ARGV = ("head", "-c", "8192", "/proc/meminfo", "/proc/uptime")
#: The kernel's log of the last 6 h (OOM kills), bounded to 400 lines; not readable for every user.
JOURNAL_KERNEL_ARGV = ("journalctl", "-k", "-q", "--no-pager", "-o", "short-iso", "--since", "-6h", "-n", "400")
#: The kernel ring buffer when journalctl is missing or not allowed (dmesg_restrict may refuse it too).
DMESG_ARGV = ("sh", "-c", "dmesg 2>&1 | tail -n 400")
#: wt-modes: the same through sudo, as the exact argv a sudoers line can name (no shell, no pipe: the caller keeps the
#: last DMESG_LINES lines; the ring buffer is bounded by the kernel, 16 KB to a few MB).
DMESG_SUDO_ARGV = ("sudo", "-n", "dmesg")
DMESG_LINES = 400


def dmesg(target: Target) -> list[str]:
    """The kernel ring buffer as the target allows it: `sudo -n dmesg` with `kernel_log_sudo`, else the login's own."""
    return list(DMESG_SUDO_ARGV if target.kernel_log_sudo else DMESG_ARGV)


def app_uid(target: Target) -> list[str]:
    """The uid of the user the app runs as (the PM2 owner): the kernel's OOM lines name the victim's uid, and a kill of
    another user's process is not this app's evidence."""
    return ["id", "-u", target.pm2_user] if target.pm2_user else ["id", "-u"]
MAX_FD_PIDS = 8

_DISK_SCRIPT = (
    'H="$1"; shift; [ -n "$H" ] || H="${PM2_HOME:-$HOME/.pm2}"; '
    'echo "== df"; df -P -k -- "$H" "$@" 2>&1 | head -n 40; '
    'echo "== logs $H/logs"; ls -lS -- "$H/logs" 2>&1 | head -n 6'
)
#: Shell builtins only: it runs every round next to `pm2 jlist`, and `grep | head` plus `ls | wc` in a subshell were
#: five processes per pid (~5 ms of the target's CPU each round; bench/RESULTS.md, "CPU budget").
_FD_SCRIPT = (
    'for p in "$@"; do echo "== $p"; '
    'if [ -r "/proc/$p/limits" ]; then while IFS= read -r l; do case $l in "Max open files"*) printf "%s\\n" "$l"; '
    'break;; esac; done < "/proc/$p/limits"; else echo "limits unreadable"; fi; '
    'if [ -r "/proc/$p/fd" ]; then n=0; for f in "/proc/$p/fd"/*; do '
    'if [ -e "$f" ] || [ -L "$f" ]; then n=$((n+1)); fi; done; echo "fds $n"; else echo "fds unreadable"; fi; done'
)
#: wt-host3: the file systems of the app's PM2 logs when PM2 writes them outside `$PM2_HOME/logs` (`error_file` /
#: `out_file` set elsewhere, a logs dir on its own mount), each dir's biggest files.
_LOG_DIRS_SCRIPT = (
    'echo "== df"; df -P -k -- "$@" 2>&1 | head -n 20; '
    'for d; do echo "== logs $d"; ls -lS -- "$d" 2>&1 | head -n 6; done'
)
MAX_LOG_DIRS = 2
_PM2_LOG_SCRIPT = 'H="$1"; [ -n "$H" ] || H="${PM2_HOME:-$HOME/.pm2}"; tail -n "$2" -- "$H/pm2.log"'


def disk_usage(pm2_home: str, paths: Sequence[str]) -> list[str]:
    """`df -P -k` of the PM2 home ("" = $PM2_HOME or ~/.pm2) and `paths` (app_dir, nginx's log dirs), then the
    biggest PM2 logs (`ls -lS`)."""
    return ["sh", "-c", _DISK_SCRIPT, "sh", pm2_home, *paths]


def log_dirs_usage(dirs: Sequence[str]) -> list[str]:
    """`df -P -k` and `ls -lS` of the directories the app's PM2 log files are in, when not `$PM2_HOME/logs`."""
    return ["sh", "-c", _LOG_DIRS_SCRIPT, "sh", *dirs[:MAX_LOG_DIRS]]


def fd_usage(pids: Sequence[int]) -> list[str]:
    """Each pid's `Max open files` line and its open fd count (`unreadable` for another user's process)."""
    return ["sh", "-c", _FD_SCRIPT, "sh", *(str(int(p)) for p in pids[:MAX_FD_PIDS])]


def pm2_daemon_log(pm2_home: str, lines: int) -> list[str]:
    """The tail of `$PM2_HOME/pm2.log`: why PM2 restarted the app (max_memory_restart, watch, exits)."""
    return ["sh", "-c", _PM2_LOG_SCRIPT, "sh", pm2_home, str(int(lines))]


def next_config_grep(target: Target) -> list[str]:
    """Which next.config.* declares `output: "standalone"` (grep prints the file names; missing files are noise)."""
    base = target.app_dir.rstrip("/")
    files = [f"{base}/next.config.{ext}" for ext in ("js", "mjs", "cjs", "ts")]
    return ["grep", "-l", "-E", "output[\"']?[[:space:]]*:[[:space:]]*[\"']standalone", "--", *files]
