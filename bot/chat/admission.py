"""Who may interact with the bot at all: the one admission decision, for every entry point.

A fault trial found that Approve/Deny buttons skipped the admission check that slash commands got, so a
guest on the approver list restarted the app. The cure is structural: there is exactly one function,
`decide`, and every way in — a slash command, every button (alerts, reports, approvals), a console line
(`as UBOB …`), and the approval core itself (`Remediation.click`) — calls it. It is pure (no I/O) so it
can be tested over every entry point with the same table.

Rules, first match wins:

1. guest      — a Slack guest (single- or multi-channel: `is_restricted` / `is_ultra_restricted`) never;
2. other_team — a user whose home team is not the bot's (Slack Connect) never;
3. not_allowed_user — with an allow-list of users, only those (console `as` identities included; the
   console's own operator, who holds the terminal, is the one identity that needs no list entry);
4. channel_disabled — with an allow-list of channels, only interactions made in those channels (Slack only:
   the console has no channel).

Approvers are a further restriction decided in bot/remediation/approvals.py; admission comes first and an approver
who is refused admission (turned into a guest later, say) cannot approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Refusal = Literal["guest", "other_team", "not_allowed_user", "channel_disabled"]
#: Every refusal, in rule order (tests walk it; i18n has `core.<reason>` for each except the historical names).
REFUSALS: tuple[Refusal, ...] = ("guest", "other_team", "not_allowed_user", "channel_disabled")
#: The identity the console front uses for its own operator (not an `as` line).
CONSOLE_OPERATOR = "UCONSOLE"


@dataclass(frozen=True, slots=True)
class Subject:
    """What admission looks at: who, from where. Fronts fill it from the platform's own profile data."""

    user_id: str
    source: str  # "slack" | "console"
    team_id: str = ""
    is_guest: bool = False
    channel_id: str = ""


@dataclass(frozen=True, slots=True)
class Rules:
    """Allow-lists (empty = everyone) and the bot's own team (empty until Slack told us)."""

    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    bot_team_id: str = ""


def decide(who: Subject, rules: Rules) -> Refusal | None:
    """The refusal reason, or None when `who` may interact. The only admission decision there is."""
    if who.is_guest:
        return "guest"
    if rules.bot_team_id and who.team_id and who.team_id != rules.bot_team_id:
        return "other_team"
    if who.source == "slack" and rules.bot_team_id and not who.team_id:
        return "other_team"  # a profile without a home team is not evidence of membership
    operator = who.source == "console" and who.user_id == CONSOLE_OPERATOR
    if rules.allowed_users and who.user_id not in rules.allowed_users and not operator:
        return "not_allowed_user"
    if rules.allowed_channels and who.source == "slack" and who.channel_id not in rules.allowed_channels:
        return "channel_disabled"
    return None
