"""The allow-listed fixes and when each is offered. Pure: plans are built from the validated target config
and a check report, never from chat text.

Every cause of the diagnosis has either an action the bot may run after approval, or an explicit
"a human must …" — no cause is left without a next step.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import Text, localize_cause, t, text
from checks import commands as cmd
from checks.config import Target
from checks.models import Cause, TargetReport

ACTIONS = ("restart", "reload-nginx", "fix-port", "rebuild")

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

    `str(exc)` is English (what is stored: an aborted request's note); `exc.message` is the bot's language.
    """

    def __init__(self, reason: Text) -> None:
        super().__init__(reason.en)
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self.reason)


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


def _honours_port(report: TargetReport | None) -> tuple[bool, Text]:
    if report is None:
        return False, text("actions.no_report")
    match = report.result("port.match")
    pm2 = report.result("pm2.status")
    if match is None or pm2 is None:
        return False, text("actions.not_run")
    listening = [p for p in match.details.get("app_ports") or [] if isinstance(p, int)]
    port_env = match.details.get("port_env")
    instances = pm2.details.get("instances") or [{}]
    command = str(instances[0].get("exec") or "") if isinstance(instances[0], dict) else ""
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
            if status is not None and "known_apps" in status.details:
                raise NotOffered(text("actions.unknown_to_pm2", app=app, port=target.app_port))
        return Plan(action, target.name, target.where, (Step(_pm2(target, "restart", app), f"pm2 restart {app}"),))
    if action == "reload-nginx":
        return Plan(action, target.name, target.where, (
            Step(tuple(cmd.nginx_test(target)), "nginx -t", gate=True),
            Step(tuple(cmd.nginx_reload(target)), "nginx reload"),
        ))
    if action == "fix-port":
        match = report.result("port.match") if report else None
        if match is None or match.details.get("side") != "app":
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
        build = _as_owner(target, ["npm", "--prefix", target.app_dir, "run", "build"])
        return Plan(action, target.name, target.where, (
            Step(build, "npm run build", timeout=BUILD_TIMEOUT, gate=True),
            Step(_pm2(target, "restart", app), f"pm2 restart {app}"),
        ), long=True)
    raise NotOffered(text("actions.unknown_action", action=repr(action)))


#: cause -> the action that fixes it (after approval), or None when a human must act.
ACTION_FOR_CAUSE: dict[str, str | None] = {
    "pm2_not_online": "restart",
    "app_not_listening": "restart",
    "pm2_crash_loop": None,
    "next_build_missing": "rebuild",
    "port_mismatch": "fix-port",
    "nginx_upgrade_headers_missing": None,
    "nginx_ws_timeout_short": None,
    "nginx_config_invalid": None,
    "port_conflict": None,
    "target_unreachable": None,
    "nginx_not_running": None,
    "app_port_misconfigured": None,
    "app_websocket_missing": None,
    # wt-nginxrt
    "nginx_wrong_server": None,
    "nginx_ws_not_proxied": None,
    "connection_capacity_exhausted": None,
    "nginx_reload_pending": "reload-nginx",
    "unknown": None,
}


def human_step(cause: Cause, target: Target) -> str:
    """What a person must do for a cause the bot does not fix by itself (with the evidence at hand)."""
    c = cause.cause
    summary = localize_cause(cause).summary
    if c == "nginx_upgrade_headers_missing":
        lines = [f for f in cause.fix if f.startswith("    ")]
        return t("actions.human_upgrade", lines="\n".join(line.strip() for line in lines), target=target.name)
    if c == "nginx_ws_timeout_short":
        return t("actions.human_timeout", target=target.name)
    if c == "nginx_config_invalid":
        return t("actions.human_nginx_config", summary=summary)
    if c == "port_conflict":
        return t("actions.human_port_conflict", summary=summary)
    if c == "target_unreachable":
        return t("actions.human_unreachable", summary=summary)
    if c == "port_mismatch":
        return t("actions.human_ports", summary=summary)
    if c == "pm2_crash_loop":
        return t("actions.human_crash_loop")
    if c == "nginx_not_running":
        return t("actions.human_start_nginx")
    return t("actions.human_look", summary=summary)


def proposal(report: TargetReport, target: Target) -> tuple[str | None, str]:
    """(action to offer, why) for the report's root cause; (None, what a human must do) otherwise."""
    if not report.diagnosis:
        return None, t("actions.no_problem")
    cause = report.diagnosis[0]
    action = ACTION_FOR_CAUSE.get(cause.cause)
    if action is None:
        return None, human_step(cause, target)
    try:
        plan(action, target, report)
    except NotOffered as exc:
        return None, exc.message
    return action, f"{cause.cause}: {localize_cause(cause).summary}"


def fingerprint(report: TargetReport) -> dict[str, int | str]:
    """The PM2 process identity at one moment: if it changes between request and run, ask again."""
    pm2 = report.result("pm2.status")
    instances = pm2.details.get("instances") if pm2 else None
    first = instances[0] if isinstance(instances, list) and instances and isinstance(instances[0], dict) else {}
    return {"pid": int(first.get("pid") or 0), "restart_time": int(first.get("restarts") or 0),
            "status": str(first.get("status") or "missing")}
