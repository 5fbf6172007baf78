"""The fronts' rendering of the typed outgoing messages (bot/outgoing.py): Slack blocks and the fallback text.

The features say what happened (`AlertRoot`, `AlertReply`, `ApprovalMessage`…); this module, used by the sinks
at delivery, says it in the front's language with Slack's markup (mentions, dates, escaping, Block Kit limits).
The console sink prints the fallback text as plain lines (`render.plain`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.i18n import localize_cause, t
from bot.monitoring.incidents import (
    BotWasDown,
    CauseChanged,
    Flapping,
    FlapSettled,
    Incident,
    IncidentOpened,
    IncidentResolved,
    ManualRun,
    Reminder,
)
from bot.outgoing import (
    ACTION_APPROVE,
    ACTION_DENY,
    ACTION_INCIDENT_RUN,
    ACTION_INCIDENT_SILENCE,
    ACTION_PROPOSE,
    AlertReply,
    AlertRoot,
    ApprovalMessage,
    FixOutcomeNote,
    Outgoing,
    Rendered,
    RootEdit,
    SilenceNote,
    ThreadNote,
    TlsExpiring,
)
from bot.remediation import approvals as ap
from bot.remediation.actions import ACTION_FOR_CAUSE
from bot.render import clamp_blocks, cut, fix_block, slack_date
from bot.render import mention as user_mention
from bot.render import untrusted as escape
from wsmsg import Msg
from wsmsg.duration import duration

Blocks = list[dict[str, Any]]


def slack(message: Outgoing, *, lang: str) -> tuple[str, Blocks]:
    """The message as Slack posts it: (fallback text, blocks), in `lang`."""
    if isinstance(message, Rendered):
        return message.text, message.blocks
    if isinstance(message, AlertRoot):
        return root_blocks(message.incident, mention=message.mention, remediation=message.remediation, lang=lang)
    if isinstance(message, RootEdit):
        return root_blocks(message.incident, mention=message.mention, remediation=message.remediation,
                           resolved_after=message.resolved_after, resolved_at=message.resolved_at, lang=lang)
    if isinstance(message, AlertReply):
        return _reply(_event_note(message, lang=lang), lang=lang)
    if isinstance(message, SilenceNote):
        if message.until is None:
            return _reply(t("alerts.unsilenced", user=user_mention(escape(message.by)), target=escape(message.target),
                            lang=lang), lang=lang)
        return _reply(t("alerts.silenced", user=user_mention(escape(message.by)), target=escape(message.target),
                        until=slack_date(message.until), lang=lang), lang=lang)
    if isinstance(message, FixOutcomeNote):
        return _reply(t("alerts.fix_outcome", id=escape(message.request_id), action=escape(message.action),
                        outcome=safe(message.outcome, lang=lang), lang=lang), lang=lang)
    if isinstance(message, TlsExpiring):
        said = localize_cause(message.cause, lang=lang)
        return t("alerts.tls_expiring", target=message.target, summary=said.summary, fix=" / ".join(said.fix),
                 lang=lang), []
    if isinstance(message, ApprovalMessage):
        return approval_blocks(message, lang=lang)
    if isinstance(message, ThreadNote):
        note = safe(message.note, lang=lang)
        return note.replace("*", "")[:3000], [{"type": "section", "text": {"type": "mrkdwn", "text": note[:3000]}}]
    raise TypeError(f"unknown outgoing message {type(message).__name__}")  # pragma: no cover


def safe(note: Msg, *, lang: str) -> str:
    """A note whose params are text from a target or the chat: each param (a message: its rendering) made safe
    for mrkdwn, the template ours."""
    if not note.key or note.key.startswith("$"):
        return escape(note.render(lang))
    params = {k: escape(v.render(lang)) if isinstance(v, Msg) else escape(v) if isinstance(v, str) else v
              for k, v in note.params.items()}
    return Msg(note.key, params).render(lang)


# -- alerts ------------------------------------------------------------------------------------------------------


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


def _reply(text: str, *, lang: str) -> tuple[str, Blocks]:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
    return text.replace("*", "")[:3000], clamp_blocks(blocks, lang=lang)


def _event_note(message: AlertReply, *, lang: str) -> str:
    """The thread reply of one incident event (the root's edits are `RootEdit`s)."""
    event = message.event
    inc = event.incident
    head = localize_cause(inc.headline, lang=lang)
    if isinstance(event, IncidentOpened):  # reopened under its old root
        return t("alerts.back", cause=escape(inc.cause), summary=escape(head.summary), lang=lang)
    if isinstance(event, CauseChanged):
        fix = "\n".join(head.fix)
        lines = [t("alerts.cause_changed", cause=escape(inc.cause), summary=escape(head.summary),
                   previous=escape(event.previous_cause), lang=lang)]
        if fix:
            lines.append(f"```\n{escape(fix)}\n```")
        return "\n".join(lines)
    if isinstance(event, Reminder):
        return t("alerts.reminder", duration=duration(event.open_for), cause=escape(inc.cause),
                 summary=escape(head.summary), lang=lang)
    if isinstance(event, Flapping):
        return t("alerts.flapping", count=event.transitions, duration=duration(event.window), lang=lang)
    if isinstance(event, FlapSettled):
        state = t("alerts.still_failing", lang=lang) if event.still_failing else t("alerts.healthy_again", lang=lang)
        return t("alerts.flap_settled", state=state, lang=lang)
    if isinstance(event, IncidentResolved):
        return t("alerts.resolved_reply", duration=duration(event.duration), lang=lang)
    if isinstance(event, ManualRun):
        if event.healthy:
            result = t("alerts.all_pass", lang=lang)
        else:
            summary = localize_cause(event.cause, lang=lang).summary if event.cause is not None else event.summary
            result = escape(summary)
        return t("alerts.manual_run", user=user_mention(escape(event.by)), result=result, lang=lang)
    if isinstance(event, BotWasDown):
        return t("alerts.bot_was_down", duration=duration(event.down_for), lang=lang)
    raise TypeError(f"unknown incident event {type(event).__name__}")  # pragma: no cover


# -- approvals ---------------------------------------------------------------------------------------------------


def approval_blocks(message: ApprovalMessage, *, lang: str) -> tuple[str, Blocks]:
    """The approval message in each state: pending (with buttons) or final (what happened, no buttons)."""
    request = message.request
    status = request.status
    icon = {ap.Status.PENDING: "🛠️", ap.Status.APPROVED: "▶️", ap.Status.RUNNING: "⏳", ap.Status.SUCCEEDED: "✅",
            ap.Status.FAILED: "❌", ap.Status.ABORTED: "⏹️", ap.Status.DENIED: "🚫", ap.Status.EXPIRED: "⌛",
            ap.Status.SUPERSEDED: "↪️", ap.Status.INTERRUPTED: "⚠️",
            ap.Status.CANCELLED: "✖️"}[status]
    title = t("remediation.title", icon=icon, action=request.action, target=request.target, status=status.value,
              lang=lang)
    lines = [t("remediation.requested_line", action=escape(request.action), target=escape(request.target),
               host=escape(request.host), user=user_mention(request.requested_by), lang=lang),
             t("remediation.why", reason=escape(cut(request.reason.render(lang), 500)), lang=lang)]
    if status is ap.Status.PENDING:
        approvers = ", ".join(f"<@{a}>" for a in sorted(message.approvers))
        votes = ", ".join(f"<@{v.user}>" for v in request.approvals)
        lines.append(t("remediation.needs", quorum=message.quorum, approvers=approvers,
                       so_far=t("remediation.so_far", votes=votes, lang=lang) if votes else "",
                       expires=slack_date(request.expires_at), lang=lang))
    else:
        if request.approvals:
            lines.append(t("remediation.approved_by", users=", ".join(f"<@{v.user}>" for v in request.approvals),
                           lang=lang))
        if request.denied_by:
            lines.append(t("remediation.denied_by", user=user_mention(request.denied_by), lang=lang))
        if request.exit_code is not None:
            if request.started_at and request.finished_at:
                lines.append(t("remediation.exit_code_took", code=request.exit_code,
                               seconds=(request.finished_at - request.started_at).total_seconds(), lang=lang))
            else:
                lines.append(t("remediation.exit_code", code=request.exit_code, lang=lang))
        if request.outcome_note:
            lines.append(escape(request.outcome_note.render(lang)))
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        fix_block(request.commands, title=t("remediation.will_run", host=request.host,
                                            lang=lang) if status is ap.Status.PENDING
                  else t("remediation.commands_on", host=request.host, lang=lang), lang=lang),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": t("remediation.context", id=request.id,
                                                                      lang=lang)}]},
    ]
    if status is ap.Status.PENDING:
        blocks.append({"type": "actions", "block_id": "approval", "elements": [
            {"type": "button", "action_id": ACTION_APPROVE, "style": "primary",
             "text": {"type": "plain_text", "text": t("remediation.approve", lang=lang)}, "value": request.id},
            {"type": "button", "action_id": ACTION_DENY, "style": "danger",
             "text": {"type": "plain_text", "text": t("remediation.deny", lang=lang)}, "value": request.id},
        ]})
    reason = cut(request.reason.render(lang), 500)
    fallback = t("remediation.text", title=title, user=user_mention(request.requested_by), reason=reason, lang=lang)
    return fallback[:3000], clamp_blocks(blocks, lang=lang)
