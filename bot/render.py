"""Reports rendered for humans: plain text (console, CLI) and Slack Block Kit (blocks + notification fallback).

Pure functions of a TargetReport and the arguments given (the clock is an argument too); no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.i18n import check_title, localize_report, t, tn
from bot.mrkdwn import _ZWSP, _clean, _defang, _escape, _untrusted
from bot.mrkdwn import mention as mention  # re-exported: the renderers and the fronts use them from here too
from bot.mrkdwn import untrusted as untrusted
from checks.details import LogDetails
from checks.models import Cause, CheckResult, Status, TargetReport, worst
from wsmsg.duration import duration, timing

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


# ---------------------------------------------------------------------------------------------------------------
# Slack Block Kit
#
# Every builder below returns JSON-ready block dicts and ends with `clamp_blocks`, the last line of defence that
# enforces Slack's limits, so no report (however long its logs or summaries) can earn an `invalid_blocks` error.
# Lengths are measured in UTF-16 code units, which is never less than Python's `len()` (what slack_sdk checks)
# and never less than what Slack counts, so a text that fits here fits everywhere.
#
# Everything that comes from a target (summaries, log lines, fix commands, cause texts, host names) is escaped
# (`&`, `<`, `>`) so it can never become a mention, a channel ping or a link, and triple backticks in it are
# broken up so it can never open or close a code block.
# ---------------------------------------------------------------------------------------------------------------

ACTION_SHARE = "wscheck_share"
ACTION_RUN_AGAIN = "wscheck_run_again"

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_FALLBACK = 3000

#: Caps that keep one item from crowding out the rest of a report (all in UTF-16 units).
CHECK_LINE_CAP = 1000
CHECK_LINE_CAP_TIGHT = 300
CAUSE_HEAD_CAP = 1200
EVIDENCE_CAP = 400
FIX_LINE_CAP = 300
LOG_LINE_CAP = 240

#: The healthy verdict in English (`t("render.healthy")` in the bot's language).
HEALTHY = "No known problem: the stack looks healthy."

_SPACES = re.compile(r"\s+")
_PARTIAL_ENTITY = re.compile(r"&[A-Za-z#0-9]{0,4}$")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")
_CONTEXT_TYPES = frozenset({"image", "plain_text", "mrkdwn"})
_BAD = (Status.FAIL, Status.ERROR, Status.WARN)

BlockDict = dict[str, Any]


# -- text ------------------------------------------------------------------------------------------------------


def _u16(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` UTF-16 units (never splits a surrogate pair)."""
    if limit <= 0:
        return ""
    if len(text) <= limit // 2 or _u16(text) <= limit:
        return text
    return text.encode("utf-16-le", "surrogatepass")[: 2 * limit].decode("utf-16-le", "ignore")


def _soft_escape(text: str) -> str:
    """Escape text that may already carry Slack's entities (our own messages quoting chat words)."""
    return _BARE_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _line(text: object) -> str:
    """Target text as one mrkdwn line."""
    return _untrusted(_SPACES.sub(" ", _clean(text)).strip())


def _code(text: object) -> str:
    """Inline code of target text (no backticks inside: they would end it)."""
    inner = _line(text).replace("`", "'").replace(_ZWSP, "")
    return f"`{inner or '?'}`"


def cut(text: str, limit: int) -> str:
    """Shorten escaped mrkdwn to `limit` UTF-16 units, ending in "…" when cut.

    Never leaves half an entity (`&am`), half a `<…>` token, or an open code block behind.
    """
    if _u16(text) <= limit:
        return text
    if limit < 6:
        return _prefix("…", limit)
    for reserve in (1, 5):
        part = _PARTIAL_ENTITY.sub("", _prefix(text, limit - reserve))
        lt = part.rfind("<")
        if lt > part.rfind(">"):
            part = part[:lt]
        if part.count("```") % 2 == 0:
            return part + "…"
        if reserve == 5:
            return part + "…\n```"
    raise AssertionError("unreachable")  # pragma: no cover


def _cut_plain(text: str, limit: int) -> str:
    text = _clean(text)
    return text if _u16(text) <= limit else _prefix(text, limit - 1) + "…"


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def slack_date(when: datetime) -> str:
    """`<!date^…>`: each reader sees the time in their own time zone; the fallback is UTC."""
    at = _utc(when)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def _user(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.match(user_id) else _line(user_id)


def _title(check_id: str, *, lang: str) -> str:
    return check_title(check_id, lang=lang)


# -- small building blocks ---------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or "…"}


def _section(text: str) -> BlockDict:
    return {"type": "section", "text": _mrkdwn(cut(text, MAX_SECTION_TEXT))}


def _header(text: str) -> BlockDict:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut_plain(text, MAX_HEADER_TEXT) or "wscheck",
                                       "emoji": True}}


def _context(*parts: str) -> BlockDict:
    return {"type": "context", "elements": [_mrkdwn(cut(p, MAX_CONTEXT_TEXT)) for p in parts if p]}


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> BlockDict:
    button: BlockDict = {"type": "button", "action_id": action_id,
                     "text": {"type": "plain_text", "text": text, "emoji": True}, "value": value}
    if style:
        button["style"] = style
    return button


def _fit_lines(lines: Sequence[str], budget: int, more: Callable[[int], str], *, keep_tail: bool = False) -> str:
    """Join `lines` with newlines within `budget`, dropping whole lines (from the end, or from the start when
    `keep_tail`) and naming how many went with `more(n)`. One line that alone is too long is cut."""
    if budget <= 0 or not lines:
        return ""
    whole = "\n".join(lines)
    if _u16(whole) <= budget:
        return whole
    order = list(reversed(lines)) if keep_tail else list(lines)
    room = budget - (_u16(more(len(lines))) + 1)
    chosen: list[str] = []
    used = 0
    for line in order:
        cost = _u16(line) + (1 if chosen else 0)
        if used + cost > room:
            break
        chosen.append(line)
        used += cost
    if not chosen and room > 20:
        chosen.append(cut(order[0], room))
    dropped = len(lines) - len(chosen)
    if keep_tail:
        chosen.reverse()
        out = [more(dropped), *chosen]
    else:
        out = [*chosen, more(dropped)]
    return cut("\n".join(out), budget)


def _code_block(lines: Sequence[object], budget: int, more: Callable[[int], str], *, line_cap: int,
                keep_tail: bool = False) -> str:
    """A ``` block of target text lines within `budget` ("" when nothing fits)."""
    safe: list[str] = []
    for raw in lines:
        safe.extend(cut(part.rstrip(), line_cap) for part in _untrusted(raw).split("\n"))
    safe = [s for s in safe if s.strip()] or []
    body = _fit_lines(safe, budget - 8, more, keep_tail=keep_tail)
    return f"```\n{body}\n```" if body else ""


def _pack(lines: Sequence[str], max_sections: int, more: Callable[[int], str]) -> list[str]:
    """Lines packed into at most `max_sections` section texts; the overflow is named in the last one."""
    lines = [cut(line, MAX_SECTION_TEXT - 60) for line in lines]
    chunks: list[list[str]] = []
    size = 0
    for line in lines:
        cost = _u16(line) + 1
        if chunks and size + cost <= MAX_SECTION_TEXT:
            chunks[-1].append(line)
            size += cost
        else:
            chunks.append([line])
            size = cost
    if len(chunks) <= max_sections:
        return ["\n".join(chunk) for chunk in chunks]
    keep = chunks[: max(max_sections - 1, 0)]
    rest = [line for chunk in chunks[len(keep):] for line in chunk]
    return [*("\n".join(chunk) for chunk in keep), _fit_lines(rest, MAX_SECTION_TEXT, more)]


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


# -- other messages ----------------------------------------------------------------------------------------------


def progress_blocks(description: str, *, count: int, target: str | None,
                    requested_by: str | None, lang: str) -> list[dict[str, Any]]:
    """The immediate answer: `⏳ Running 12 checks on web…`."""
    where = f"*{_line(target)}*" if target else t("render.every_target", lang=lang)
    parts = [_line(description)] if description.strip() else []
    if requested_by:
        parts.append(t("render.asked_by", user=_user(requested_by), lang=lang))
    blocks = [_section(tn("render.running", max(count, 0), where=where, lang=lang))]
    if parts:
        blocks.append(_context(" · ".join(parts)))
    return clamp_blocks(blocks, lang=lang)


def _trusted_sections(text: str, *, lang: str) -> list[BlockDict]:
    """Our own mrkdwn (help, usage, messages quoting chat words), split on lines into sections."""
    lines = _soft_escape(_clean(text)).split("\n")
    return [_section(x) for x in _pack(lines, MAX_BLOCKS, lambda n: tn("render.more_lines", n, lang=lang)) if x.strip()]


def error_blocks(message: str, *, suggestion: str | None = None, usage: str | None = None,
                 targets: Sequence[str] = (), lang: str) -> list[dict[str, Any]]:
    """A refusal or a request that could not be understood; `message` is our own mrkdwn (chat words in it
    are escaped), `suggestion` a word to offer ("did you mean `pm2`?"), `usage` the help text, `targets` the
    configured target names (for an unknown target)."""
    said = _defang(_soft_escape(_clean(message))).strip() or t("render.did_not_work", lang=lang)
    text = f"{EMOJI[Status.ERROR]} {said}"
    if suggestion:
        text += "\n" + t("render.did_you_mean", word=_code(suggestion), lang=lang)
    blocks = [_section(text)]
    if targets:
        names = cut(", ".join(_code(x) for x in targets), MAX_SECTION_TEXT - 40)
        blocks.append(_section(t("render.targets_list", names=names, lang=lang)))
    if usage:
        blocks += _trusted_sections(usage, lang=lang)
    return clamp_blocks(blocks, lang=lang)


def help_blocks(help_text: str, *, lang: str) -> list[dict[str, Any]]:
    """The `/wscheck help` text (or any longer text answer) as sections."""
    return clamp_blocks(_trusted_sections(help_text, lang=lang) or [_section("…")], lang=lang)


def targets_blocks(targets: Sequence[tuple[str, str]], *, lang: str) -> list[dict[str, Any]]:
    """`/wscheck targets`: each configured target with where it is (`deploy@203.0.113.10`, `local`)."""
    if not targets:
        return clamp_blocks([_section(t("render.no_targets", lang=lang))], lang=lang)
    lines = [cut(f"• {_code(name)} — {_line(where)}", 500) for name, where in targets]
    sections = _pack(lines, MAX_BLOCKS - 1, lambda n: tn("render.more_targets", n, lang=lang))
    return clamp_blocks([_header(t("render.targets_header", n=len(targets), lang=lang)),
                         *(_section(x) for x in sections)], lang=lang)


# -- the last line of defence ------------------------------------------------------------------------------------


def _clamp_text(obj: object, limit: int, *, plain_only: bool = False) -> dict[str, Any] | None:
    """A valid text object within `limit`, or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None
    out = dict(obj)
    kind = out.get("type")
    if plain_only and kind != "plain_text":
        out = {"type": "plain_text", "text": out["text"], "emoji": True}
    elif kind not in ("plain_text", "mrkdwn"):
        return None
    text = _clean(out["text"])
    out["text"] = cut(text, limit) if out["type"] == "mrkdwn" else _cut_plain(text, limit)
    return out if out["text"].strip() else None


def _clamp_element(element: object, seen: set[str]) -> dict[str, Any] | None:
    """An interactive element within its limits, or None (a button is dropped, never cut: a cut value or
    action_id would do something else than promised)."""
    if not isinstance(element, dict):
        return None
    out = dict(element)
    action_id = out.get("action_id")
    if action_id is not None:
        if not _fits(action_id, MAX_ACTION_ID) or action_id in seen:
            return None
        seen.add(action_id)
    if out.get("type") == "button":
        text = _clamp_text(out.get("text"), MAX_BUTTON_TEXT, plain_only=True)
        if text is None:
            return None
        out["text"] = text
        if "value" in out and not _fits(out["value"], MAX_BUTTON_VALUE):
            return None
        if "url" in out and not _fits(out["url"], MAX_BUTTON_URL):
            return None
    return out


def _fits(value: object, limit: int) -> bool:
    """A non-empty string within `limit` that JSON can carry as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str) or not value or _u16(value) > limit:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clamp_block(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    out = dict(block)
    if kind == "header":
        text = _clamp_text(out.get("text"), MAX_HEADER_TEXT, plain_only=True)
        if text is None:
            return None
        out["text"] = text
    elif kind == "section":
        if "text" in out:
            text = _clamp_text(out["text"], MAX_SECTION_TEXT)
            if text is None:
                del out["text"]
            else:
                out["text"] = text
        if "fields" in out:
            fields = out["fields"] if isinstance(out["fields"], list) else []
            kept = [f for f in (_clamp_text(f, MAX_FIELD_TEXT) for f in fields) if f is not None][:MAX_FIELDS]
            if kept:
                out["fields"] = kept
            else:
                del out["fields"]
        if "accessory" in out:
            accessory = _clamp_element(out["accessory"], set())
            if accessory is None:
                del out["accessory"]
            else:
                out["accessory"] = accessory
        if "text" not in out and "fields" not in out:
            return None
    elif kind == "context":
        elements: list[dict[str, Any]] = []
        for element in out.get("elements") or []:
            if not isinstance(element, dict) or element.get("type") not in _CONTEXT_TYPES:
                continue
            if element.get("type") == "image":
                elements.append(dict(element))
            elif (text := _clamp_text(element, MAX_CONTEXT_TEXT)) is not None:
                elements.append(text)
        if not elements:
            return None
        out["elements"] = elements[:MAX_CONTEXT_ELEMENTS]
    elif kind == "actions":
        seen: set[str] = set()
        raw = out.get("elements")
        kept_elements = [e for e in (_clamp_element(e, seen) for e in (raw if isinstance(raw, list) else []))
                         if e is not None]
        if not kept_elements:
            return None
        out["elements"] = kept_elements[:MAX_ACTIONS_ELEMENTS]
    return out


def _trim_middle(blocks: list[BlockDict], *, lang: str) -> list[BlockDict]:
    """At most MAX_BLOCKS: keep the top (header, check lines, root cause first) and the footer (the trailing
    context and actions blocks), drop what is between and say how much went."""
    footer = 0
    while footer < 3 and blocks[len(blocks) - 1 - footer].get("type") in ("context", "actions"):
        footer += 1
    head = MAX_BLOCKS - 1 - footer
    dropped = len(blocks) - head - footer
    notice = _context(tn("render.trimmed", dropped, max=MAX_BLOCKS, lang=lang))
    return [*blocks[:head], notice, *blocks[len(blocks) - footer:]]


def clamp_blocks(blocks: list[dict[str, Any]], *, lang: str) -> list[dict[str, Any]]:
    """Enforce every Block Kit limit on any list of blocks (ours or added by others): 50 blocks (the middle is
    dropped with a notice), section text 3000, header 150 plain_text, context elements ≤ 10 of ≤ 3000, fields
    ≤ 10 × 2000, buttons (text 75, value 2000, action_id 255: a button over a limit is dropped, not cut), at
    most 25 unique action_ids per actions block, block_id ≤ 255 and unique. Empty texts and blocks go."""
    out: list[BlockDict] = []
    block_ids: set[str] = set()
    for raw in blocks:
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            continue
        block = _clamp_block(raw)
        if block is None:
            continue
        if "block_id" in block:
            block_id = block["block_id"]
            if not _fits(block_id, MAX_BLOCK_ID) or block_id in block_ids:
                del block["block_id"]
            else:
                block_ids.add(block_id)
        out.append(block)
    if len(out) > MAX_BLOCKS:
        out = _trim_middle(out, lang=lang)
    return out


def fix_block(commands: Sequence[str], *, title: str, lang: str) -> dict[str, Any]:
    """A section with a bold title and the fix commands in a code block (alerts and approvals use it)."""
    budget = MAX_SECTION_TEXT - _u16(title) - 8
    body = _code_block(commands, budget, lambda n: t("render.fix_more_lines", n=n, lang=lang), line_cap=FIX_LINE_CAP)
    return _section(f"*{_escape(title)}*\n{body}" if body else f"*{_escape(title)}*")


_MENTION = re.compile(r"<([@#!])([^>|]*)(?:\|([^>]*))?>")
_EMPHASIS = re.compile(r"[*`~]")


def plain(text: str) -> str:
    """mrkdwn to terminal text: `<@U1>` -> @U1, `<!date^…|fallback>` -> fallback, no emphasis marks."""

    def token(m: re.Match[str]) -> str:
        kind, body, label = m.group(1), m.group(2), m.group(3)
        if label:
            return label
        if kind == "!" and body.startswith("subteam^"):
            return "@" + body.split("^", 1)[1]
        return ("@" if kind in "@!" else "#") + body

    out = _MENTION.sub(token, text)
    out = _EMPHASIS.sub("", out)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
