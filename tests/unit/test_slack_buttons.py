"""The Slack front answers every button through one listener that looks the action id up at click time.

Why: with one Bolt listener per action id registered when the front was built, a feature that registered its
buttons later (bot.actions) got clicks that nobody acked (Slack shows the user an error after 3 s).
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.chat.core import Requester, Responder
from bot.fronts.slack import SlackFront
from tests.support.slackbot import slack_bot

TEAM = "T1"


def click(action_id: str, value: str) -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": "U1", "team_id": TEAM}, "team": {"id": TEAM},
            "channel": {"id": "C1"}, "container": {"type": "message", "message_ts": "1700000000.000100"},
            "message": {"ts": "1700000000.000100"}, "actions": [{"action_id": action_id, "value": value}]}


async def test_a_button_registered_after_the_front_was_built_is_dispatched(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = slack_bot(monkeypatch, team=TEAM)
    front = SlackFront(bot, bot.settings)

    async def user_info(user_id: str, *, fresh: bool = False) -> dict[str, Any]:
        return {"id": user_id, "name": "alice", "team_id": TEAM}

    monkeypatch.setattr(front, "user_info", user_info)
    got: list[tuple[str, str]] = []

    async def late(value: str, who: Requester, out: Responder) -> None:
        got.append((value, who.user_id))

    bot.actions["wscheck_late_feature"] = late  # after SlackFront() was built
    acks: list[object] = []

    async def ack(*_: Any, **__: Any) -> None:
        acks.append(1)

    async def respond(**kwargs: Any) -> None:
        raise AssertionError(f"nothing to tell the clicker: {kwargs}")

    await front.on_action(ack, click("wscheck_late_feature", "v1"), respond)
    await front.on_action(ack, click("wscheck_nobody_knows", "v2"), respond)
    await bot.drain()
    assert got == [("v1", "U1")]
    assert len(acks) == 2  # the unknown one is acked too, never left for Slack to time out
    listeners = [l for l in front.app._async_listeners if l.matchers]  # noqa: E741
    assert len(listeners) == 2, "one slash command listener and one button listener"
