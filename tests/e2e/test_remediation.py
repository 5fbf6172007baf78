"""Guarded remediation, adversarially: the real bot process, the strict fake Slack and the real sandbox.

Every test asserts on what really happened on the target (PM2's restart counter), not only on messages.
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

ALICE, BOB, CAROL, EVE, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0EVE", "U0MALLORY"
OPS, ALERTS = "C0OPS", "C0ALERTS"
APP = "kathario-saas"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        for user in (ALICE, BOB, CAROL, EVE):
            server.add_user(user, name=user.lower()[2:])
        server.add_user(MALLORY, name="mallory", team_id="T0OTHER")
        server.add_channel(OPS, "ops")
        server.add_channel(ALERTS, "alerts")
        yield server


@pytest.fixture
async def stack(sandbox: Any, fake: FakeSlack) -> AsyncIterator[Any]:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    fake.reset()
    yield sandbox
    fake.assert_all_acked()
    fake.assert_no_problems()
    await asyncio.to_thread(sandbox.set_mode, "healthy")


def env(fake: FakeSlack, db: str | Path, **extra: str) -> dict[str, str]:
    return {
        "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(db), "WSCHECK_MONITOR": "false", "WSCHECK_APPROVERS": f"{BOB},{CAROL}",
        "WSCHECK_RATE_LIMIT": "1000", "WSCHECK_VERIFY_TIMEOUT": "30s", "WSCHECK_SLACK_TIMEOUT": "3s", **extra,
    }


async def start(fake: FakeSlack, config: Path, db: str | Path, **extra: str) -> BotProcess:
    bot = BotProcess(["run", "--config", str(config)], env(fake, db, **extra), cwd=ROOT)
    await bot.start()
    return bot


def restarts(sandbox: Any) -> int:
    proc = sandbox.app_process()
    return int(proc["pm2_env"]["restart_time"]) if proc else -1


def approval_messages(fake: FakeSlack, channel: str = OPS) -> list[Any]:
    return [m for m in fake.messages(channel) if "wscheck_approve" in json.dumps(m.args.get("blocks") or m.blocks)
            or (m.metadata or {}).get("event_type") == "wscheck_approval"]


async def ask(fake: FakeSlack, text: str, *, user: str = ALICE, channel: str = OPS) -> tuple[Any, str]:
    """`/wscheck restart` and friends: returns the approval message and its request id."""
    before = len(approval_messages(fake, channel))
    await fake.send_slash_command(text, user_id=user, channel_id=channel)
    messages = await fake.wait_for(lambda: approval_messages(fake, channel)[before:] or None, timeout=30,
                                   what=f"approval message for {text!r}")
    message = messages[0]
    request_id = message.metadata["event_payload"]["op"]
    return message, request_id


async def click(fake: FakeSlack, action: str, request_id: str, user: str, message: Any, *,
                wait: bool = True) -> Any:
    return await fake.send_block_action(action, request_id, user_id=user, channel_id=message.channel
                                        if hasattr(message, "channel") else OPS, message_ts=message.ts,
                                        wait_ack=wait, strict=False)


async def answer_to(fake: FakeSlack, envelope: Any) -> str:
    responses = await fake.wait_for(lambda: fake.responses(envelope) or None, timeout=30, what="ephemeral answer")
    return str(responses[-1].get("text", ""))


async def final_state(fake: FakeSlack, message: Any, *states: str, channel: str = OPS) -> Any:
    return await fake.wait_for(
        lambda: fake.message(channel, message.ts) if any(f": {s}" in fake.message(channel, message.ts).text
                                                          for s in states) else None,
        timeout=60, what=f"approval message in state {states}")


async def test_self_approval_and_outsiders_are_refused_and_audited(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db, WSCHECK_APPROVERS=f"{ALICE},{BOB}")
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        before = restarts(stack)
        message, rid = await ask(fake, "restart sandbox", user=ALICE)
        assert "wscheck_approve" in json.dumps(message.blocks) and "pm2 restart kathario-saas" in message.text + \
            json.dumps(message.blocks)
        assert "can't approve your own" in (await answer_to(fake, await click(fake, "wscheck_approve", rid, ALICE,
                                                                              message))).lower()
        assert "not one of the approvers" in await answer_to(fake, await click(fake, "wscheck_approve", rid, EVE,
                                                                               message))
        assert "not one of the approvers" in await answer_to(fake, await click(fake, "wscheck_deny", rid, EVE,
                                                                               message))
        other = await answer_to(fake, await click(fake, "wscheck_approve", rid, MALLORY, message))
        assert "Only members of this workspace" in other or "another" in other.lower()
        assert "pending" in fake.message(OPS, message.ts).text
        assert restarts(stack) == before
        await fake.send_slash_command("history sandbox", user_id=ALICE, channel_id=OPS)
        history = await fake.wait_for(lambda: [m for m in fake.ephemeral(channel=OPS, user=ALICE)
                                               if "Remediation history" in m.text] or None, what="history")
        assert "refused (self_approval)" in history[-1].text and "refused (not_approver)" in history[-1].text
        export = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "audit", "--json", "--db", str(db), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await export.communicate()
        assert export.returncode == 0, err.decode()
        rows = [json.loads(line) for line in out.decode().splitlines()]
        kinds = [row["kind"] for row in rows]
        assert kinds[0] == "request" and kinds.count("click") == 4, kinds
        refused = [row["data"]["reason"] for row in rows if row["kind"] == "click" and not row["data"]["allowed"]]
        assert set(refused) == {"self_approval", "not_approver", "other_team"}, refused
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_double_click_and_two_approvers_at_once_restart_exactly_once(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db)
    try:
        # The app is online: PM2 counts each restart of a running app in restart_time.
        before = restarts(stack)
        message, rid = await ask(fake, "restart sandbox")
        assert "requested by hand" in message.text
        clicks = await asyncio.gather(
            click(fake, "wscheck_approve", rid, BOB, message), click(fake, "wscheck_approve", rid, BOB, message),
            click(fake, "wscheck_approve", rid, CAROL, message), click(fake, "wscheck_approve", rid, CAROL, message))
        answers = [await answer_to(fake, c) for c in clicks]
        assert sum("will run now" in a for a in answers) == 1, answers
        await final_state(fake, message, "succeeded")
        await fake.wait_for(lambda: [r for r in fake.replies(OPS, message.ts) if "Verified healthy" in r.text] or None,
                            timeout=60, what="verified")
        assert restarts(stack) == before + 1
        # A re-delivered envelope of the winning click changes nothing.
        await fake.redeliver(clicks[0])
        await answer_to(fake, clicks[0])
        assert restarts(stack) == before + 1
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_expired_request_cannot_be_approved(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db, WSCHECK_APPROVAL_TTL="3s")
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        before = restarts(stack)
        message, rid = await ask(fake, "restart sandbox")
        await final_state(fake, message, "expired")
        assert "wscheck_approve" not in json.dumps(fake.message(OPS, message.ts).blocks)
        assert "expired" in (await answer_to(fake, await click(fake, "wscheck_approve", rid, BOB, message))).lower()
        assert restarts(stack) == before
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_pending_request_survives_a_bot_restart_then_expires(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db, WSCHECK_APPROVAL_TTL="20s")
    before = restarts(stack)
    message, rid = await ask(fake, "restart sandbox")
    assert await bot.kill() == -9
    bot = await start(fake, sandbox_config_file, db, WSCHECK_APPROVAL_TTL="20s")
    try:
        assert "will run now" in await answer_to(fake, await click(fake, "wscheck_approve", rid, BOB, message))
        await final_state(fake, message, "succeeded")
        assert restarts(stack) == before + 1
        await asyncio.to_thread(stack.pm2, "stop", APP)
        second, _ = await ask(fake, "restart sandbox")
        await final_state(fake, second, "expired")
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_cooldown_refuses_and_says_a_human_should_look(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db, WSCHECK_COOLDOWN="1/1h")
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        message, rid = await ask(fake, "restart sandbox")
        await click(fake, "wscheck_approve", rid, BOB, message)
        await final_state(fake, message, "succeeded")
        await asyncio.to_thread(stack.pm2, "stop", APP)
        env_ = await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=OPS)
        refusal = await fake.wait_for(lambda: [r for r in fake.responses(env_) if "Cooldown" in r.get("text", "")]
                                      or None, what="cooldown refusal")
        assert "a human should look" in refusal[0]["text"]
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_reload_nginx_refused_while_nginx_t_fails(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    await asyncio.to_thread(stack.set_mode, "nginx-invalid")
    bot = await start(fake, sandbox_config_file, db)
    try:
        master = stack.nginx_master_pid()
        message, rid = await ask(fake, "reload-nginx sandbox")
        await click(fake, "wscheck_approve", rid, BOB, message)
        failed = await final_state(fake, message, "failed")
        assert "nginx -t refused to continue" in failed.text + json.dumps(failed.blocks)
        assert stack.nginx_master_pid() == master
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_already_recovered_aborts_without_running(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db)
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        message, rid = await ask(fake, "restart sandbox")
        await asyncio.to_thread(stack.pm2, "start", APP)
        await asyncio.to_thread(stack.set_mode, "healthy")
        before = restarts(stack)
        await click(fake, "wscheck_approve", rid, BOB, message)
        aborted = await final_state(fake, message, "aborted")
        assert "Already recovered" in json.dumps(aborted.blocks) or "changed" in json.dumps(aborted.blocks)
        assert restarts(stack) == before
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_happy_path_from_a_real_alert(
    fake: FakeSlack, stack: Any, sandbox_config_file: Path, db: str
) -> None:
    bot = await start(fake, sandbox_config_file, db, WSCHECK_MONITOR="true", WSCHECK_ALERT_CHANNEL=ALERTS,
                      WSCHECK_CHECK_INTERVAL="2s", WSCHECK_FAST_INTERVAL="1s", WSCHECK_JITTER="0")
    try:
        await asyncio.to_thread(stack.pm2, "stop", APP)
        (root,) = await fake.wait_for(lambda: [m for m in fake.messages(ALERTS) if "pm2_not_online" in m.text]
                                      or None, timeout=30, what="alert")
        assert "Propose restart" in json.dumps(root.blocks)
        await fake.send_block_action("wscheck_propose", "restart sandbox", user_id=ALICE, channel_id=ALERTS,
                                     message_ts=root.ts)
        approval = await fake.wait_for(
            lambda: [r for r in fake.replies(ALERTS, root.ts) if (r.metadata or {}).get("event_type")
                     == "wscheck_approval" and "pending" in r.text] or None, timeout=30, what="approval in the thread")
        rid = approval[0].metadata["event_payload"]["op"]
        await fake.send_block_action("wscheck_approve", rid, user_id=BOB, channel_id=ALERTS,
                                     message_ts=approval[0].ts, strict=False)
        await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, root.ts) if "Verified healthy" in r.text] or None,
                            timeout=60, what="verified in the thread")
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=60,
                            what="incident resolved")
        assert stack.app_status() == "online"
        await fake.send_slash_command("history sandbox", user_id=ALICE, channel_id=ALERTS)
        history = await fake.wait_for(lambda: [m for m in fake.ephemeral(channel=ALERTS, user=ALICE)
                                               if "Remediation history" in m.text] or None, what="history")
        # the restart, then `pm2 save` (wt-host: a fix a reboot undoes is no fix), each recorded as started before
        # it ran, then finished
        text = history[-1].text
        assert text.count("`execution`") == 4 and "→ started" in text and "→ exit 0" in text, text
        assert text.count(" save → exit 0") == 1, text
        assert len(fake.messages(ALERTS)) == 1
    finally:
        assert await bot.stop() == 0, bot.log()
