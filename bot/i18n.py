"""The bot's helpers over the message catalog (wsmsg; templates in wsmsg/locales/<lang>/bot.toml).

There is no current language: the language is a parameter of rendering. Pure code builds messages
(`text(key, **params)`, a wsmsg.Msg); renderers (the fronts, bot/render/, alerts.py, the approval message) say them
with `t(key, lang=..., **params)` or `Msg.render(lang)`, `lang` being WSCHECK_LANG handed down from the settings.
What the checks and the diagnosis say lives in checks/messages.py (checks never import bot/); renderers pass
reports and causes through `localize_report(report, lang=...)` and `localize_cause(cause, lang=...)`.

Not translated, on purpose: log lines (operators' logs), `--help`, JSON output (`wscheck check --json`,
`wscheck checks --json`, the audit export), the `/wscheck` grammar keywords, check and cause ids, status
words (`ok`, `FAIL`, `pending`…), commands, and text that comes from a target (log lines, nginx's errors).

Nothing is persisted as a sentence: approval notes and request errors are message references (wsmsg.Msg), and
a note an older version stored as English is shown as it was (plain text), never parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks import messages as check_messages
from checks.models import Cause, TargetReport
from wsmsg import CATALOG, Msg

LANGS: tuple[str, ...] = ("en", "ko")

#: The bot's domain of the catalog (key -> {lang: template}; wsmsg/locales/<lang>/bot.toml), for the tests.
#: Keys ending in `.one` / `.other` are plural forms picked by `tn()` (Korean has one form: both are the same).
MESSAGES: dict[str, dict[str, str]] = CATALOG.domain_entries("bot")
HELP_EN = MESSAGES["commands.help"]["en"]
HELP_KO = MESSAGES["commands.help"]["ko"]


def text(key: str, **params: Any) -> Msg:
    """The bot's message `key` (a KeyError for a key bot.toml lacks), rendered later by a front."""
    if key not in MESSAGES:
        raise KeyError(key)
    return Msg(key, params)


def render(key: str, params: Mapping[str, Any], lang: str) -> str:
    """`key` in `lang` (English when a translation is missing or does not fit its params)."""
    return Msg(key, dict(params)).render(lang)


def t(key: str, *, lang: str, **params: Any) -> str:
    """`key` in `lang` (a renderer's parameter: the front's WSCHECK_LANG)."""
    return render(key, params, lang)


def en(key: str, **params: Any) -> str:
    return render(key, params, "en")


def tn(key: str, n: int, *, lang: str, **params: Any) -> str:
    """A plural message: `key.one` for exactly one, `key.other` otherwise (with `n` as a param)."""
    return t(f"{key}.{'one' if n == 1 else 'other'}", n=n, lang=lang, **params)


def localize_report(report: TargetReport, *, lang: str) -> TargetReport:
    """The report with check summaries, causes and fix lines in `lang`."""
    return check_messages.localize(report, lang)


def localize_cause(cause: Cause, *, lang: str) -> Cause:
    return check_messages.localize_cause(cause, lang)


def localize_where(where: str, *, lang: str) -> str:
    return check_messages.localize_where(where, lang)


def check_title(check_id: str, *, lang: str) -> str:
    return check_messages.check_title(check_id, lang) or check_id
