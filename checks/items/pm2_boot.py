"""pm2.saved and pm2.startup: will the app come back after a reboot? (wt-host, issue 12 item 3)

Why: "PM2 came back empty after a reboot" is among the most reported PM2 problems (failure-modes.md A2). An
app started or recreated after the last `pm2 save` runs fine until the next reboot, and every other check says
ok. Read-only: `stat` and a `grep` of the `"name"` fields of `$PM2_HOME/dump.pm2` (never its environments),
and on a systemd host `systemctl is-enabled/cat pm2-<user>`.
"""

from __future__ import annotations

import asyncio
import posixpath
import re

from checks import commands
from checks.facts import Facts, _parse_stat
from checks.items.base import Outcome, error, ok, skip, warn
from checks.messages import Msg, msg
from checks.parsers.pm2 import Pm2Process
from checks.transport.base import CommandResult

_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_NAME_FIELD = re.compile(r'"name": ?"([^"]*)"')
_UNIQUE_ID_FIELD = re.compile(r'"unique_id": ?"([^"]*)"')


def pm2_home_of(f: Facts, inst: Pm2Process | None) -> str:
    """The PM2_HOME the app's daemon uses: the target's setting, else what PM2 itself reports."""
    if f.target.pm2_home:
        return f.target.pm2_home.rstrip("/") or "/"
    if inst is not None and inst.pm2_home_env and inst.pm2_home_env.startswith("/"):
        return inst.pm2_home_env.rstrip("/")
    if inst is not None and inst.pid_path and inst.pid_path.startswith("/"):
        # PM2 keeps every pid file in $PM2_HOME/pids/ (not configurable per app).
        return posixpath.dirname(posixpath.dirname(inst.pid_path))
    return ""


async def _saved_not_running(f: Facts, early: asyncio.Future[tuple[CommandResult, CommandResult]] | None
                             ) -> tuple[Msg, dict[str, object]]:
    """PM2 does not run the app: is it in the saved list? Then PM2 restarted without resurrecting it (a reboot
    without `pm2 startup`, a `pm2 kill`), and `pm2 resurrect` brings it back (A2)."""
    app = f.target.pm2_app
    if early is None:
        return msg("pm2.saved.unknown_app", app=app), {}
    try:
        _stat, names = await early
    except Exception:  # a hint only: without the dump the skip says what it said before
        return msg("pm2.saved.unknown_app", app=app), {}
    dump = _dump_path(pm2_home_of(f, None))
    if names.exit_status == 0 and app in _NAME_FIELD.findall(names.stdout):
        return msg("pm2.saved.saved_not_running", app=app, dump=dump), {"saved_not_running": True, "dump": dump}
    return msg("pm2.saved.unknown_app", app=app), {}


async def _instances(f: Facts) -> tuple[Pm2Process, ...]:
    instances = await f.app_instances()
    if not instances:
        raise f.explained_by("pm2.status", msg("pm2.saved.unknown_app", app=f.target.pm2_app))
    return instances


def _stat_argv(f: Facts, dump: str) -> tuple[str, list[str]]:
    """One `stat` for the dump and systemd's run directory when the dump's path is known up front (one channel
    less in the first round, which the benchmark counts), else the dump's own."""
    if f.target.pm2_home and dump == _dump_path(pm2_home_of(f, None)):
        return "stat pm2 boot", commands.file_stat([dump, commands.SYSTEMD_RUN_DIR])
    return "stat dump", commands.file_stat([dump])


def _dump_reads(f: Facts, dump: str) -> asyncio.Future[tuple[CommandResult, CommandResult]]:
    key, argv = _stat_argv(f, dump)
    return asyncio.gather(f.run(key, argv), f.run("grep dump", commands.dump_names(dump)))


def _dump_path(home: str) -> str:
    return f"{home}/dump.pm2" if home != "/" else "/dump.pm2"


async def pm2_saved(f: Facts) -> Outcome:
    app = f.target.pm2_app
    # With pm2_home configured the dump is read in the first round, next to `pm2 jlist` (not after it).
    early = _dump_reads(f, _dump_path(pm2_home_of(f, None))) if f.target.pm2_home else None
    try:
        instances = await f.app_instances()
    except BaseException:
        if early is not None:  # still collected, so that an error in it is never reported as unretrieved
            early.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
        raise
    if not instances:
        reason, extra = await _saved_not_running(f, early)
        raise f.explained_by("pm2.status", reason, **extra)
    home = pm2_home_of(f, instances[0])
    if not home:
        return error(msg("pm2.saved.no_home", app=app))
    dump = _dump_path(home)
    stat_result, names_result = await (early if early is not None else _dump_reads(f, dump))
    entry = _parse_stat(stat_result).get(dump)
    created = max((p.created_at or 0) for p in instances) // 1000
    details: dict[str, object] = {"dump": dump, "created_at": created or None,
                                  "saved_at": entry.mtime if entry else None}
    if entry is None:
        if any(dump in line and "No such file" in line for line in stat_result.stderr.splitlines()):
            return warn(msg("pm2.saved.no_dump", app=app, dump=dump), reason="no_dump", **details)
        return error(msg("pm2.saved.unreadable", dump=dump, error=_last(stat_result)), **details)
    # grep: 0 found, 1 none found (an empty dump `[]`), 2 unreadable: then only the date speaks.
    names: list[str] | None = None
    saved_ids: set[str] = set()
    if names_result.exit_status in (0, 1):
        names = sorted(set(_NAME_FIELD.findall(names_result.stdout)))
        saved_ids = set(_UNIQUE_ID_FIELD.findall(names_result.stdout))
    details["saved_names"] = names
    if names is not None and app not in names:
        return warn(msg("pm2.saved.not_in_dump", app=app, dump=dump), reason="not_in_dump", **details)
    # Recreated since the save (`pm2 delete` + `pm2 start`: a new unique_id) is stale; a `pm2 stop` + `pm2 start`
    # keeps the unique_id (and resets created_at), and the dump still brings it back: not stale. Only an
    # unreadable dump, or a PM2 too old to write unique_id, falls back to the dates.
    running_ids = {p.unique_id for p in instances if p.unique_id}
    if names is not None and saved_ids and running_ids:
        recreated = not running_ids <= saved_ids
    else:
        recreated = bool(created and entry.mtime < created)
    if recreated:
        return warn(msg("pm2.saved.stale", app=app, dump=dump), reason="stale", **details)
    return ok(msg("pm2.saved.ok", app=app, dump=dump), reason=None, **details)


async def pm2_startup(f: Facts) -> Outcome:
    key, argv = _stat_argv(f, _dump_path(pm2_home_of(f, None))) if f.target.pm2_home else \
        ("stat systemd", commands.file_stat([commands.SYSTEMD_RUN_DIR]))
    probe = await f.run(key, argv)
    booted = commands.SYSTEMD_RUN_DIR in _parse_stat(probe)
    if not booted:
        # A container or another init: no pm2-<user> unit can exist, and that is no fault of the app.
        return skip(msg("pm2.startup.no_systemd", path=commands.SYSTEMD_RUN_DIR), systemd=False)
    # PM2 runs as pm2_user, else as the login user; only a local target without either asks PM2 itself.
    user = f.target.pm2_user or f.target.user or ((await _instances(f))[0].username or "")
    if not _USER.fullmatch(user):
        return error(msg("pm2.startup.no_user"), systemd=True)
    unit = f"pm2-{user}"
    enabled, cat = await asyncio.gather(f.run(f"is-enabled {unit}", commands.systemctl("is-enabled", unit)),
                                        f.run(f"cat {unit}", commands.systemctl("cat", unit)))
    if enabled.exit_status == 127:
        return error(msg("pm2.startup.no_systemctl"), systemd=True)
    state = enabled.stdout.strip().splitlines()[-1] if enabled.stdout.strip() else "not-found"
    details: dict[str, object] = {"systemd": True, "unit": unit, "user": user, "state": state}
    if state != "enabled":
        return warn(msg("pm2.startup.not_enabled", unit=unit, state=state), reason="not_enabled", **details)
    paths = unit_binaries(cat.stdout)
    details["binaries"] = paths
    if paths:
        found = _parse_stat(await f.run(f"stat {unit}", commands.file_stat(paths)))
        gone = [p for p in paths if p not in found]
        if gone:
            details["missing"] = gone
            return warn(msg("pm2.startup.stale", unit=unit, missing=", ".join(gone)), reason="stale", **details)
    return ok(msg("pm2.startup.ok", unit=unit), reason=None, **details)


def unit_binaries(text: str) -> list[str]:
    """The ExecStart program of `systemctl cat pm2-USER`, and the node directories of its PATH (nvm)."""
    found: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            words = line[len("ExecStart="):].lstrip("@-:+!").split()
            if words and words[0].startswith("/"):
                found.append(words[0])
        elif line.startswith("Environment=") and "PATH=" in line:
            value = line.split("PATH=", 1)[1].strip('"')
            found += [d for d in value.split(":") if d.startswith("/") and ("node" in d or ".nvm" in d)]
    return list(dict.fromkeys(found))


def _last(result: CommandResult) -> str:
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else f"exit {result.exit_status}"

