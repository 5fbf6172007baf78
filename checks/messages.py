"""What the checks and the diagnosis say to a human: keys into the message catalog, never sentences.

Check code builds its summaries with `msg(key, **params)`, a `wsmsg.Msg` that travels unrendered in `Outcome`,
`FactError`, `CheckResult.message` and `Cause.message`/`Cause.fixes`; a front renders it in its language
(`Msg.render(lang)`), `--json` and logs in English (`.en`). The templates are data: wsmsg/locales/<lang>/checks.toml.
Technical tokens stay as they are in Korean: nginx, PM2, BUILD_ID, ports, commands, check and cause ids, and status
words in backticks.

Params are plain JSON values (incidents persist causes as JSON) or nested messages (a translated part of the
sentence). Text that is not ours — a redacted log line, nginx's own error message, an OS or parser error — is a
plain string param (or `verbatim(text)`) and never translated. Command lines (`pm2 restart app`) are never
translated either.

This module registers the templates whose English source of truth is a code table — check titles and
descriptions (checks/registry.py; their Korean is in ko/checks.toml) and cause descriptions (checks/causes.py,
both languages) — and offers the localizing helpers the renderers use. `checks/` never imports `bot/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.causes import CAUSE_SPECS
from checks.models import Cause, CheckResult, TargetReport
from checks.redact import redact
from checks.registry import CHECKS
from wsmsg import CATALOG, LANGS, Msg, joined, msg, placeholders, verbatim

__all__ = [
    "CAUSE_DESCRIPTIONS",
    "LANGS",
    "MESSAGES",
    "Msg",
    "cause_description",
    "check_description",
    "check_title",
    "joined",
    "localize",
    "localize_cause",
    "localize_result",
    "localize_where",
    "msg",
    "placeholders",
    "render",
    "verbatim",
    "where_msg",
]

for _spec in CHECKS:
    CATALOG.register(f"title.{_spec.id}", {"en": _spec.title}, "checks")
    CATALOG.register(f"check_desc.{_spec.id}", {"en": _spec.description}, "checks")

#: Every cause's description in both languages, from its row in checks/causes.py (where a cause is registered).
CAUSE_DESCRIPTIONS: dict[str, dict[str, str]] = {
    spec.id: {"en": spec.description, "ko": spec.description_ko} for spec in CAUSE_SPECS
}

for _cause, _texts in CAUSE_DESCRIPTIONS.items():
    CATALOG.register(f"cause_desc.{_cause}", _texts, "checks")

#: The checks' domain of the catalog (key -> {lang: template}), for the tests and `wscheck checks`.
MESSAGES: dict[str, dict[str, str]] = CATALOG.domain_entries("checks")


def render(key: str, params: Mapping[str, Any], lang: str) -> str:
    """`key` in `lang` with `params`; English when the language or the translation cannot be used."""
    return Msg(key, dict(params)).render(lang)


# ---------------------------------------------------------------------------------------------------------------
# Localizing results (the renderers' helpers)
# ---------------------------------------------------------------------------------------------------------------


def _said(message: Msg, lang: str) -> Msg:
    """`message` rendered in `lang` (redacted: a check's text may quote a target's secrets) as plain text."""
    if lang == "en" or message.is_plain or lang not in LANGS:
        return message
    try:
        return verbatim(redact(message.render(lang)))
    except (KeyError, IndexError, ValueError, TypeError):
        return message


def localize_result(result: CheckResult, lang: str) -> CheckResult:
    said = _said(result.message, lang)
    return result if said is result.message else result.model_copy(update={"message": said})


def localize_cause(cause: Cause, lang: str) -> Cause:
    """A copy of `cause` with its summary and descriptive fix lines in `lang` (commands stay as they are)."""
    if lang == "en":
        return cause
    return cause.model_copy(update={"message": _said(cause.message, lang),
                                    "fixes": tuple(_said(line, lang) for line in cause.fixes)})


def localize_where(where: str, lang: str) -> str:
    """A target's `where` ("deploy@203.0.113.10", or "this machine" for a local target) in `lang`."""
    return render("config.this_machine", {}, lang) if where == render("config.this_machine", {}, "en") else where


def where_msg(where: str) -> Msg:
    """A target's `where` as a message: "this machine" is ours (said in the reader's language), a host is not."""
    return msg("config.this_machine") if where == render("config.this_machine", {}, "en") else verbatim(where)


def localize(report: TargetReport, lang: str) -> TargetReport:
    """A copy of `report` with check summaries, cause summaries and fix lines in `lang`."""
    if lang == "en":
        return report
    return report.model_copy(update={
        "host": localize_where(report.host, lang),
        "checks": tuple(localize_result(c, lang) for c in report.checks),
        "diagnosis": tuple(localize_cause(c, lang) for c in report.diagnosis),
    })


def check_title(check_id: str, lang: str) -> str | None:
    """The check's short title in `lang` (None for an unknown check id)."""
    key = f"title.{check_id}"
    return render(key, {}, lang) if key in CATALOG else None


def check_description(check_id: str, lang: str) -> str | None:
    key = f"check_desc.{check_id}"
    return render(key, {}, lang) if key in CATALOG else None


def cause_description(cause: str, lang: str) -> str | None:
    key = f"cause_desc.{cause}"
    return render(key, {}, lang) if key in CATALOG else None
