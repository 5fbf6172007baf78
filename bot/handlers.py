"""Commands and buttons that need the monitor: status, silence, unsilence, and the alert's buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import commands as cmd
from bot.alerts import ACTION_INCIDENT_RUN, ACTION_INCIDENT_SILENCE
from bot.core import Bot, Requester, Responder
from bot.monitor import Monitor
from bot.render import slack_date

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
        await out.text("*Incidents and silences*\n" + "\n".join(lines))

    async def silence(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.Silence)
        now = datetime.now(UTC)
        until = silence_until(command, now=now, tz=who.tz)
        await monitor.silence(command.target, until=until, by=who.user_id)
        await out.announce(f"🔕 <@{who.user_id}> silenced alerts for *{command.target}* until {slack_date(until)}.")

    async def unsilence(command: cmd.Command, who: Requester, out: Responder) -> None:
        assert isinstance(command, cmd.Unsilence)
        cleared = await monitor.unsilence(command.target, by=who.user_id)
        if cleared:
            await out.announce(f"🔔 <@{who.user_id}> lifted the silence on *{command.target}*.")
        else:
            await out.text(f"*{command.target}* was not silenced.")

    async def run_button(value: str, who: Requester, out: Responder) -> None:
        if value not in bot.target_names:
            await out.text("That alert names a target this bot no longer has.")
            return
        report = await monitor.manual_run(value, by=who.user_id)
        await out.reports([report], command=cmd.RunChecks(checks=(), target=value))

    async def silence_button(value: str, who: Requester, out: Responder) -> None:
        if value not in bot.target_names:
            await out.text("That alert names a target this bot no longer has.")
            return
        until = datetime.now(UTC) + BUTTON_SILENCE
        await monitor.silence(value, until=until, by=who.user_id)
        await out.text(f"🔕 Silenced *{value}* until {slack_date(until)} (the thread says who and until when).")

    bot.extra_handlers.update({cmd.ShowStatus: status, cmd.Silence: silence, cmd.Unsilence: unsilence})
    bot.actions.update({ACTION_INCIDENT_RUN: run_button, ACTION_INCIDENT_SILENCE: silence_button})
