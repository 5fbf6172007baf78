"""The templates of every message, per language and domain, read from TOML data files shipped in the package.

`locales/<lang>/<domain>.toml` holds flat quoted keys (`"nginx.syntax.ok" = "nginx -t: syntax ok"`); a domain is
the part of the code that says them (`checks`, `bot`). Keys are unique across domains. Templates are str.format
templates with the same placeholders in every language (tests/unit/test_i18n.py checks it) and no Slack markup:
mentions and dates are added by the Slack renderer.

A few English templates are not in the files because another table is their source of truth (a check's title in
checks/registry.py, a cause's description in checks/causes.py): their owners `register()` them at import.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from importlib import resources

LANGS: tuple[str, ...] = ("en", "ko")
DOMAINS: tuple[str, ...] = ("common", "checks", "bot")

_FORMATTER = string.Formatter()


def placeholders(template: str) -> set[str]:
    """The field names a template uses (for tests: every language must use the same ones)."""
    return {name for _, name, _, _ in _FORMATTER.parse(template) if name is not None}


class Catalog:
    """key -> {lang: template}, plus which domain each key came from."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, str]] = {}
        self.domain: dict[str, str] = {}

    def load(self, lang: str, domain: str, text: str) -> None:
        for key, template in tomllib.loads(text).items():
            if not isinstance(template, str):
                raise ValueError(f"locales/{lang}/{domain}.toml: {key!r} is not a string")
            known = self.domain.setdefault(key, domain)
            if known != domain:
                raise ValueError(f"message key {key!r} is in both {known} and {domain}")
            self.entries.setdefault(key, {})[lang] = template

    def register(self, key: str, texts: Mapping[str, str], domain: str) -> None:
        """Templates whose source of truth is a code table (check titles, cause descriptions)."""
        self.domain.setdefault(key, domain)
        self.entries.setdefault(key, {}).update(texts)

    def domain_entries(self, domain: str) -> dict[str, dict[str, str]]:
        return {key: entry for key, entry in self.entries.items() if self.domain[key] == domain}

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def template(self, key: str, lang: str) -> str:
        entry = self.entries[key]
        return entry.get(lang) or entry["en"]


def _load() -> Catalog:
    catalog = Catalog()
    root = resources.files("wsmsg") / "locales"
    for lang in LANGS:
        for domain in DOMAINS:
            catalog.load(lang, domain, (root / lang / f"{domain}.toml").read_text(encoding="utf-8"))
    return catalog


CATALOG = _load()
