"""The /wscheck grammar: table-driven, plus hypothesis: no input crashes it or escapes the allow-lists."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chat.commands import (
    ACTIONS,
    Decide,
    History,
    Invalid,
    RequestAction,
    RunChecks,
    ShowHelp,
    ShowStatus,
    ShowTargets,
    Silence,
    Unsilence,
    as_text,
    parse,
)
from checks.registry import BY_ID, ITEMS
from tests.support.examples import examples

TARGETS = ["web", "kathario-saas", "Staging"]

TABLE: list[tuple[str, object]] = [
    ("", RunChecks((), None)),
    ("/wscheck", RunChecks((), None)),
    ("all", RunChecks((), None)),
    ("all web", RunChecks((), "web")),
    ("web", RunChecks((), "web")),
    ("STAGING", RunChecks((), "Staging")),
    ("pm2", RunChecks(("pm2",), None)),
    ("PM2 web", RunChecks(("pm2",), "web")),
    ("web pm2", RunChecks(("pm2",), "web")),
    ("nginx.syntax kathario-saas", RunChecks(("nginx.syntax",), "kathario-saas")),
    ("port ws logs", RunChecks(("port", "ws", "logs"), None)),
    ("pm2 pm2", RunChecks(("pm2",), None)),
    ("/wscheck   build   web ", RunChecks(("build",), "web")),
    ("targets", ShowTargets()),
    ("help", ShowHelp()),
    ("status", ShowStatus()),
    ("silence web 30m", Silence("web", seconds=1800.0)),
    ("silence web 2h", Silence("web", seconds=7200.0)),
    ("silence web until 07:30", Silence("web", until=(7, 30))),
    ("unsilence web", Unsilence("web")),
    ("history", History(None)),
    ("history web", History("web")),
    ("restart", RequestAction("restart", None)),
    ("reload-nginx web", RequestAction("reload-nginx", "web")),
    ("fix-port web", RequestAction("fix-port", "web")),
    ("approve R-7F3K2Q", Decide("R-7F3K2Q", True)),
    ("deny R-7F3K2Q", Decide("R-7F3K2Q", False)),
    ("<@U123|bob> pm2", Invalid("unknown command or item `bob`")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_table(text: str, expected: object) -> None:
    result = parse(text, TARGETS)
    if isinstance(expected, Invalid):
        assert isinstance(result, Invalid)
        assert result.message.en == expected.message
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("text", "needle", "suggestion"),
    [
        ("pm3", "unknown command or item `pm3`", "pm2"),
        ("ngnix", "unknown command or item", "nginx"),
        ("pm2 wbe", "unknown target `wbe`", "web"),
        ("all prod", "unknown target `prod`", None),
        ("pm2 logz", "unknown item `logz`", "logs"),
        ("restart prod", "unknown target", None),
        ("silence web forever", "usage: `silence", None),
        ("silence web 0m", "from 1m to 30d", None),
        ("silence web until 25:00", "usage", None),
        ("help me", "takes no arguments", None),
        ("web staging", "one target at most", None),
        ("approve $(reboot)", "usage: `approve REQUEST_ID`", None),
        ("x" * 400, "too long", None),
    ],
)
def test_errors_say_why_and_suggest(text: str, needle: str, suggestion: str | None) -> None:
    result = parse(text, TARGETS)
    assert isinstance(result, Invalid)
    assert needle in result.message.en
    assert result.suggestion == suggestion


def test_unknown_target_lists_targets() -> None:
    result = parse("pm2 nope", TARGETS)
    assert isinstance(result, Invalid) and result.show_targets


def test_run_again_text_round_trips() -> None:
    for text in ("pm2 web", "nginx.syntax port", "", "web"):
        command = parse(text, TARGETS)
        assert isinstance(command, RunChecks)
        assert parse(as_text(command), TARGETS) == command


ALLOWED = {*ITEMS, *BY_ID, *TARGETS, *ACTIONS}


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        return [s for v in value for s in _strings_in(v)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in _strings_in(getattr(value, f.name))]
    return []


words = st.sampled_from([*ITEMS, *BY_ID, *TARGETS, "all", "silence", "until", "12:30", "30m", "approve", "deny",
                         "restart", "history", "status", ";", "$(id)", "`rm -rf /`", "<@U1>", "ｐｍ２", "\x00"])


@settings(max_examples=examples(400), deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(words, max_size=6).map(" ".join)))
def test_no_input_crashes_or_escapes_the_allow_lists(text: str) -> None:
    result = parse(text, TARGETS)
    if isinstance(result, Invalid):
        return
    for value in _strings_in(result):
        if isinstance(result, Decide):
            assert value.replace("-", "").isalnum()
        else:
            assert value in ALLOWED, (text, result)
