"""wsmsg.duration: the one formatter of durations (alerts, uptimes, build ages, report ages) and timings."""

from __future__ import annotations

import pytest

from wsmsg.duration import duration, timing


@pytest.mark.parametrize(("seconds", "en", "ko"), [
    (0, "0 s", "0초"), (59, "59 s", "59초"), (59.6, "1 min", "1분"), (252, "4 min 12 s", "4분 12초"),
    (3600, "1 h", "1시간"), (3605, "1 h", "1시간"), (7500, "2 h 5 min", "2시간 5분"), (90000, "1 d 1 h", "1일 1시간"),
    (-3, "0 s", "0초"), (float("inf"), "?", "?"),
])
def test_in_sentences(seconds: float, en: str, ko: str) -> None:
    """Alerts: two units at most, a zero second part left out, in the reader's language."""
    said = duration(seconds)
    assert (said.render("en"), said.render("ko")) == (en, ko)


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"), (7200, "2 h"), (172_799, "47 h"),
    (172_800, "2 d"),
])
def test_uptime_from_twice_the_unit(seconds: int, shown: str) -> None:
    """pm2.status: one unit, a unit from twice its size (119 s, not 1 min)."""
    assert duration(seconds, parts=1, at_least=2).en == shown


@pytest.mark.parametrize(("seconds", "shown"), [(59, "59 s"), (60, "1 min"), (3599, "59 min"), (86_400, "1 d")])
def test_one_unit(seconds: int, shown: str) -> None:
    """next.build's age of BUILD_ID: the largest unit that fits."""
    assert duration(seconds, parts=1).en == shown


@pytest.mark.parametrize(("seconds", "en", "ko"), [
    (30, "0 mins", "0분"), (60, "1 min", "1분"), (725, "12 mins", "12분"), (3600, "1 hour", "1시간"),
    (172_799, "47 hours", "47시간"), (172_800, "2 days", "2일"),
])
def test_worded_report_ages(seconds: int, en: str, ko: str) -> None:
    """The age of a report in its footer: worded units with plurals, minutes at least, days from two."""
    said = duration(seconds, parts=1, smallest="min", long=True, at_least={"d": 2})
    assert (said.render("en"), said.render("ko")) == (en, ko)


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(0, "0 ms"), (412.4, "412 ms"), (999.4, "999 ms"), (999.6, "1.0 s"), (1312, "1.3 s"), (12_400, "12 s"),
     (125_000, "2 min 5 s"), (120_000, "2 min"), (7_260_000, "2 h 1 min"), (float("nan"), "?"), (-1, "?")],
)
def test_timings(ms: float, shown: str) -> None:
    """Measured times (check durations): exact, the same in every language."""
    assert timing(ms) == shown


@pytest.mark.parametrize(("ms", "shown"),
                         [(412.4, "412 ms"), (9_000, "9000 ms"), (12_345, "12.3 s"), (125_000, "125.0 s")])
def test_table_timings(ms: float, shown: str) -> None:
    """The CLI's table: milliseconds to 10 s, then tenths of a second."""
    assert timing(ms, ms_below=10_000, tenths_below=float("inf")) == shown
