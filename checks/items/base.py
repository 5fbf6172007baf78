"""What a check function returns before the runner stamps its id and duration on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from checks.facts import Facts
from checks.models import Status
from wsmsg import Msg, verbatim


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    #: What the check says, unrendered: the runner hands this very value on to `CheckResult.message`.
    summary: Msg
    details: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[Facts], Awaitable[Outcome]]


def outcome(status: Status, summary: str | Msg, details: dict[str, Any]) -> Outcome:
    return Outcome(status, summary if isinstance(summary, Msg) else verbatim(summary), details)


def ok(summary: str | Msg, **details: Any) -> Outcome:
    return outcome(Status.OK, summary, details)


def warn(summary: str | Msg, **details: Any) -> Outcome:
    return outcome(Status.WARN, summary, details)


def fail(summary: str | Msg, **details: Any) -> Outcome:
    return outcome(Status.FAIL, summary, details)


def error(summary: str | Msg, **details: Any) -> Outcome:
    return outcome(Status.ERROR, summary, details)


def skip(summary: str | Msg, **details: Any) -> Outcome:
    return outcome(Status.SKIP, summary, details)
