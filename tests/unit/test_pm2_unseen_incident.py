"""wt-host3 (issue 12 item 7): `pm2` off the non-interactive PATH is "the bot cannot see PM2", never "the app is down".

From a real diagnosis (pm2.status exit 127) through the incident machine to the alert's headline and the
`/wscheck status` line, in English and Korean.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import i18n
from bot.fronts.outgoing import headline, root_blocks
from bot.monitoring.incidents import IncidentPolicy, Observation, TargetState, observe, summarize
from checks.config import Target
from checks.diagnosis import diagnose
from checks.models import CheckResult, Status, TargetReport
from checks.registry import CHECK_IDS

T = Target.model_validate({"name": "web", "host": "203.0.113.10", "user": "deploy", "pm2_app": "kathario-saas",
                           "app_port": 3003, "app_dir": "/srv/app"})
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
# What the checks say when `pm2` is not on the PATH: PM2's checks cannot run, the app and nginx answer.
MISSING = {"pm2.status": {"error_kind": "missing_binary"}, "pm2.logs": {"error_kind": "missing_binary"}}


def pm2_missing_report() -> TargetReport:
    checks = [CheckResult(id=cid, status=Status.ERROR if cid in MISSING else Status.OK, summary=cid,
                          details=MISSING.get(cid, {})) for cid in CHECK_IDS]
    return TargetReport(target="web", host=T.where, checks=tuple(checks), diagnosis=diagnose(T, checks))


def opened_state() -> TargetState:
    report = pm2_missing_report()
    assert [c.cause for c in report.diagnosis] == ["pm2_binary_not_found"]
    state = TargetState(target="web")
    events = []
    for n in range(2):
        obs = Observation.from_report(report, kind="full", at=T0 + timedelta(seconds=60 * n))
        state, events = observe(state, obs, now=T0 + timedelta(seconds=60 * n), policy=IncidentPolicy(),
                                silence=None)
    assert [e.type for e in events] == ["incident_opened"]
    return state


def test_the_incident_is_of_kind_unreachable() -> None:
    inc = opened_state().incident
    assert inc is not None and inc.cause == "pm2_binary_not_found" and inc.kind == "unreachable"


@pytest.mark.parametrize(("lang", "says", "never"), [
    ("en", "cannot see PM2", ("the app is down", "cannot see the server", "WebSocket chat is broken")),
    ("ko", "PM2를 볼 수 없습니다", ("앱이 다운되었습니다", "서버를 볼 수 없습니다", "채팅이 끊겼습니다")),
])
def test_the_headline_says_pm2_is_unseen_not_the_app_down(lang: str, says: str, never: tuple[str, ...]) -> None:
    inc = opened_state().incident
    assert inc is not None
    line = headline(inc, lang=lang)
    assert says in line and line.startswith("🟠"), line
    text, _blocks = root_blocks(inc, mention="", lang=lang)
    for wrong in never:
        assert wrong not in line and wrong not in text, (wrong, text)


@pytest.mark.parametrize(("lang", "says"), [("en", "cannot ask PM2"), ("ko", "PM2에 물어볼 수 없습니다")])
def test_status_line_says_pm2_is_unseen(lang: str, says: str) -> None:
    line = summarize(opened_state()).render(lang)
    assert says in line and i18n.t("incidents.down", lang=lang) not in line, line
