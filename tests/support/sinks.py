"""What every test sink shares: the Slack front's rendering of the typed messages (bot/fronts/outgoing.py).

A test sink records what `post`/`update` get; the outbox and the remediation ask the sink to render first,
as the real fronts' sinks do."""

from __future__ import annotations

from typing import Any

from bot.fronts.outgoing import slack
from bot.outgoing import load


class SlackRendering:
    lang = "en"

    def render(self, message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        return slack(load(message), lang=self.lang)
