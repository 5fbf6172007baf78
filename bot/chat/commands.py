"""The `/wscheck` grammar: text -> Command. Pure, shared by the Slack and console fronts.

Words from chat are only ever *compared* with the allow-lists below (items, check ids, keywords,
configured target names); a word that matches nothing becomes an `Invalid` with a suggestion. No
word of the text is ever passed on: commands carry canonical names taken from the allow-lists.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.i18n import HELP_EN
from checks.causes import FIX_NAMES
from checks.config import parse_duration
from checks.registry import BY_ID, ITEMS
from wsmsg import Msg, msg

MAX_TEXT = 300
#: The fix words (checks/causes.py FIXES, where a fix is registered).
ACTIONS = FIX_NAMES
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,39}$")
_UNTIL = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^\d{1,5}(?:s|m|h|d)$")
#: Slack wraps some words in markup (<#C1|chan>, <http://x|x>, <@U1>); keep the visible part.
_SLACK_MARKUP = re.compile(r"<[^|>]*\|([^>]*)>|<([^>]*)>")

#: The `/wscheck help` text in English (the fronts render `msg("commands.help")` in their language).
HELP = HELP_EN


@dataclass(frozen=True, slots=True)
class RunChecks:
    checks: tuple[str, ...]  # canonical words: items and check ids (empty = whole checklist)
    target: str | None  # canonical target name, None = every target


@dataclass(frozen=True, slots=True)
class ShowTargets:
    pass


@dataclass(frozen=True, slots=True)
class ShowHelp:
    pass


@dataclass(frozen=True, slots=True)
class ShowStatus:
    pass


@dataclass(frozen=True, slots=True)
class Silence:
    target: str
    seconds: float | None = None  # "30m", "2h"
    until: tuple[int, int] | None = None  # "until HH:MM" in the requester's time zone


@dataclass(frozen=True, slots=True)
class Unsilence:
    target: str


@dataclass(frozen=True, slots=True)
class History:
    target: str | None


@dataclass(frozen=True, slots=True)
class RequestAction:
    action: str  # one of ACTIONS
    target: str | None


@dataclass(frozen=True, slots=True)
class Decide:
    request_id: str
    approve: bool


@dataclass(frozen=True, slots=True)
class Invalid:
    message: Msg
    suggestion: str | None = None
    show_usage: bool = True
    show_targets: bool = False


Command = (
    RunChecks | ShowTargets | ShowHelp | ShowStatus | Silence | Unsilence | History | RequestAction | Decide | Invalid
)

_CHECK_WORDS: dict[str, str] = {**{k: k for k in ITEMS}, **{k: k for k in BY_ID}}
_SIMPLE: dict[str, Callable[[], Command]] = {"targets": ShowTargets, "help": ShowHelp, "status": ShowStatus}
_KEYWORDS = ("all", "targets", "help", "status", "silence", "unsilence", "history", *ACTIONS, "approve", "deny")


def tokenize(text: str) -> list[str]:
    text = _SLACK_MARKUP.sub(lambda m: m.group(1) or m.group(2) or "", text)
    words = text.split()
    if words and words[0].lower() == "/wscheck":
        words = words[1:]
    return words


def _suggest(word: str, vocabulary: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), [v.lower() for v in vocabulary], n=1, cutoff=0.6)
    if not close:
        return None
    for v in vocabulary:
        if v.lower() == close[0]:
            return v
    return None  # pragma: no cover


def _shown(word: str) -> str:
    """A chat word quoted back to the user: bounded and stripped of backticks (it is only displayed)."""
    clean = word.replace("`", "'")
    return clean if len(clean) <= 40 else clean[:39] + "…"


def parse(text: str, targets: Sequence[str]) -> Command:
    """Parse the text after `/wscheck`; `targets` are the configured target names."""
    if len(text) > MAX_TEXT:
        return Invalid(msg("commands.too_long", length=len(text), max=MAX_TEXT))
    words = tokenize(text)
    by_lower = {name.lower(): name for name in targets}

    def target_of(word: str) -> str | None:
        return by_lower.get(word.lower())

    def unknown_target(word: str) -> Invalid:
        return Invalid(msg("commands.unknown_target", word=_shown(word)), suggestion=_suggest(word, targets),
                       show_usage=False, show_targets=True)

    if not words:
        return RunChecks(checks=(), target=None)
    head, rest = words[0].lower(), words[1:]

    if head in _SIMPLE:
        if rest:
            return Invalid(msg("commands.no_arguments", word=head))
        return _SIMPLE[head]()

    if head in ("approve", "deny"):
        if len(rest) != 1 or not _REQUEST_ID.fullmatch(rest[0]):
            return Invalid(msg("commands.usage_decide", word=head))
        return Decide(request_id=rest[0], approve=head == "approve")

    if head in ACTIONS or head in ("history",):
        if len(rest) > 1:
            return Invalid(msg("commands.one_target_max", word=head))
        named: str | None = None
        if rest:
            named = target_of(rest[0])
            if named is None:
                return unknown_target(rest[0])
        return History(target=named) if head == "history" else RequestAction(action=head, target=named)

    if head in ("silence", "unsilence"):
        if not rest:
            return Invalid(msg("commands.usage_silence_target" if head == "silence" else "commands.usage_unsilence"))
        silenced = target_of(rest[0])
        if silenced is None:
            return unknown_target(rest[0])
        if head == "unsilence":
            return Unsilence(silenced) if len(rest) == 1 else Invalid(msg("commands.unsilence_only_target"))
        spec = [w.lower() for w in rest[1:]]
        if len(spec) == 1 and _DURATION.fullmatch(spec[0]):
            seconds = parse_duration(spec[0])
            if not 60 <= seconds <= 30 * 86400:
                return Invalid(msg("commands.silence_range"))
            return Silence(silenced, seconds=seconds)
        if len(spec) == 2 and spec[0] == "until" and (m := _UNTIL.fullmatch(spec[1])):
            return Silence(silenced, until=(int(m.group(1)), int(m.group(2))))
        return Invalid(msg("commands.usage_silence"))

    # Checks: [all|ITEM...] [TARGET], or TARGET alone (items and target in any order).
    checks: list[str] = []
    target: str | None = None
    for index, word in enumerate(words):
        low = word.lower()
        if low == "all" and index == 0:
            continue
        if low in _CHECK_WORDS:
            checks.append(_CHECK_WORDS[low])
            continue
        found = target_of(word)
        if found is not None:
            if target is not None and target != found:
                return Invalid(msg("commands.two_targets", first=target, second=found), show_usage=False)
            target = found
            continue
        if checks or target is not None or index > 0:
            # After an item or `all`, an unknown word was most likely meant as a target.
            suggestion = _suggest(word, [*targets, *_CHECK_WORDS])
            if suggestion in _CHECK_WORDS:
                return Invalid(msg("commands.unknown_item", word=_shown(word)), suggestion=suggestion)
            return unknown_target(word)
        suggestion = _suggest(word, [*_KEYWORDS, *_CHECK_WORDS, *targets])
        return Invalid(msg("commands.unknown_command", word=_shown(word)), suggestion=suggestion)
    return RunChecks(checks=tuple(dict.fromkeys(checks)), target=target)


def describe(command: RunChecks) -> Msg:
    """How a check request is echoed back: `pm2, port on web` / `all checks on every target`."""
    what: str | Msg = ", ".join(command.checks) if command.checks else msg("commands.all_checks")
    if command.target:
        return msg("commands.describe_on", what=what, target=command.target)
    return msg("commands.describe_everywhere", what=what)


def as_text(command: RunChecks) -> str:
    """The canonical `/wscheck` text for a request (what a Run again button re-parses)."""
    return " ".join([*command.checks, *([command.target] if command.target else [])])
