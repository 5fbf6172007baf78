"""wsmsg.Msg: one message value, rendered late in any language, stored as a reference (never a sentence)."""

from __future__ import annotations

import json

import pytest

from checks.models import Cause, CheckResult, Status
from wsmsg import CATALOG, Msg, joined, msg, verbatim


def roundtrip(message: Msg) -> Msg:
    return Msg.from_ref(json.loads(json.dumps(message.to_ref())))


def test_a_message_is_rendered_in_the_language_asked_and_nested_parts_follow() -> None:
    nested = msg("remediation.abort_not_applicable",
                 why=msg("actions.listens_elsewhere", listening="[3000]", port="3001"))
    assert nested.en == nested.render("en")
    english, korean = nested.render("en"), nested.render("ko")
    assert "listens on [3000]" in english and "[3000]" in korean and english != korean
    assert roundtrip(nested) == nested
    assert roundtrip(nested).render("ko") == korean


def test_plain_text_is_the_same_in_every_language_and_stored_as_itself() -> None:
    note = verbatim("the bot restarted: ask again")  # e.g. a note stored as English by an older version
    assert note.to_ref() == "the bot restarted: ask again"
    assert Msg.from_ref("the bot restarted: ask again") == note
    assert note.render("ko") == note.render("en") == "the bot restarted: ask again"
    assert Msg.from_ref(None).en == ""


def test_joined_parts_are_each_translated() -> None:
    both = joined([verbatim("port_mismatch"), msg("render.healthy")], ": ")
    assert both.render("en").startswith("port_mismatch: ")
    assert both.render("ko") != both.render("en") and both.render("ko").startswith("port_mismatch: ")
    assert roundtrip(both) == both


def test_an_unknown_key_fails_when_built_and_degrades_when_read_back() -> None:
    with pytest.raises(KeyError):
        msg("no.such.key")
    assert Msg.from_ref({"$msg": "gone.from.the.catalog", "params": {}}).render("ko") == "gone.from.the.catalog"


def test_a_translation_that_cannot_be_filled_falls_back_to_english() -> None:
    CATALOG.register("test.fallback", {"en": "{n} things", "ko": "{missing}개"}, "checks")
    try:
        assert Msg("test.fallback", {"n": 3}).render("ko") == "3 things"
        with pytest.raises(KeyError):
            Msg("test.fallback", {}).render("en")
    finally:
        del CATALOG.entries["test.fallback"], CATALOG.domain["test.fallback"]


def test_map_text_reaches_every_string_param() -> None:
    secret = msg("remediation.abort_not_applicable", why=msg("actions.listens_elsewhere", listening="pw=1", port="2"))
    cleaned = secret.map_text(lambda s: s.replace("pw=1", "pw=***"))
    assert "pw=***" in cleaned.en and "pw=1" not in cleaned.en


def test_results_and_causes_carry_the_message_and_read_older_rows() -> None:
    result = CheckResult(id="pm2.status", status=Status.FAIL, message=msg("unit.s", n=3))
    assert result.summary == "3 s" and "message" in result.model_dump(mode="json")
    older = {"cause": "port_mismatch", "summary": "3 s", "summary_key": "unit.s", "summary_params": {"n": 3},
             "fix": ["pm2 restart web", "3 min"], "fix_keys": [["", {}], ["unit.min", {"n": 3}]]}
    cause = Cause.model_validate(older)
    assert cause.summary == "3 s" and cause.message == msg("unit.s", n=3)
    assert cause.fix == ("pm2 restart web", "3 min") and cause.fixes[0].is_plain
    assert [m.render("ko") for m in cause.fixes] == ["pm2 restart web", "3분"]
    again = Cause.model_validate_json(cause.model_dump_json())
    assert again.model_dump(mode="json") == cause.model_dump(mode="json")
