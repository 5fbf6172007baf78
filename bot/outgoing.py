"""What the features say to the channel, as typed values: data, never sentences nor Slack blocks. Pure.

The monitor, the alerts and the remediation build these; the outbox stores them as JSON (`kind` + fields); the
front that delivers them renders them (Slack: blocks + fallback text, bot/fronts/outgoing.py; the console: its
plain lines) in its language, at delivery. So a stored message is said in the language and with the templates of
the bot that posts it, and the features never build nor look inside blocks (like opsdroid's connectors).

Every value here holds ids, numbers, message references (`wsmsg.Msg`) and the models they come from (the
incident with its causes, the approval request): whatever the renderers need, nothing already rendered.
`Rendered` is the exception on purpose: outbox rows written by an older bot hold their text and blocks already
rendered, and are delivered as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bot.monitoring.incidents import Event, Incident
from bot.remediation.approvals import ApprovalRequest
from checks.models import Cause
from wsmsg.field import MsgField

#: Button action ids: the features' vocabulary, shared with the fronts that draw the buttons and listen to them.
ACTION_INCIDENT_RUN = "wscheck_incident_run"
#: The remediation feature's "propose this fix" button (bot/remediation/engine.py listens to it).
ACTION_PROPOSE = "wscheck_propose"
ACTION_INCIDENT_SILENCE = "wscheck_incident_silence"
ACTION_APPROVE = "wscheck_approve"
ACTION_DENY = "wscheck_deny"


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AlertRoot(_Out):
    """An incident's root message at the top of the alert channel (opened: buttons, fix, who is paged)."""

    kind: Literal["alert_root"] = "alert_root"
    incident: Incident
    #: Who is paged: a user id, a user group id (S…), or "here"/"channel"; "" for nobody.
    mention: str = ""
    #: Whether remediation is on (the "propose this fix" button).
    remediation: bool = False


class RootEdit(_Out):
    """The root message edited: the incident's cause changed, it came back, or it resolved (`resolved_after`)."""

    kind: Literal["root_edit"] = "root_edit"
    incident: Incident
    mention: str = ""
    remediation: bool = False
    #: Seconds the incident lasted, when it resolved.
    resolved_after: float | None = None
    resolved_at: datetime | None = None


class AlertReply(_Out):
    """A reply in the incident's thread about one incident event (reminder, flapping, resolved, manual run…)."""

    kind: Literal["alert_reply"] = "alert_reply"
    event: Event


class SilenceNote(_Out):
    """Who silenced (`until`) or unsilenced (`until` None) a target, in its incident's thread."""

    kind: Literal["silence_note"] = "silence_note"
    target: str
    by: str
    until: datetime | None = None


class FixOutcomeNote(_Out):
    """Why an incident opens right after the bot's own fix: what was run and how its verification ended."""

    kind: Literal["fix_outcome"] = "fix_outcome"
    request_id: str
    action: str
    outcome: MsgField


class TlsExpiring(_Out):
    """A certificate close to expiry (a `warn` cause, no incident): one notice per certificate."""

    kind: Literal["tls_expiring"] = "tls_expiring"
    target: str
    cause: Cause


class ApprovalMessage(_Out):
    """The approval request's message in its current state: posted pending (with buttons), then edited."""

    kind: Literal["approval"] = "approval"
    request: ApprovalRequest
    #: The policy's part the message shows: who may approve, and how many must.
    approvers: tuple[str, ...]
    quorum: int


class ThreadNote(_Out):
    """A note under the approval message (a step running, done, the verification): a message whose params are
    text from the target or the chat, made safe by the renderer."""

    kind: Literal["thread_note"] = "thread_note"
    note: MsgField


class Rendered(_Out):
    """Text and blocks rendered by an older bot (its outbox rows): delivered exactly as they are."""

    kind: Literal["rendered"] = "rendered"
    text: str
    blocks: list[dict[str, Any]] = Field(default_factory=list)


Outgoing = Annotated[
    AlertRoot | RootEdit | AlertReply | SilenceNote | FixOutcomeNote | TlsExpiring | ApprovalMessage | ThreadNote
    | Rendered,
    Field(discriminator="kind"),
]
OUTGOING: TypeAdapter[Outgoing] = TypeAdapter(Outgoing)


def dump(message: Outgoing) -> dict[str, Any]:
    """The message as JSON data (`kind` + fields), as the outbox stores it."""
    data: dict[str, Any] = OUTGOING.dump_python(message, mode="json")
    return data


def load(data: Any) -> Outgoing:
    return OUTGOING.validate_python(data)


def approval_message(request: ApprovalRequest, *, approvers: frozenset[str] | tuple[str, ...],
                     quorum: int) -> ApprovalMessage:
    return ApprovalMessage(request=request, approvers=tuple(sorted(approvers)), quorum=quorum)
