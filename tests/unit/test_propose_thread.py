"""A Propose button's approval goes in the thread of the message that carried the button.

It used to be threaded only when the monitor already knew that message as an incident's root: a click that
raced the outbox recording the root's ts (the CI flake of test_happy_path_from_a_real_alert) put the approval
in the channel instead. The message the button sits on is known from the click itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.chat import handlers
from bot.chat.core import Requester
from bot.remediation.engine import ACTION_PROPOSE, Remediation
from bot.store import Store
from tests.support.captured import TARGET
from tests.support.sinks import SlackRendering
from tests.support.slackbot import slack_bot

TEAM = "T1"


class RecordingSink(SlackRendering):
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    async def post(self, **kwargs: Any) -> str:
        self.posts.append(kwargs)
        return f"{len(self.posts)}.0"

    async def update(self, **_: Any) -> None: ...

    async def find(self, **_: Any) -> str | None:
        return None


class Said:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def text(self, text: str) -> None:
        self.texts.append(text)


@pytest.mark.parametrize(("who", "thread"), [
    (Requester(user_id="U1", team_id=TEAM, channel_id="C1", message_ts="1700000000.000100"), "1700000000.000100"),
    (Requester(user_id="U1", team_id=TEAM, channel_id="C1", message_ts="1700000000.000200",
               thread_ts="1700000000.000100"), "1700000000.000100"),
    (Requester(user_id="U1", team_id=TEAM, channel_id="C1", message_ts="1700000000.000100",
               message_ephemeral=True), None),
])
async def test_a_propose_click_threads_under_the_message_it_sits_on(db: str, monkeypatch: pytest.MonkeyPatch,
                                                                    who: Requester, thread: str | None) -> None:
    bot = slack_bot(monkeypatch, team=TEAM)
    settings = bot.settings
    async with await Store.open(db) as store:
        async def approvers(_: Any) -> frozenset[str]:
            return frozenset({"U0BOB"})

        sink = RecordingSink()
        remediation = Remediation(settings, bot.service, store, sink, bot_team_id=lambda: TEAM,
                                  approvers=approvers, admission=bot.access.rules)
        handlers.install_remediation(bot, remediation, None)  # no monitor: no incident knows this message
        said = Said()
        await bot.actions[ACTION_PROPOSE](f"restart {TARGET.name}", who, said)  # type: ignore[arg-type]
        (post,) = sink.posts
        assert post["thread_ts"] == thread, said.texts
