"""Issue 13, defect 3: a guest approved a fix. The real bot, the strict fake Slack and the real sandbox.

Admission (guests, other teams, allow-lists) is one decision (bot/chat/admission.py) applied at every entry point:
here every kind of button and the slash command, for a guest on the approver list directly, a guest reached
through a user group, and an approver turned into a guest after the bot had cached their profile.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeslack import FakeSlack
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

ALICE, BOB, GUEST, GROUPGUEST = "U0ALICE", "U0BOB", "U0GUEST", "U0GGUEST"
OPS = "C0OPS"
GROUP = "S0OPS"
APP = "kathario-saas"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_user(ALICE, name="alice")
        server.add_user(BOB, name="bob")
        server.add_user(GUEST, name="guest", is_restricted=True)
        server.add_user(GROUPGUEST, name="gguest", is_ultra_restricted=True)
        server.add_usergroup(GROUP, [GROUPGUEST])
        server.add_channel(OPS, "ops")
        yield server


@pytest.fixture
async def stack(sandbox: Any, fake: FakeSlack) -> AsyncIterator[Any]:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    fake.reset()
    for user in (ALICE, BOB):
        fake.workspace.users[user].is_restricted = False
    yield sandbox
    fake.assert_all_acked()
    fake.assert_no_problems()
    await asyncio.to_thread(sandbox.set_mode, "healthy")


def restarts(sandbox: Any) -> int:
    proc = sandbox.app_process()
    return int(proc["pm2_env"]["restart_time"]) if proc else -1


async def answer_to(fake: FakeSlack, envelope: Any) -> str:
    responses = await fake.wait_for(lambda: fake.responses(envelope) or None, timeout=30, what="ephemeral answer")
    return str(responses[-1].get("text", ""))


def approval_messages(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages(OPS) if (m.metadata or {}).get("event_type") == "wscheck_approval"
            and not m.thread_ts]


async def test_guests_never_approve_whatever_the_entry_point(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = BotProcess(["run", "--config", str(sandbox_config_file)], {
        "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false",
        "WSCHECK_APPROVERS": f"{BOB},{GUEST},{GROUP}", "WSCHECK_RATE_LIMIT": "1000",
        "WSCHECK_VERIFY_TIMEOUT": "30s", "WSCHECK_SLACK_TIMEOUT": "3s"}, cwd=ROOT)
    await bot.start()
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        before = restarts(stack)
        # BOB uses the bot first: his (member) profile is now in the bot's cache.
        warm = await fake.send_slash_command("help", user_id=BOB, channel_id=OPS)
        await fake.wait_for(lambda: fake.responses(warm) or None, timeout=30, what="help for BOB")
        await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=OPS)
        (message,) = await fake.wait_for(lambda: approval_messages(fake) or None, timeout=60, what="approval request")
        rid = message.metadata["event_payload"]["op"]
        # The slash command door: a guest is refused.
        refused = await fake.send_slash_command(f"approve {rid}", user_id=GUEST, channel_id=OPS)
        assert "Guests" in await answer_to(fake, refused)
        # Every button door: Approve and Deny, for a direct guest and a guest through a user group.
        for user in (GUEST, GROUPGUEST):
            for action in ("wscheck_approve", "wscheck_deny"):
                click = await fake.send_block_action(action, rid, user_id=user, channel_id=OPS, message_ts=message.ts)
                assert "Guests" in await answer_to(fake, click), (user, action)
        # BOB becomes a guest after the bot cached his profile: his click is a guest's click.
        fake.workspace.users[BOB].is_restricted = True
        click = await fake.send_block_action("wscheck_approve", rid, user_id=BOB, channel_id=OPS,
                                             message_ts=message.ts)
        assert "Guests" in await answer_to(fake, click)
        assert ": pending" in fake.message(OPS, message.ts).text
        assert restarts(stack) == before
        # A member approver who is no guest still can (the door is not simply shut).
        fake.workspace.users[BOB].is_restricted = False
        click = await fake.send_block_action("wscheck_approve", rid, user_id=BOB, channel_id=OPS,
                                             message_ts=message.ts)
        assert "Approved" in await answer_to(fake, click)
        await fake.wait_for(lambda: ": succeeded" in fake.message(OPS, message.ts).text or None, timeout=60,
                            what="the approved restart")
        # Every refused click is in the audit, with admission's reason.
        export = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "audit", "--json", "--db", str(db), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await export.communicate()
        assert export.returncode == 0, err.decode()
        clicks = [row["data"] for row in map(json.loads, out.decode().splitlines()) if row["kind"] == "click"]
        assert [(c["allowed"], c["reason"]) for c in clicks] == [(False, "guest")] * 5 + [(True, None)], clicks
    finally:
        assert await bot.stop() == 0, bot.log()
