"""bot/render.py's section "text" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.i18n import check_title
from bot.mrkdwn import _ZWSP, _clean, _untrusted
from bot.render.limits import _BARE_AMP, _PARTIAL_ENTITY, _SPACES, _USER_ID

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


