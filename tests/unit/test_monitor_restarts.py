"""The set-aside rule of bot/monitoring/monitor.py: a failure seen while PM2 restarts the app is not an incident.

Its budget is counted in restarts, not in looks: the canary, the fast probe, the scheduled full probe and the
confirmations all look at one restart within a second or two, and each of those looks must be set aside.
"""

from __future__ import annotations

from bot.monitoring.monitor import MAX_SET_ASIDE, Monitor, healing, restart_mark
from checks.models import CheckResult, Status, TargetReport


def restarting(pid: int, restarts: int) -> TargetReport:
    """What a look at an app PM2 restarted a second ago gives: online, young, nothing listening yet."""
    instance = {"pm_id": 0, "status": "online", "pid": pid, "restarts": restarts, "uptime_s": 1.0}
    return TargetReport(target="t", host="h", checks=(
        CheckResult(id="pm2.status", status=Status.OK, summary="online", details={"instances": [instance]}),
        CheckResult(id="port.listen", status=Status.FAIL, summary="nothing listens"),
        CheckResult(id="ws.proxy", status=Status.FAIL, summary="502"),
    ))


def bare_monitor() -> Monitor:
    """Only the set-aside bookkeeping is exercised: no scheduler, store or Slack needed."""
    monitor = Monitor.__new__(Monitor)
    monitor._set_aside = {}
    return monitor


def test_every_look_at_one_restart_is_set_aside() -> None:
    monitor = bare_monitor()
    report = restarting(pid=101, restarts=1)
    assert healing(report)
    for _ in range(MAX_SET_ASIDE + 5):  # more looks than the budget: the old per-look count opened an incident
        assert monitor._may_set_aside("t", report)


def test_a_streak_of_restarts_past_the_budget_counts_as_a_failure() -> None:
    monitor = bare_monitor()
    for n in range(MAX_SET_ASIDE):
        assert monitor._may_set_aside("t", restarting(pid=200 + n, restarts=n + 1))
        assert monitor._may_set_aside("t", restarting(pid=200 + n, restarts=n + 1))  # a second look: same one
    assert not monitor._may_set_aside("t", restarting(pid=999, restarts=MAX_SET_ASIDE + 1))
    assert monitor._may_set_aside("u", restarting(pid=999, restarts=MAX_SET_ASIDE + 1))  # per target


def test_restart_mark_names_pid_and_restart_count() -> None:
    assert restart_mark(restarting(pid=7, restarts=2)) == ((0, 7, 2),)
    assert restart_mark(restarting(pid=7, restarts=2)) != restart_mark(restarting(pid=8, restarts=3))
    assert restart_mark(TargetReport(target="t", host="h")) == ()
