"""Issue 13 defect 15: SSH comes back and the incident resolves at the next run, with no countdown in any text.

The real `wscheck run` process reaches the sandbox's sshd through a TCP relay this test controls: the relay
cuts every connection and drops new ones (the target "goes away"), then relays again. Before the fix the
transport's backoff had grown to 30 s by then, so the bot looked again only up to 30 s after SSH was back,
and "(next attempt in N s)" was frozen into what it posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS, roots
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

#: Longer than the old backoff's climb to its 30 s cap (attempts at 0, 1, 3, 7, 15, 31 s).
OUTAGE = 32.0
#: From "SSH is back" to the root alert edited "resolved": a couple of runs and the confirmation.
RESOLVE_WITHIN = 12.0


class Relay:
    """127.0.0.1:port -> sshd, switchable: when down, it cuts what it relays and closes whatever connects."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.up = True
        self.dropped = 0
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.dropped += 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {writer, up_writer}
        pipes = {asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))}
        self._pipes |= pipes
        await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def go_down(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def aclose(self) -> None:
        self.go_down()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


async def test_ssh_back_resolves_at_the_next_run_and_no_text_has_a_countdown(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, tmp_path: Path, db: str
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    fake.reset()
    relay = Relay(sandbox.ssh_port)
    await relay.start()
    known = tmp_path / "known_hosts"
    key = (await asyncio.to_thread(Path(sandbox.known_hosts).read_text)).split(" ", 1)[1]
    known.write_text(f"[127.0.0.1]:{relay.port} {key}")
    text = await asyncio.to_thread(sandbox_config_file.read_text)
    text = re.sub(r"(?m)^port = \d+$", f"port = {relay.port}", text)
    text = re.sub(r'(?m)^known_hosts = ".*"$', f'known_hosts = "{known}"', text)
    assert f"port = {relay.port}" in text and str(known) in text
    config = tmp_path / "wscheck.toml"
    config.write_text(text)
    env = {
        "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(db), "WSCHECK_ALERT_CHANNEL": ALERTS,
        "WSCHECK_CHECK_INTERVAL": "2s", "WSCHECK_FAST_INTERVAL": "1s", "WSCHECK_JITTER": "0",
        "WSCHECK_CANARY_PING_INTERVAL": "1s", "WSCHECK_SLACK_TIMEOUT": "2s", "WSCHECK_LOG_LEVEL": "debug",
    }
    bot = BotProcess(["run", "--config", str(config)], env, cwd=ROOT)
    await bot.start()
    try:
        await bot.wait_line(r"full probe sandbox: ok", timeout=30)
        relay.go_down()
        down_at = time.monotonic()
        (root,) = await fake.wait_for(lambda: roots(fake) or None, timeout=30, what="the unreachable alert")
        assert "target_unreachable" in root.text, fake.dump()
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))  # the outage being simulated
        assert relay.dropped >= 2, "the bot never tried again during the outage"
        # SSH comes back just after an attempt failed: the worst moment for a backoff (before: 30 s to wait)
        seen = relay.dropped
        await fake.wait_for(lambda: relay.dropped > seen or None, timeout=40, what="another connection attempt")
        relay.up = True
        back_at = time.monotonic()
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None,
                            timeout=RESOLVE_WITHIN + 30, what="resolved edit")
        took = time.monotonic() - back_at
        assert took < RESOLVE_WITHIN, f"resolved {took:.1f} s after SSH came back:\n{bot.log()}"
        texts = [m.text for m in fake.messages(ALERTS)] + [r.text for r in fake.replies(ALERTS, root.ts)]
        frozen = [t for t in texts if re.search(r"next attempt in|다음 시도까지", t)]
        assert frozen == [], frozen
        fake.assert_no_problems()
    finally:
        code = await bot.stop()
        await relay.aclose()
    assert code == 0, bot.log()
