"""What the bot does with a `/wscheck` command, whichever front it came from.

Fronts (Slack, console) turn their events into a `Requester` and a `Responder` and call
`Bot.handle()`; they never decide anything themselves (opsdroid's connector/skill split). The
Responder renders: Block Kit for Slack, text for the console.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.chat import admission
from bot.chat import commands as cmd
from bot.chat.service import CheckService, RateLimiter
from bot.i18n import text
from bot.ops.tasks import Background
from bot.settings import Settings
from checks.messages import where_msg
from checks.models import TargetReport
from checks.registry import resolve_selection
from wsmsg import Msg, joined

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    team_id: str = ""  # the user's home team (differs from the bot's for Slack Connect users)
    is_guest: bool = False
    tz: str = "UTC"
    source: str = "slack"  # "slack" | "console"
    message_ts: str = ""  # for a button: the message it sits on
    thread_ts: str = ""  # ... and that message's thread, if it is a reply
    message_ephemeral: bool = False  # ... and whether only the clicker sees it (no thread can hang from it)

    def thread_of_message(self) -> str:
        """The thread a reply about the clicked message belongs in ("" when it has none: a command, an
        ephemeral message)."""
        if self.thread_ts:
            return self.thread_ts
        return "" if self.message_ephemeral else self.message_ts

    def subject(self) -> admission.Subject:
        """What admission decides on (bot/chat/admission.py)."""
        return admission.Subject(user_id=self.user_id, source=self.source, team_id=self.team_id,
                                 is_guest=self.is_guest, channel_id=self.channel_id)


class Responder(ABC):
    """How a front answers one request. Methods may be called several times (progress, then result)."""

    @abstractmethod
    async def progress(self, description: Msg, *, count: int, target: str | None) -> None: ...

    @abstractmethod
    async def reports(self, reports: Sequence[TargetReport], *, command: cmd.RunChecks) -> None: ...

    @abstractmethod
    async def invalid(self, problem: cmd.Invalid, *, targets: Sequence[str]) -> None: ...

    @abstractmethod
    async def text(self, text: Msg) -> None:
        """Help, target lists, refusals: short mrkdwn-ish text, shown only to the requester (the front renders the
        message in its language)."""

    @abstractmethod
    async def announce(self, text: Msg) -> None:
        """Shown to the whole channel where the request was made (silences say who and until when)."""


@dataclass
class Access:
    """Who may ask: allow-lists of channel and user IDs (empty = everyone), never guests or other teams.

    The decision itself is bot/chat/admission.py's `decide`, the one function every entry point calls.
    """

    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    bot_team_id: str = ""

    def rules(self) -> admission.Rules:
        return admission.Rules(allowed_users=self.allowed_users, allowed_channels=self.allowed_channels,
                               bot_team_id=self.bot_team_id)

    def reason(self, who: Requester) -> admission.Refusal | None:
        return admission.decide(who.subject(), self.rules())

    def refusal(self, who: Requester) -> Msg | None:
        reason = self.reason(who)
        return text(_REFUSAL_KEYS[reason]) if reason else None


#: What the door says for each admission refusal.
_REFUSAL_KEYS: dict[admission.Refusal, str] = {
    "guest": "core.guest", "other_team": "core.other_team", "not_allowed_user": "core.not_allowed_user",
    "channel_disabled": "core.channel_disabled",
}


@dataclass(frozen=True, slots=True)
class CheckPlan:
    targets: list[str]
    count: int  # checks per target

    @property
    def shown_target(self) -> str | None:
        """The target named in progress messages (None: several)."""
        return self.targets[0] if len(self.targets) == 1 else None


Handler = Callable[[cmd.Command, Requester, Responder], Awaitable[None]]
#: A button: (its value, who clicked, how to answer the clicker).
ActionHandler = Callable[[str, Requester, Responder], Awaitable[None]]


@dataclass
class Bot:
    settings: Settings
    service: CheckService
    access: Access = field(default_factory=Access)
    extra_handlers: dict[type, Handler] = field(default_factory=dict)
    actions: dict[str, ActionHandler] = field(default_factory=dict)
    #: Buttons whose handler decides admission itself, with the same `admission.decide`, and audits every click
    #: (approve/deny → Remediation.click): the front hands even a click it would refuse over, so that the refusal
    #: reaches the audit log. A handler listed here must call `admission.decide`.
    self_guarded: set[str] = field(default_factory=set)
    #: Extra buttons for a report (remediation adds "Propose restart" for a fixable root cause).
    report_buttons: Callable[[TargetReport], list[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.rate_limit, self.settings.rate_window)
        self._work = Background("request")

    @property
    def target_names(self) -> list[str]:
        return [x.name for x in self.service.targets]

    def spawn(self, coro: Awaitable[None], *, name: str) -> None:
        """Run work after the front has acked; errors are logged, never lost silently."""
        self._work.spawn(coro, name=name)

    async def drain(self) -> None:
        """Wait for running requests (graceful shutdown)."""
        await self._work.drain()

    def parse(self, text: str) -> cmd.Command:
        return cmd.parse(text, self.target_names)

    def admit(self, who: Requester) -> Msg | None:
        """A refusal message, or None when this requester may run a command now."""
        refusal = self.access.refusal(who)
        if refusal:
            return refusal
        allowed, wait = self.limiter.allow(who.user_id)
        if not allowed:
            return text("core.rate_limited", limit=self.limiter.limit, window=self.limiter.window, wait=wait)
        return None

    def plan(self, command: cmd.RunChecks) -> CheckPlan:
        """Which targets a check request covers and how many checks run on each."""
        names = [command.target] if command.target else self.target_names
        return CheckPlan(targets=names, count=len(resolve_selection(list(command.checks))))

    async def progress(self, command: cmd.RunChecks, out: Responder) -> None:
        """The immediate "running N checks on TARGET…" answer."""
        plan = self.plan(command)
        await out.progress(cmd.describe(command), count=plan.count, target=plan.shown_target)

    async def handle(self, command: cmd.Command, who: Requester, out: Responder) -> None:
        """Do what the (already admitted) command asks and answer through `out`."""
        if isinstance(command, cmd.Invalid):
            await out.invalid(command, targets=self.target_names)
        elif isinstance(command, cmd.ShowHelp):
            await out.text(text("commands.help"))
        elif isinstance(command, cmd.ShowTargets):
            lines = [text("core.target_line", name=x.name, where=where_msg(x.where), app=x.pm2_app, port=x.app_port,
                          url=x.public_url) for x in self.service.targets]
            await out.text(joined([text("core.targets_title"), *lines], "\n"))
        elif isinstance(command, cmd.RunChecks):
            await self.run_checks(command, out)
        elif type(command) in self.extra_handlers:
            await self.extra_handlers[type(command)](command, who, out)
        else:
            await out.text(text("core.not_enabled"))

    async def run_checks(self, command: cmd.RunChecks, out: Responder) -> None:
        names = self.plan(command).targets
        reports = await asyncio.gather(*(self.service.run(name, command.checks) for name in names))
        await out.reports(reports, command=command)
