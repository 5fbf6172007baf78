"""Issue 13, defects 5 and 8: the real bot, the strict fake Slack and the real sandbox.

5. An approval request stayed approvable after its post "failed" (the message reached Slack, the answer did
   not): now approval messages go through the outbox (written with the request in one transaction); an
   uncertain post is looked up, found and used; a post Slack refuses for good cancels the request.
8. Two requests for the same fix and target at the same instant both stayed pending: now the second joins the
   first, one approval message, one run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_remediation import (  # noqa: F401
    ALICE,
    APP,
    BOB,
    CAROL,
    OPS,
    answer_to,
    approval_messages,
    click,
    fake,
    final_state,
    stack,
    start,
)
from tests.fakeslack import FakeSlack
from tests.support.botproc import ROOT


def top_level_approvals(fake: FakeSlack) -> list[Any]:  # noqa: F811
    return [m for m in approval_messages(fake) if not m.thread_ts]


async def audit_rows(db: str | Path) -> list[dict[str, Any]]:
    export = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "audit", "--json", "--db", str(db), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await export.communicate()
    assert export.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.mark.sandbox
async def test_an_approval_post_with_a_lost_answer_is_found_or_cancelled(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str  # noqa: F811
) -> None:
    bot = await start(fake, sandbox_config_file, db)
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        # The post reaches Slack, its answer does not, and the first lookups fail: the approval message goes
        # through the outbox, which never posts it again before a lookup succeeded; then that message is used.
        fake.hang_next("chat.postMessage", 6)
        fake.fail_next("conversations.history", status=500, count=2)
        asked = await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=OPS)
        assert "Approval requested" in await answer_to(fake, asked)
        await bot.wait_line(r"had reached Slack already", timeout=60)
        (message,) = top_level_approvals(fake)
        rid = message.metadata["event_payload"]["op"]
        clicked = await click(fake, "wscheck_approve", rid, BOB, message)
        assert "Approved" in await answer_to(fake, clicked)
        await final_state(fake, message, "succeeded")  # the message found is the one edited
        assert len(top_level_approvals(fake)) == 1
        # Slack refuses the post for good: the request is cancelled, nothing is approvable, the requester is told.
        await asyncio.to_thread(stack.pm2, "stop", APP)
        fake.fail_next("chat.postMessage", error="channel_not_found")
        asked = await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=OPS)
        answer = await answer_to(fake, asked)
        assert "🛑" in answer and "channel_not_found" in answer, answer
        rows = await audit_rows(db)
        (cancelled,) = [r for r in rows if r["kind"] == "cancelled"]
        refused = await fake.send_slash_command(f"approve {cancelled['request_id']}", user_id=BOB, channel_id=OPS)
        assert "cancelled" in await answer_to(fake, refused)
        rows = await audit_rows(db)
        # one run of the first (approved) request: each of its steps (the restart, then `pm2 save`) started once
        steps = len(next(r for r in rows if r["kind"] == "request")["data"]["commands"])
        assert len([r for r in rows if r["kind"] == "execution" and r["data"]["state"] == "started"]) == steps
    finally:
        assert await bot.stop() == 0, bot.log()


@pytest.mark.sandbox
async def test_two_requests_for_the_same_fix_at_once_become_one(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str  # noqa: F811
) -> None:
    bot = await start(fake, sandbox_config_file, db)
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        first, second = await asyncio.gather(
            fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=OPS),
            fake.send_slash_command("restart sandbox", user_id=CAROL, channel_id=OPS))
        answers = sorted([await answer_to(fake, first), await answer_to(fake, second)])
        assert "Approval requested" in answers[0] and "joined" in answers[1], answers
        (message,) = top_level_approvals(fake)
        rid = message.metadata["event_payload"]["op"]
        assert rid in answers[1]
        clicked = await click(fake, "wscheck_approve", rid, BOB, message)
        assert "Approved" in await answer_to(fake, clicked)
        await final_state(fake, message, "succeeded")
        rows = await audit_rows(db)
        assert len([r for r in rows if r["kind"] == "request"]) == 1
        assert len([r for r in rows if r["kind"] == "joined"]) == 1
        steps = len(next(r for r in rows if r["kind"] == "request")["data"]["commands"])  # restart, pm2 save
        assert len([r for r in rows if r["kind"] == "execution" and r["data"]["state"] == "finished"]) == steps
    finally:
        assert await bot.stop() == 0, bot.log()
