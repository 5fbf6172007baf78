"""bot/render.py's section "clamp" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.i18n import t, tn
from bot.mrkdwn import _clean, _escape
from bot.render.blocks import _code_block, _context, _section
from bot.render.limits import (
    _CONTEXT_TYPES,
    FIX_LINE_CAP,
    MAX_ACTION_ID,
    MAX_ACTIONS_ELEMENTS,
    MAX_BLOCK_ID,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_BUTTON_URL,
    MAX_BUTTON_VALUE,
    MAX_CONTEXT_ELEMENTS,
    MAX_CONTEXT_TEXT,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    BlockDict,
)
from bot.render.text import _cut_plain, _u16, cut

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
