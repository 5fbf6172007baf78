"""Issue 13, defect 2: double root alerts. The real bot, the strict fake Slack, the real sandbox.

`chat.postMessage` stores the message but its answer is lost (a timeout), then the metadata lookup fails too
(500, or 429 three times). Before the fix the outbox forgot the item was uncertain and posted it again: two
roots, one red forever; likewise two "Resolved" replies when `conversations.replies` failed. Now an uncertain
message is posted again only after a lookup that succeeded and did not find it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_alerts import start_bot, wait_root
from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS, roots

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("lookup_failure", ["500", "429x3"])
async def test_a_lost_answer_then_a_failed_lookup_never_doubles_the_root_or_the_reply(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None,
    lookup_failure: str,
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)

    def fail_lookup(method: str) -> None:
        if lookup_failure == "500":
            fake.fail_next(method, status=500)
        else:
            fake.fail_next(method, status=429, retry_after=1, count=3)  # the client retries a 429 twice itself

    try:
        fake.hang_next("chat.postMessage", 5)  # stored by Slack, the answer never reaches the bot (timeout 2 s)
        fail_lookup("conversations.history")
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        (root,) = await wait_root(fake, "pm2_not_online", timeout=40)
        found = await bot.wait_line(r"had reached Slack already", timeout=60)
        assert any("the lookup failed" in line for line in bot.lines), bot.log()
        assert len(roots(fake)) == 1, fake.dump()
        # The resolve's thread reply: the same, with conversations.replies failing.
        fake.hang_next("chat.postMessage", 5)
        fail_lookup("conversations.replies")
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        start = len(bot.lines)
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=60,
                            what="resolved edit")
        await bot.wait_line(r"had reached Slack already", timeout=60, start=start)
        replies = [r for r in fake.replies(ALERTS, root.ts) if r.ts != root.ts and "Resolved after" in r.text]
        assert len(replies) == 1, fake.dump()
        assert len(roots(fake)) == 1, fake.dump()
        assert found
    finally:
        assert await bot.stop() == 0, bot.log()
