"""The allow-listed fixes and when each is offered. Pure: plans are built from the validated target config
and a check report, never from chat text.

Every cause of the diagnosis has either an action the bot may run after approval, or an explicit
"a human must …" — no cause is left without a next step.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import text
from checks import commands as cmd
from checks.causes import CAUSE_BY_ID, CAUSE_SPECS, FIX_NAMES, FIXES, HUMAN_LOOK
from checks.config import Target
from checks.details import HostDiskDetails, HostMemoryDetails, Pm2Details, PortMatchDetails
from checks.models import Cause, TargetReport
from wsmsg import Msg, joined, verbatim

#: The fixes `plan` knows how to run (checks/causes.py FIXES, where a fix is registered).
ACTIONS = FIX_NAMES
_LONG = frozenset(f.name for f in FIXES if f.long)

#: Next.js' port when neither PORT nor -p says otherwise.
NEXT_DEFAULT_PORT = 3000
STEP_TIMEOUT = 60.0
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class Step:
    argv: tuple[str, ...]
    label: str
    timeout: float = STEP_TIMEOUT
    gate: bool = False  # the next steps run only if this one succeeds (nginx -t before a reload)

    @property
    def display(self) -> str:
        return cmd.display(self.argv)


@dataclass(frozen=True, slots=True)
class Plan:
    action: str
    target: str
    host: str
    steps: tuple[Step, ...]
    long: bool = False  # progress goes to the thread (rebuild)

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(step.display for step in self.steps)


class NotOffered(Exception):
    """This action does not fit this target now; the message says what a human should do instead.

    `reason` is the message (an aborted request's note stores its reference); `str(exc)` is its English.
    """

    def __init__(self, reason: Msg) -> None:
        super().__init__(reason.en)
        self.reason = reason


def _pm2(target: Target, *args: str, env: dict[str, str] | None = None) -> tuple[str, ...]:
    return tuple(cmd.pm2(target, *args, env=env))


def _as_owner(target: Target, argv: list[str]) -> tuple[str, ...]:
    return tuple(["sudo", "-n", "-u", target.pm2_user, *argv] if target.pm2_user else argv)


def honours_port(report: TargetReport | None) -> tuple[bool, str]:
    """Does the app's start command take its port from PORT (so `PORT=3003 pm2 restart` moves it)?

    Yes when the app listens on the PORT its PM2 environment sets, or on Next's default 3000 with no PORT
    set and no `-p/--port` in its arguments. A port written into the start command needs a human.
    """
    ok, why = _honours_port(report)
    return ok, str(why)


def _honours_port(report: TargetReport | None) -> tuple[bool, Msg]:
    if report is None:
        return False, text("actions.no_report")
    match = report.result("port.match")
    pm2 = report.result("pm2.status")
    if match is None or pm2 is None:
        return False, text("actions.not_run")
    ports = PortMatchDetails.of(match)
    listening, port_env = list(ports.app_ports), ports.port_env
    command = Pm2Details.of(pm2).first.exec
    words = command.split()
    if any(w in ("-p", "--port") or w.startswith("--port=") for w in words):
        return False, text("actions.command_sets_port", command=command)
    if port_env and str(port_env).isdigit() and int(str(port_env)) in listening:
        return True, text("actions.listens_on_port_env", port=port_env)
    if not port_env and NEXT_DEFAULT_PORT in listening:
        return True, text("actions.listens_on_default")
    if listening:
        if port_env:
            return False, text("actions.listens_elsewhere", listening=str(listening), port=port_env)
        return False, text("actions.listens_elsewhere_unset", listening=str(listening))
    if port_env:
        return False, text("actions.listens_nowhere", port=port_env)
    return False, text("actions.listens_nowhere_unset")


def plan(action: str, target: Target, report: TargetReport | None = None) -> Plan:
    """The exact commands `action` runs on `target`; NotOffered when it must not run here."""
    app = target.pm2_app
    if action == "restart":
        if report is not None:
            status = report.result("pm2.status")
            if status is not None and Pm2Details.of(status).known_apps is not None:
                raise NotOffered(text("actions.unknown_to_pm2", app=app, port=target.app_port))
            details = Pm2Details.of(status)
            if details.duplicates and details.culprit is not None:
                # Started twice in fork mode: a restart starts both again, and the copy fails again.
                raise NotOffered(text("actions.started_twice", app=app, pm_id=details.culprit))
        return Plan(action, target.name, target.where, (
            Step(_pm2(target, "restart", app), f"pm2 restart {app}"),
            # wt-host: a fix that a reboot undoes is no fix (issue 12 item 3).
            Step(_pm2(target, "save"), "pm2 save"),
        ))
    if action == "reload-nginx":
        return Plan(action, target.name, target.where, (
            Step(tuple(cmd.nginx_test(target)), "nginx -t", gate=True),
            Step(tuple(cmd.nginx_reload(target)), "nginx reload"),
        ))
    if action == "fix-port":
        match = report.result("port.match") if report else None
        if match is None or PortMatchDetails.of(match).side != "app":
            raise NotOffered(text("actions.fix_port_side"))
        ok, why = _honours_port(report)
        if not ok:
            raise NotOffered(text("actions.port_not_from_pm2", why=why, port=target.app_port))
        return Plan(action, target.name, target.where, (
            Step(_pm2(target, "restart", app, "--update-env", env={"PORT": str(target.app_port)}),
                 f"PORT={target.app_port} pm2 restart {app} --update-env"),
            Step(_pm2(target, "save"), "pm2 save"),
        ))
    if action == "rebuild":
        _rebuild_short(target, report)
        build = _as_owner(target, ["npm", "--prefix", target.app_dir, "run", "build"])
        return Plan(action, target.name, target.where, (
            Step(build, "npm run build", timeout=BUILD_TIMEOUT, gate=True),
            Step(_pm2(target, "restart", app), f"pm2 restart {app}"),
        ), long=action in _LONG)
    raise NotOffered(text("actions.unknown_action", action=repr(action)))


def _rebuild_short(target: Target, report: TargetReport | None) -> None:
    """wt-host2: refuse a build the host cannot carry (issue 12, A4: `next build` OOM-kills small VPSes; A6: ENOSPC).

    Judged from the same fresh report the plan is made from (host.memory, host.disk). A check that did not run
    or could not read says nothing, and the build is not refused on a guess."""
    if report is None:
        return
    mem = HostMemoryDetails.of(report.result("host.memory"))
    if mem.mem_available_mb is not None:
        free = mem.mem_available_mb + mem.swap_free_mb
        if free < target.rebuild_min_memory_mb:
            raise NotOffered(text("actions.rebuild_short_memory", available=free, needed=target.rebuild_min_memory_mb))
    for fs in HostDiskDetails.of(report.result("host.disk")).filesystems:
        if "app_dir" in fs.holds and fs.available_mb < target.rebuild_min_disk_mb:
            raise NotOffered(text("actions.rebuild_short_disk", mount=fs.mount, available=fs.available_mb,
                                  needed=target.rebuild_min_disk_mb))


#: cause -> the action that fixes it (after approval), or None when a human must act (checks/causes.py).
ACTION_FOR_CAUSE: dict[str, str | None] = {spec.id: spec.fix for spec in CAUSE_SPECS}


def human_step(cause: Cause, target: Target) -> Msg:
    """What a person must do for a cause the bot does not fix by itself (with the evidence at hand).

    The message is the cause's registered `human_step` key; every one gets the same params (the cause's
    message, the target and the indented config lines of the cause's fix) and uses those it needs."""
    spec = CAUSE_BY_ID.get(cause.cause)
    key = spec.human_step if spec is not None else HUMAN_LOOK
    lines = "\n".join(f.strip() for f in cause.fix if f.startswith("    "))
    return text(key, summary=cause.message, target=target.name, lines=lines)


def proposal(report: TargetReport, target: Target) -> tuple[str | None, Msg]:
    """(action to offer, why) for the report's root cause; (None, what a human must do) otherwise."""
    if not report.diagnosis:
        return None, text("actions.no_problem")
    cause = report.diagnosis[0]
    action = ACTION_FOR_CAUSE.get(cause.cause)
    if action is None:
        return None, human_step(cause, target)
    try:
        plan(action, target, report)
    except NotOffered as exc:
        return None, exc.reason
    return action, joined([verbatim(cause.cause), cause.message], ": ")


def fingerprint(report: TargetReport) -> dict[str, int | str]:
    """The PM2 process identity at one moment: if it changes between request and run, ask again."""
    first = Pm2Details.of(report.result("pm2.status")).first
    return {"pid": first.pid, "restart_time": first.restarts, "status": first.status or "missing"}
