"""bot/render.py's section "text_report" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

import math

from bot.i18n import localize_report, t
from checks.models import Status, TargetReport
from wsmsg.duration import timing

EMOJI = {
    Status.OK: "✅",
    Status.WARN: "⚠️",
    Status.FAIL: "❌",
    Status.ERROR: "❗",
    Status.SKIP: "⏭️",
}
MARK = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.ERROR: "ERROR", Status.SKIP: "skip"}


def _table_timing(ms: float) -> str:
    return timing(ms, ms_below=10_000, tenths_below=math.inf)


def report_text(report: TargetReport, *, lang: str) -> str:
    """The CLI / console report: a table of checks, then the diagnosis with fix commands."""
    report = localize_report(report, lang=lang)
    lines = [t("render.text_head", target=report.target, host=report.host, status=MARK[report.status],
               took=_table_timing(report.duration_ms), lang=lang)]
    width = max((len(c.id) for c in report.checks), default=10)
    for c in report.checks:
        lines.append(f"  {MARK[c.status]:<5} {c.id:<{width}}  {c.summary}  ({_table_timing(c.duration_ms)})")
    if report.diagnosis:
        lines.append("")
        lines.append(t("render.text_diagnosis", lang=lang))
        for n, cause in enumerate(report.diagnosis, 1):
            lines.append(f"  {n}. [{cause.cause}] {cause.summary}")
            if cause.evidence:
                lines.append("     " + t("render.evidence", checks=", ".join(cause.evidence), lang=lang))
            if cause.fix:
                lines.append("     " + t("render.text_fix", lang=lang))
                lines.extend(f"       {step}" for step in cause.fix)
    elif report.status in (Status.OK, Status.SKIP):
        lines.append(t("render.healthy", lang=lang))
    return "\n".join(lines)


