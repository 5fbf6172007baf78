"""What every test sink shares: the Slack front's rendering of the typed messages (bot/render_outgoing.py).

A test sink records what `post`/`update` get; the outbox and the remediation ask the sink to render first,
as the real fronts' sinks do."""

from __future__ import annotations

from typing import Any

from bot.outgoing import Outgoing
from bot.render_outgoing import slack


class SlackRendering:
    lang = "en"

    def render(self, message: Outgoing) -> tuple[str, list[dict[str, Any]]]:
        return slack(message, lang=self.lang)
