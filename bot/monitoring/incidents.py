"""The incident state machine: (state, observation, now) -> (state, events). Pure.

Why pure: alerting rules (thresholds, flapping, silences, reminders, restarts) are where a chat bot is either
trusted or muted, so every rule must be testable by feeding timestamps, not by sleeping. This module reads no
clock (`now` is always an argument, a timezone-aware UTC datetime), logs nothing, posts nothing and stores
nothing: the caller persists `TargetState` as JSON (`model_dump_json()` / `model_validate_json()` round-trip
exactly) and turns each `Event` into a Slack post, edit or thread reply.

One incident per target at a time. Its headline is the diagnosis' first failing cause (`warn` causes never
open an incident); `target_unreachable` and `pm2_binary_not_found` are incidents of kind "unreachable" ("the bot
cannot see the server", "... cannot see PM2"), everything else is kind "down" ("the app is down").

Rules the product issue left open, decided here (the docs quote them):

* Streaks are per target, not per cause: the stack failing in two different ways in two consecutive
  observations is two consecutive failures. The incident opens with the streak's headline cause.
* An observation only speaks about the checks it ran (`checked`). Coverage decides what it may change:
  - a healthy observation counts as a success for an open incident only if it checked every check in the
    headline cause's evidence (a fast probe of pm2.status + ws.proxy cannot resolve an nginx incident);
    otherwise it is neutral: it neither counts as a success nor resets the failure streak;
  - before an incident opens, a healthy observation ends the failure streak only if it checked at least one
    check of the streak's evidence (a canary on ws.proxy says nothing about `nginx -t`);
  - a failing observation during an open incident resets the success streak only if it bears on the
    incident: it checked at least one check of the headline evidence, or it names a different known cause
    (anything but `unknown`). A failure that covers none of the evidence and names no new cause (a canary
    blip on an unrelated check during an nginx incident) is neutral: it neither resets the success streak
    nor counts as a failure. If the failure is real, the next full run sees it and does reset the streak.
* The headline cause changes (one CauseChanged) only when the observation could see the current headline:
  it checked the current cause's trigger check (`evidence[0]`), or the new cause is more fundamental
  (earlier in `checks.causes.CAUSE_SPECS`, which is root-first). So a fast probe that sees `pm2_not_online`
  does not replace `next_build_missing`, which it cannot see. The same cause seen again refreshes the
  incident's summary and causes silently, but only from an observation that checked all of its evidence
  (so a partial probe never shrinks the evidence a resolve needs).
* An announced incident's headline is what the channel was last told: while a change cannot be posted
  (silenced, or flapping) the incident keeps its cause, and the first observation afterwards that still
  sees the new cause posts the CauseChanged. An incident nobody was told about yet is updated silently.
* Failing checks that no cause explains (a canary with no diagnosis) form an `unknown` cause whose evidence
  is those checks; checks explained by a `warn` cause are not failing.
* `announced` means "the channel was told this incident is open (now)": an incident that opens or re-opens
  during a silence is unannounced until the silence ends and it is still open, then IncidentOpened is emitted
  (reused_root=True if its root message already exists). IncidentResolved is only ever emitted for an
  announced incident (also during a silence: good news keeps the channel truthful); an incident resolved
  while unannounced is never posted.
* `last_incident` only ever holds an incident whose root message was posted, so a re-open that reuses it
  (within `flap_window` of its resolve) can always edit that root.
* Flapping is checked at each open/close transition, and only when the channel can be told (not silenced,
  incident announced): when the transitions within `flap_window` reach `flap_count`, the incident is marked
  flapping and ONE Flapping notice is posted, whether the triggering transition was an open (then after the
  IncidentOpened) or a close (then instead of the IncidentResolved: the root stays open). While flapping,
  the thresholds still run on a shadow state (`TargetState.flap_recovered`) so transitions keep being
  counted, but nothing is posted. It settles when no transition happened for `flap_window`: FlapSettled,
  plus IncidentResolved (resolved at the last transition, the moment it recovered) if it is healthy then.
  After a still-failing settle reminders resume one `reminder_interval` later.
* Durations ("resolved after", "open for") count from `first_failure_at`, the first failing observation of
  the streak. A re-opened incident (root reused) keeps its id, `opened_at` and `first_failure_at`: it is
  the same problem coming back.
* Reminders: at most one per call even when several intervals were missed; counted from the last reminder,
  else from when the incident was announced. A CauseChanged, a FlapSettled (still failing) and a BotWasDown
  also tell the thread the incident is still open, so they restart the reminder interval. None while
  silenced or flapping; after a silence an overdue reminder is posted at the next tick.
* Silences suppress events, they do not queue them, and the state machine keeps running underneath
  (thresholds, transitions, silent updates of unannounced incidents). Flapping is not detected during a
  silence (nothing is posted anyway).
* A manual run posts ManualRun in the thread of the incident that was open and announced before it (first,
  then whatever the run changed), or after the IncidentOpened if the run itself opened one; never while
  silenced or flapping (the person who ran it gets the report anyway).
* `on_startup` has no silence: BotWasDown goes to every announced open incident's thread when the bot was
  away longer than one check interval, and counts as a reminder. Streaks survive a restart.
* Observations are applied in the order given; `last_observation_at` is the latest `at` seen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bot.i18n import text
from checks.causes import CAUSE_BY_ID, CAUSE_IDS
from checks.messages import msg, verbatim
from checks.models import Cause, Status, TargetReport
from wsmsg import Msg, joined

UNREACHABLE = "target_unreachable"
UNKNOWN = "unknown"
_BAD = (Status.FAIL, Status.ERROR)
#: Root-first rank of each registered cause (checks/causes.py, whose order is the diagnosis').
_RANK: dict[str, int] = {cause: i for i, cause in enumerate(CAUSE_IDS)}

ObservationKind: TypeAlias = Literal["full", "fast", "canary", "manual"]
IncidentKind: TypeAlias = Literal["unreachable", "down"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class IncidentPolicy(_Frozen):
    """How eager the alerting is; durations in seconds. Defaults follow the product issue."""

    failure_threshold: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=2, ge=1)
    reminder_interval: float = Field(default=3600, gt=0)
    flap_window: float = Field(default=1800, gt=0)
    flap_count: int = Field(default=3, ge=2)


class Observation(_Frozen):
    """One look at one target, reduced to what the incident rules need.

    `checked` matters as much as the failures: an observation only speaks about the checks it ran.
    """

    target: str
    at: datetime
    kind: ObservationKind
    checked: tuple[str, ...] = ()
    causes: tuple[Cause, ...] = ()
    failing_checks: tuple[str, ...] = ()
    confirmed: bool = False

    @classmethod
    def from_report(
        cls, report: TargetReport, *, kind: ObservationKind, at: datetime, confirmed: bool = False
    ) -> Observation:
        """Every check in the report counts as checked, `skip` included: it was selected, and a skip means
        another failing check of this same report explains it."""
        return cls(
            target=report.target,
            at=at,
            kind=kind,
            checked=tuple(c.id for c in report.checks),
            causes=report.diagnosis,
            failing_checks=tuple(c.id for c in report.checks if c.status in _BAD),
            confirmed=confirmed,
        )

    @property
    def failing_causes(self) -> tuple[Cause, ...]:
        """Causes of severity fail/error, root first, plus an `unknown` cause for failing checks that no cause
        (not even a warn one) explains, so that an undiagnosed failure (a canary) is still a problem."""
        bad = [c for c in self.causes if c.severity in _BAD]
        explained = {e for c in self.causes for e in c.evidence}
        left = tuple(dict.fromkeys(c for c in self.failing_checks if c not in explained))
        if not left:
            return tuple(bad)
        for i, cause in enumerate(bad):
            if cause.cause == UNKNOWN:
                bad[i] = cause.model_copy(update={"evidence": (*cause.evidence, *left)})
                return tuple(bad)
        summary = msg("cause.unknown", checks=", ".join(left))
        bad.append(Cause(cause=UNKNOWN, message=summary, evidence=left))
        return tuple(bad)

    @property
    def healthy(self) -> bool:
        return not self.failing_causes

    @property
    def seen(self) -> frozenset[str]:
        """The checks this observation can vouch for (a failing check obviously ran)."""
        return frozenset((*self.checked, *self.failing_checks))


class Incident(_Frozen):
    """One problem of one target, from its first alert to its resolve; `id` is stable across re-opens."""

    id: str
    target: str
    kind: IncidentKind
    cause: str
    summary: str
    causes: tuple[Cause, ...]
    opened_at: datetime
    first_failure_at: datetime
    root_ts: str | None = None
    channel: str | None = None
    announced: bool
    announced_at: datetime | None = None
    #: the last time the thread was told the incident is still open (Reminder, CauseChanged, ...)
    last_reminder_at: datetime | None = None
    resolved_at: datetime | None = None
    flapping: bool = False

    @property
    def headline(self) -> Cause:
        """The cause the channel was told about: `causes[0]` (the incident keeps failing causes only)."""
        if self.causes:
            return self.causes[0]
        return Cause(cause=self.cause, message=verbatim(self.summary))

    @property
    def evidence(self) -> tuple[str, ...]:
        return self.headline.evidence

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Silence(_Frozen):
    """`/wscheck silence`: no posts about `target` until `until`, except good news about announced incidents."""

    target: str
    until: datetime
    by: str
    at: datetime

    def active(self, now: datetime) -> bool:
        return now < self.until


class TargetState(_Frozen):
    """Everything the machine needs between observations of one target (persisted by the caller as JSON)."""

    target: str
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    incident: Incident | None = None
    last_incident: Incident | None = None
    transitions: tuple[datetime, ...] = ()
    last_observation_at: datetime | None = None
    #: start of the current failure streak (the "since when" of the incident it may open)
    first_failure_at: datetime | None = None
    #: failing causes of the current streak while no incident is open (headline first)
    pending: tuple[Cause, ...] = ()
    #: while flapping: the shadow state has recovered (would be resolved if it were not flapping)
    flap_recovered: bool = False


# -- events -------------------------------------------------------------------------------------------------------


class IncidentOpened(_Frozen):
    """Post the root message; reused_root=True: edit the existing root back to open and reply in its thread."""

    type: Literal["incident_opened"] = "incident_opened"
    incident: Incident
    reused_root: bool = False


class CauseChanged(_Frozen):
    type: Literal["cause_changed"] = "cause_changed"
    incident: Incident
    previous_cause: str
    previous_summary: str


class Reminder(_Frozen):
    type: Literal["reminder"] = "reminder"
    incident: Incident
    open_for: float


class Flapping(_Frozen):
    """The one notice before going quiet until the incident settles."""

    type: Literal["flapping"] = "flapping"
    incident: Incident
    transitions: int
    window: float


class FlapSettled(_Frozen):
    type: Literal["flap_settled"] = "flap_settled"
    incident: Incident
    still_failing: bool


class IncidentResolved(_Frozen):
    """Edit the root to "resolved after <duration>" and reply in the thread."""

    type: Literal["incident_resolved"] = "incident_resolved"
    incident: Incident
    duration: float


class ManualRun(_Frozen):
    type: Literal["manual_run"] = "manual_run"
    incident: Incident
    by: str
    healthy: bool
    summary: str
    #: The failing cause `summary` comes from (to say it in the bot's language); None when healthy.
    cause: Cause | None = None


class BotWasDown(_Frozen):
    type: Literal["bot_was_down"] = "bot_was_down"
    incident: Incident
    down_for: float


Event = Annotated[
    IncidentOpened | CauseChanged | Reminder | Flapping | FlapSettled | IncidentResolved | ManualRun | BotWasDown,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


# -- public functions ---------------------------------------------------------------------------------------------


def observe(
    state: TargetState, obs: Observation, *, now: datetime, policy: IncidentPolicy, silence: Silence | None
) -> tuple[TargetState, list[Event]]:
    """Apply one observation, then let time pass to `now` (settling, announcing after a silence, reminders)."""
    _require_aware(now)
    if obs.target != state.target:
        raise ValueError(f"observation of {obs.target!r} given to the state of {state.target!r}")
    silenced = silence is not None and silence.active(now)
    events: list[Event] = []
    state = _apply(state, obs, now, policy, silenced, events)
    state = _advance(state, now, policy, silenced, events)
    return state, events


def note_manual_run(
    state: TargetState,
    obs: Observation,
    *,
    by: str,
    now: datetime,
    policy: IncidentPolicy,
    silence: Silence | None,
) -> tuple[TargetState, list[Event]]:
    """`observe`, plus a ManualRun note in the incident's thread so the thread shows who looked and what they saw."""
    before = state.incident
    new_state, events = observe(state, obs, now=now, policy=policy, silence=silence)
    if silence is not None and silence.active(now):
        return new_state, events
    failing = obs.failing_causes
    summary = failing[0].summary if failing else f"all {len(obs.checked)} checks pass"
    cause = failing[0] if failing else None
    after = new_state.incident
    if after is not None and any(isinstance(e, IncidentOpened) and e.incident.id == after.id for e in events):
        if not after.flapping:
            events.append(ManualRun(incident=after, by=by, healthy=not failing, summary=summary, cause=cause))
    elif before is not None and before.announced and not before.flapping:
        current = before
        if after is not None and after.id == before.id:
            current = after
        elif new_state.last_incident is not None and new_state.last_incident.id == before.id:
            current = new_state.last_incident
        events.insert(0, ManualRun(incident=current, by=by, healthy=not failing, summary=summary, cause=cause))
    return new_state, events


def attach_root(state: TargetState, incident_id: str, *, channel: str, ts: str) -> TargetState:
    """Record where the caller posted the root message (on the open incident, or the just-resolved one)."""
    update: dict[str, object] = {}
    if state.incident is not None and state.incident.id == incident_id:
        update["incident"] = state.incident.model_copy(update={"channel": channel, "root_ts": ts})
    if state.last_incident is not None and state.last_incident.id == incident_id:
        update["last_incident"] = state.last_incident.model_copy(update={"channel": channel, "root_ts": ts})
    return state.model_copy(update=update) if update else state


def tick(
    state: TargetState, *, now: datetime, policy: IncidentPolicy, silence: Silence | None
) -> tuple[TargetState, list[Event]]:
    """Time passing without an observation: flap settling, announcing after a silence, reminders."""
    _require_aware(now)
    silenced = silence is not None and silence.active(now)
    events: list[Event] = []
    state = _advance(state, now, policy, silenced, events)
    return state, events


def on_startup(
    state: TargetState, *, now: datetime, last_alive_at: datetime | None, check_interval: float
) -> tuple[TargetState, list[Event]]:
    """After a restart: tell each announced open incident's thread that the bot was away (its watch had a gap)."""
    _require_aware(now)
    inc = state.incident
    if inc is None or not inc.announced or last_alive_at is None:
        return state, []
    down_for = (now - last_alive_at).total_seconds()
    if down_for <= check_interval:
        return state, []
    inc = inc.model_copy(update={"last_reminder_at": now})
    return state.model_copy(update={"incident": inc}), [BotWasDown(incident=inc, down_for=down_for)]


def summarize(state: TargetState) -> Msg:
    """One line for `/wscheck status` (no clock here: times are printed, not ages), a message (the front says it)."""
    inc = state.incident
    if inc is None:
        if state.consecutive_failures and state.first_failure_at is not None:
            what: Msg | str = state.pending[0].cause if state.pending else text("incidents.failing")
            return text("incidents.pending", target=state.target, since=_hhmm(state.first_failure_at), what=what,
                     count=state.consecutive_failures)
        seen: Msg | str = (text("incidents.last_checked", at=_hhmm(state.last_observation_at))
                           if state.last_observation_at else "")
        return text("incidents.ok", target=state.target, seen=seen)
    what = text("incidents.down")
    if inc.kind == "unreachable":
        what = text("incidents.pm2_unseen") if inc.cause == "pm2_binary_not_found" else text("incidents.unreachable")
    summary = inc.causes[0].message if inc.causes and inc.causes[0].summary == inc.summary else verbatim(inc.summary)
    line = text("incidents.line", target=state.target, what=what, since=_hhmm(inc.first_failure_at), cause=inc.cause,
             summary=summary)
    notes: list[Msg] = []
    if inc.flapping:
        notes.append(text("incidents.flapping_healthy") if state.flap_recovered else text("incidents.flapping"))
    if not inc.announced:
        notes.append(text("incidents.not_announced"))
    if state.consecutive_successes and not inc.flapping:
        notes.append(text("incidents.recovering", count=state.consecutive_successes))
    return joined([line, *notes], " · ")


# -- the machine --------------------------------------------------------------------------------------------------


def _apply(
    state: TargetState, obs: Observation, now: datetime, policy: IncidentPolicy, silenced: bool, events: list[Event]
) -> TargetState:
    last = obs.at if state.last_observation_at is None else max(state.last_observation_at, obs.at)
    state = state.model_copy(update={"last_observation_at": last})
    inc = state.incident
    if inc is not None and not (inc.flapping and state.flap_recovered):
        return _while_open(state, inc, obs, now, policy, silenced, events)
    return _while_closed(state, obs, now, policy, silenced, events)


def _while_closed(
    state: TargetState, obs: Observation, now: datetime, policy: IncidentPolicy, silenced: bool, events: list[Event]
) -> TargetState:
    """No incident (or a flapping one that recovered): count the failure streak towards opening."""
    failing = obs.failing_causes
    if not failing:
        if state.pending and not (obs.seen & set(state.pending[0].evidence)):
            return state  # it could not see the streak's problem: neutral
        return state.model_copy(update={
            "consecutive_failures": 0, "consecutive_successes": state.consecutive_successes + 1,
            "first_failure_at": None, "pending": (),
        })
    count = state.consecutive_failures + 1
    state = state.model_copy(update={
        "consecutive_failures": count,
        "consecutive_successes": 0,
        "first_failure_at": state.first_failure_at if state.consecutive_failures else obs.at,
        "pending": _merge(state.pending, failing, obs),
    })
    if count >= policy.failure_threshold or obs.confirmed:
        return _open(state, now, policy, silenced, events)
    return state


def _while_open(
    state: TargetState,
    inc: Incident,
    obs: Observation,
    now: datetime,
    policy: IncidentPolicy,
    silenced: bool,
    events: list[Event],
) -> TargetState:
    """An open incident (or a flapping one that is failing): count the success streak towards closing."""
    evidence = set(inc.evidence)
    failing = obs.failing_causes
    if not failing:
        if not evidence <= obs.seen:
            return state  # a partial probe cannot vouch for the incident's checks: neutral
        successes = state.consecutive_successes + 1
        state = state.model_copy(update={"consecutive_successes": successes, "consecutive_failures": 0})
        if successes >= policy.success_threshold:
            return _close(state, inc, now, policy, silenced, events)
        return state
    new_cause = any(c.severity in _BAD and c.cause not in (inc.cause, UNKNOWN) for c in obs.causes)
    if not (obs.seen & evidence) and not new_cause:
        return state  # says nothing about this incident and names no new cause: neutral
    state = state.model_copy(update={
        "consecutive_failures": state.consecutive_failures + 1, "consecutive_successes": 0,
    })
    head, cur = failing[0], inc.headline
    if head.cause == cur.cause:
        if evidence <= obs.seen:  # a complete view of the same cause: refresh its details silently
            state = _with_incident(state, _retitle(inc, failing))
        return state
    if not _supersedes(cur, head, obs) or (inc.announced and (inc.flapping or silenced)):
        return state
    updated = _retitle(inc, failing)
    if inc.announced:  # the thread just heard it is still open: that is this interval's reminder
        updated = updated.model_copy(update={"last_reminder_at": now})
        events.append(CauseChanged(incident=updated, previous_cause=inc.cause, previous_summary=inc.summary))
    return _with_incident(state, updated)


def _open(
    state: TargetState, now: datetime, policy: IncidentPolicy, silenced: bool, events: list[Event]
) -> TargetState:
    transitions = (*_recent(state.transitions, now, policy), now)
    reset = {"transitions": transitions, "consecutive_successes": 0, "pending": (), "first_failure_at": None}
    if state.incident is not None:  # flapping and recovered: the shadow state re-opens, nothing is posted
        return state.model_copy(update={**reset, "flap_recovered": False})
    failing = state.pending
    head = failing[0]
    first = state.first_failure_at or now
    last = state.last_incident
    reuse = last is not None and last.resolved_at is not None and _secs(now - last.resolved_at) < policy.flap_window
    announced_at = None if silenced else now
    if last is not None and reuse:
        inc = _retitle(last, failing).model_copy(update={
            "announced": not silenced, "announced_at": announced_at, "resolved_at": None, "flapping": False,
            "last_reminder_at": None,
        })
    else:
        inc = Incident(
            id=f"{state.target}-{int(now.timestamp())}", target=state.target, kind=_kind(head.cause),
            cause=head.cause, summary=head.summary, causes=failing, opened_at=now, first_failure_at=first,
            announced=not silenced, announced_at=announced_at, last_reminder_at=None, resolved_at=None,
        )
    if not silenced:
        events.append(IncidentOpened(incident=inc, reused_root=reuse))
        if len(transitions) >= policy.flap_count:
            inc = inc.model_copy(update={"flapping": True})
            events.append(Flapping(incident=inc, transitions=len(transitions), window=policy.flap_window))
    return state.model_copy(update={**reset, "incident": inc, "flap_recovered": False})


def _close(
    state: TargetState, inc: Incident, now: datetime, policy: IncidentPolicy, silenced: bool, events: list[Event]
) -> TargetState:
    transitions = (*_recent(state.transitions, now, policy), now)
    if inc.flapping:  # the shadow state recovers; the incident stays open and quiet until it settles
        return state.model_copy(update={"transitions": transitions, "flap_recovered": True})
    if not silenced and inc.announced and len(transitions) >= policy.flap_count:
        inc = inc.model_copy(update={"flapping": True})
        events.append(Flapping(incident=inc, transitions=len(transitions), window=policy.flap_window))
        return state.model_copy(update={"incident": inc, "transitions": transitions, "flap_recovered": True})
    return _resolve(state.model_copy(update={"transitions": transitions}), inc, now, events)


def _resolve(state: TargetState, inc: Incident, at: datetime, events: list[Event]) -> TargetState:
    resolved = inc.model_copy(update={"resolved_at": at, "flapping": False})
    if inc.announced:
        events.append(IncidentResolved(incident=resolved, duration=_secs(at - inc.first_failure_at)))
    posted_before = state.last_incident is not None and state.last_incident.id == inc.id
    last = resolved if inc.announced or posted_before else state.last_incident
    return state.model_copy(update={
        "incident": None, "last_incident": last, "flap_recovered": False,
        "consecutive_failures": 0, "pending": (), "first_failure_at": None,
    })


def _advance(
    state: TargetState, now: datetime, policy: IncidentPolicy, silenced: bool, events: list[Event]
) -> TargetState:
    """What time alone does: settle a flap, announce after a silence, remind."""
    inc = state.incident
    if inc is not None and inc.flapping:
        last = max(state.transitions, default=None)
        recovered = state.flap_recovered
        # A flap that settles still failing during a silence waits for the silence to end: the thread was told
        # "quiet until it settles" and must hear that it did (a settle into health resolves, which may be posted).
        quiet = (last is None or _secs(now - last) >= policy.flap_window) and not (silenced and not recovered)
        if quiet:
            settled = inc.model_copy(update={"flapping": False})
            if not silenced:
                events.append(FlapSettled(incident=settled, still_failing=not recovered))
            if recovered:
                state = _resolve(state, settled, last or now, events)
            else:
                state = _with_incident(state, settled.model_copy(update={"last_reminder_at": now}))
    state = state.model_copy(update={"transitions": _recent(state.transitions, now, policy)})
    inc = state.incident
    if inc is None or silenced:
        return state
    if not inc.announced:
        inc = inc.model_copy(update={"announced": True, "announced_at": now})
        reused = state.last_incident is not None and state.last_incident.id == inc.id
        events.append(IncidentOpened(incident=inc, reused_root=reused))
        return _with_incident(state, inc)
    if inc.flapping:
        return state
    since = inc.last_reminder_at or inc.announced_at or inc.opened_at
    if _secs(now - since) >= policy.reminder_interval:
        inc = inc.model_copy(update={"last_reminder_at": now})
        events.append(Reminder(incident=inc, open_for=_secs(now - inc.first_failure_at)))
        return _with_incident(state, inc)
    return state


# -- helpers ------------------------------------------------------------------------------------------------------


def _merge(current: tuple[Cause, ...], new: tuple[Cause, ...], obs: Observation) -> tuple[Cause, ...]:
    """The streak's causes after one more failing observation (same coverage rules as an open incident)."""
    if not current:
        return new
    cur, head = current[0], new[0]
    if head.cause != cur.cause:
        return new if _supersedes(cur, head, obs) else current
    return new if set(cur.evidence) <= obs.seen else current


def _supersedes(current: Cause, new: Cause, obs: Observation) -> bool:
    """Whether `new` may replace `current` as the headline: the observation looked where `current` was found,
    or `new` is more fundamental (the diagnosis is root-first)."""
    looked = not current.evidence or current.evidence[0] in obs.seen
    return looked or _rank(new.cause) < _rank(current.cause)


def _rank(cause: str) -> int:
    return _RANK.get(cause, _RANK[UNKNOWN])


def _kind(cause: str) -> IncidentKind:
    """The registered kind of the cause (checks/causes.py); "down" for an id the registry no longer knows."""
    spec = CAUSE_BY_ID.get(cause)
    return spec.incident_kind if spec is not None else "down"


def _retitle(inc: Incident, failing: tuple[Cause, ...]) -> Incident:
    head = failing[0]
    return inc.model_copy(update={"cause": head.cause, "summary": head.summary, "causes": failing,
                                  "kind": _kind(head.cause)})


def _with_incident(state: TargetState, inc: Incident) -> TargetState:
    return state.model_copy(update={"incident": inc})


def _recent(transitions: tuple[datetime, ...], now: datetime, policy: IncidentPolicy) -> tuple[datetime, ...]:
    return tuple(t for t in transitions if _secs(now - t) < policy.flap_window)


def _secs(delta: timedelta) -> float:
    return delta.total_seconds()


def _hhmm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware UTC datetime")
