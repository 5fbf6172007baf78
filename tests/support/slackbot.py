"""A Slack-mode `Bot` over the captured target, for in-process tests of the handlers (no Slack, no sandbox)."""

from __future__ import annotations

from typing import Any

from bot.chat.core import Access, Bot
from bot.chat.service import CheckService
from bot.settings import load_settings
from checks.config import TargetsConfig
from tests.support.captured import TARGET


def slack_bot(monkeypatch: Any, *, team: str, approvers: str = "U0BOB") -> Bot:
    """Tokens set (Slack mode), `approvers` configured, the one captured target."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    settings = load_settings(None, approvers=approvers)
    return Bot(settings=settings, service=CheckService(TargetsConfig(source="test", targets=(TARGET,))),
               access=Access(bot_team_id=team))
