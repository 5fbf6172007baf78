"""What a check function returns before the runner stamps its id and duration on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from checks.facts import Facts
from checks.messages import Msg
from checks.models import Status


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    #: The catalog key and params of `summary` (checks/messages.py); "" when the summary is not ours.
    key: str = ""
    params: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[Facts], Awaitable[Outcome]]


def outcome(status: Status, summary: str | Msg, details: dict[str, Any]) -> Outcome:
    if isinstance(summary, Msg):
        return Outcome(status, summary.text, details, summary.key, summary.params)
    return Outcome(status, summary, details)


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
