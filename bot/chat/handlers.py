"""Commands and buttons that need the monitor: status, silence, unsilence, and the alert's buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.chat import commands as cmd
from bot.chat.core import ActionHandler, Bot, Requester, Responder
from bot.i18n import t, text
from bot.monitoring.alerts import ACTION_INCIDENT_RUN, ACTION_INCIDENT_SILENCE
from bot.monitoring.monitor import Monitor
from bot.remediation.actions import proposal
from bot.remediation.engine import ACTION_APPROVE, ACTION_DENY, ACTION_PROPOSE, Remediation, RemediationError
from bot.render import mention, slack_date
from checks.models import TargetReport
from wsmsg import joined, verbatim

BUTTON_SILENCE = timedelta(hours=1)


def silence_until(command: cmd.Silence, *, now: datetime, tz: str) -> datetime:
    """`30m` from now, or the next HH:MM on the requester's own clock (Slack's profile time zone)."""
    if command.seconds is not None:
        return now + timedelta(seconds=command.seconds)
    assert command.until is not None
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    hour, minute = command.until
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def install(bot: Bot, monitor: Monitor) -> None:
    async def status(command: cmd.Command, who: Requester, out: Responder) -> None:
        lines = await monitor.status_lines()
        await out.text(joined([text("handlers.status_title"), *lines], "\n"))

    async def silence(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.Silence)
        now = datetime.now(UTC)
        until = silence_until(command, now=now, tz=who.tz)
        await monitor.silence(command.target, until=until, by=who.user_id)
        await out.announce(text("handlers.silenced", user=mention(who.user_id), target=command.target,
                                until=slack_date(until)))

    async def unsilence(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.Unsilence)
        cleared = await monitor.unsilence(command.target, by=who.user_id)
        if cleared:
            await out.announce(text("handlers.unsilenced", user=mention(who.user_id), target=command.target))
        else:
            await out.text(text("handlers.not_silenced", target=command.target))

    async def run_button(value: str, who: Requester, out: Responder) -> None:
        if value not in bot.target_names:
            await out.text(text("handlers.gone_target"))
            return
        report = await monitor.manual_run(value, by=who.user_id)
        await out.reports([report], command=cmd.RunChecks(checks=(), target=value))

    async def silence_button(value: str, who: Requester, out: Responder) -> None:
        if value not in bot.target_names:
            await out.text(text("handlers.gone_target"))
            return
        until = datetime.now(UTC) + BUTTON_SILENCE
        await monitor.silence(value, until=until, by=who.user_id)
        await out.text(text("handlers.silenced_button", target=value, until=slack_date(until)))

    bot.extra_handlers.update({cmd.ShowStatus: status, cmd.Silence: silence, cmd.Unsilence: unsilence})
    bot.actions.update({ACTION_INCIDENT_RUN: run_button, ACTION_INCIDENT_SILENCE: silence_button})


def install_remediation(bot: Bot, remediation: Remediation, monitor: Monitor | None) -> None:
    """`/wscheck restart|reload-nginx|fix-port|rebuild`, approve/deny, history, and their buttons."""

    def incident_thread(target: str, message_ts: str) -> tuple[str | None, str | None]:
        """(thread_ts, incident_id) when the click came from an incident's alert or its thread."""
        if monitor is None or not message_ts:
            return None, None
        state = monitor.states.get(target)
        incident = state.incident if state else None
        if incident is not None and incident.root_ts and message_ts == incident.root_ts:
            return incident.root_ts, incident.id
        return None, None

    async def request(action: str, target_name: str | None, who: Requester, out: Responder,
                      message_ts: str = "") -> None:
        names = bot.target_names
        if target_name is None:
            if len(names) != 1:
                await out.text(text("handlers.name_target", action=action, names=", ".join(names)))
                return
            target_name = names[0]
        target = bot.service.target(target_name)
        if monitor is not None:
            await monitor.refresh()  # a follower reads the leader's incidents
        thread_ts, incident_id = incident_thread(target.name, message_ts or who.thread_ts)
        if thread_ts is None:
            # A click on a message belongs in its thread even when the incident does not know its root yet
            # (the click raced the outbox recording the root's ts).
            thread_ts = (who.thread_of_message() if message_ts else who.thread_ts) or None
        channel = who.channel_id or (monitor.channel_for(target) if monitor else "") or "console"
        try:
            made, merged = await remediation.request_or_join(action, target, requested_by=who.user_id,
                                                             team_id=who.team_id, channel=channel,
                                                             thread_ts=thread_ts, incident_id=incident_id)
        except RemediationError as exc:
            await out.text(joined([verbatim("🛑"), exc.reason], " "))
            return
        if merged:
            await out.text(text("handlers.joined", id=made.id, action=action, target=target.name,
                             user=mention(made.requested_by)))
            return
        await out.text(text("handlers.requested", id=made.id, action=action, target=target.name))

    async def request_command(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.RequestAction)
        await request(command.action, command.target, who, out)

    async def decide(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.Decide)
        await out.text(await remediation.click(command.request_id, who=who.subject(), approve=command.approve))

    async def history(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.History)
        lines = await remediation.history(command.target)
        title = text("handlers.history_title_for", target=command.target) if command.target \
            else text("handlers.history_title")
        body = [verbatim(line) for line in lines] if lines else [text("handlers.nothing_yet")]
        await out.text(joined([title, *body], "\n"))

    def decision_button(approve: bool) -> ActionHandler:
        async def clicked(value: str, who: Requester, out: Responder) -> None:
            await out.text(await remediation.click(value, who=who.subject(), approve=approve))

        return clicked

    async def propose(value: str, who: Requester, out: Responder) -> None:
        parsed = cmd.parse(value, bot.target_names)
        if not isinstance(parsed, cmd.RequestAction) or parsed.target is None:
            await out.text(text("handlers.stale_button"))
            return
        await request(parsed.action, parsed.target, who, out, message_ts=who.message_ts)

    def report_buttons(report: TargetReport) -> list[dict[str, Any]]:
        if not remediation.enabled():
            return []
        action, _ = proposal(report, bot.service.target(report.target))
        if action is None:
            return []
        return [propose_button(action, report.target, lang=bot.settings.lang)]

    bot.extra_handlers.update({cmd.RequestAction: request_command, cmd.Decide: decide, cmd.History: history})
    bot.actions.update({ACTION_APPROVE: decision_button(True), ACTION_DENY: decision_button(False),
                        ACTION_PROPOSE: propose})
    # Approve/Deny: the door admits as for every button, but a refusal still reaches remediation.click, which
    # decides admission again (the same function), refuses and audits the click.
    bot.self_guarded.update({ACTION_APPROVE, ACTION_DENY})
    bot.report_buttons = report_buttons


def propose_button(action: str, target: str, *, lang: str) -> dict[str, Any]:
    return {"type": "button", "action_id": ACTION_PROPOSE,
            "text": {"type": "plain_text", "text": t("alerts.button_propose", action=action, lang=lang)},
            "value": f"{action} {target}"}
