"""`Msg`: a message not rendered yet — a catalog key and its params — and its JSON reference form.

Pure code (checks, diagnosis, the incident and approval machines) builds Msg values and never renders them; the
fronts (Slack, console, CLI text) call `render(lang)`. `en` is the English rendering, for logs, `--json` and the
audit's one-line descriptions. What is stored is the reference (`to_ref()`), never a sentence, so editing a
template changes old notes too and a Korean bot says old notes in Korean.

Three shapes share the type (and the JSON forms that incidents have persisted since before this module):
* a catalog message: key and params; JSON `{"$msg": key, "params": {...}}`. A param may itself be a Msg (a
  translated part of the sentence); plain values (ids, numbers, nginx's own error text) are shown as they are;
* plain text that is not ours (a command, a log line, an OS error, or a note stored as English by an older
  version): key "", shown as is in every language; JSON: the string itself;
* several messages joined by a separator, each translated on its own; JSON `{"$join": [...], "sep": sep}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wsmsg.catalog import CATALOG

PLAIN = ""
JOIN = "$join"


@dataclass(frozen=True, slots=True)
class Msg:
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    # -- rendering ----------------------------------------------------------------------------------------------

    def render(self, lang: str) -> str:
        """This message in `lang`; English when the language or its template cannot be used."""
        if self.key == PLAIN:
            return str(self.params.get("text", ""))
        if self.key == JOIN:
            return str(self.params.get("sep", ", ")).join(m.render(lang) for m in self.params.get("items", ()))
        if self.key not in CATALOG:
            # A reference stored by a version that had this key: say what we know rather than fail a render.
            return self.key
        values = {k: _value(v, lang) for k, v in self.params.items()}
        try:
            return CATALOG.template(self.key, lang).format(**values)
        except (KeyError, IndexError, ValueError, TypeError):
            if lang == "en":
                raise
            return self.render("en")

    @property
    def en(self) -> str:
        """English: logs, `--json`, audit descriptions."""
        return self.render("en")

    @property
    def is_plain(self) -> bool:
        return self.key == PLAIN

    # -- the stored form ----------------------------------------------------------------------------------------

    def to_ref(self) -> Any:
        """The JSON reference (what the store and incidents keep)."""
        if self.key == PLAIN:
            return str(self.params.get("text", ""))
        if self.key == JOIN:
            return {"$join": [m.to_ref() for m in self.params.get("items", ())], "sep": self.params.get("sep", ", ")}
        return {"$msg": self.key, "params": {k: _ref(v) for k, v in self.params.items()}}

    @classmethod
    def from_ref(cls, ref: Any) -> Msg:
        """A message from its JSON reference; any string (including English stored by an older version) is plain
        text, never parsed back into a key."""
        if isinstance(ref, Msg):
            return ref
        if isinstance(ref, dict):
            if "$msg" in ref:
                params = ref.get("params") or {}
                return cls(str(ref["$msg"]), {str(k): _from_param(v) for k, v in params.items()})
            if "$join" in ref:
                return joined([cls.from_ref(item) for item in ref["$join"] or []], str(ref.get("sep", ", ")))
        return verbatim("" if ref is None else str(ref))

    def map_text(self, clean: Callable[[str], str]) -> Msg:
        """A copy with every string param (nested messages included) passed through `clean` (redaction)."""
        if self.key == PLAIN:
            return verbatim(clean(str(self.params.get("text", ""))))
        if self.key == JOIN:
            return joined([m.map_text(clean) for m in self.params.get("items", ())], str(self.params.get("sep")))
        return Msg(self.key, {k: _map(v, clean) for k, v in self.params.items()})


def msg(key: str, **params: Any) -> Msg:
    """The catalog message `key` with `params` (a KeyError for a key no locale file has: a typo fails at once)."""
    if key not in CATALOG:
        raise KeyError(key)
    return Msg(key, params)


def verbatim(text: str) -> Msg:
    """Text that is not ours (a command, a log line, nginx's error): the same in every language."""
    return Msg(PLAIN, {"text": text})


def joined(items: Sequence[Msg], sep: str) -> Msg:
    """Several messages joined with `sep` (each translated on its own)."""
    return Msg(JOIN, {"items": tuple(items), "sep": sep})


def _value(value: Any, lang: str) -> Any:
    if isinstance(value, Msg):
        return value.render(lang)
    return value


def _ref(value: Any) -> Any:
    return value.to_ref() if isinstance(value, Msg) else value


def _from_param(value: Any) -> Any:
    if isinstance(value, dict) and ("$msg" in value or "$join" in value):
        return Msg.from_ref(value)
    return value


def _map(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Msg):
        return value.map_text(clean)
    if isinstance(value, tuple):
        return tuple(_map(v, clean) for v in value)
    if isinstance(value, list):
        return [_map(v, clean) for v in value]
    if isinstance(value, dict):
        return {k: _map(v, clean) for k, v in value.items()}
    return value
