"""Issue 13, defects 10, 11 and 12: the real bot against the strict fake Slack.

10. A response_url 500 lost the report silently: now retried, then sent as an ephemeral message.
11. A Socket Mode envelope delivered twice was processed twice: now processed once.
12. HTTP mode: an unsigned POST with a non-JSON `payload` got a 500 and a traceback per request: now a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_slack_front import ALICE, CHAN, populate, slack_env
from tests.fakeslack import FakeSlack
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        populate(server)
        yield server


@pytest.fixture
async def bot(fake: FakeSlack, sandbox_config_file: Path, db: str) -> AsyncIterator[BotProcess]:
    proc = BotProcess(["run", "--config", str(sandbox_config_file)],
                      slack_env(fake, db, WSCHECK_RATE_LIMIT="100"), cwd=ROOT)
    await proc.start()
    await fake.wait_connected(timeout=20)
    yield proc
    assert await proc.stop() == 0, proc.log()


def usage(fake: FakeSlack, via: str) -> list[object]:
    return [m for m in fake.ephemeral(channel=CHAN, user=ALICE) if m.via == via and "Usage" in m.text]


async def test_a_failing_response_url_falls_back_to_an_ephemeral_message(fake: FakeSlack, bot: BotProcess) -> None:
    fake.fail_next("response_url", status=500, count=3)
    await fake.send_slash_command("help", user_id=ALICE, channel_id=CHAN)
    (_answer,) = await fake.wait_for(lambda: usage(fake, "chat.postEphemeral") or None, timeout=30,
                                     what="the answer as an ephemeral message")
    assert usage(fake, "response_url") == []
    await bot.wait_line(r"response_url post for U0ALICE failed \(HTTP 500\)")
    fake.assert_all_acked()


async def test_a_response_url_blip_is_retried(fake: FakeSlack, bot: BotProcess) -> None:
    fake.fail_next("response_url", status=500, count=1)
    await fake.send_slash_command("help", user_id=ALICE, channel_id=CHAN)
    await fake.wait_for(lambda: usage(fake, "response_url") or None, timeout=30, what="the retried answer")
    assert usage(fake, "chat.postEphemeral") == []


async def test_a_redelivered_envelope_is_processed_once(fake: FakeSlack, bot: BotProcess) -> None:
    envelope = await fake.send_slash_command("help", user_id=ALICE, channel_id=CHAN)
    await fake.wait_for(lambda: fake.responses(envelope) or None, timeout=30, what="the first answer")
    again = await fake.redeliver(envelope)
    assert again.acked
    await bot.wait_line(r"delivered again \(retry 1\): acked, not processed again")
    assert len(fake.responses(envelope)) == 1
    fake.assert_all_acked()


async def test_http_mode_answers_400_to_a_malformed_body(fake: FakeSlack, sandbox_config_file: Path,
                                                         db: str) -> None:
    env = slack_env(fake, db, WSCHECK_HTTP_PORT="0", WSCHECK_HTTP_HOST="127.0.0.1")
    env.pop("SLACK_APP_TOKEN")
    proc = BotProcess(["run", "--http", "--config", str(sandbox_config_file)], env, cwd=ROOT)
    ready = await proc.start(ready=r"wscheck ready: front=slack-http port=(\d+)")
    url = f"http://127.0.0.1:{ready.group(1)}/slack/events"
    try:
        async with aiohttp.ClientSession() as session:
            for body, kind in ((b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
                               (b"{not json", "application/json"), (b"\xff\xfe", "application/json")):
                async with session.post(url, data=body, headers={"Content-Type": kind}) as resp:
                    assert resp.status == 400, (body, resp.status)
        await proc.wait_line(r"400 for a malformed request")
        assert not any("Traceback" in line for line in proc.lines), proc.log()
    finally:
        assert await proc.stop() == 0, proc.log()
