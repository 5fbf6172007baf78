"""The alert channel the e2e monitoring tests share: its ids and what counts as an incident's root message."""

from __future__ import annotations

from typing import Any

from tests.fakeslack import FakeSlack

ALERTS = "C0ALERTS"
ALICE = "U0ALICE"


def roots(fake: FakeSlack) -> list[Any]:
    """Incident root messages (what the bot posts at the top level of the alert channel by itself)."""
    return [m for m in fake.messages(ALERTS) if (m.metadata or {}).get("event_type") == "wscheck_alert"]
