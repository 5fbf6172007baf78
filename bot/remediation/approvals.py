"""Two-person approval of a remediation, as a pure state machine.

A restart button that anyone can press, twice, or a week later, is worse than no button. The peers
show the traps this module exists to close:

* Robusta's buttons carry a replayable signed command and never check who clicked. Here a button
  carries only an opaque, unguessable request id; *what* runs is stored with the request, and every
  click is checked against the policy (who may decide) and the request (whose it is, until when).
* StackStorm's inquiries let the requester approve themselves and expire only if a garbage
  collector runs. Here self-approval is off by default and expiry is decided from `now` on every
  click, so a click after `expires_at` is refused even if nothing ever marked the request expired.
* A popular approval action let a click on one request approve another. Here a click names the
  request id it was made on, and it must equal the request's id.

Nothing here does I/O: `now` is always an argument, and every function returns a new frozen model.
Every change bumps `version` by exactly one so the caller can store it with a conditional update
(``UPDATE ... WHERE id = ? AND version = ?``): the first decision wins, and a double click, two
approvers at once, a re-delivered Socket Mode envelope or a click on a stale message can never
make anything run twice.

Lifecycle::

    pending --(quorum of distinct approvers)--> approved --> running --> succeeded | failed
       |                                           |            `--(bot restarted)--> interrupted
       |                                           `--> aborted  (already recovered / process changed)
       `--> denied | expired | superseded | cancelled  (its approval message could not be posted)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.chat.admission import Refusal
from checks.causes import FIX_NAMES
from wsmsg import Msg, msg, verbatim
from wsmsg.field import MsgField

#: The remediations a request may name: checks/causes.py FIXES, the same words as the `/wscheck` grammar's.
ACTIONS: tuple[str, ...] = FIX_NAMES
#: How long a request may wait for its decision, at most. A week-old button must not work, whatever the config says.
MAX_TTL = 86_400.0
#: What `fingerprint_changed` compares: a PM2 process that restarted or was replaced since the request.
FINGERPRINT_KEYS: tuple[str, ...] = ("pid", "restart_time")
#: Bytes of entropy behind a request id (64 bits: unguessable for a button that lives minutes).
ID_BYTES = 8
ID_PREFIX = "R-"

RefusalReason = Literal[
    "expired",
    "self_approval",
    "not_approver",
    "other_team",
    "already_voted",
    "already_decided",
    "wrong_request",
    "remediation_disabled",
    # Admission (bot/chat/admission.py) refused the clicker: checked here again, whatever the door did.
    "guest",
    "not_allowed_user",
    "channel_disabled",
]
ClickOutcome = Literal["approved", "vote_recorded", "denied", "refused"]


def _to_utc(value: datetime) -> datetime:
    """Store every instant in UTC so comparisons and the JSON form never depend on a local zone."""
    return value.astimezone(UTC)


#: A timezone-aware instant, normalised to UTC (a naive datetime is rejected: "when" must be unambiguous).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def _now(now: datetime) -> datetime:
    """Check the caller's clock reading: expiry is decided from it, so it must be an unambiguous instant."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC)")
    return now.astimezone(UTC)


class ApprovalPolicy(BaseModel):
    """Who may decide, how many of them, and for how long a request stays open.

    Deny by default: with no approvers configured, remediation is off (`enabled` is False) and every
    click is refused. The caller resolves Slack user groups to user IDs before building this.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    approvers: frozenset[str]
    quorum: Literal[1, 2] = 1
    allow_self_approval: bool = False
    ttl: float = Field(default=600.0, gt=0, le=MAX_TTL)  # seconds

    @field_validator("approvers")
    @classmethod
    def _no_blank_approver(cls, value: frozenset[str]) -> frozenset[str]:
        """A blank ID would come from a broken group lookup; it must not quietly stand for "someone"."""
        if any(not user.strip() for user in value):
            raise ValueError("approver IDs must be non-empty")
        return value

    @model_validator(mode="after")
    def _quorum_reachable(self) -> ApprovalPolicy:
        """A quorum larger than the approver list would make every request unapprovable: say so at load time."""
        if self.approvers and self.quorum > len(self.approvers):
            raise ValueError(f"quorum {self.quorum} needs at least {self.quorum} distinct approvers")
        return self

    @property
    def enabled(self) -> bool:
        """Remediation is on only when somebody is allowed to approve it."""
        return bool(self.approvers)

    def may_approve(self, user: str, requested_by: str) -> bool:
        """Whether `user`'s approval counts for a request made by `requested_by` under this policy."""
        return user in self.approvers and (self.allow_self_approval or user != requested_by)


class Status(StrEnum):
    """Where a request is in its life; the values are what the store and the audit log show."""

    PENDING = "pending"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    DENIED = "denied"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


#: Statuses nothing moves out of.
FINAL: frozenset[Status] = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.ABORTED,
        Status.DENIED,
        Status.EXPIRED,
        Status.SUPERSEDED,
        Status.INTERRUPTED,
        Status.CANCELLED,
    }
)


class Vote(BaseModel):
    """One approval click that counted, kept for the audit ("approved by U2 at ...")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    at: UtcDatetime


class ApprovalRequest(BaseModel):
    """One proposed remediation and everything decided about it so far.

    `commands` are the display strings of exactly what will run, built by the caller from the
    validated config: the approver sees what they approve, and nothing from the click can change it.
    `fingerprint` is the PM2 process as it was when the request was made, so the caller can abort
    if the process changed between the request and the run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    target: str
    action: str
    commands: tuple[str, ...]
    host: str
    #: Why it was asked (shown to the approvers): a message reference; a plain string in rows of older versions.
    reason: MsgField
    cause: str | None
    requested_by: str
    team_id: str
    requested_at: UtcDatetime
    expires_at: UtcDatetime
    channel: str
    thread_ts: str | None = None
    message_ts: str | None = None
    incident_id: str | None = None
    fingerprint: dict[str, int | str]
    status: Status = Status.PENDING
    approvals: tuple[Vote, ...] = ()
    denied_by: str | None = None
    decided_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    exit_code: int | None = None
    #: Why the request ended as it did: a message reference (a plain string in rows of older versions).
    outcome_note: MsgField | None = None
    version: int = Field(default=0, ge=0)

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        """Only the four remediations exist; anything else in the store is corruption, not a command."""
        if value not in ACTIONS:
            raise ValueError(f"unknown action {value!r}; expected one of {', '.join(ACTIONS)}")
        return value

    @model_validator(mode="after")
    def _window(self) -> ApprovalRequest:
        """A request that expires before it was made could never be approved; refuse to load one."""
        if self.expires_at <= self.requested_at:
            raise ValueError("expires_at must be after requested_at")
        return self


class ClickResult(BaseModel):
    """What a click did: the request to store (unchanged when refused) and a sentence for the clicker.

    `changed` tells the caller whether to write (conditionally on the old version) and edit the
    message; a refused click changes nothing, except that a click that finds its request past
    `expires_at` returns the EXPIRED request so the caller can record it and edit the message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request: ApprovalRequest
    outcome: ClickOutcome
    reason: RefusalReason | None
    message: str
    changed: bool


def new_request_id(entropy: bytes) -> str:
    """An opaque, unguessable id for the button value: ``R-`` + base32 of 8 random bytes (no padding).

    Pure: the caller passes ``os.urandom(8)``. Exactly 8 bytes are required so that a caller passing
    a short or constant value is caught instead of producing guessable ids.
    """
    if len(entropy) != ID_BYTES:
        raise ValueError(f"entropy must be exactly {ID_BYTES} bytes (os.urandom({ID_BYTES}))")
    return ID_PREFIX + base64.b32encode(entropy).decode("ascii").rstrip("=")


class RequestRefused(ValueError):
    """`new_request` refuses: `message` says why (a message, rendered by the front); `str(exc)` is its English."""

    def __init__(self, message: Msg) -> None:
        english = message.en
        super().__init__(english[:1].lower() + english[1:])
        self.message = message


def new_request(
    *,
    entropy: bytes,
    target: str,
    action: str,
    commands: tuple[str, ...],
    host: str,
    reason: Msg | str,
    cause: str | None,
    requested_by: str,
    team_id: str,
    channel: str,
    now: datetime,
    policy: ApprovalPolicy,
    fingerprint: Mapping[str, int | str],
    thread_ts: str | None = None,
    incident_id: str | None = None,
) -> ApprovalRequest:
    """A fresh pending request that expires `policy.ttl` seconds from `now`.

    Refuses (ValueError) to create a request nobody could ever approve: remediation disabled, or fewer
    eligible approvers than the quorum once the requester is excluded. Also refuses an empty command
    list (the approver must see what will run) and blank requester/team/channel.
    """
    at = _now(now)
    if not policy.enabled:
        raise RequestRefused(msg("approvals.err_disabled"))
    eligible = {user for user in policy.approvers if policy.may_approve(user, requested_by)}
    if len(eligible) < policy.quorum:
        raise RequestRefused(msg("approvals.err_quorum", quorum=policy.quorum))
    if not commands or any(not c.strip() for c in commands):
        raise RequestRefused(msg("approvals.err_commands"))
    for name, value in (("requested_by", requested_by), ("team_id", team_id), ("channel", channel)):
        if not value.strip():
            raise RequestRefused(msg("approvals.err_empty", name=name))
    return ApprovalRequest(
        id=new_request_id(entropy),
        target=target,
        action=action,
        commands=tuple(commands),
        host=host,
        reason=_said(reason),
        cause=cause,
        requested_by=requested_by,
        team_id=team_id,
        requested_at=at,
        expires_at=at + timedelta(seconds=policy.ttl),
        channel=channel,
        thread_ts=thread_ts,
        incident_id=incident_id,
        fingerprint=dict(fingerprint),
    )


def _said(note: Msg | str) -> Msg:
    """A note as a message (a plain string is text that is not ours, shown as is)."""
    return note if isinstance(note, Msg) else verbatim(note)


def _bump(request: ApprovalRequest, **update: object) -> ApprovalRequest:
    """Every transition goes through here so that every change moves `version` by exactly one."""
    return request.model_copy(update={**update, "version": request.version + 1})


def _expired(request: ApprovalRequest, now: datetime) -> ApprovalRequest:
    return _bump(
        request,
        status=Status.EXPIRED,
        decided_at=now,
        outcome_note=msg("approvals.note_expired", at=request.expires_at.strftime("%Y-%m-%d %H:%M:%S")),
    )


#: What a clicker refused admission is told (English; remediation.click_message says it in the bot's language).
ADMISSION_MESSAGES: dict[Refusal, str] = {
    "guest": "Guests can't decide on remediation requests.",
    "other_team": "Only members of this workspace can decide on this request.",
    "not_allowed_user": "You are not on this bot's list of allowed users.",
    "channel_disabled": "Decisions are not accepted from this channel.",
}


def _refused(request: ApprovalRequest, reason: RefusalReason, message: str) -> ClickResult:
    return ClickResult(request=request, outcome="refused", reason=reason, message=message, changed=False)


def _what(request: ApprovalRequest) -> str:
    return f"`{request.action}` on `{request.target}`"


def click(
    request: ApprovalRequest,
    *,
    request_id: str,
    user: str,
    team_id: str,
    bot_team_id: str,
    approve: bool,
    policy: ApprovalPolicy,
    now: datetime,
    admission: Refusal | None = None,
) -> ClickResult:
    """Apply one Approve/Deny click (or `/wscheck approve|deny ID`) to `request`.

    `admission` is bot/admission.decide's verdict on the clicker (guest, other team, allow-lists): the
    approval core refuses it again, whatever the front did, so no entry point can skip it.

    Refusals, first match wins: wrong_request, the admission refusal, remediation_disabled, other_team, already_decided,
    expired, not_approver, self_approval, already_voted. The order puts the checks that need no
    trust in the clicker first, and tells an approver "already decided" rather than "expired" when
    someone else decided in time. Deny needs the same rights as approve; the requester may deny
    (withdraw) their own request when they are an approver, since not running is always safe. An
    approver who voted for a quorum-2 request may still deny it (changing one's mind towards "no"
    is safe). Votes count only from users who may approve under the *current* policy, so removing
    an approver from the config also removes the weight of a vote they left on a pending request.
    """
    at = _now(now)
    if request_id != request.id:
        return _refused(request, "wrong_request", "That button belongs to a different request; nothing was changed.")
    if admission is not None:
        return _refused(request, admission, ADMISSION_MESSAGES[admission])
    if not policy.enabled:
        return _refused(request, "remediation_disabled", "Remediation is disabled: no approvers are configured.")
    if team_id != bot_team_id or team_id != request.team_id:
        return _refused(request, "other_team", "Only members of this workspace can decide on this request.")
    if request.status is not Status.PENDING:
        return _refused(
            request, "already_decided", f"This request was already decided; it is now {request.status.value}."
        )
    if at >= request.expires_at:
        return ClickResult(
            request=_expired(request, at),
            outcome="refused",
            reason="expired",
            message="This request has expired; ask again with a new request if it is still needed.",
            changed=True,
        )
    if user not in policy.approvers:
        verb = "approve" if approve else "deny"
        return _refused(request, "not_approver", f"You are not one of the approvers, so you can't {verb} this request.")
    if approve and not policy.may_approve(user, request.requested_by):
        return _refused(request, "self_approval", "You can't approve your own request.")
    if not approve:
        updated = _bump(request, status=Status.DENIED, denied_by=user, decided_at=at)
        return ClickResult(
            request=updated,
            outcome="denied",
            reason=None,
            message=f"Denied: {_what(request)} will not run.",
            changed=True,
        )
    if any(vote.user == user for vote in request.approvals):
        return _refused(request, "already_voted", "You already approved this request; it needs a different approver.")

    approvals = (*request.approvals, Vote(user=user, at=at))
    counted = {vote.user for vote in approvals if policy.may_approve(vote.user, request.requested_by)}
    if len(counted) >= policy.quorum:
        updated = _bump(request, status=Status.APPROVED, approvals=approvals, decided_at=at)
        return ClickResult(
            request=updated,
            outcome="approved",
            reason=None,
            message=f"Approved: {_what(request)} will run now.",
            changed=True,
        )
    missing = policy.quorum - len(counted)
    return ClickResult(
        request=_bump(request, approvals=approvals),
        outcome="vote_recorded",
        reason=None,
        message=f"Your approval is recorded; {missing} more approver(s) needed.",
        changed=True,
    )


def expire(request: ApprovalRequest, *, now: datetime) -> ApprovalRequest | None:
    """The EXPIRED version of a pending request past `expires_at`, else None.

    Only a convenience for tidying messages: correctness never depends on anybody calling it, because
    `click` decides expiry from `now` by itself.
    """
    at = _now(now)
    if request.status is Status.PENDING and at >= request.expires_at:
        return _expired(request, at)
    return None


def supersede(request: ApprovalRequest, *, by_request_id: str, now: datetime) -> ApprovalRequest | None:
    """Retire a pending request because a newer one for the same target and action replaces it.

    Two live buttons for the same fix would let two approvals run it twice. Returns None when the
    request is not pending. A pending request already past `expires_at` is returned EXPIRED rather
    than SUPERSEDED: it was not live any more when the new one came, and the history should say so.
    """
    at = _now(now)
    if by_request_id == request.id:
        raise ValueError("a request cannot supersede itself")
    if request.status is not Status.PENDING:
        return None
    if at >= request.expires_at:
        return _expired(request, at)
    return _bump(request, status=Status.SUPERSEDED, decided_at=at,
                 outcome_note=msg("approvals.note_superseded", id=by_request_id))


def cancel(request: ApprovalRequest, *, note: Msg | str, now: datetime) -> ApprovalRequest | None:
    """Withdraw a pending request whose approval message could not be posted (or not be found after an uncertain
    post): nothing may stay approvable that the channel may not have seen. None when it is not pending any more."""
    at = _now(now)
    if request.status is not Status.PENDING:
        return None
    if not _said(note).en.strip():
        raise ValueError("cancel needs a note saying why the request was withdrawn")
    return _bump(request, status=Status.CANCELLED, decided_at=at, outcome_note=_said(note))


def joinable(existing: ApprovalRequest, *, commands: tuple[str, ...], now: datetime) -> bool:
    """Whether a new request for the same target and action should join `existing` instead of being made: it is
    still pending and live, and it would run exactly the same commands. Two requests for the same fix at once then
    become one (two approvals could otherwise run it twice); a request with a new plan supersedes instead."""
    at = _now(now)
    return existing.status is Status.PENDING and at < existing.expires_at and existing.commands == tuple(commands)


def _require(request: ApprovalRequest, expected: Status, doing: str) -> None:
    if request.status is not expected:
        raise ValueError(f"cannot {doing} request {request.id}: it is {request.status.value}, not {expected.value}")


def start(request: ApprovalRequest, *, now: datetime) -> ApprovalRequest:
    """Mark an approved request as running, just before its commands run (ValueError otherwise).

    The caller stores this conditionally on the old version and runs the commands only if that
    write won: that is what makes "run at most once" hold across double clicks and re-deliveries.
    """
    at = _now(now)
    _require(request, Status.APPROVED, "start")
    return _bump(request, status=Status.RUNNING, started_at=at)


def finish(request: ApprovalRequest, *, ok: bool, exit_code: int | None, note: Msg | str,
           now: datetime) -> ApprovalRequest:
    """Record how a running remediation ended (ValueError unless running)."""
    at = _now(now)
    _require(request, Status.RUNNING, "finish")
    return _bump(
        request,
        status=Status.SUCCEEDED if ok else Status.FAILED,
        finished_at=at,
        exit_code=exit_code,
        outcome_note=_said(note),
    )


def abort(request: ApprovalRequest, *, note: Msg | str, now: datetime) -> ApprovalRequest:
    """Give up on an approved request without running it (ValueError unless approved).

    Used when the target already recovered, or when the process changed after approval (the
    approvers approved a restart of *that* process: ask again). The note is required because the
    channel must be told why an approved fix did not run.
    """
    at = _now(now)
    _require(request, Status.APPROVED, "abort")
    if not _said(note).en.strip():
        raise ValueError("abort needs a note saying why the approved fix did not run")
    return _bump(request, status=Status.ABORTED, finished_at=at, outcome_note=_said(note))


def interrupt(request: ApprovalRequest, *, now: datetime, keep_fresh_approvals: bool = False) -> ApprovalRequest | None:
    """On bot start: settle what a previous run of the bot left half done, without re-running anything.

    RUNNING becomes INTERRUPTED (the commands may or may not have completed: a human must look).
    APPROVED (approved but never started) becomes ABORTED: an approval is for running now, not
    whenever the bot comes back, so ask again. Anything else gives None; in particular pending
    requests stay valid until their own expiry.

    `keep_fresh_approvals` (a leader of replicas taking over, wt-ops): an APPROVED request still before its own
    `expires_at` is left APPROVED for the pick-up. A follower records approvals for the leader to run, and one
    clicked while no replica leads (the TTL after a leader's death) waits for the next leader: aborting it would
    drop a click the team was told "will run now". Nothing of it ever ran, and the execution re-checks everything
    (recovered? same process? same plan? cooldown) before it runs, exactly once (approved -> running is a
    conditional update). An approval older than its request's expiry is aborted as before.
    """
    at = _now(now)
    if keep_fresh_approvals and request.status is Status.APPROVED and at < request.expires_at:
        return None
    if request.status is Status.RUNNING:
        return _bump(
            request,
            status=Status.INTERRUPTED,
            finished_at=at,
            outcome_note=msg("approvals.note_stopped_running"),
        )
    if request.status is Status.APPROVED:
        return _bump(
            request,
            status=Status.ABORTED,
            finished_at=at,
            outcome_note=msg("approvals.note_restarted_approved"),
        )
    return None


def fingerprint_changed(before: Mapping[str, int | str], after: Mapping[str, int | str]) -> bool:
    """Whether the PM2 process moved (pid or restart_time) between the request and now.

    A missing key on either side counts as changed: without evidence that it is the same process,
    the approval is not reused. Values compare exactly (``3`` and ``"3"`` differ), erring the same way.
    """
    return any(key not in before or key not in after or before[key] != after[key] for key in FINGERPRINT_KEYS)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(request: ApprovalRequest) -> str:
    """One line for history and audit: ``R-… restart on web by U1: succeeded (exit 0) approved by U2``."""
    line = f"{request.id} {request.action} on {request.target} by {request.requested_by}: {request.status.value}"
    if request.exit_code is not None:
        line += f" (exit {request.exit_code})"
    if request.approvals:
        voters = ", ".join(vote.user for vote in request.approvals)
        # A pending request's votes are not (yet) an approval; an audit line must not suggest otherwise.
        line += f" (approvals so far: {voters})" if request.status is Status.PENDING else f" approved by {voters}"
    if request.denied_by is not None:
        line += f" denied by {request.denied_by}"
    if request.outcome_note:
        line += f" — {_one_line(request.outcome_note.en)}"
    return line
