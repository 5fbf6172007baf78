"""The real `wscheck run` process against the strict fake Slack and the real sandbox stack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from checks.registry import ITEMS, resolve_selection
from tests.fakeslack import FakeSlack
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

ALICE, BOB, GUEST, OUTSIDER = "U0ALICE", "U0BOB", "U0GUEST", "U0OTHER"
CHAN = "C0OPS"


def running(count: int) -> str:
    """The ack's text for `count` checks (the checklist grows; the count comes from the registry)."""
    return f"running {count} check…" if count == 1 else f"running {count} checks…"


def slack_env(fake: FakeSlack, db: str | Path, **extra: str) -> dict[str, str]:
    return {
        "SLACK_API_URL": fake.api_url,
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_SIGNING_SECRET": fake.signing_secret,
        "WSCHECK_MONITOR": "false",
        "WSCHECK_DB": str(db),
        **extra,
    }


def populate(fake: FakeSlack) -> None:
    fake.add_user(ALICE, name="alice")
    fake.add_user(BOB, name="bob")
    fake.add_user(GUEST, name="guest", is_restricted=True)
    fake.add_user(OUTSIDER, name="outsider", team_id="T0ELSEWHERE")
    fake.add_channel(CHAN, "ops")


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        populate(server)
        yield server


@pytest.fixture(scope="module")
async def bot(fake: FakeSlack, sandbox_config_file: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[BotProcess]:
    db = tmp_path_factory.mktemp("db") / "wscheck.db"
    proc = BotProcess(["run", "--config", str(sandbox_config_file)],
                      slack_env(fake, db, WSCHECK_RATE_LIMIT="100"), cwd=ROOT)
    await proc.start()
    yield proc
    assert await proc.stop() == 0, proc.log()


@pytest.fixture(autouse=True)
async def clean(fake: FakeSlack) -> AsyncIterator[None]:
    fake.reset()
    yield
    fake.assert_all_acked()
    fake.assert_no_problems()


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def final_report(fake: FakeSlack, env: Any, n: int = 1) -> list[dict[str, Any]]:
    """Wait for n report responses (after the progress ack) on the envelope's response_url."""
    return await fake.wait_for(lambda: [r for r in fake.responses(env) if "running" not in r.get("text", "")]
                               if len([r for r in fake.responses(env) if "running" not in r.get("text", "")]) >= n
                               else None, timeout=30, what="report via response_url")


async def test_full_checklist_acks_with_progress_then_replaces_with_report(
    fake: FakeSlack, bot: BotProcess, sandbox: Any
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    env = await fake.send_slash_command("", user_id=ALICE, channel_id=CHAN)
    assert env.acked and env.ack_latency is not None and env.ack_latency < 3
    assert f"running {len(resolve_selection([]))} checks" in json.dumps(env.ack_payload)
    (report,) = await final_report(fake, env)
    assert report["replace_original"] is True
    body = texts(report["blocks"])
    assert "sandbox" in body and "ws.proxy" in body and "healthy" in body.lower()
    assert report.get("response_type", "ephemeral") == "ephemeral"


async def test_single_item_and_broken_stack_names_the_cause(fake: FakeSlack, bot: BotProcess, sandbox: Any) -> None:
    await asyncio.to_thread(sandbox.set_mode, "pm2-stopped")
    env = await fake.send_slash_command("pm2", user_id=ALICE, channel_id=CHAN)
    assert env.ack_payload["text"] == running(len(ITEMS["pm2"]))
    (report,) = await final_report(fake, env)
    body = texts(report["blocks"])
    assert "pm2.status" in body and "nginx.syntax" not in body
    assert "pm2_not_online" in body
    assert "pm2_not_online" in report["text"]
    await asyncio.to_thread(sandbox.set_mode, "healthy")


async def test_typo_gets_usage_and_suggestion(fake: FakeSlack, bot: BotProcess) -> None:
    env = await fake.send_slash_command("pm3", user_id=ALICE, channel_id=CHAN)
    (answer,) = await fake.wait_for(lambda: fake.responses(env) or None, what="typo answer")
    assert "did you mean `pm2`" in texts(answer["blocks"]).lower() and "Usage" in texts(answer["blocks"])


async def test_unknown_target_lists_targets(fake: FakeSlack, bot: BotProcess) -> None:
    env = await fake.send_slash_command("pm2 prod", user_id=ALICE, channel_id=CHAN)
    (answer,) = await fake.wait_for(lambda: fake.responses(env) or None, what="unknown target answer")
    body = texts(answer["blocks"])
    assert "unknown target" in body and "sandbox" in body


async def test_share_and_run_again_buttons(fake: FakeSlack, bot: BotProcess) -> None:
    env = await fake.send_slash_command("nginx", user_id=ALICE, channel_id=CHAN)
    (report,) = await final_report(fake, env)
    buttons = {e["action_id"]: e for b in report["blocks"] if b["type"] == "actions" for e in b["elements"]}
    share, again = buttons["wscheck_share"], buttons["wscheck_run_again"]
    click = await fake.send_block_action("wscheck_share", share["value"], user_id=ALICE, channel_id=CHAN,
                                         container="ephemeral", strict=False)
    shared = await fake.wait_for(lambda: [r for r in fake.responses(click) if r.get("response_type") == "in_channel"]
                                 or None, what="shared report")
    assert "nginx.syntax" in texts(shared[0]["blocks"]) and "shared by" in texts(shared[0]["blocks"])
    assert "wscheck_share" not in texts(shared[0]["blocks"])
    click = await fake.send_block_action("wscheck_run_again", again["value"], user_id=ALICE, channel_id=CHAN,
                                         container="ephemeral", strict=False)
    rerun = await final_report(fake, click)
    assert "nginx.websocket" in texts(rerun[0]["blocks"])


async def test_guests_and_other_teams_are_refused(fake: FakeSlack, bot: BotProcess) -> None:
    for user, why in ((GUEST, "Guests"), (OUTSIDER, "Only members of this workspace")):
        env = await fake.send_slash_command("pm2", user_id=user, channel_id=CHAN)
        answer = await fake.wait_for(lambda env=env, why=why: [r for r in fake.responses(env)
                                                               if why in r.get("text", "")] or None,
                                     what=f"refusal for {user}")
        assert answer


async def test_concurrent_identical_requests_each_get_a_report(fake: FakeSlack, bot: BotProcess) -> None:
    envs = await asyncio.gather(*(fake.send_slash_command("ws", user_id=u, channel_id=CHAN)
                                  for u in (ALICE, BOB, ALICE, BOB)))
    for env in envs:
        (report,) = await final_report(fake, env)
        assert "ws.local" in texts(report["blocks"])


async def test_socket_mode_disconnect_reconnects(fake: FakeSlack, bot: BotProcess) -> None:
    before = fake.total_connections
    await fake.disconnect("refresh_requested")
    await fake.wait_connected(timeout=20, min_total=before + 1)
    env = await fake.send_slash_command("build", user_id=ALICE, channel_id=CHAN)
    (report,) = await final_report(fake, env)
    assert "next.build" in texts(report["blocks"])


async def test_bad_token_is_one_line_error(fake: FakeSlack, sandbox_config_file: Path, db: str) -> None:
    proc = BotProcess(["run", "--config", str(sandbox_config_file)],
                      {**slack_env(fake, db), "SLACK_BOT_TOKEN": "xoxb-wrong"}, cwd=ROOT)
    with pytest.raises(AssertionError, match="exited"):
        await proc.start(timeout=20)
    code = await proc.stop()
    assert code == 78
    errors = [ln for ln in proc.lines if "ERROR" in ln]
    assert len(errors) == 1 and "SLACK_BOT_TOKEN was rejected by Slack (invalid_auth)" in errors[0], proc.log()
    assert not any("Traceback" in ln for ln in proc.lines)


async def test_bot_token_without_app_token_or_http_is_a_clear_error(fake: FakeSlack, sandbox_config_file: Path,
                                                                     db: str) -> None:
    env = slack_env(fake, db)
    env.pop("SLACK_APP_TOKEN")
    proc = BotProcess(["run", "--config", str(sandbox_config_file)], env, cwd=ROOT)
    with pytest.raises(AssertionError, match="exited"):
        await proc.start(timeout=20)
    assert await proc.stop() == 78
    assert any("neither SLACK_APP_TOKEN" in ln for ln in proc.lines), proc.log()


async def test_http_mode_verifies_signatures(fake: FakeSlack, sandbox_config_file: Path, db: str) -> None:
    env = slack_env(fake, db, WSCHECK_HTTP_PORT="0", WSCHECK_HTTP_HOST="127.0.0.1")
    env.pop("SLACK_APP_TOKEN")
    proc = BotProcess(["run", "--http", "--config", str(sandbox_config_file)], env, cwd=ROOT)
    ready = await proc.start(ready=r"wscheck ready: front=slack-http port=(\d+)")
    url = f"http://127.0.0.1:{ready.group(1)}/slack/events"
    try:
        body = fake.slash_command_form("pm2", command="/wscheck", user_id=ALICE, channel_id=CHAN,
                                       team_id=fake.team_id)
        async with aiohttp.ClientSession() as session:
            forged = {**fake.sign(body), "Content-Type": "application/x-www-form-urlencoded"}
            forged["X-Slack-Signature"] = "v0=" + "0" * 64
            async with session.post(url, data=body, headers=forged) as resp:
                assert resp.status == 401
            good = {**fake.sign(body), "Content-Type": "application/x-www-form-urlencoded"}
            async with session.post(url, data=body, headers=good) as resp:
                assert resp.status == 200
                ack = await resp.json(content_type=None)
        assert ack["text"] == running(len(ITEMS["pm2"]))
        posted = await fake.wait_for(
            lambda: [m for m in fake.ephemeral(channel=CHAN, user=ALICE) if "pm2.status" in json.dumps(m.blocks)]
            or None, timeout=30, what="HTTP-mode report through response_url")
        assert "sandbox" in posted[0].text
    finally:
        assert await proc.stop() == 0, proc.log()
