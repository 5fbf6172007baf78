"""bot/render.py's section "report" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.i18n import localize_report, t, tn
from bot.mrkdwn import _clean
from bot.render.blocks import _button, _code_block, _context, _fit_lines, _header, _pack, _section
from bot.render.clamp import clamp_blocks
from bot.render.limits import (
    _BAD,
    _SPACES,
    ACTION_RUN_AGAIN,
    ACTION_SHARE,
    CAUSE_HEAD_CAP,
    CHECK_LINE_CAP,
    CHECK_LINE_CAP_TIGHT,
    EVIDENCE_CAP,
    FIX_LINE_CAP,
    LOG_LINE_CAP,
    MAX_BLOCKS,
    MAX_BUTTON_VALUE,
    MAX_FALLBACK,
    MAX_SECTION_TEXT,
    BlockDict,
)
from bot.render.text import _code, _cut_plain, _line, _title, _u16, _user, _utc, cut, slack_date
from bot.render.text_report import EMOJI, MARK
from checks.details import LogDetails
from checks.models import Cause, CheckResult, Status, TargetReport, worst
from wsmsg.duration import duration, timing

# -- one report --------------------------------------------------------------------------------------------------


def _check_line(check: CheckResult, cap: int, *, lang: str) -> str:
    head = f"{EMOJI[check.status]} *{_line(_title(check.id, lang=lang))}* {_code(check.id)}"
    summary = _line(check.summary) or t("render.no_summary", lang=lang)
    tail = f" · {timing(check.duration_ms)}"
    return cut(f"{head} — {summary}", cap - _u16(tail)) + tail


def _check_sections(checks: Sequence[CheckResult], max_sections: int, *, lang: str) -> list[str]:
    if not checks:
        return [t("render.no_checks_ran", lang=lang)]

    def more(n: int) -> str:
        return tn("render.more_checks", n, lang=lang)

    for cap in (CHECK_LINE_CAP, CHECK_LINE_CAP_TIGHT):
        packed = _pack([_check_line(c, cap, lang=lang) for c in checks], 10**6, more)
        if len(packed) <= max_sections:
            return packed
    # Too many to list one by one: the problems stay, the ok/skip checks fold into one line.
    bad = [c for c in checks if c.status in _BAD]
    fine = [c for c in checks if c.status not in _BAD]
    lines = [_check_line(c, CHECK_LINE_CAP_TIGHT, lang=lang) for c in bad]
    if fine:
        names = cut(", ".join(_code(c.id) for c in fine), 600)
        lines.insert(0, tn("render.fine_checks", len(fine), emoji=EMOJI[Status.OK], names=names, lang=lang))
    return _pack(lines, max_sections, more)


def _cause_label(index: int, cause: Cause, *, lang: str) -> str:
    if cause.severity in (Status.OK, Status.WARN, Status.SKIP):
        return f"{EMOJI[Status.WARN]} {t('render.label_warning', lang=lang)}"
    if index == 0:
        return f"{EMOJI[cause.severity]} {t('render.label_root', lang=lang)}"
    return f"{EMOJI[cause.severity]} {t('render.label_cause', n=index + 1, lang=lang)}"


def _cause_text(index: int, cause: Cause, *, title: str = "", lang: str) -> str:
    head = cut(f"{title}{_cause_label(index, cause, lang=lang)} {_code(cause.cause)} — {_line(cause.summary)}",
               CAUSE_HEAD_CAP)
    parts = [head]
    if cause.evidence:
        parts.append(cut(t("render.evidence", checks=", ".join(_code(e) for e in cause.evidence), lang=lang),
                         EVIDENCE_CAP))
    text = "\n".join(parts)
    if cause.fix:
        budget = MAX_SECTION_TEXT - _u16(text) - 1
        block = _code_block(cause.fix, budget, lambda n: tn("render.more_fix_lines", n, lang=lang),
                            line_cap=FIX_LINE_CAP)
        if block:
            text += "\n" + block
    return text


def _diagnosis_sections(report: TargetReport, max_sections: int, *, lang: str) -> list[str]:
    causes = report.diagnosis
    if not causes:
        if not report.checks:
            return [f"{EMOJI[Status.SKIP]} {t('render.nothing_to_diagnose', lang=lang)}"]
        if report.status in (Status.OK, Status.SKIP):
            return [f"{EMOJI[Status.OK]} {t('render.healthy', lang=lang)}"]
        if report.status is Status.WARN:
            return [f"{EMOJI[Status.WARN]} {t('render.warnings_only', lang=lang)}"]
        return [f"{EMOJI[report.status]} {t('render.unexplained', lang=lang)}"]
    title = t("render.diagnosis_title", lang=lang) + "\n"
    max_sections = max(max_sections, 1)
    if len(causes) <= max_sections:
        return [_cause_text(i, c, title=title if i == 0 else "", lang=lang) for i, c in enumerate(causes)]
    full = [_cause_text(i, c, title=title if i == 0 else "", lang=lang) for i,
            c in enumerate(causes[: max_sections - 1])]
    rest = causes[len(full):]
    lines = [f"• {_cause_label(len(full) + i, c, lang=lang)} {_code(c.cause)} — {cut(_line(c.summary), 300)}"
             for i, c in enumerate(rest)]
    head = t("render.more_causes_title", lang=lang) + "\n" if full else title
    body = _fit_lines(lines, MAX_SECTION_TEXT - _u16(head), lambda n: tn("render.more_causes", n, lang=lang))
    return [*full, head + body]


def _log_section(report: TargetReport, *, lang: str) -> str | None:
    for check in report.checks:
        if check.status not in _BAD:
            continue
        lines = LogDetails.of(check).error_lines
        if lines:
            title = t("render.log_title", check=_code(check.id), lang=lang) + "\n"
            block = _code_block(lines, MAX_SECTION_TEXT - _u16(title),
                                lambda n: tn("render.earlier_lines", n, lang=lang), line_cap=LOG_LINE_CAP,
                                keep_tail=True)
            return title + block if block else None
    return None


def _report_header(report: TargetReport) -> BlockDict:
    status = report.status
    return _header(f"{EMOJI[status]} {_SPACES.sub(' ', _clean(report.target)).strip()}: {MARK[status]}")


def _report_body(report: TargetReport, max_blocks: int, *, lang: str) -> list[BlockDict]:
    """Header, check lines, diagnosis, logs: at most `max_blocks` blocks (>= 5)."""
    logs = _log_section(report, lang=lang)
    room = max(max_blocks - 2 - (1 if logs else 0), 2)  # header, divider
    want_causes = max(len(report.diagnosis), 1)
    checks = _check_sections(report.checks, 10**6, lang=lang)
    if len(checks) + want_causes > room:
        cause_room = min(want_causes, max(room // 2, room - len(checks)))
        checks = _check_sections(report.checks, room - cause_room, lang=lang)
    causes = _diagnosis_sections(report, room - len(checks), lang=lang)
    blocks = [_report_header(report), *(_section(x) for x in checks), {"type": "divider"}]
    blocks += [_section(x) for x in causes]
    if logs:
        blocks.append(_section(logs))
    return blocks


def _footer(*, started: datetime, took_ms: float, where: str, requested_by: str | None, now: datetime,
            run_again: str | None, share: bool, shared_by: str | None, share_value: str,
            extra_actions: Sequence[dict[str, Any]], lang: str) -> list[BlockDict]:
    when = t("render.checked", date=slack_date(started), lang=lang)
    age = (_utc(now) - _utc(started)).total_seconds()
    if age >= 60:
        when += t("render.age_before", age=duration(age, parts=1, smallest="min", long=True, at_least={"d": 2}),
                  lang=lang)
    parts = [when, t("render.took", took=timing(took_ms), lang=lang)]
    if where:
        parts.append(where)
    if requested_by:
        parts.append(t("render.asked_by", user=_user(requested_by), lang=lang))
    if not share and shared_by:
        parts.append(t("render.shared_by", user=_user(shared_by), lang=lang))
    blocks: list[BlockDict] = [_context(" · ".join(parts))]
    buttons: list[BlockDict] = []
    if share:
        buttons.append(_button(t("render.button_share", lang=lang), ACTION_SHARE, share_value or "report",
                               style="primary"))
    if run_again is not None:
        value = _clean(run_again).strip() or "all"  # `as_text` of the whole checklist everywhere is "": the same
        if _u16(value) <= MAX_BUTTON_VALUE:  # a cut command would re-run something else: rather no button
            buttons.append(_button(t("render.button_run_again", lang=lang), ACTION_RUN_AGAIN, value))
    buttons.extend(dict(a) for a in extra_actions)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def report_blocks(report: TargetReport, *, requested_by: str | None, now: datetime, run_again: str | None = None,
                  share: bool = True, shared_by: str | None = None, extra_actions: Sequence[dict[str, Any]] = (),
                  share_value: str | None = None, lang: str) -> list[dict[str, Any]]:
    """One target's report: header (target + overall status), one line per check, the diagnosis with fix
    commands, recent error lines, a context line (when, how long, where, who asked / shared) and the buttons.

    `run_again` is the canonical command text for the Run again button ("" = everything: sent as `all`);
    `share=False` renders the in-channel copy (no Share button, "shared by" in the context line);
    `share_value` is the Share button's value (the front may overwrite it with an id; default: the target).
    """
    report = localize_report(report, lang=lang)
    footer = _footer(started=report.started_at, took_ms=report.duration_ms,
                     where=_code(report.host) if _line(report.host) else "",
                     requested_by=requested_by, now=now, run_again=run_again, share=share, shared_by=shared_by,
                     share_value=share_value or _cut_plain(report.target, 200), extra_actions=extra_actions, lang=lang)
    return clamp_blocks([*_report_body(report, MAX_BLOCKS - len(footer), lang=lang), *footer], lang=lang)


def report_fallback(report: TargetReport, *, lang: str) -> str:
    """The notification text: `web: FAIL — port_mismatch: nginx proxies to 3003 but …` (escaped, one line)."""
    report = localize_report(report, lang=lang)
    status = report.status
    if report.diagnosis:
        first = report.diagnosis[0]
        what = f"{_line(first.cause)}: {_line(first.summary)}"
    elif not report.checks:
        what = t("render.fallback_no_checks", lang=lang)
    elif status in (Status.OK, Status.SKIP):
        what = tn("render.fallback_healthy", len(report.checks), lang=lang)
    else:
        worst_check = next(c for c in report.checks if c.status is status)
        what = f"{_line(worst_check.id)}: {_line(worst_check.summary)}"
    return cut(f"{_line(report.target)}: {MARK[status]} — {what}", MAX_FALLBACK)


def multi_report_fallback(reports: Sequence[TargetReport], *, lang: str) -> str:
    """The notification text for several targets: the overall status, then each target that is not ok."""
    if len(reports) == 1:
        return report_fallback(reports[0], lang=lang)
    overall = worst([r.status for r in reports])
    bad = [report_fallback(r, lang=lang) for r in reports if r.status in _BAD]
    tail = "; ".join(bad) if bad else t("render.all_ok", lang=lang)
    return cut(f"{tn('render.targets', len(reports), lang=lang)}: {MARK[overall]} — {tail}", MAX_FALLBACK)


