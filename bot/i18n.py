"""The bot's own words in English and Korean, chosen once at startup by WSCHECK_LANG (`en` default, `ko`).

`set_language()` is called by bot/app.py (the bot) and bot/cli.py (`wscheck check` text output); everything
else asks `t(key, **params)` for the current language. What the checks and the diagnosis say lives in
checks/messages.py (checks never import bot/); renderers pass reports and causes through `localize_report()`
and `localize_cause()` before they draw them.

Not translated, on purpose: log lines (operators' logs), `--help`, JSON output (`wscheck check --json`,
`wscheck checks --json`, the audit export), the `/wscheck` grammar keywords, check and cause ids, status
words (`ok`, `FAIL`, `pending`…), commands, and text that comes from a target (log lines, nginx's errors).

Nothing is persisted as a sentence: approval notes and request errors are message references (wsmsg.Msg), and
a note an older version stored as English is shown as it was (plain text), never parsed back.
"""

from __future__ import annotations

import string
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

_STATE = {"lang": "en"}
_FORMATTER = string.Formatter()


def set_language(lang: str) -> None:
    """Choose the language of every message from now on (once, at startup)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; one of {', '.join(LANGS)}")
    _STATE["lang"] = lang


def language() -> str:
    return _STATE["lang"]


def text(key: str, **params: Any) -> Msg:
    if key not in MESSAGES:
        raise KeyError(key)
    return Msg(key, params)


def render(key: str, params: Mapping[str, Any], lang: str) -> str:
    """`key` in `lang` (English when a translation is missing or does not fit its params)."""
    return Msg(key, dict(params)).render(lang)


def t(key: str, **params: Any) -> str:
    """`key` in the current language."""
    return render(key, params, language())


def en(key: str, **params: Any) -> str:
    return render(key, params, "en")


def tn(key: str, n: int, **params: Any) -> str:
    """A plural message: `key.one` for exactly one, `key.other` otherwise (with `n` as a param)."""
    return t(f"{key}.{'one' if n == 1 else 'other'}", n=n, **params)


def help_text() -> str:
    return t("commands.help")


def localize_report(report: TargetReport) -> TargetReport:
    """The report with check summaries, causes and fix lines in the current language."""
    return check_messages.localize(report, language())


def localize_cause(cause: Cause) -> Cause:
    return check_messages.localize_cause(cause, language())


def localize_where(where: str) -> str:
    return check_messages.localize_where(where, language())


def check_title(check_id: str) -> str:
    return check_messages.check_title(check_id, language()) or check_id
