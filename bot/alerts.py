"""Incident events -> the Slack messages that tell the channel. Pure: no I/O, `now` passed in.

One root message per incident at the top level of the alert channel; everything after it is a thread
reply; resolving edits the root. Each operation carries a unique key: it is the outbox's dedup key and
goes into the message metadata, so a post whose outcome is unknown can be found before it is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.actions import ACTION_FOR_CAUSE
from bot.incidents import (
    BotWasDown,
    CauseChanged,
    Event,
    Flapping,
    FlapSettled,
    Incident,
    IncidentOpened,
    IncidentResolved,
    ManualRun,
    Reminder,
)
from bot.render import clamp_blocks, fix_block, slack_date
from bot.render import untrusted as escape

ACTION_INCIDENT_RUN = "wscheck_incident_run"
#: The remediation feature's "propose this fix" button (bot/remediation.py listens to it).
ACTION_PROPOSE = "wscheck_propose"
ACTION_INCIDENT_SILENCE = "wscheck_incident_silence"
METADATA_EVENT = "wscheck_alert"

OpKind = Literal["post_root", "reply", "edit_root"]


@dataclass(frozen=True, slots=True)
class AlertOp:
    kind: OpKind
    target: str
    incident_id: str
    key: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"event_type": METADATA_EVENT, "event_payload": {"op": self.key, "incident": self.incident_id}}


def human_duration(seconds: float) -> str:
    """4 min 12 s, 2 h 5 min, 3 d 4 h: what a person reads in a channel."""
    s = max(0, round(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def mention_markup(mention: str) -> str:
    if not mention:
        return ""
    if mention in ("here", "channel"):
        return f"<!{mention}>"
    if mention.startswith("S"):
        return f"<!subteam^{mention}>"
    return f"<@{mention}>"


def what_broke(incident: Incident) -> str:
    if incident.kind == "unreachable":
        return "the bot cannot see the server"
    return "the app is down" if incident.cause in ("pm2_not_online", "pm2_crash_loop", "next_build_missing",
                                                   "port_conflict", "app_not_listening") \
        else "the WebSocket chat is broken"


def headline(incident: Incident) -> str:
    icon = "🟠" if incident.kind == "unreachable" else "🔴"
    return f"{icon} {incident.target}: {what_broke(incident)} ({incident.cause})"


def root_blocks(incident: Incident, *, mention: str, resolved_after: float | None = None,
                resolved_at: datetime | None = None, remediation: bool = False) -> tuple[str, list[dict[str, Any]]]:
    cause = incident.headline
    if resolved_after is not None:
        title = f"✅ {incident.target}: resolved after {human_duration(resolved_after)}"
        text = f"{title} (was {incident.cause}: {cause.summary})"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"~{escape(headline(incident))}~\n"
                                         f"was: {escape(cause.summary)}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"opened {slack_date(incident.first_failure_at)} · resolved "
                f"{slack_date(resolved_at or incident.resolved_at or incident.first_failure_at)} · "
                f"incident `{escape(incident.id)}`")}]},
        ]
        return text, clamp_blocks(blocks)
    who = mention_markup(mention)
    action = ACTION_FOR_CAUSE.get(incident.cause) if remediation else None
    text = f"{headline(incident)}: {cause.summary}" + (f" {who}" if who else "")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(incident)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*{escape(cause.summary)}*\nsince {slack_date(incident.first_failure_at)}"
            + (f" · {who}" if who else ""))}},
    ]
    if cause.fix:
        blocks.append(fix_block(cause.fix, title="Fix"))
    others = [c for c in incident.causes[1:]]
    if others:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "Also: " + "; ".join(
            f"`{c.cause}` {escape(c.summary)}" for c in others)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"evidence: {escape(', '.join(cause.evidence)) or '—'} · incident `{escape(incident.id)}`")}]})
    blocks.append({"type": "actions", "block_id": "incident_actions", "elements": [
        {"type": "button", "action_id": ACTION_INCIDENT_RUN, "text": {"type": "plain_text", "text": "Run checks"},
         "value": incident.target},
        {"type": "button", "action_id": ACTION_INCIDENT_SILENCE, "text": {"type": "plain_text", "text": "Silence 1 h"},
         "value": incident.target},
        *([{"type": "button", "action_id": ACTION_PROPOSE, "value": f"{action} {incident.target}",
            "text": {"type": "plain_text", "text": f"Propose {action}"}}] if action else []),
    ]})
    return text, clamp_blocks(blocks)


def _reply(incident: Incident, key: str, text: str) -> AlertOp:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
    return AlertOp("reply", incident.target, incident.id, key, _plain(text), clamp_blocks(blocks))


def _plain(text: str) -> str:
    return text.replace("*", "")[:3000]


def silence_note(incident: Incident, *, by: str, until: datetime | None, now: datetime) -> AlertOp:
    """Who silenced (or unsilenced) the target and until when, in the incident's thread."""
    key = f"{incident.id}/silence/{now.timestamp():.6f}"
    if until is None:
        return _reply(incident, key, f"🔔 <@{escape(by)}> lifted the silence on {escape(incident.target)}.")
    return _reply(incident, key, f"🔕 <@{escape(by)}> silenced {escape(incident.target)} until {slack_date(until)}: "
                                 "no more messages here until then, except the resolve.")


def ops_for(event: Event, *, mention: str, now: datetime, remediation: bool = False, seq: int = 0) -> list[AlertOp]:
    """The messages one incident event needs, in the order they must reach the channel.

    `seq` is the event's position among those produced at the same `now`: with the incident id, the event
    type and the time it makes every message's key unique (its outbox dedup key and metadata).
    """
    inc = event.incident
    key = f"{inc.id}/{event.type}/{now.timestamp():.6f}/{seq}"
    if isinstance(event, IncidentOpened):
        text, blocks = root_blocks(inc, mention=mention, remediation=remediation)
        if event.reused_root:
            return [AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks),
                    _reply(inc, key, f"🔁 It's back: *{escape(inc.cause)}* {escape(inc.headline.summary)}")]
        return [AlertOp("post_root", inc.target, inc.id, key, text, blocks)]
    if isinstance(event, CauseChanged):
        fix = "\n".join(inc.headline.fix)
        lines = [f"🔀 Cause changed: *{escape(inc.cause)}* {escape(inc.headline.summary)} "
                 f"(was `{escape(event.previous_cause)}`)"]
        if fix:
            lines.append(f"```\n{escape(fix)}\n```")
        text, blocks = root_blocks(inc, mention="", remediation=remediation)
        return [_reply(inc, key, "\n".join(lines)),
                AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks)]
    if isinstance(event, Reminder):
        return [_reply(inc, key, f"⏰ Still open after {human_duration(event.open_for)}: *{escape(inc.cause)}* "
                                 f"{escape(inc.headline.summary)}")]
    if isinstance(event, Flapping):
        return [_reply(inc, key, f"〰️ Flapping: {event.transitions} opens/closes within "
                                 f"{human_duration(event.window)}. Quiet until it settles.")]
    if isinstance(event, FlapSettled):
        state = "still failing" if event.still_failing else "healthy again"
        return [_reply(inc, key, f"〰️ Stopped flapping: {state}.")]
    if isinstance(event, IncidentResolved):
        text, blocks = root_blocks(inc, mention="", resolved_after=event.duration, resolved_at=now)
        return [AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks),
                _reply(inc, key, f"✅ Resolved after {human_duration(event.duration)}: all checks pass again.")]
    if isinstance(event, ManualRun):
        result = "all checks pass" if event.healthy else escape(event.summary)
        return [_reply(inc, key, f"🔎 <@{escape(event.by)}> ran the checks: {result}")]
    if isinstance(event, BotWasDown):
        return [_reply(inc, key, f"⚠️ The bot was down for {human_duration(event.down_for)}; this incident is still "
                                 "open and being watched again.")]
    raise TypeError(f"unknown incident event {type(event).__name__}")  # pragma: no cover
