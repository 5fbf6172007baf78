"""Issue 13 defect 1: a command that hangs on the target is ended there, and the bot recovers at once.

The real `wscheck run` process, the real sandbox over SSH and the strict fake Slack. `pm2` is a wrapper
whose `jlist` hangs for good when it starts while a flag file exists, like a client stuck on a dead daemon
socket: it never answers, even after the daemon does. Before the fix each probe left one behind, sshd
counted its session against MaxSessions (10), and after about ten probes every check said "SSH server
refused a new channel", long after pm2 answered again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

FAST = 1.0
COMMAND_TIMEOUT = 2.0
#: Probes that must start (and hang) before the test lets pm2 answer: more than MaxSessions (10).
HUNG_PROBES = 12
#: checks/transport/ssh.py KILL_AFTER: how long after the TERM the target KILLs a hung command.
KILL_AFTER = 2.0

WRAPPER = """#!/bin/sh
# pm2 for this test: a `jlist` started while {flag} exists hangs for good (records its pid first).
if [ "$1" = jlist ] && [ -e {flag} ]; then
    echo "$$" >> {hung}
    while :; do sleep 1; done
fi
exec {real} "$@"
"""


@pytest.fixture
def hang_dir(sandbox: Any) -> Iterator[Path]:
    """A directory the sandbox user can read and write (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="wscheck-hang-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def alive(pid: int, needle: str) -> bool:
    """`pid` is still one of the wrappers this test started (its command line names our wrapper)."""
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False


async def until(done: Callable[[], bool], timeout: float) -> None:
    """Poll `done` (a /proc look-up: nothing to wait on) until it holds or `timeout` s pass."""
    for _ in range(int(timeout / 0.05) + 1):
        if done():
            return
        await asyncio.sleep(0.05)


def hung_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


async def test_a_hung_pm2_jlist_is_ended_on_the_target_and_the_bot_recovers_at_once(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, hang_dir: Path, tmp_path: Path, db: str
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    fake.reset()
    flag, hung, wrapper = hang_dir / "hang", hang_dir / "hung.pids", hang_dir / "pm2"
    hung.touch()
    hung.chmod(0o666)
    wrapper.write_text(WRAPPER.format(flag=flag, hung=hung, real=sandbox.pm2_bin))
    wrapper.chmod(0o755)
    config = tmp_path / "wscheck.toml"
    text = await asyncio.to_thread(sandbox_config_file.read_text)
    text = text.replace(f'pm2_bin = "{sandbox.pm2_bin}"', f'pm2_bin = "{wrapper}"')
    assert str(wrapper) in text
    config.write_text(text + f"command_timeout = {COMMAND_TIMEOUT:g}\n")
    env = {
        "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
        "WSCHECK_DB": str(db), "WSCHECK_ALERT_CHANNEL": ALERTS,
        "WSCHECK_CHECK_INTERVAL": "2s", "WSCHECK_FAST_INTERVAL": f"{FAST:g}s", "WSCHECK_JITTER": "0",
        "WSCHECK_CANARY_PING_INTERVAL": "1s", "WSCHECK_SLACK_TIMEOUT": "2s", "WSCHECK_LOG_LEVEL": "debug",
    }
    bot = BotProcess(["run", "--config", str(config)], env, cwd=ROOT)
    await bot.start()
    try:
        await bot.wait_line(r"full probe sandbox: ok", timeout=30)
        flag.touch()
        most_alive = 0
        deadline = time.monotonic() + 90
        while len(hung_pids(hung)) < HUNG_PROBES:
            live = [p for p in hung_pids(hung) if alive(p, str(wrapper))]
            most_alive = max(most_alive, len(live))
            # fast probe, full probe and a confirmation may each have one jlist under way, no more
            assert len(live) <= 4, f"{len(live)} hung pm2 jlist still running on the target:\n{bot.log()}"
            assert not any("refused a new channel" in line for line in bot.lines), bot.log()
            assert time.monotonic() < deadline, f"only {len(hung_pids(hung))} probes in 90 s:\n{bot.log()}"
            await asyncio.sleep(0.1)
        assert most_alive >= 1, "the hang was never seen running: the test would prove nothing"
        flag.unlink()
        released = len(bot.lines)
        # Probes that started before the release may still hang until their own deadline; the first
        # fast probe that starts after it answers.
        await bot.wait_line(r"fast probe sandbox: ok", start=released,
                            timeout=FAST + COMMAND_TIMEOUT + KILL_AFTER + 2)
        # Runs of the fast probe never overlap (max_instances=1): the result after the first "started" line
        # past the release is that run's. It is ok: no session left over, no backoff to sit out.
        after = bot.lines[released:]
        first = next(i for i, line in enumerate(after) if "fast:sandbox started" in line)
        result = next(line for line in after[first:] if "fast probe sandbox:" in line)
        assert "fast probe sandbox: ok" in result, f"first fast probe after the release: {result}\n{bot.log()}"
        await fake.wait_for(lambda: all("resolved after" in m.text for m in fake.messages(ALERTS)
                                        if (m.metadata or {}).get("event_type") == "wscheck_alert") or None,
                            timeout=20, what="every incident root resolved")
        await until(lambda: not any(alive(p, str(wrapper)) for p in hung_pids(hung)), COMMAND_TIMEOUT + KILL_AFTER + 2)
        left = [p for p in hung_pids(hung) if alive(p, str(wrapper))]
        assert left == [], f"hung commands left on the target: {left}"
        assert not any("refused a new channel" in line for line in bot.lines), bot.log()
        fake.assert_no_problems()
    finally:
        flag.unlink(missing_ok=True)
        code = await bot.stop()
        for pid in hung_pids(hung):  # only what this test started, by pid
            if alive(pid, str(wrapper)):
                os.kill(pid, signal.SIGKILL)
    assert code == 0, bot.log()
