"""Incident events -> the messages that tell the channel (typed values, bot/outgoing.py). Pure: no I/O, `now` passed in.

One root message per incident at the top level of the alert channel; everything after it is a thread
reply; resolving edits the root. Each operation carries a unique key: it is the outbox's dedup key and
goes into the message metadata, so a post whose outcome is unknown can be found before it is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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
from bot.outgoing import (
    ACTION_INCIDENT_RUN,
    ACTION_INCIDENT_SILENCE,
    ACTION_PROPOSE,
    AlertReply,
    AlertRoot,
    FixOutcomeNote,
    Outgoing,
    RootEdit,
    SilenceNote,
)
from wsmsg import Msg

__all__ = ["ACTION_INCIDENT_RUN", "ACTION_INCIDENT_SILENCE", "ACTION_PROPOSE", "AlertOp", "fix_outcome_note",
           "ops_for", "silence_note"]
METADATA_EVENT = "wscheck_alert"

OpKind = Literal["post_root", "reply", "edit_root"]


@dataclass(frozen=True, slots=True)
class AlertOp:
    kind: OpKind
    target: str
    incident_id: str
    key: str
    #: What to say, as data: the front renders it when the outbox delivers it.
    message: Outgoing

    def metadata(self) -> dict[str, Any]:
        return {"event_type": METADATA_EVENT, "event_payload": {"op": self.key, "incident": self.incident_id}}


def _reply(incident: Incident, key: str, message: Outgoing) -> AlertOp:
    return AlertOp("reply", incident.target, incident.id, key, message)


def silence_note(incident: Incident, *, by: str, until: datetime | None, now: datetime) -> AlertOp:
    """Who silenced (or unsilenced) the target and until when, in the incident's thread."""
    key = f"{incident.id}/silence/{now.timestamp():.6f}"
    return _reply(incident, key, SilenceNote(target=incident.target, by=by, until=until))


def fix_outcome_note(incident: Incident, *, request_id: str, action: str, outcome: Msg, now: datetime) -> AlertOp:
    """Why an incident opens right after the bot's own fix: what was run and how its verification ended."""
    key = f"{incident.id}/fix/{request_id}/{now.timestamp():.6f}"
    return _reply(incident, key, FixOutcomeNote(request_id=request_id, action=action, outcome=outcome))


def ops_for(event: Event, *, mention: str, now: datetime, remediation: bool = False, seq: int = 0) -> list[AlertOp]:
    """The messages one incident event needs, in the order they must reach the channel.

    `seq` is the event's position among those produced at the same `now`: with the incident id, the event
    type and the time it makes every message's key unique (its outbox dedup key and metadata).
    """
    inc = event.incident
    key = f"{inc.id}/{event.type}/{now.timestamp():.6f}/{seq}"
    if isinstance(event, IncidentOpened):
        if event.reused_root:
            return [AlertOp("edit_root", inc.target, inc.id, key + "/root",
                            RootEdit(incident=inc, mention=mention, remediation=remediation)),
                    _reply(inc, key, AlertReply(event=event))]
        return [AlertOp("post_root", inc.target, inc.id, key,
                        AlertRoot(incident=inc, mention=mention, remediation=remediation))]
    if isinstance(event, CauseChanged):
        return [_reply(inc, key, AlertReply(event=event)),
                AlertOp("edit_root", inc.target, inc.id, key + "/root", RootEdit(incident=inc,
                                                                                 remediation=remediation))]
    if isinstance(event, IncidentResolved):
        return [AlertOp("edit_root", inc.target, inc.id, key + "/root",
                        RootEdit(incident=inc, resolved_after=event.duration, resolved_at=now)),
                _reply(inc, key, AlertReply(event=event))]
    if isinstance(event, Reminder | Flapping | FlapSettled | ManualRun | BotWasDown):
        return [_reply(inc, key, AlertReply(event=event))]
    raise TypeError(f"unknown incident event {type(event).__name__}")  # pragma: no cover
