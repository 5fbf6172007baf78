"""The one vocabulary every part of wscheck speaks: statuses, check results, causes, reports.

Everything here is frozen so a result can be handed to the renderer, the incident machine and the
store without anybody mutating it on the way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wsmsg import Msg
from wsmsg.field import MsgField, as_msg


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


def _message_of(data: Any, *, text: str = "summary", key: str = "summary_key", params: str = "summary_params") -> Any:
    """Accept the older shape (`summary` text + `summary_key`/`summary_params`) and a `summary=` keyword: both
    become `message`."""
    if not isinstance(data, dict) or "message" in data or text not in data:
        return data
    data = dict(data)
    summary, ref_key, ref_params = data.pop(text), data.pop(key, ""), data.pop(params, None) or {}
    data["message"] = Msg.from_ref({"$msg": ref_key, "params": ref_params}) if ref_key else as_msg(summary)
    return data


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """Overall status of a set of results; an empty or all-skip set is `skip`."""
    result = Status.SKIP
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


class CheckResult(BaseModel):
    """Uniform result of one checklist item (Gatus' Result, reduced to what a human reads)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    status: Status
    #: What the check says, unrendered (wsmsg.Msg); `summary` is its English, the `--json` field.
    message: MsgField
    details: dict[str, Any] = Field(default_factory=dict)
    duration_ms: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _summary(cls, data: Any) -> Any:
        return _message_of(data)

    @property
    def summary(self) -> str:
        return self.message.en


class Cause(BaseModel):
    """A known failure of the seed story, named with the evidence and the fix for this target."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    cause: str
    #: What the cause is, unrendered; `summary` is its English.
    message: MsgField
    severity: Status = Status.FAIL
    evidence: tuple[str, ...] = ()
    #: The fix, one message per line: a command line is verbatim text (never translated); `fix` is the English.
    fixes: tuple[MsgField, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _summary_and_fix(cls, data: Any) -> Any:
        data = _message_of(data)
        if isinstance(data, dict) and "fixes" not in data and "fix" in data:
            data = dict(data)
            lines, keys = tuple(data.pop("fix") or ()), tuple(data.pop("fix_keys", None) or ())
            if len(keys) != len(lines):
                keys = (("", {}),) * len(lines)
            data["fixes"] = tuple(
                Msg.from_ref({"$msg": key, "params": params}) if key else as_msg(line)
                for line, (key, params) in zip(lines, keys, strict=True))
        return data

    @property
    def summary(self) -> str:
        return self.message.en

    @property
    def fix(self) -> tuple[str, ...]:
        return tuple(line.en for line in self.fixes)


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
