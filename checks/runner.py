"""Run all or some checks on one target concurrently, bound the time, never raise.

Every failure mode of a check — an unreachable host, a timeout, a parser surprise, a bug — becomes an
`error` result with the reason; nothing here reports `ok` by default and nothing escapes as an exception,
because the bot's monitoring loop must survive whatever one target does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from checks.config import Target
from checks.diagnosis import diagnose
from checks.facts import FactError, Facts
from checks.items import CHECK_FUNCTIONS
from checks.items.base import Outcome
from checks.messages import Msg, msg, verbatim
from checks.models import CheckResult, Status, TargetReport
from checks.redact import redact
from checks.registry import resolve_selection
from checks.transport.base import CommandTimeout, HostKeyError, Transport, TransportError, said

log = logging.getLogger(__name__)


async def _run_one(check_id: str, facts: Facts, timeout: float) -> CheckResult:
    started = time.perf_counter()
    details: dict[str, object]
    summary: Msg
    try:
        async with asyncio.timeout(timeout):
            outcome: Outcome = await CHECK_FUNCTIONS[check_id](facts)
        status, details, summary = outcome.status, dict(outcome.details), outcome.summary
    except FactError as exc:
        status, details, summary = exc.status, {**exc.details, "error_kind": exc.kind}, exc.message
    except HostKeyError as exc:
        status, summary = Status.ERROR, said(exc)
        details = {**exc.details, "error_kind": "unreachable", "host_key": True}
    except TransportError as exc:
        status, summary, details = Status.ERROR, said(exc), {**exc.details, "error_kind": "unreachable"}
    except CommandTimeout as exc:
        status, summary = Status.ERROR, msg("runner.command_timeout", error=said(exc))
        details = {"error_kind": "timeout"}
    except TimeoutError:
        status, summary = Status.ERROR, msg("runner.timeout", timeout=timeout)
        details = {"error_kind": "timeout"}
    except Exception as exc:
        # One log line, never a traceback on stderr: the result carries the reason (issue 9).
        log.error("check %s crashed: %s: %s", check_id, type(exc).__name__, redact(str(exc)))
        status, summary = Status.ERROR, msg("runner.internal", kind=type(exc).__name__)
        details = {"error_kind": "internal", "library_error": redact(str(exc))}
    return CheckResult(
        id=check_id,
        status=status,
        message=_redacted(summary),
        details=details,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _redacted(message: Msg) -> Msg:
    """`message` with its params redacted; as plain redacted English in the rare case where a secret spans a
    template and a param, so no language ever shows what the English would have hidden."""
    cleaned = message.map_text(redact)
    english = cleaned.en
    said = redact(english)
    return cleaned if said == english else verbatim(said)


async def run_checks(target: Target, transport: Transport, only: Sequence[str] = (), *,
                     config_file: str = "", restart_sample: dict[str, Any] | None = None) -> TargetReport:
    """Run the selected checks (ids or item aliases; empty = all) and diagnose the results.

    `config_file`: the config the target came from ("" = built-in default), for the fix hints."""
    ids = resolve_selection(list(only))
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    facts = Facts(target, transport, ids)
    facts.restart_sample = restart_sample  # wt-host2: pm2.restarts compares with it (checks/items/host.py)
    try:
        results = await asyncio.gather(*(_run_one(cid, facts, target.check_timeout) for cid in ids))
    finally:
        await facts.cancel()
    return TargetReport(
        target=target.name,
        host=target.where,
        started_at=started_at,
        duration_ms=(time.perf_counter() - started) * 1000,
        checks=tuple(results),
        diagnosis=diagnose(target, results, config_file=config_file),
    )
