"""Monitoring end to end: the real `wscheck run` process, the sandbox stack and the strict fake Slack.

Intervals are seconds here (every interval is a setting); assertions wait for real events — a message in
the fake channel, a line in the bot's log — never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS, ALICE, roots
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox



def monitor_env(fake: FakeSlack, db: str | Path, **extra: str) -> dict[str, str]:
    return {
        "SLACK_API_URL": fake.api_url,
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(db),
        "WSCHECK_ALERT_CHANNEL": ALERTS,
        "WSCHECK_CHECK_INTERVAL": "2s",
        "WSCHECK_FAST_INTERVAL": "1s",
        "WSCHECK_JITTER": "0",
        "WSCHECK_CANARY_PING_INTERVAL": "1s",
        "WSCHECK_SLACK_TIMEOUT": "2s",
        "WSCHECK_LOG_LEVEL": "debug",
        **extra,
    }


async def start_bot(fake: FakeSlack, config: Path, db: str | Path, **extra: str) -> BotProcess:
    bot = BotProcess(["run", "--config", str(config)], monitor_env(fake, db, **extra), cwd=ROOT)
    await bot.start()
    await bot.wait_line(r"full probe sandbox: ok", timeout=30)
    return bot


def bot_top_level(fake: FakeSlack) -> list[Any]:
    """Top-level messages the bot posted through the Web API (answers to commands come via response_url)."""
    return [m for m in fake.messages(ALERTS) if m.via == "chat.postMessage"
            and (m.metadata or {}).get("event_type") != "wscheck_alert"]


async def wait_root(fake: FakeSlack, needle: str, *, count: int = 1, timeout: float = 30) -> Any:
    return await fake.wait_for(
        lambda: [m for m in roots(fake) if needle in m.text] if len([m for m in roots(fake) if needle in m.text])
        >= count else None, timeout=timeout, what=f"root alert with {needle!r}")


async def test_pm2_stop_alerts_once_and_start_resolves_the_same_message(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        (root,) = await wait_root(fake, "pm2_not_online")
        assert root.metadata and root.metadata["event_type"] == "wscheck_alert"
        buttons = json.dumps(root.blocks)
        assert "Run checks" in buttons and "Silence 1 h" in buttons
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        edited = await fake.wait_for(lambda: fake.message(ALERTS, root.ts) if "resolved after" in
                                     fake.message(ALERTS, root.ts).text else None, timeout=40, what="resolved edit")
        assert edited.edited
        await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, root.ts) if "Resolved after" in r.text] or None,
                            what="resolved reply")
        assert len(roots(fake)) == 1, fake.dump()
        assert bot_top_level(fake) == [], "nothing but incident roots at the top level of the alert channel"
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_port_mismatch_alert_names_the_cause(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        await asyncio.to_thread(sandbox.set_mode, "port-mismatch")
        await wait_root(fake, "port_mismatch", timeout=40)
        await asyncio.to_thread(sandbox.set_mode, "healthy")
        await fake.wait_for(lambda: all("resolved after" in m.text for m in roots(fake)) or None, timeout=40,
                            what="resolve")
        assert len(roots(fake)) == 1, fake.dump()
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_sigkill_mid_incident_does_not_announce_twice(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
    (root,) = await wait_root(fake, "pm2_not_online")
    assert await bot.kill() == -9
    # Down for longer than a check interval: the restarted bot says so in the thread, not in a new root.
    second = BotProcess(["run", "--config", str(sandbox_config_file)],
                        monitor_env(fake, db, WSCHECK_LOG_LEVEL="debug"), cwd=ROOT)
    await asyncio.sleep(2.5)  # the outage being reported: longer than WSCHECK_CHECK_INTERVAL (2 s)
    await second.start()
    try:
        await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, root.ts) if "bot was down" in r.text] or None,
                            timeout=30, what="bot-was-down reply")
        await second.wait_line(r"full probe sandbox: fail", timeout=30)
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=40,
                            what="resolved after restart")
        assert len(roots(fake)) == 1, fake.dump()
    finally:
        assert await second.stop() == 0, second.log()


async def test_second_bot_on_the_same_database_refuses_to_start(
    fake: FakeSlack, sandbox_config_file: Path, tmp_path: Path, healthy: None
) -> None:
    db = tmp_path / "db"  # SQLite's own single-bot lock (on PostgreSQL a second bot follows: tests/e2e/test_ha.py)
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        twin = BotProcess(["run", "--config", str(sandbox_config_file)], monitor_env(fake, db), cwd=ROOT)
        with pytest.raises(AssertionError, match="exited"):
            await twin.start(timeout=20)
        assert await twin.stop() == 78
        assert any("locked" in line.lower() or "another" in line.lower() for line in twin.lines), twin.log()
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_rate_limits_and_lost_answers_never_lose_or_double_a_message(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        fake.fail_next("chat.postMessage", status=429, retry_after=1, count=4)
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        (root,) = await wait_root(fake, "pm2_not_online", timeout=40)
        # The resolve's thread reply: its answer is lost (the post happens, the response times out).
        fake.hang_next("chat.postMessage", 5)
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=40,
                            what="resolved edit")
        await bot.wait_line(r"had reached Slack already", timeout=40)
        replies = [r for r in fake.replies(ALERTS, root.ts) if r.ts != root.ts]
        assert len([r for r in replies if "Resolved after" in r.text]) == 1, fake.dump()
        assert len(roots(fake)) == 1
        assert len([c for c in fake.calls_to("chat.postMessage") if c.http_status == 429]) == 4
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_flapping_posts_one_notice(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db, WSCHECK_FAILURE_THRESHOLD="1",
                          WSCHECK_SUCCESS_THRESHOLD="1", WSCHECK_FLAP_COUNT="3", WSCHECK_FLAP_WINDOW="10m")
    try:
        for _ in range(4):
            await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
            await bot.wait_line(r"full probe sandbox: fail", start=len(bot.lines), timeout=40)
            await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
            await bot.wait_line(r"full probe sandbox: ok", start=len(bot.lines), timeout=40)
        (root,) = roots(fake)
        await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, root.ts) if "Flapping" in r.text] or None,
                            what="flapping notice")
        flaps = [r for r in fake.replies(ALERTS, root.ts) if "Flapping" in r.text]
        assert len(flaps) == 1, fake.dump()
        assert len(roots(fake)) == 1
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_a_restart_that_heals_is_not_an_incident(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        before = sandbox.app_process()["pid"]
        mark = len(bot.lines)
        # Kill this sandbox's app process by its pid (not `pm2 stop`, and never by name: other sandboxes on
        # the machine run the same command line): PM2 restarts it, as it would in production.
        await asyncio.to_thread(sandbox.kill_app, signal.SIGKILL)
        await bot.wait_line(r"canary sandbox: WebSocket closed|PM2 is restarting the app", start=mark)
        await bot.wait_line(r"full probe sandbox: (ok|warn)", start=len(bot.lines), timeout=40)
        assert sandbox.app_process()["pid"] != before
        assert roots(fake) == [], fake.dump() + "\n" + bot.log()
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_silence_holds_alerts_and_status_shows_it(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, db: str, healthy: None
) -> None:
    bot = await start_bot(fake, sandbox_config_file, db)
    try:
        env = await fake.send_slash_command("silence sandbox 30m", user_id=ALICE, channel_id=ALERTS)
        shown = await fake.wait_for(lambda: [r for r in fake.responses(env) if r.get("response_type") == "in_channel"]
                                    or None, what="silence announced in the channel")
        assert ALICE in shown[0]["text"] and "sandbox" in shown[0]["text"]
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        mark = len(bot.lines)
        await bot.wait_line(r"full probe sandbox: fail", start=mark, timeout=40)
        await bot.wait_line(r"full probe sandbox: fail", start=len(bot.lines), timeout=40)
        assert roots(fake) == [], fake.dump()  # failing twice over, but silenced: nothing posted
        env = await fake.send_slash_command("status", user_id=ALICE, channel_id=ALERTS)
        status = await fake.wait_for(lambda: fake.responses(env) or None, what="status")
        assert "sandbox" in status[-1]["text"] and ALICE in status[-1]["text"]
        env = await fake.send_slash_command("unsilence sandbox", user_id=ALICE, channel_id=ALERTS)
        await fake.wait_for(lambda: fake.responses(env) or None, what="unsilence answer")
        # Still failing when the silence is lifted: the incident is announced now, once.
        (root,) = await wait_root(fake, "pm2_not_online", timeout=40)
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=40,
                            what="resolved")
        assert len(roots(fake)) == 1
    finally:
        assert await bot.stop() == 0, bot.log()
