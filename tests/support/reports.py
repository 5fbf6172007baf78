"""What the sandbox tests say about a report: one place for the helpers every integration module used to repeat."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from checks.config import Target
from checks.models import Status, TargetReport
from checks.runner import run_checks
from checks.transport import Transport


async def check_mode(sandbox: Any, target: Target, transport: Transport, mode: str) -> TargetReport:
    """Put the sandbox in `mode` (observable when it returns), then run the whole checklist."""
    await asyncio.to_thread(sandbox.set_mode, mode)
    return await run_checks(target, transport)


def bad(report: TargetReport) -> set[str]:
    return {c.id for c in report.checks if c.status in (Status.FAIL, Status.ERROR)}


def causes(report: TargetReport) -> list[str]:
    return [c.cause for c in report.diagnosis]


def status(report: TargetReport, check_id: str) -> Status:
    r = report.result(check_id)
    assert r is not None, check_id
    return r.status


def explain(report: TargetReport) -> str:
    """The whole report, for an assertion's message."""
    return json.dumps(report.to_json_dict(), indent=1, default=str)
