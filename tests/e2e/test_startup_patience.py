"""Issue 13, defect 4: a Slack blip at boot stopped the service for good (exit 78, which systemd never restarts).

The real `wscheck run` against the strict fake Slack: 5xx from auth.test, a refused connection, a failing
apps.connections.open are retried with backoff and logged until Slack answers; only what a human must fix
(invalid_auth and friends) exits 78. SIGTERM while waiting is a clean stop (0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakeslack import FakeSlack
from tests.support.botproc import ROOT, BotProcess


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


pytestmark = pytest.mark.sandbox


@pytest.fixture
def config(sandbox_config_file: Path) -> Path:
    return sandbox_config_file


def bot_for(fake: FakeSlack, tmp_path: Path, config: Path) -> BotProcess:
    return BotProcess(["run", "--config", str(config)], {
        "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(tmp_path / "db"), "WSCHECK_MONITOR": "false", "WSCHECK_SLACK_TIMEOUT": "2s"}, cwd=ROOT)


async def test_server_errors_from_auth_test_are_retried_until_ready(fake: FakeSlack, tmp_path: Path,
                                                                   config: Path) -> None:
    fake.fail_next("auth.test", status=500, count=8)  # the client retries a 500 three times itself: two attempts
    bot = bot_for(fake, tmp_path, config)
    try:
        await bot.start(timeout=60)
        assert any("startup: auth.test failed" in line and "retrying" in line for line in bot.lines), bot.log()
        assert len(fake.calls_to("auth.test")) >= 9
        await fake.wait_connected(timeout=20)
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_a_refused_connection_at_boot_waits_for_slack(fake: FakeSlack, tmp_path: Path, config: Path) -> None:
    await fake.stop()  # Slack (or the network) is down when the bot starts
    bot = bot_for(fake, tmp_path, config)
    try:
        await bot.start(ready=r"startup: auth.test failed .*cannot reach Slack", timeout=60)
        await fake.start()  # ... and comes back on the same address
        await bot.wait_line(r"wscheck ready", timeout=90)
        await fake.wait_connected(timeout=20)
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_socket_mode_open_failure_is_retried(fake: FakeSlack, tmp_path: Path, config: Path) -> None:
    fake.fail_next("apps.connections.open", status=500, count=4)
    bot = bot_for(fake, tmp_path, config)
    try:
        await bot.start(timeout=60)
        assert any("startup: apps.connections.open failed" in line for line in bot.lines), bot.log()
        await fake.wait_connected(timeout=20)
    finally:
        assert await bot.stop() == 0, bot.log()


async def test_sigterm_while_waiting_is_a_clean_stop(fake: FakeSlack, tmp_path: Path, config: Path) -> None:
    await fake.stop()
    bot = bot_for(fake, tmp_path, config)
    await bot.start(ready=r"startup: auth.test failed", timeout=60)
    assert await bot.stop() == 0, bot.log()


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "account_inactive"])
async def test_what_a_human_must_fix_exits_78(fake: FakeSlack, tmp_path: Path, config: Path, error: str) -> None:
    fake.fail_next("auth.test", error=error)
    bot = bot_for(fake, tmp_path, config)
    with pytest.raises(AssertionError, match=r"bot exited \(78\)"):
        await bot.start(timeout=30)
    assert any(error in line for line in bot.lines), bot.log()
    assert len(fake.calls_to("auth.test")) == 1
    await bot.stop()


async def test_a_rejected_app_token_exits_78(fake: FakeSlack, tmp_path: Path, config: Path) -> None:
    fake.fail_next("apps.connections.open", error="invalid_auth")
    bot = bot_for(fake, tmp_path, config)
    with pytest.raises(AssertionError, match=r"bot exited \(78\)"):
        await bot.start(timeout=30)
    assert any("SLACK_APP_TOKEN was rejected" in line for line in bot.lines), bot.log()
    await bot.stop()
