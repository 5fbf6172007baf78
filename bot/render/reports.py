"""bot/render.py's section "reports" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.i18n import localize_report, t, tn
from bot.render.blocks import _fit_lines, _header, _section
from bot.render.clamp import clamp_blocks
from bot.render.limits import _BAD, MAX_BLOCKS, MAX_SECTION_TEXT, BlockDict
from bot.render.messages import error_blocks
from bot.render.report import _cause_label, _footer, _report_body
from bot.render.text import _code, _cut_plain, _line, _utc, cut
from bot.render.text_report import EMOJI, MARK
from checks.models import Status, TargetReport, worst
from wsmsg.duration import timing

# -- several reports ---------------------------------------------------------------------------------------------


def _compact_section(report: TargetReport, *, lang: str) -> str:
    status = report.status
    bad = [c for c in report.checks if c.status in _BAD]
    title = (f"{EMOJI[status]} *{_line(report.target)}* {_code(report.host)} — {MARK[status]} · "
             f"{tn('render.not_ok_of', len(report.checks), bad=len(bad), lang=lang)} · {timing(report.duration_ms)}")
    lines = [cut(title, 600)]
    if report.diagnosis:
        first = report.diagnosis[0]
        lines.append(cut(f"↳ {_cause_label(0, first, lang=lang)} {_code(first.cause)} — {_line(first.summary)}", 800))
    lines += [cut(f"• {EMOJI[c.status]} {_code(c.id)} — {_line(c.summary)}", 300) for c in bad]
    return _fit_lines(lines, MAX_SECTION_TEXT, lambda n: tn("render.more_not_ok", n, lang=lang))


def _compact_body(reports: Sequence[TargetReport], *, lang: str) -> list[BlockDict]:
    overall = worst([r.status for r in reports])
    blocks = [_header(f"{EMOJI[overall]} {tn('render.targets', len(reports), lang=lang)}: {MARK[overall]}")]
    bad = sorted((r for r in reports if r.status in _BAD), key=lambda r: -r.status.rank)
    fine = [r for r in reports if r.status not in _BAD]
    blocks += [_section(_compact_section(r, lang=lang)) for r in bad]
    if fine:
        names = ", ".join(_code(r.target) for r in fine)
        blocks.append(_section(t("render.targets_ok", emoji=EMOJI[Status.OK], targets=tn("render.targets", len(fine),
                                                                                         lang=lang),
                                 names=names, lang=lang)))
    return blocks


def multi_report_blocks(reports: Sequence[TargetReport], *, requested_by: str | None, now: datetime,
                        run_again: str | None = None, share: bool = True, shared_by: str | None = None,
                        extra_actions: Sequence[dict[str, Any]] = (),
                        share_value: str | None = None, lang: str) -> list[dict[str, Any]]:
    """Several targets in one message. Each target in full when all of them fit in 50 blocks; otherwise one
    section per target that is not ok (worst first: its problem checks and first cause) and one line naming
    the healthy ones. One context line and one set of buttons at the end."""
    if not reports:
        return error_blocks(t("render.no_targets_checked", lang=lang), lang=lang)
    reports = [localize_report(r, lang=lang) for r in reports]
    started = min(_utc(r.started_at) for r in reports)
    ends = [_utc(r.started_at).timestamp() * 1000 + (r.duration_ms if math.isfinite(r.duration_ms) else 0)
            for r in reports]
    took = max(ends) - started.timestamp() * 1000
    footer = _footer(started=started, took_ms=took, where=tn("render.targets", len(reports), lang=lang),
                     requested_by=requested_by,
                     now=now, run_again=run_again, share=share, shared_by=shared_by,
                     share_value=share_value or _cut_plain(",".join(r.target for r in reports), 200),
                     extra_actions=extra_actions, lang=lang)
    room = MAX_BLOCKS - len(footer)
    full: list[BlockDict] = []
    for report in reports:
        full += _report_body(report, MAX_BLOCKS, lang=lang)
    body = full if len(full) <= room else _compact_body(reports, lang=lang)
    return clamp_blocks([*body, *footer], lang=lang)


