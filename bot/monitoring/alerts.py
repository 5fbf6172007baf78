"""Incident events -> the Slack messages that tell the channel. Pure: no I/O, `now` passed in.

One root message per incident at the top level of the alert channel; everything after it is a thread
reply; resolving edits the root. Each operation carries a unique key: it is the outbox's dedup key and
goes into the message metadata, so a post whose outcome is unknown can be found before it is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.i18n import localize_cause, t
from bot.monitoring.incidents import (
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
from bot.remediation.actions import ACTION_FOR_CAUSE
from bot.render import clamp_blocks, fix_block, slack_date
from bot.render import mention as user_mention
from bot.render import untrusted as escape
from wsmsg.duration import duration

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


def mention_markup(mention: str) -> str:
    if not mention:
        return ""
    if mention in ("here", "channel"):
        return f"<!{mention}>"
    if mention.startswith("S"):
        return f"<!subteam^{mention}>"
    return f"<@{mention}>"


def what_broke(incident: Incident, *, lang: str) -> str:
    if incident.kind == "unreachable":
        # wt-host3: the server answers but PM2 does not (pm2 off the PATH): what the bot cannot see is PM2.
        return t("alerts.pm2_unseen",
                 lang=lang) if incident.cause == "pm2_binary_not_found" else t("alerts.unreachable", lang=lang)
    return t("alerts.app_down", lang=lang) if incident.cause in ("pm2_not_online", "pm2_crash_loop",
                                                                 "next_build_missing",
                                                      "port_conflict", "app_not_listening") \
        else t("alerts.ws_broken", lang=lang)


def headline(incident: Incident, *, lang: str) -> str:
    icon = "🟠" if incident.kind == "unreachable" else "🔴"
    return f"{icon} {incident.target}: {what_broke(incident, lang=lang)} ({incident.cause})"


def root_blocks(incident: Incident, *, mention: str, resolved_after: float | None = None,
                resolved_at: datetime | None = None, remediation: bool = False, lang: str) -> tuple[str, list[dict[str,
                                                                                                                   Any]]]:
    cause = localize_cause(incident.headline, lang=lang)
    if resolved_after is not None:
        title = t("alerts.resolved_title", target=incident.target, duration=duration(resolved_after), lang=lang)
        text = t("alerts.resolved_text", title=title, cause=incident.cause, summary=cause.summary, lang=lang)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"~{escape(headline(incident, lang=lang))}~\n"
                                         + t("alerts.was", summary=escape(cause.summary), lang=lang)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": t(
                "alerts.resolved_context", opened=slack_date(incident.first_failure_at),
                resolved=slack_date(resolved_at or incident.resolved_at or incident.first_failure_at),
                id=escape(incident.id), lang=lang)}]},
        ]
        return text, clamp_blocks(blocks, lang=lang)
    who = mention_markup(mention)
    action = ACTION_FOR_CAUSE.get(incident.cause) if remediation else None
    text = f"{headline(incident, lang=lang)}: {cause.summary}" + (f" {who}" if who else "")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(incident, lang=lang)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*{escape(cause.summary)}*\n" + t("alerts.since", date=slack_date(incident.first_failure_at), lang=lang)
            + (f" · {who}" if who else ""))}},
    ]
    if cause.fix:
        blocks.append(fix_block(cause.fix, title=t("alerts.fix_title", lang=lang), lang=lang))
    others = [localize_cause(c, lang=lang) for c in incident.causes[1:]]
    if others:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": t("alerts.also", causes="; ".join(
            f"`{c.cause}` {escape(c.summary)}" for c in others), lang=lang)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t(
        "alerts.evidence", evidence=escape(", ".join(cause.evidence)) or "—", id=escape(incident.id), lang=lang)}]})
    blocks.append({"type": "actions", "block_id": "incident_actions", "elements": [
        {"type": "button", "action_id": ACTION_INCIDENT_RUN,
         "text": {"type": "plain_text", "text": t("alerts.button_run", lang=lang)}, "value": incident.target},
        {"type": "button", "action_id": ACTION_INCIDENT_SILENCE,
         "text": {"type": "plain_text", "text": t("alerts.button_silence", lang=lang)}, "value": incident.target},
        *([{"type": "button", "action_id": ACTION_PROPOSE, "value": f"{action} {incident.target}",
            "text": {"type": "plain_text", "text": t("alerts.button_propose", action=action,
                                                     lang=lang)}}] if action else []),
    ]})
    return text, clamp_blocks(blocks, lang=lang)


def _reply(incident: Incident, key: str, text: str, *, lang: str) -> AlertOp:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
    return AlertOp("reply", incident.target, incident.id, key, _plain(text), clamp_blocks(blocks, lang=lang))


def _plain(text: str) -> str:
    return text.replace("*", "")[:3000]


def silence_note(incident: Incident, *, by: str, until: datetime | None, now: datetime, lang: str) -> AlertOp:
    """Who silenced (or unsilenced) the target and until when, in the incident's thread."""
    key = f"{incident.id}/silence/{now.timestamp():.6f}"
    if until is None:
        return _reply(incident, key, t("alerts.unsilenced", user=user_mention(escape(by)),
                                       target=escape(incident.target),
                                       lang=lang), lang=lang)
    return _reply(incident, key, t("alerts.silenced", user=user_mention(escape(by)), target=escape(incident.target),
                                   until=slack_date(until), lang=lang), lang=lang)


def fix_outcome_note(incident: Incident, *, request_id: str, action: str, outcome: str, now: datetime,
                     lang: str) -> AlertOp:
    """Why an incident opens right after the bot's own fix: what was run and how its verification ended."""
    key = f"{incident.id}/fix/{request_id}/{now.timestamp():.6f}"
    return _reply(incident, key, t("alerts.fix_outcome", id=escape(request_id), action=escape(action),
                                   outcome=escape(outcome), lang=lang), lang=lang)


def ops_for(event: Event, *, mention: str, now: datetime, remediation: bool = False, seq: int = 0,
            lang: str) -> list[AlertOp]:
    """The messages one incident event needs, in the order they must reach the channel.

    `seq` is the event's position among those produced at the same `now`: with the incident id, the event
    type and the time it makes every message's key unique (its outbox dedup key and metadata).
    """
    inc = event.incident
    key = f"{inc.id}/{event.type}/{now.timestamp():.6f}/{seq}"
    head = localize_cause(inc.headline, lang=lang)
    if isinstance(event, IncidentOpened):
        text, blocks = root_blocks(inc, mention=mention, remediation=remediation, lang=lang)
        if event.reused_root:
            return [AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks),
                    _reply(inc, key, t("alerts.back", cause=escape(inc.cause), summary=escape(head.summary),
                                       lang=lang), lang=lang)]
        return [AlertOp("post_root", inc.target, inc.id, key, text, blocks)]
    if isinstance(event, CauseChanged):
        fix = "\n".join(head.fix)
        lines = [t("alerts.cause_changed", cause=escape(inc.cause), summary=escape(head.summary),
                   previous=escape(event.previous_cause), lang=lang)]
        if fix:
            lines.append(f"```\n{escape(fix)}\n```")
        text, blocks = root_blocks(inc, mention="", remediation=remediation, lang=lang)
        return [_reply(inc, key, "\n".join(lines), lang=lang),
                AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks)]
    if isinstance(event, Reminder):
        return [_reply(inc, key, t("alerts.reminder", duration=duration(event.open_for),
                                   cause=escape(inc.cause), summary=escape(head.summary), lang=lang), lang=lang)]
    if isinstance(event, Flapping):
        return [_reply(inc, key, t("alerts.flapping", count=event.transitions, duration=duration(event.window),
                                   lang=lang), lang=lang)]
    if isinstance(event, FlapSettled):
        state = t("alerts.still_failing", lang=lang) if event.still_failing else t("alerts.healthy_again", lang=lang)
        return [_reply(inc, key, t("alerts.flap_settled", state=state, lang=lang), lang=lang)]
    if isinstance(event, IncidentResolved):
        text, blocks = root_blocks(inc, mention="", resolved_after=event.duration, resolved_at=now, lang=lang)
        return [AlertOp("edit_root", inc.target, inc.id, key + "/root", text, blocks),
                _reply(inc, key, t("alerts.resolved_reply", duration=duration(event.duration), lang=lang), lang=lang)]
    if isinstance(event, ManualRun):
        if event.healthy:
            result = t("alerts.all_pass", lang=lang)
        else:
            summary = localize_cause(event.cause, lang=lang).summary if event.cause is not None else event.summary
            result = escape(summary)
        return [_reply(inc, key, t("alerts.manual_run", user=user_mention(escape(event.by)), result=result, lang=lang),
                       lang=lang)]
    if isinstance(event, BotWasDown):
        return [_reply(inc, key, t("alerts.bot_was_down", duration=duration(event.down_for), lang=lang), lang=lang)]
    raise TypeError(f"unknown incident event {type(event).__name__}")  # pragma: no cover
