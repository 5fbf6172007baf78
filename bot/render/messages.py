"""bot/render.py's section "messages" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.i18n import t, tn
from bot.mrkdwn import _clean, _defang
from bot.render.blocks import _context, _header, _pack, _section
from bot.render.clamp import clamp_blocks
from bot.render.limits import MAX_BLOCKS, MAX_SECTION_TEXT, BlockDict
from bot.render.text import _code, _line, _soft_escape, _user, cut
from bot.render.text_report import EMOJI
from checks.models import Status

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


