"""The one duration formatter: a number of seconds as a message ("4 min 12 s" / "4분 12초", "3 days" / "3일")."""

from __future__ import annotations

import math
from collections.abc import Mapping

from wsmsg.msg import Msg, joined, msg, verbatim

#: (unit, seconds), largest first. Short units are keys `unit.<u>`; long (worded, plural) ones `unit.long.<u>.one`
#: and `unit.long.<u>.other`.
_UNITS: tuple[tuple[str, int], ...] = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def duration(seconds: float, *, parts: int = 2, at_least: float | Mapping[str, float] = 1.0, smallest: str = "s",
             long: bool = False) -> Msg:
    """`seconds` in its largest unit that fits `at_least` times (2 → "90 s", not "1 min"; a mapping gives the
    factor per unit, 1 for the others), with up to `parts` units (a zero second part is left out); never below
    `smallest`. Whole units, rounded down, of the total rounded to the second. `long`: worded units with plurals
    ("5 mins", "1 hour")."""
    if not math.isfinite(seconds):
        return verbatim("?")
    total = max(0, round(seconds))
    units = _UNITS[: [u for u, _ in _UNITS].index(smallest) + 1]

    def factor(unit: str) -> float:
        return at_least.get(unit, 1.0) if isinstance(at_least, Mapping) else at_least

    first = next((i for i, (u, size) in enumerate(units) if total >= factor(u) * size), len(units) - 1)
    out: list[Msg] = []
    rest = total
    for unit, size in units[first:first + parts]:
        count, rest = divmod(rest, size)
        if out and count == 0:
            break
        out.append(_unit(unit, count, long))
    return out[0] if len(out) == 1 else joined(out, " ")


def _unit(unit: str, n: int, long: bool) -> Msg:
    if long:
        return msg(f"unit.long.{unit}.{'one' if n == 1 else 'other'}", n=n)
    return msg(f"unit.{unit}", n=n)


def timing(ms: float, *, ms_below: float = 1000, tenths_below: float = 10_000) -> str:
    """A measured time, exact and the same in every language: 412 ms, 1.3 s, 12 s, 2 min 5 s, 1 h 3 min.

    Milliseconds below `ms_below`, tenths of a second below `tenths_below`, whole units above (the CLI's table
    keeps milliseconds to 10 s and tenths after: `ms_below=10_000, tenths_below=math.inf`)."""
    if not math.isfinite(ms) or ms < 0:
        return "?"
    if round(ms) < ms_below:
        return f"{ms:.0f} ms"
    if ms < tenths_below:
        return f"{ms / 1000:.1f} s"
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
