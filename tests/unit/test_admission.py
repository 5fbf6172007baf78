"""Issue 13, defect 3: one admission decision (bot/chat/admission.py), checked over every entry point.

Entry points: the slash command door (`Bot.admit`), every Slack button the bot registers (the front's own and
every feature's), the console (`as U… <command>` identities) and the approval core (`approvals.click` via
`Remediation.click`). The e2e twin with the real bot is tests/e2e/test_admission.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat import admission as adm
from bot.chat.core import Access, Bot, Requester
from bot.chat.service import CheckService
from bot.fronts.console import ConsoleFront
from bot.remediation import approvals as ap
from bot.settings import load_settings
from bot.store import Store
from checks.config import TargetsConfig
from tests.support.captured import TARGET
from tests.support.sinks import SlackRendering
from tests.support.slackbot import slack_bot
from tests.unit import test_approvals as tap
from tests.unit.test_remediation_harness import APPROVER, harness

TEAM = "T1"
MEMBER = adm.Subject(user_id="U1", source="slack", team_id=TEAM, channel_id="C1")
RULES = adm.Rules(allowed_users=frozenset({"U1", "U2"}), allowed_channels=frozenset({"C1"}), bot_team_id=TEAM)


@pytest.mark.parametrize(("who", "expected"), [
    (MEMBER, None),
    (adm.Subject(user_id="U1", source="slack", team_id=TEAM, channel_id="C1", is_guest=True), "guest"),
    (adm.Subject(user_id="U1", source="slack", team_id="T9", channel_id="C1"), "other_team"),
    (adm.Subject(user_id="U1", source="slack", team_id="", channel_id="C1"), "other_team"),
    (adm.Subject(user_id="U9", source="slack", team_id=TEAM, channel_id="C1"), "not_allowed_user"),
    (adm.Subject(user_id="U1", source="slack", team_id=TEAM, channel_id="C9"), "channel_disabled"),
    (adm.Subject(user_id="U9", source="console"), "not_allowed_user"),
    (adm.Subject(user_id=adm.CONSOLE_OPERATOR, source="console"), None),
    (adm.Subject(user_id="U2", source="console"), None),
])
def test_decision_table(who: adm.Subject, expected: str | None) -> None:
    assert adm.decide(who, RULES) == expected


subjects = st.builds(adm.Subject, user_id=st.sampled_from(["U1", "U2", "U9", adm.CONSOLE_OPERATOR]),
                     source=st.sampled_from(["slack", "console"]), team_id=st.sampled_from(["", TEAM, "T9"]),
                     is_guest=st.booleans(), channel_id=st.sampled_from(["", "C1", "C9"]))
rules = st.builds(adm.Rules, allowed_users=st.frozensets(st.sampled_from(["U1", "U2", "U9"])),
                  allowed_channels=st.frozensets(st.sampled_from(["C1", "C9"])),
                  bot_team_id=st.sampled_from(["", TEAM]))


@given(subjects, rules)
def test_a_guest_is_never_admitted_and_refusals_are_known(who: adm.Subject, rule: adm.Rules) -> None:
    verdict = adm.decide(who, rule)
    assert verdict is None or verdict in adm.REFUSALS
    if who.is_guest:
        assert verdict == "guest"


@given(st.sampled_from(adm.REFUSALS), st.booleans(), st.sampled_from(["A1", "A2", "A3", "REQ"]))
def test_the_approval_core_refuses_whoever_admission_refused(reason: adm.Refusal, approve: bool, user: str) -> None:
    """Whatever the door did, `approvals.click` changes nothing for a clicker admission refused."""
    request = tap.make()
    result = ap.click(request, request_id=request.id, user=user, team_id=tap.TEAM, bot_team_id=tap.TEAM,
                      approve=approve, policy=tap.Q1, now=tap.at(1), admission=reason)
    assert result.outcome == "refused" and result.reason == reason and not result.changed
    assert result.request == request


def make_bot(access: Access) -> Bot:
    settings = load_settings(None)
    return Bot(settings=settings, service=CheckService(TargetsConfig(source="test", targets=(TARGET,))),
               access=access)


async def test_the_console_applies_the_allow_list_to_as_identities() -> None:
    bot = make_bot(Access(allowed_users=frozenset({"UBOB"})))
    out: list[str] = []
    front = ConsoleFront(bot, stdout=None)
    front.write = out.append  # type: ignore[method-assign,assignment]
    await front.handle_line("as UEVE help")
    assert out and "allowed users" in out[-1]
    await front.handle_line("as UBOB help")
    assert "allowed users" not in out[-1]
    await front.handle_line("help")  # the operator at the terminal
    assert "allowed users" not in out[-1]


async def test_every_slack_button_admits_or_hands_to_a_guarded_handler(monkeypatch: pytest.MonkeyPatch,
                                                                      db: str) -> None:
    """Each button the Slack front registers, clicked by a guest: no handler runs with the guest, except the
    guarded approve/deny handlers, which are the approval core (and refuse: previous test)."""
    from bot.chat import handlers
    from bot.fronts.slack import SlackFront
    from bot.remediation.engine import ACTION_APPROVE, ACTION_DENY, Remediation

    bot = slack_bot(monkeypatch, team=TEAM)
    settings = bot.settings
    async with await Store.open(db) as store:
        class NoSink(SlackRendering):
            async def post(self, **_: Any) -> str:
                return "1.0"

            async def update(self, **_: Any) -> None: ...

            async def find(self, **_: Any) -> str | None:
                return None

        async def approvers(_: Any) -> frozenset[str]:
            return frozenset({"U0BOB"})

        remediation = Remediation(settings, bot.service, store, NoSink(), bot_team_id=lambda: TEAM,
                                  approvers=approvers, admission=bot.access.rules)
        handlers.install_remediation(bot, remediation, None)
        reached: list[tuple[str, str]] = []
        for action_id in list(bot.actions):
            async def record(value: str, who: Requester, out: Any, action_id: str = action_id) -> None:
                reached.append((action_id, who.user_id))
            bot.actions[action_id] = record
        front = SlackFront(bot, settings)
        guest = Requester(user_id="U0BOB", team_id=TEAM, channel_id="C1", is_guest=True)

        async def requester(body: dict[str, Any], *, fresh: bool = False) -> Requester:
            return guest

        monkeypatch.setattr(front, "requester", requester)
        answers: list[str] = []

        async def respond(**kwargs: Any) -> None:
            answers.append(str(kwargs.get("text")))

        async def ack(**_: Any) -> None: ...

        from bot import render

        ids = {**{action_id: action_id for action_id in bot.actions},
               "share": render.ACTION_SHARE, "run again": render.ACTION_RUN_AGAIN}
        assert len(ids) >= 5
        for name, action_id in ids.items():
            body = {"user": {"id": "U0BOB"}, "channel": {"id": "C1"},
                    "actions": [{"action_id": action_id, "value": "x"}]}
            await front.on_action(ack=ack, body=body, respond=respond)
            await bot.drain()
            guarded = name in bot.self_guarded
            assert (name, "U0BOB") in reached if guarded else not [r for r in reached if r[0] == name], name
        assert bot.self_guarded == {ACTION_APPROVE, ACTION_DENY}
        assert answers.count("Guests can't use /wscheck in this workspace.") == len(ids) - 2


async def test_remediation_click_refuses_a_guest_and_audits_it(db: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Store.open(db) as store:
        h = harness(store, monkeypatch, "pm2-stopped")
        request = await h.request()
        answer = (await h.remediation.click(request.id, approve=True, who=adm.Subject(
            user_id=APPROVER, source="slack", team_id="T1", is_guest=True))).en
        assert "Guests" in answer and not h.stack.fixes and await h.status(request) is ap.Status.PENDING
        (click,) = [e for e in await store.audit_entries(limit=50) if e["kind"] == "click"]
        assert isinstance(click["data"], dict) and click["data"]["reason"] == "guest"
