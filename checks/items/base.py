"""What a check function returns before the runner stamps its id and duration on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from checks.facts import Facts
from checks.models import Status


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[Facts], Awaitable[Outcome]]


def ok(summary: str, **details: Any) -> Outcome:
    return Outcome(Status.OK, summary, details)


def warn(summary: str, **details: Any) -> Outcome:
    return Outcome(Status.WARN, summary, details)


def fail(summary: str, **details: Any) -> Outcome:
    return Outcome(Status.FAIL, summary, details)


def error(summary: str, **details: Any) -> Outcome:
    return Outcome(Status.ERROR, summary, details)


def skip(summary: str, **details: Any) -> Outcome:
    return Outcome(Status.SKIP, summary, details)
