"""Slack's text markup, at the level of one string: making text from a target or the chat safe, and a mention.

Split out of render.py (now bot/render/) so that a feature that returns a line of text to a front (the status
lines, the audit history) can make its params safe without importing the block builders (import-linter: "the
features never build Slack blocks"). Blocks, limits and layouts stay in bot/render/ and fronts/outgoing.py.
"""

from __future__ import annotations

import re

_ZWSP = "\u200b"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_FENCE_RUN = re.compile(r"`{3,}")


def _clean(text: object) -> str:
    """Any value as text that JSON and Slack accept: no lone surrogates, no control characters but \\n."""
    s = text if isinstance(text, str) else str(text)
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _CONTROL.sub(" ", s.replace("\r\n", "\n").replace("\t", "    "))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _defang(text: str) -> str:
    """Break up runs of three or more backticks so untrusted text never opens or closes a code block."""
    return _FENCE_RUN.sub(lambda m: _ZWSP.join(m.group()), text)


def _untrusted(text: object) -> str:
    """Target text, ready for mrkdwn (multi-line kept)."""
    return _defang(_escape(_clean(text)))


def untrusted(text: object) -> str:
    """Text from a target or from chat, safe inside mrkdwn: no mentions, links or code fences can come from it."""
    return _untrusted(text)


def mention(user_id: str) -> str:
    """A Slack mention: the renderer's markup (templates say `{user}`, never `<@…>`; the console shows it plain)."""
    return f"<@{user_id}>"
