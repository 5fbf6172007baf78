"""Issue 13, defects 5 and 8, the pure part: `cancel` (an unposted request is withdrawn) and `joinable` (two
requests for the same fix at once become one), with the state machine's invariants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.remediation.approvals import FINAL, Status, cancel, click, joinable
from tests.unit import test_approvals as tap
from wsmsg import verbatim

STATUSES = [s for s in Status]


@given(st.sampled_from(STATUSES), st.floats(min_value=0, max_value=tap.TTL * 2))
def test_cancel_only_moves_a_pending_request_to_a_final_state(status: Status, seconds: float) -> None:
    request = tap._in(status)
    cancelled = cancel(request, note="post failed", now=tap.at(seconds))
    if status is not Status.PENDING:
        assert cancelled is None
        return
    assert cancelled is not None and cancelled.status is Status.CANCELLED and cancelled.status in FINAL
    assert cancelled.version == request.version + 1 and cancelled.outcome_note == verbatim("post failed")


@given(st.sampled_from([tap.A1, tap.A2, tap.REQ]), st.booleans())
def test_nothing_is_approvable_after_cancel(user: str, approve: bool) -> None:
    request = cancel(tap.make(), note="post failed", now=tap.at(1))
    assert request is not None
    result = click(request, request_id=request.id, user=user, team_id=tap.TEAM, bot_team_id=tap.TEAM,
                   approve=approve, policy=tap.Q1, now=tap.at(2))
    assert result.outcome == "refused" and not result.changed and result.reason == "already_decided"


@given(st.sampled_from(STATUSES), st.floats(min_value=0, max_value=tap.TTL * 2), st.booleans())
def test_only_a_live_pending_request_with_the_same_commands_is_joined(status: Status, seconds: float,
                                                                      same: bool) -> None:
    request = tap._in(status)
    commands = request.commands if same else (*request.commands, "pm2 save")
    joined = joinable(request, commands=commands, now=tap.at(seconds))
    assert joined == (status is Status.PENDING and tap.at(seconds) < request.expires_at and same)
