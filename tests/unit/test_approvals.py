"""The approval state machine: table-driven clicks, lifecycle transitions, compare-and-set, hypothesis invariants.

The table is (policy, request state, click) -> (outcome, reason, resulting status, version delta). The
in-test `Store` stands in for the caller's SQLite conditional update (``WHERE version = ?``) to show
that a double click or two approvers at once can never make anything run twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.remediation.approvals import (
    ACTIONS,
    FINAL,
    ApprovalPolicy,
    ApprovalRequest,
    ClickResult,
    Status,
    Vote,
    abort,
    cancel,
    click,
    describe,
    expire,
    fingerprint_changed,
    finish,
    interrupt,
    new_request,
    new_request_id,
    start,
    supersede,
)
from tests.support.examples import examples
from wsmsg import verbatim

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TEAM = "T1"
OTHER_TEAM = "T9"
REQ = "UREQ"  # the requester
A1, A2, A3 = "UA1", "UA2", "UA3"
OUT = "UOUT"  # in the workspace, not an approver
ENTROPY = bytes(range(8))
OTHER_ENTROPY = bytes(range(8, 16))

Q1 = ApprovalPolicy(approvers=frozenset({REQ, A1, A2}))
Q1_SELF = ApprovalPolicy(approvers=frozenset({REQ, A1, A2}), allow_self_approval=True)
Q1_REQ_NOT_APPROVER = ApprovalPolicy(approvers=frozenset({A1, A2}))
Q2 = ApprovalPolicy(approvers=frozenset({REQ, A1, A2}), quorum=2)
Q2_SELF = ApprovalPolicy(approvers=frozenset({REQ, A1, A2}), quorum=2, allow_self_approval=True)
Q2_WITHOUT_A3 = ApprovalPolicy(approvers=frozenset({REQ, A1, A2}), quorum=2)
DISABLED = ApprovalPolicy(approvers=frozenset())
TTL = Q1.ttl


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(
    policy: ApprovalPolicy = Q1, *, entropy: bytes = ENTROPY, team_id: str = TEAM, now: datetime = T0
) -> ApprovalRequest:
    return new_request(
        entropy=entropy,
        target="web",
        action="restart",
        commands=("pm2 restart kathario-saas",),
        host="10.0.0.5",
        reason="PM2 process errored",
        cause="pm2_errored",
        requested_by=REQ,
        team_id=team_id,
        channel="C1",
        now=now,
        policy=policy,
        fingerprint={"pid": 1234, "restart_time": 3},
        thread_ts="1700000000.000100",
        incident_id="I-1",
    )


def do(
    request: ApprovalRequest,
    policy: ApprovalPolicy,
    *,
    user: str,
    approve: bool = True,
    seconds: float = 10,
    team_id: str = TEAM,
    bot_team_id: str = TEAM,
    request_id: str | None = None,
) -> ClickResult:
    return click(
        request,
        request_id=request.id if request_id is None else request_id,
        user=user,
        team_id=team_id,
        bot_team_id=bot_team_id,
        approve=approve,
        policy=policy,
        now=at(seconds),
    )


# --- request states used by the table -------------------------------------------------------------------------


def s_pending() -> ApprovalRequest:
    return make(Q1)


def s_voted_a1() -> ApprovalRequest:
    """Quorum 2, A1 already approved (version 1)."""
    result = do(make(Q2), Q2, user=A1, seconds=5)
    assert result.outcome == "vote_recorded"
    return result.request


def s_voted_by_requester() -> ApprovalRequest:
    """Quorum 2 under a policy that allowed self-approval at the time; the policy has since changed."""
    result = do(make(Q2_SELF), Q2_SELF, user=REQ, seconds=5)
    assert result.outcome == "vote_recorded"
    return result.request


def s_voted_a3() -> ApprovalRequest:
    """Quorum 2, voted by A3, who has since been removed from the approvers."""
    policy = ApprovalPolicy(approvers=frozenset({REQ, A1, A2, A3}), quorum=2)
    result = do(make(policy), policy, user=A3, seconds=5)
    assert result.outcome == "vote_recorded"
    return result.request


def s_approved() -> ApprovalRequest:
    return do(make(Q1), Q1, user=A1, seconds=5).request


def s_denied() -> ApprovalRequest:
    return do(make(Q1), Q1, user=A1, approve=False, seconds=5).request


def s_expired() -> ApprovalRequest:
    expired = expire(make(Q1), now=at(TTL + 1))
    assert expired is not None
    return expired


def s_superseded() -> ApprovalRequest:
    superseded = supersede(make(Q1), by_request_id=new_request_id(OTHER_ENTROPY), now=at(5))
    assert superseded is not None
    return superseded


def s_other_team_request() -> ApprovalRequest:
    return make(Q1, team_id=OTHER_TEAM)


@dataclass(frozen=True)
class Case:
    name: str
    policy: ApprovalPolicy
    state: Callable[[], ApprovalRequest]
    user: str
    approve: bool
    outcome: str
    reason: str | None
    status: Status
    delta: int
    seconds: float = 10
    team_id: str = TEAM
    bot_team_id: str = TEAM
    wrong_id: bool = False


P, AP, D, EX, SU = Status.PENDING, Status.APPROVED, Status.DENIED, Status.EXPIRED, Status.SUPERSEDED

TABLE: list[Case] = [
    # who may approve
    Case("approver approves", Q1, s_pending, A1, True, "approved", None, AP, 1),
    Case("self approval refused", Q1, s_pending, REQ, True, "refused", "self_approval", P, 0),
    Case("self approval allowed by policy", Q1_SELF, s_pending, REQ, True, "approved", None, AP, 1),
    Case("outsider approve refused", Q1, s_pending, OUT, True, "refused", "not_approver", P, 0),
    Case("outsider deny refused", Q1, s_pending, OUT, False, "refused", "not_approver", P, 0),
    Case("blank user refused", Q1, s_pending, "", True, "refused", "not_approver", P, 0),
    # deny
    Case("approver denies", Q1, s_pending, A1, False, "denied", None, D, 1),
    Case("requester who is an approver withdraws", Q1, s_pending, REQ, False, "denied", None, D, 1),
    Case("requester who is not an approver can't deny", Q1_REQ_NOT_APPROVER, s_pending, REQ, False, "refused",
         "not_approver", P, 0),
    # teams
    Case("other team refused", Q1, s_pending, A1, True, "refused", "other_team", P, 0, team_id=OTHER_TEAM),
    Case("other team deny refused", Q1, s_pending, A1, False, "refused", "other_team", P, 0, team_id=OTHER_TEAM),
    Case("request from another team refused", Q1, s_other_team_request, A1, True, "refused", "other_team", P, 0),
    # time
    Case("one second before expiry", Q1, s_pending, A1, True, "approved", None, AP, 1, seconds=TTL - 1),
    Case("exactly at expiry", Q1, s_pending, A1, True, "refused", "expired", EX, 1, seconds=TTL),
    Case("a week later", Q1, s_pending, A1, True, "refused", "expired", EX, 1, seconds=7 * 86400),
    Case("late deny also expires", Q1, s_pending, A1, False, "refused", "expired", EX, 1, seconds=TTL + 1),
    # already decided
    Case("click on approved", Q1, s_approved, A2, True, "refused", "already_decided", AP, 0),
    Case("deny on approved", Q1, s_approved, A2, False, "refused", "already_decided", AP, 0),
    Case("click on denied", Q1, s_denied, A2, True, "refused", "already_decided", D, 0),
    Case("click on expired status", Q1, s_expired, A2, True, "refused", "already_decided", EX, 0, seconds=TTL + 5),
    Case("click on superseded", Q1, s_superseded, A2, True, "refused", "already_decided", SU, 0),
    # wrong request
    Case("click carries another request's id", Q1, s_pending, A1, True, "refused", "wrong_request", P, 0,
         wrong_id=True),
    # remediation disabled after the request was made
    Case("remediation disabled", DISABLED, s_pending, A1, True, "refused", "remediation_disabled", P, 0),
    # quorum 2
    Case("quorum 2: first vote", Q2, lambda: make(Q2), A1, True, "vote_recorded", None, P, 1),
    Case("quorum 2: second distinct approver", Q2, s_voted_a1, A2, True, "approved", None, AP, 1),
    Case("quorum 2: same approver twice", Q2, s_voted_a1, A1, True, "refused", "already_voted", P, 0),
    Case("quorum 2: requester can't be the second", Q2, s_voted_a1, REQ, True, "refused", "self_approval", P, 0),
    Case("quorum 2: voter changes their mind", Q2, s_voted_a1, A1, False, "denied", None, D, 1),
    Case("quorum 2: vote by a removed approver doesn't count", Q2_WITHOUT_A3, s_voted_a3, A1, True,
         "vote_recorded", None, P, 1),
    Case("quorum 2: self vote stops counting when policy changes", Q2, s_voted_by_requester, A1, True,
         "vote_recorded", None, P, 1),
    Case("quorum 2 with self approval: requester + one", Q2_SELF, s_voted_by_requester, A1, True, "approved", None,
         AP, 1),
    Case("quorum lowered to 1 after a vote", Q1, s_voted_a1, A2, True, "approved", None, AP, 1),
    # order of refusals: first match wins
    Case("order: wrong_request before remediation_disabled", DISABLED, s_pending, A1, True, "refused",
         "wrong_request", P, 0, wrong_id=True),
    Case("order: remediation_disabled before other_team", DISABLED, s_pending, A1, True, "refused",
         "remediation_disabled", P, 0, team_id=OTHER_TEAM),
    Case("order: other_team before already_decided", Q1, s_approved, A2, True, "refused", "other_team", AP, 0,
         team_id=OTHER_TEAM),
    Case("order: other_team before expired", Q1, s_pending, A1, True, "refused", "other_team", P, 0,
         seconds=TTL + 1, team_id=OTHER_TEAM),
    Case("order: already_decided before expired", Q1, s_approved, A2, True, "refused", "already_decided", AP, 0,
         seconds=TTL + 1),
    Case("order: expired before not_approver", Q1, s_pending, OUT, True, "refused", "expired", EX, 1,
         seconds=TTL + 1),
    Case("order: not_approver before self_approval", Q1_REQ_NOT_APPROVER, s_pending, REQ, True, "refused",
         "not_approver", P, 0),
    Case("order: self_approval before already_voted", Q2, s_voted_by_requester, REQ, True, "refused",
         "self_approval", P, 0),
    Case("bot in another workspace than the click", Q1, s_pending, A1, True, "refused", "other_team", P, 0,
         bot_team_id=OTHER_TEAM),
]


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
def test_click_table(case: Case) -> None:
    before = case.state()
    result = do(
        before,
        case.policy,
        user=case.user,
        approve=case.approve,
        seconds=case.seconds,
        team_id=case.team_id,
        bot_team_id=case.bot_team_id,
        request_id=new_request_id(OTHER_ENTROPY) if case.wrong_id else None,
    )
    assert (result.outcome, result.reason, result.request.status) == (case.outcome, case.reason, case.status)
    assert result.request.version - before.version == case.delta
    assert result.changed is (case.delta == 1)
    assert result.message and "\n" not in result.message
    if not result.changed:
        assert result.request == before  # a refused click changes nothing at all
    if result.outcome == "approved":
        assert result.request.decided_at == at(case.seconds)
        assert result.request.approvals[-1] == Vote(user=case.user, at=at(case.seconds))
    if result.outcome == "denied":
        assert result.request.denied_by == case.user
        assert result.request.status in FINAL


def test_refusal_messages_speak_to_the_clicker() -> None:
    assert do(make(Q1), Q1, user=REQ).message == "You can't approve your own request."
    assert "expired" in do(make(Q1), Q1, user=A1, seconds=TTL).message
    assert "approved" in do(s_approved(), Q1, user=A2).message


# --- expiry without a garbage collector --------------------------------------------------------------------------


def test_expiry_is_decided_from_now_without_any_gc() -> None:
    request = make(Q1)
    assert request.expires_at == T0 + timedelta(seconds=600)
    # nobody ever called expire(): the stored request still says pending ...
    assert request.status is Status.PENDING
    # ... yet a late click is refused, and the result is the expired request for the caller to store
    result = do(request, Q1, user=A1, seconds=3600)
    assert (result.outcome, result.reason, result.changed) == ("refused", "expired", True)
    assert result.request.status is Status.EXPIRED
    assert result.request.approvals == ()
    # once stored, further clicks see it as decided
    again = do(result.request, Q1, user=A2, seconds=3601)
    assert (again.reason, again.changed) == ("already_decided", False)


def test_expire() -> None:
    request = make(Q1)
    assert expire(request, now=at(TTL - 1)) is None
    expired = expire(request, now=at(TTL))
    assert expired is not None
    assert (expired.status, expired.version, expired.decided_at) == (Status.EXPIRED, 1, at(TTL))
    assert expire(expired, now=at(TTL + 10)) is None  # already final
    assert expire(s_approved(), now=at(TTL * 10)) is None  # approved requests are not pending


def test_restart_keeps_pending_requests_valid_until_expiry() -> None:
    stored = ApprovalRequest.model_validate_json(make(Q1).model_dump_json())  # as reloaded after a bot restart
    assert interrupt(stored, now=at(60)) is None
    assert do(stored, Q1, user=A1, seconds=120).outcome == "approved"


# --- first decision wins: compare-and-set on version -------------------------------------------------------------


@dataclass
class Store:
    """The caller's SQLite row, reduced to ``UPDATE ... SET ... WHERE id = ? AND version = ?``."""

    rows: dict[str, ApprovalRequest] = field(default_factory=dict)
    writes: int = 0

    def insert(self, request: ApprovalRequest) -> None:
        assert request.id not in self.rows
        self.rows[request.id] = request

    def cas(self, new: ApprovalRequest, *, expected_version: int) -> bool:
        current = self.rows[new.id]
        if current.version != expected_version:
            return False
        assert new.version == expected_version + 1
        self.rows[new.id] = new
        self.writes += 1
        return True


def test_two_approvers_at_once_only_one_wins() -> None:
    store = Store()
    base = make(Q1)
    store.insert(base)
    # both handlers read the same row (version 0) and compute their decisions concurrently
    by_a1 = do(base, Q1, user=A1, seconds=10)
    by_a2 = do(base, Q1, user=A2, seconds=10)
    assert by_a1.outcome == by_a2.outcome == "approved"
    assert by_a1.request.version == by_a2.request.version == 1
    assert store.cas(by_a1.request, expected_version=base.version) is True
    assert store.cas(by_a2.request, expected_version=base.version) is False  # the loser's write matches no row
    assert store.rows[base.id].approvals == (Vote(user=A1, at=at(10)),)
    # the loser re-reads and re-applies its click: now refused, so it runs nothing
    retry = do(store.rows[base.id], Q1, user=A2, seconds=11)
    assert (retry.outcome, retry.reason, retry.changed) == ("refused", "already_decided", False)


def test_double_click_and_redelivered_envelope_run_once() -> None:
    store = Store()
    base = make(Q1)
    store.insert(base)
    runs = 0

    def handle(user: str, seconds: float) -> None:
        """What the caller does per click: read, decide, CAS, and on approval CAS to running and run."""
        nonlocal runs
        current = store.rows[base.id]
        result = do(current, Q1, user=user, seconds=seconds)
        if not result.changed or not store.cas(result.request, expected_version=current.version):
            return
        if result.outcome == "approved":
            running = start(result.request, now=at(seconds))
            if store.cas(running, expected_version=result.request.version):
                runs += 1

    handle(A1, 10)
    handle(A1, 10.2)  # double click
    handle(A1, 10)  # Socket Mode re-delivers the same envelope
    handle(A2, 11)  # a second approver on the stale message
    assert runs == 1
    assert store.rows[base.id].status is Status.RUNNING
    # a stale start computed from the approved version can't win either
    approved = do(base, Q1, user=A1, seconds=10).request
    assert store.cas(start(approved, now=at(12)), expected_version=approved.version) is False


def test_quorum_two_concurrent_votes_on_same_base() -> None:
    store = Store()
    base = make(Q2)
    store.insert(base)
    first = do(base, Q2, user=A1)
    second = do(base, Q2, user=A2)
    assert first.outcome == second.outcome == "vote_recorded"
    assert store.cas(first.request, expected_version=0)
    assert not store.cas(second.request, expected_version=0)
    retry = do(store.rows[base.id], Q2, user=A2, seconds=12)
    assert retry.outcome == "approved"
    assert store.cas(retry.request, expected_version=1)
    assert [v.user for v in store.rows[base.id].approvals] == [A1, A2]


# --- lifecycle after approval ------------------------------------------------------------------------------------


def _in(status: Status) -> ApprovalRequest:
    """A request in `status`, reached through the real transitions."""
    approved = s_approved()
    running = start(approved, now=at(20))
    builders: dict[Status, Callable[[], ApprovalRequest]] = {
        Status.PENDING: s_pending,
        Status.APPROVED: lambda: approved,
        Status.RUNNING: lambda: running,
        Status.SUCCEEDED: lambda: finish(running, ok=True, exit_code=0, note="online", now=at(30)),
        Status.FAILED: lambda: finish(running, ok=False, exit_code=1, note="still errored", now=at(30)),
        Status.ABORTED: lambda: abort(approved, note="already recovered", now=at(20)),
        Status.DENIED: s_denied,
        Status.EXPIRED: s_expired,
        Status.SUPERSEDED: s_superseded,
        Status.INTERRUPTED: lambda: _some(interrupt(running, now=at(40))),
        Status.CANCELLED: lambda: _some(cancel(s_pending(), note="post failed", now=at(1))),
    }
    request = builders[status]()
    assert request.status is status
    return request


def _some(request: ApprovalRequest | None) -> ApprovalRequest:
    assert request is not None
    return request


def test_happy_path_and_versions() -> None:
    request = make(Q1)
    approved = do(request, Q1, user=A1, seconds=5).request
    running = start(approved, now=at(6))
    done = finish(running, ok=True, exit_code=0, note="pm2 shows online", now=at(9))
    assert [r.version for r in (request, approved, running, done)] == [0, 1, 2, 3]
    assert (running.status, running.started_at) == (Status.RUNNING, at(6))
    assert (done.status, done.finished_at, done.exit_code, done.outcome_note) == (
        Status.SUCCEEDED, at(9), 0, verbatim("pm2 shows online"))
    failed = finish(running, ok=False, exit_code=2, note="exit 2", now=at(9))
    assert (failed.status, failed.exit_code) == (Status.FAILED, 2)
    assert done.status in FINAL and failed.status in FINAL


def test_abort() -> None:
    approved = s_approved()
    aborted = abort(approved, note="the process changed after approval: ask again", now=at(7))
    assert (aborted.status, aborted.version, aborted.finished_at) == (Status.ABORTED, approved.version + 1, at(7))
    assert aborted.outcome_note is not None
    assert aborted.outcome_note.en == "the process changed after approval: ask again"
    with pytest.raises(ValueError, match="note"):
        abort(approved, note="  ", now=at(7))


def test_interrupt() -> None:
    running = _in(Status.RUNNING)
    interrupted = _some(interrupt(running, now=at(100)))
    assert (interrupted.status, interrupted.version, interrupted.finished_at) == (
        Status.INTERRUPTED, running.version + 1, at(100))
    assert interrupted.outcome_note is not None and "will not be re-run" in interrupted.outcome_note.en
    # approved but never started when the bot stopped: not run later by itself
    leftover = _some(interrupt(_in(Status.APPROVED), now=at(100)))
    assert leftover.status is Status.ABORTED and leftover.outcome_note is not None
    assert "ask again" in leftover.outcome_note.en
    for status in Status:
        if status not in (Status.RUNNING, Status.APPROVED):
            assert interrupt(_in(status), now=at(100)) is None, status


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
def test_transitions_refuse_wrong_states(status: Status) -> None:
    request = _in(status)
    if status is not Status.APPROVED:
        with pytest.raises(ValueError, match="cannot start"):
            start(request, now=at(50))
        with pytest.raises(ValueError, match="cannot abort"):
            abort(request, note="already recovered", now=at(50))
    if status is not Status.RUNNING:
        with pytest.raises(ValueError, match="cannot finish"):
            finish(request, ok=True, exit_code=0, note="", now=at(50))
    if status in FINAL:
        for user in (A1, A2, REQ):
            assert do(request, Q1, user=user, seconds=50).reason == "already_decided"


def test_final_statuses() -> None:
    assert {Status.PENDING, Status.APPROVED, Status.RUNNING} == set(Status) - FINAL
    assert [s.value for s in Status] == [
        "pending", "approved", "running", "succeeded", "failed", "aborted", "denied", "expired", "superseded",
        "interrupted", "cancelled",
    ]


# --- supersede ---------------------------------------------------------------------------------------------------


def test_supersede() -> None:
    old = make(Q1)
    newer = make(Q1, entropy=OTHER_ENTROPY, now=at(30))
    replaced = _some(supersede(old, by_request_id=newer.id, now=at(30)))
    assert (replaced.status, replaced.version, replaced.decided_at) == (Status.SUPERSEDED, 1, at(30))
    assert replaced.outcome_note is not None and replaced.outcome_note.en == f"superseded by {newer.id}"
    assert do(replaced, Q1, user=A1, seconds=31).reason == "already_decided"
    # a quorum-2 request with a vote so far is superseded too (its vote does not carry over)
    assert _some(supersede(s_voted_a1(), by_request_id=newer.id, now=at(30))).status is Status.SUPERSEDED
    # only pending requests are superseded
    for status in Status:
        if status is not Status.PENDING:
            assert supersede(_in(status), by_request_id=newer.id, now=at(30)) is None, status
    # already past its expiry: the truth is that it expired
    assert _some(supersede(old, by_request_id=newer.id, now=at(TTL + 1))).status is Status.EXPIRED
    with pytest.raises(ValueError, match="itself"):
        supersede(old, by_request_id=old.id, now=at(30))


# --- construction, ids, policy -------------------------------------------------------------------------------------


def test_new_request() -> None:
    request = make(Q1)
    assert (request.status, request.version, request.approvals) == (Status.PENDING, 0, ())
    assert (request.requested_at, request.expires_at) == (T0, T0 + timedelta(seconds=TTL))
    assert request.fingerprint == {"pid": 1234, "restart_time": 3}
    short = make(ApprovalPolicy(approvers=frozenset({A1}), ttl=30))
    assert short.expires_at == T0 + timedelta(seconds=30)


def test_new_request_id() -> None:
    rid = new_request_id(ENTROPY)
    assert re.fullmatch(r"R-[A-Z2-7]{13}", rid), rid
    assert rid == new_request_id(ENTROPY)  # pure
    assert rid != new_request_id(OTHER_ENTROPY)
    assert make(Q1).id == rid
    for bad in (b"", b"1234567", b"123456789"):
        with pytest.raises(ValueError, match="8 bytes"):
            new_request_id(bad)


def test_request_id_is_accepted_by_the_command_grammar() -> None:
    from bot.chat.commands import ACTIONS as GRAMMAR_ACTIONS
    from bot.chat.commands import Decide, parse

    rid = new_request_id(b"\xff" * 8)
    assert parse(f"approve {rid}", ["web"]) == Decide(request_id=rid, approve=True)
    assert tuple(GRAMMAR_ACTIONS) == ACTIONS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": DISABLED}, "disabled"),
        ({"policy": ApprovalPolicy(approvers=frozenset({REQ}))}, "nobody can approve"),
        ({"policy": ApprovalPolicy(approvers=frozenset({REQ, A1}), quorum=2)}, "nobody can approve"),
        ({"now": datetime(2025, 3, 1, 12, 0)}, "timezone-aware"),  # naive on purpose
        ({"commands": ()}, "commands"),
        ({"commands": ("",)}, "commands"),
        ({"requested_by": " "}, "requested_by"),
        ({"team_id": ""}, "team_id"),
        ({"action": "rm -rf"}, "unknown action"),
    ],
)
def test_new_request_refuses(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "entropy": ENTROPY, "target": "web", "action": "restart", "commands": ("pm2 restart app",), "host": "h",
        "reason": "r", "cause": None, "requested_by": REQ, "team_id": TEAM, "channel": "C1", "now": T0,
        "policy": Q1, "fingerprint": {"pid": 1, "restart_time": 0},
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        new_request(**args)  # type: ignore[arg-type]


def test_self_approval_policy_allows_a_lone_approver_to_request() -> None:
    lone = ApprovalPolicy(approvers=frozenset({REQ}), allow_self_approval=True)
    assert do(make(lone), lone, user=REQ).outcome == "approved"


def test_policy() -> None:
    assert not DISABLED.enabled and Q1.enabled
    assert (Q1.quorum, Q1.allow_self_approval, Q1.ttl) == (1, False, 600.0)
    with pytest.raises(ValidationError, match="distinct approvers"):
        ApprovalPolicy(approvers=frozenset({A1}), quorum=2)
    with pytest.raises(ValidationError):
        ApprovalPolicy.model_validate({"approvers": [A1, A2, A3], "quorum": 3})
    with pytest.raises(ValidationError, match="non-empty"):
        ApprovalPolicy(approvers=frozenset({A1, ""}))
    for ttl in (0, -1, 7 * 86400):
        with pytest.raises(ValidationError):
            ApprovalPolicy(approvers=frozenset({A1}), ttl=ttl)
    with pytest.raises(ValidationError):
        Q1.quorum = 2  # type: ignore[misc]
    assert Q2.may_approve(A1, REQ) and not Q2.may_approve(REQ, REQ) and Q2_SELF.may_approve(REQ, REQ)


def test_naive_now_is_refused_everywhere() -> None:
    naive = datetime(2025, 3, 1, 12, 0)  # naive on purpose
    request = make(Q1)
    with pytest.raises(ValueError, match="timezone-aware"):
        click(request, request_id=request.id, user=A1, team_id=TEAM, bot_team_id=TEAM, approve=True, policy=Q1,
              now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        expire(request, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        start(s_approved(), now=naive)


def test_other_timezones_are_normalised_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    request = make(Q1, now=T0.astimezone(seoul))
    assert request.requested_at.utcoffset() == timedelta(0) and request.requested_at == T0
    late = click(request, request_id=request.id, user=A1, team_id=TEAM, bot_team_id=TEAM, approve=True, policy=Q1,
                 now=at(TTL).astimezone(seoul))
    assert late.reason == "expired"


# --- storage form ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
def test_json_round_trip(status: Status) -> None:
    request = _in(status)
    text = request.model_dump_json()
    again = ApprovalRequest.model_validate_json(text)
    assert again == request
    assert again.model_dump_json() == text
    assert f'"status":"{status.value}"' in text


def test_json_round_trip_keeps_votes_and_fingerprint_types() -> None:
    request = s_voted_a1().model_copy(update={"fingerprint": {"pid": 42, "restart_time": 0, "name": "app"}})
    again = ApprovalRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.approvals == (Vote(user=A1, at=at(5)),)
    assert isinstance(again.fingerprint["pid"], int) and isinstance(again.fingerprint["name"], str)
    assert again.expires_at.tzinfo is not None


def test_stored_json_is_validated() -> None:
    good = make(Q1).model_dump()
    for bad in ({"action": "shutdown"}, {"requested_at": "2025-03-01T12:00:00"}, {"expires_at": good["requested_at"]},
                {"surprise": 1}, {"version": -1}):
        with pytest.raises(ValidationError):
            ApprovalRequest.model_validate({**good, **bad})


def test_models_are_frozen() -> None:
    request = make(Q1)
    with pytest.raises(ValidationError):
        request.status = Status.APPROVED  # type: ignore[misc]
    result = do(request, Q1, user=A1)
    with pytest.raises(ValidationError):
        result.changed = False  # type: ignore[misc]


# --- fingerprint and describe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ({"pid": 1, "restart_time": 3}, {"pid": 1, "restart_time": 3}, False),
        ({"pid": 1, "restart_time": 3, "x": "a"}, {"pid": 1, "restart_time": 3, "x": "b"}, False),
        ({"pid": 1, "restart_time": 3}, {"pid": 2, "restart_time": 3}, True),
        ({"pid": 1, "restart_time": 3}, {"pid": 1, "restart_time": 4}, True),
        ({"pid": 1, "restart_time": 3}, {"pid": 1}, True),
        ({"pid": 1}, {"pid": 1, "restart_time": 3}, True),
        ({}, {}, True),
        ({"pid": 1, "restart_time": 3}, {"pid": "1", "restart_time": 3}, True),
    ],
)
def test_fingerprint_changed(before: dict[str, int | str], after: dict[str, int | str], changed: bool) -> None:
    assert fingerprint_changed(before, after) is changed


def test_describe() -> None:
    rid = new_request_id(ENTROPY)
    assert describe(_in(Status.SUCCEEDED)) == (
        f"{rid} restart on web by {REQ}: succeeded (exit 0) approved by {A1} — online"
    )
    assert describe(make(Q1)) == f"{rid} restart on web by {REQ}: pending"
    assert describe(s_voted_a1()) == f"{rid} restart on web by {REQ}: pending (approvals so far: {A1})"
    assert describe(s_denied()) == f"{rid} restart on web by {REQ}: denied denied by {A1}"
    multiline = finish(_in(Status.RUNNING), ok=False, exit_code=1, note="line one\nline two", now=at(30))
    assert "\n" not in describe(multiline) and describe(multiline).endswith("— line one line two")
    assert "expired at 2025-03-01 12:10:00 UTC" in describe(s_expired())


# --- hypothesis: invariants over random click sequences ----------------------------------------------------------

USERS = [REQ, REQ, A1, A1, A2, A2, A3, OUT, ""]


@st.composite
def policies(draw: st.DrawFn) -> ApprovalPolicy:
    approvers = draw(st.frozensets(st.sampled_from([REQ, A1, A2, A3]), min_size=1))
    allow_self = draw(st.booleans())
    eligible = len(approvers) if allow_self else len(approvers - {REQ})
    quorum = draw(st.sampled_from([q for q in (1, 2) if q <= max(eligible, 1)]))
    if eligible == 0:  # nobody but the requester: only self approval makes the policy usable
        allow_self = True
    return ApprovalPolicy(approvers=approvers, quorum=quorum, allow_self_approval=allow_self)


@dataclass(frozen=True)
class Step:
    kind: str  # "click" | "expire" | "supersede" | "policy"
    user: str
    team: str
    approve: bool
    seconds: float
    right_id: bool
    stale: int  # 0 = act on the stored row; n > 0 = act on the version n steps back (stale message / redelivery)


steps = st.builds(
    Step,
    kind=st.sampled_from(["click"] * 8 + ["expire", "supersede", "policy"]),
    user=st.sampled_from(USERS),
    team=st.sampled_from([TEAM, TEAM, TEAM, OTHER_TEAM]),
    approve=st.booleans(),
    # mostly inside the window; about one click in twenty at its edge or long after it
    seconds=st.tuples(
        st.integers(min_value=0, max_value=19),
        st.floats(min_value=-30, max_value=TTL - 1e-3),
        st.sampled_from([TTL - 1e-6, TTL, TTL + 1e-6, TTL + 3600, 7 * 86400.0]),
    ).map(lambda t: t[2] if t[0] == 0 else t[1]),
    right_id=st.sampled_from([True, True, True, False]),
    stale=st.sampled_from([0, 0, 0, 1, 2]),
)


@settings(max_examples=examples(400), deadline=None)
@given(first=policies(), second=policies(), sequence=st.lists(steps, min_size=1, max_size=25))
def test_invariants_over_random_click_sequences(
    first: ApprovalPolicy, second: ApprovalPolicy, sequence: list[Step]
) -> None:
    """Random clicks (approvers, requester, outsiders, other team, wrong ids, stale messages, any time),
    expiries, supersedes and config reloads, each stored through compare-and-set like the caller does."""
    policy = first
    store = Store()
    base = make(first)
    store.insert(base)
    history = [base]  # every version that was ever stored, in order
    approved_transitions = 0

    for step in sequence:
        if step.kind == "policy":  # the config is reloaded between clicks
            policy = second if policy is first else first
            continue
        current = history[max(0, len(history) - 1 - step.stale)]
        now = at(step.seconds)
        if step.kind == "expire":
            new: ApprovalRequest | None = expire(current, now=now)
            changed = new is not None
        elif step.kind == "supersede":
            new = supersede(current, by_request_id=new_request_id(OTHER_ENTROPY), now=now)
            changed = new is not None
        else:
            result = click(current, request_id=current.id if step.right_id else new_request_id(OTHER_ENTROPY),
                           user=step.user, team_id=step.team, bot_team_id=TEAM, approve=step.approve,
                           policy=policy, now=now)
            new, changed = result.request, result.changed
            # version moves by exactly one exactly when `changed`; otherwise the request is untouched
            assert (result.request.version == current.version + 1) is changed
            if not changed:
                assert result.request == current
                assert result.outcome == "refused" and result.reason is not None
            if result.outcome == "refused":
                assert changed is (result.reason == "expired")
            else:
                # every decision or vote is by a current approver of this workspace, in time, on this request
                assert result.reason is None
                assert step.user in policy.approvers and step.team == TEAM and step.right_id
                assert current.status is Status.PENDING and now < current.expires_at
            if result.outcome in ("approved", "vote_recorded"):
                assert policy.may_approve(step.user, REQ)
            voters = [v.user for v in result.request.approvals]
            assert len(voters) == len(set(voters))  # nobody's vote counts twice
            if result.request.status is Status.APPROVED and current.status is not Status.APPROVED:
                # every approval is by a current approver, never the requester unless allowed, and in time
                assert result.outcome == "approved"
                assert step.user in policy.approvers
                assert policy.allow_self_approval or step.user != REQ
                assert now < current.expires_at
                assert step.team == TEAM
                counted = {u for u in voters if policy.may_approve(u, REQ)}
                assert len(counted) >= policy.quorum
        if new is None or not changed:
            continue
        assert new.version == current.version + 1
        if store.cas(new, expected_version=current.version):
            old = history[-1]
            history.append(new)
            if new.status is Status.APPROVED and old.status is not Status.APPROVED:
                approved_transitions += 1
            # only a pending request ever changes: a decision is never undone or redone
            assert old.status is Status.PENDING, f"a decided request changed: {old.status} -> {new.status}"

    assert approved_transitions <= 1
    versions = [r.version for r in history]
    assert versions == list(range(len(history)))  # strictly increasing by one per stored change
    final = history[-1]
    event(f"stored status at the end: {final.status.value}")
    if final.status is Status.APPROVED:
        assert final.decided_at is not None and final.decided_at < final.expires_at
        running = start(final, now=at(TTL))
        assert store.cas(running, expected_version=final.version)
        assert not store.cas(start(final, now=at(TTL)), expected_version=final.version)  # never runs twice
