"""Console mode: the same bot in a terminal, for newcomers without a Slack app and for tests.

Modelled on opsdroid's shell connector: lines from stdin are commands (`/wscheck pm2`, or just
`pm2`), answers and alerts are printed as text. `as UBOB <command>` runs one line as another
identity, so the approval flow can be tried without Slack.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from bot.chat import commands as cmd
from bot.chat.admission import CONSOLE_OPERATOR
from bot.chat.core import Bot, Requester, Responder
from bot.i18n import text
from bot.render import plain, report_text
from checks.models import TargetReport
from wsmsg import Msg

CONSOLE_USER = CONSOLE_OPERATOR  # admission lets the operator at the terminal through any allow-list
_AS = re.compile(r"^\s*as\s+([A-Z][A-Z0-9]{1,20})\s+(.*)$", re.IGNORECASE)


class ConsoleResponder(Responder):
    """Answers on the terminal, in `lang` (WSCHECK_LANG)."""

    def __init__(self, write: Callable[[str], None], lang: str = "en") -> None:
        self.write = write
        self.lang = lang

    def say(self, key: str, **params: Any) -> str:
        return text(key, **params).render(self.lang)

    async def progress(self, description: Msg, *, count: int, target: str | None) -> None:
        where = target or self.say("render.every_target")
        self.write(self.say(f"render.running.{'one' if count == 1 else 'other'}", n=count, where=where))

    async def reports(self, reports: Sequence[TargetReport], *, command: cmd.RunChecks) -> None:
        self.write("\n\n".join(report_text(r, lang=self.lang) for r in reports))

    async def invalid(self, problem: cmd.Invalid, *, targets: Sequence[str]) -> None:
        lines = [f"✗ {plain(problem.message.render(self.lang))}"]
        if problem.suggestion:
            lines.append(self.say("console.did_you_mean", word=problem.suggestion.replace("`", "")))
        if problem.show_targets:
            lines.append(self.say("console.targets", names=", ".join(targets)))
        if problem.show_usage:
            lines.append("  " + plain(self.say("commands.help").splitlines()[0]) + self.say("console.usage_more"))
        self.write("\n".join(lines))

    async def text(self, text: Msg) -> None:
        self.write(plain(text.render(self.lang)))

    async def announce(self, text: Msg) -> None:
        self.write(plain(text.render(self.lang)))


class ConsoleFront:
    """Reads commands from `stdin` until EOF or `quit`; the bot keeps running (monitoring) after EOF."""

    def __init__(self, bot: Bot, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
                 notice: str = "") -> None:
        self.bot = bot
        #: Said before anything else (e.g. "no wscheck.toml: using the built-in defaults …").
        self.notice = notice
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty()
        self.lang = bot.settings.lang

    def write(self, text: str) -> None:
        self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    def _reader(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        """A daemon thread: a blocked readline() must never keep the process from exiting."""
        try:
            for line in self.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(queue.put_nowait, None)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._reader, args=(loop, queue), name="console-stdin", daemon=True).start()
        if self.notice:
            self.write(self.notice)
        self.write(text("console.welcome").render(self.lang))
        self.write(text("console.targets_line", names=", ".join(self.bot.target_names)).render(self.lang))
        while not stop.is_set():
            self._prompt()
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            stopper.cancel()
            line = getter.result()
            if line is None:
                self.write(text("console.stdin_closed").render(self.lang))
                return
            if line.strip().lower() in ("quit", "exit", "/quit"):
                stop.set()
                return
            if line.strip():
                await self.handle_line(line)

    def _prompt(self) -> None:
        if self.interactive:
            self.stdout.write("wscheck> ")
            self.stdout.flush()

    async def handle_line(self, line: str) -> None:
        who = Requester(user_id=CONSOLE_USER, user_name="console", source="console")
        match = _AS.match(line)
        if match:
            who = Requester(user_id=match.group(1).upper(), user_name=match.group(1).upper(), source="console")
            line = match.group(2)
        out = ConsoleResponder(self.write, self.lang)
        refusal = self.bot.admit(who)
        if refusal:
            await out.text(refusal)
            return
        command = self.bot.parse(line)
        if isinstance(command, cmd.RunChecks):
            await self.bot.progress(command, out)
        await self.bot.handle(command, who, out)

