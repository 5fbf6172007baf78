"""The one vocabulary every part of wscheck speaks: statuses, check results, causes, reports.

Everything here is frozen so a result can be handed to the renderer, the incident machine and the
store without anybody mutating it on the way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Status(StrEnum):
    """Outcome of one check. `skip` means "not run because another result already explains it"."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"

    @property
    def rank(self) -> int:
        """Badness used for "worst wins": fail > error > warn > ok; skip counts for nothing."""
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """Nagios convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
        return _EXIT[self]


_RANK = {Status.SKIP: 0, Status.OK: 1, Status.WARN: 2, Status.ERROR: 3, Status.FAIL: 4}
_EXIT = {Status.SKIP: 0, Status.OK: 0, Status.WARN: 1, Status.ERROR: 3, Status.FAIL: 2}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """Overall status of a set of results; an empty or all-skip set is `skip`."""
    result = Status.SKIP
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


class CheckResult(BaseModel):
    """Uniform result of one checklist item (Gatus' Result, reduced to what a human reads)."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: Status
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    duration_ms: float = 0.0
    #: How to say `summary` in another language (checks/messages.py); not part of the `--json` output.
    summary_key: str = ""
    summary_params: dict[str, Any] = Field(default_factory=dict)


class Cause(BaseModel):
    """A known failure of the seed story, named with the evidence and the fix for this target."""

    model_config = ConfigDict(frozen=True)

    cause: str
    summary: str
    severity: Status = Status.FAIL
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    #: How to say `summary` and each `fix` line in another language (checks/messages.py): `fix_keys[i]` is
    #: (key, params) for `fix[i]`, key "" for a command line (never translated). Plain JSON: incidents persist it.
    summary_key: str = ""
    summary_params: dict[str, Any] = Field(default_factory=dict)
    fix_keys: tuple[tuple[str, dict[str, Any]], ...] = ()


class TargetReport(BaseModel):
    """Everything one run of the checklist found out about one target."""

    model_config = ConfigDict(frozen=True)

    target: str
    host: str
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0
    checks: tuple[CheckResult, ...] = ()
    diagnosis: tuple[Cause, ...] = ()

    @property
    def status(self) -> Status:
        return worst([c.status for c in self.checks])

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def result(self, check_id: str) -> CheckResult | None:
        for check in self.checks:
            if check.id == check_id:
                return check
        return None

    def to_json_dict(self) -> dict[str, Any]:
        """The `wscheck check --json` shape (documented in the README; keep it stable)."""
        return {
            "target": self.target,
            "status": self.status.value,
            "duration_ms": round(self.duration_ms, 1),
            "checks": [
                {
                    "id": c.id,
                    "status": c.status.value,
                    "summary": c.summary,
                    "duration_ms": round(c.duration_ms, 1),
                    "details": c.details,
                }
                for c in self.checks
            ],
            "diagnosis": [
                {
                    "cause": d.cause,
                    "summary": d.summary,
                    "severity": d.severity.value,
                    "fix": list(d.fix),
                    "evidence": list(d.evidence),
                }
                for d in self.diagnosis
            ],
        }
