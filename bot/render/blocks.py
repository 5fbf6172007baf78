"""bot/render.py's section "blocks" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.mrkdwn import _untrusted
from bot.render.limits import MAX_CONTEXT_TEXT, MAX_HEADER_TEXT, MAX_SECTION_TEXT, BlockDict
from bot.render.text import _cut_plain, _u16, cut

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


