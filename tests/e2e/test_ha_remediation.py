"""The leader SIGKILLed while an approved fix runs (issue 14, part 4: "kill it mid-remediation"), with two real
`wscheck run` replicas on the real PostgreSQL, the strict fake Slack and the sandbox.

The fix must take long enough to be killed in the middle of, and what the target did must be countable. So the
test's target names a `pm2_bin` that is a gate in front of the sandbox's real pm2: a `pm2 restart` that arrives
there is counted (one line per arrival, written by the target side itself) and waits until the test says `go`
(it never does) or `cancel`; every other pm2 command goes straight through. The bot, its SSH session, its
allow-listed argv are unchanged: only the time the restart takes is the test's.

While the fix is held, the app is stopped (what a restart looks like from outside): the leader holds the target's
alerts. Then the leader is SIGKILLed. The follower takes over: it marks the request interrupted (audited, told in
the approval message's thread, the message edited), never runs it again (one arrival at the gate, one `execution
started` in the audit and no second), and keeps holding the alerts the dead leader held (the hold is in the store):
its failing probes announce nothing. Nothing is posted twice and nothing stays undelivered in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.test_ha import BOB, TTL, approvals, database, replica  # noqa: F401 - `database` is a fixture
from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS, ALICE, roots
from tests.support.botproc import BotProcess

pytestmark = pytest.mark.sandbox

GATE = """#!/bin/sh
# wscheck tests/e2e/test_ha_remediation.py: a `pm2 restart` waits here until the test releases it.
if [ "$1" = restart ]; then
  echo "$$" >> {dir}/arrivals
  while [ ! -e {dir}/release ]; do sleep 0.1; done
  [ "$(cat {dir}/release)" = go ] || exit 3
fi
exec {pm2} "$@"
"""


class Gate:
    """The pm2 gate on the target (see the module doc), in a directory of its own inside the sandbox's workdir."""

    def __init__(self, sandbox: Any) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pm2-gate-", dir=sandbox.workdir))
        self.dir.chmod(0o777)  # the sandbox user writes its arrivals here
        self.pm2 = self.dir / "pm2"
        self.pm2.write_text(GATE.format(dir=self.dir, pm2=sandbox.pm2_bin))
        self.pm2.chmod(0o755)
        self.config = self.dir / "wscheck.toml"
        self.config.write_text(sandbox.target_toml(pm2_bin=str(self.pm2)))

    def arrivals(self) -> int:
        try:
            return len((self.dir / "arrivals").read_text().split())
        except FileNotFoundError:
            return 0

    def release(self, answer: str) -> None:
        (self.dir / "release").write_text(answer + "\n")


async def until(done: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `done` (a file written on the target side: nothing to wait on) until it holds."""
    for _ in range(int(timeout / 0.05) + 1):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


async def lines_seen(bot: BotProcess, pattern: str, count: int, *, start: int, timeout: float) -> None:
    """Wait until `count` lines after `start` match `pattern`."""
    regex = re.compile(pattern)
    position = start
    for _ in range(count):
        await bot.wait_line(pattern, start=position, timeout=timeout)
        position = next(i for i in range(position, len(bot.lines)) if regex.search(bot.lines[i])) + 1


async def rows(url: str, sql: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_leader_killed_mid_fix_leaves_it_interrupted_never_rerun_and_its_alerts_still_held(
    fake: FakeSlack, sandbox: Any, database: str, healthy: None  # noqa: F811
) -> None:
    fake.add_user(BOB, name="bob")
    gate = Gate(sandbox)
    extra = {"WSCHECK_APPROVERS": BOB, "WSCHECK_RATE_LIMIT": "1000", "WSCHECK_VERIFY_TIMEOUT": "30s"}
    a = await replica(fake, gate.config, database, **extra)
    b: BotProcess | None = None
    try:
        await a.wait_line(r"leader elected: this replica .* leads with token 1\b", timeout=15)
        await a.wait_line(r"full probe sandbox: ok", timeout=30)
        on_a = max(c.id for c in fake.socket.open_connections)
        b = await replica(fake, gate.config, database, **extra)
        await b.wait_line(r"following: .* holds the lease with token 1\b", timeout=15)

        fake.socket.route_to = on_a
        await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=ALERTS)
        message = await fake.wait_for(lambda: next(iter(approvals(fake)), None), timeout=30,
                                      what="the approval message")
        rid = message.metadata["event_payload"]["op"]
        await fake.send_block_action("wscheck_approve", rid, user_id=BOB, channel_id=ALERTS,
                                     message_ts=message.ts, strict=False)
        await a.wait_line(rf"request {rid}: running restart on sandbox", timeout=30)
        await a.wait_line(rf"sandbox: alerts held while fix {rid} runs", timeout=10)
        await until(lambda: gate.arrivals() == 1, 30, "the fix's `pm2 restart` at the gate on the target")

        # What the restart does to the app, seen from outside: it is down. The leader holds the alerts.
        mark = len(a.lines)
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        await lines_seen(a, r"(fast|full) probe sandbox: fail", 3, start=mark, timeout=30)
        assert roots(fake) == [], fake.dump()

        await a.kill()  # SIGKILL by pid, with the fix's command still waiting on the target
        mark = len(b.lines)
        await b.wait_line(r"leader elected: this replica .* leads with token 2\b", timeout=3 * TTL, start=mark)
        await b.wait_line(rf"sandbox: alerts still held for fix {rid} until", timeout=10, start=mark)
        note = await fake.wait_for(
            lambda: next((r for r in fake.replies(ALERTS, message.ts) if "was not run again" in r.text), None),
            timeout=20, what="the interruption told in the approval message's thread")
        assert rid in note.text and "running" in note.text
        await fake.wait_for(lambda: "nterrupted" in fake.message(ALERTS, message.ts).text or None, timeout=20,
                            what="the approval message edited to interrupted")

        # The new leader probes, sees the app down, and stays quiet: the dead leader's hold is its hold.
        await lines_seen(b, r"(fast|full) probe sandbox: fail", 4, start=mark, timeout=30)
        assert roots(fake) == [], f"an alert was posted during the fix's hold after the failover:\n{fake.dump()}"
        assert not [line for line in b.lines if f"request {rid}: running" in line], "the new leader re-ran it"

        gate.release("cancel")  # the dead leader's command, if still waiting on the target, ends without a restart
        mark = len(b.lines)
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        await b.wait_line(r"full probe sandbox: ok", timeout=30, start=mark)
        assert roots(fake) == [], fake.dump()
        assert gate.arrivals() == 1, "the fix reached the target more than once"
        assert len(approvals(fake)) == 1, fake.dump()
        keys = [json.dumps(m.metadata, sort_keys=True) for m in fake.replies(ALERTS, message.ts) if m.metadata]
        assert len(keys) == len(set(keys)), fake.dump()
    finally:
        if b is not None:
            assert await b.stop() == 0, b.log()
        await a.stop()
        with contextlib.suppress(OSError):
            gate.release("cancel")

    audit = [(r["kind"], json.loads(r["data"])) for r in
             await rows(database, "SELECT kind, data FROM audit WHERE request_id = $1 ORDER BY id", rid)]
    executions = [data["state"] for kind, data in audit if kind == "execution"]
    assert executions == ["started"], audit  # recorded before the command ran; never finished, never again
    assert [(data["was"], data["status"]) for kind, data in audit if kind == "interrupted"] == \
        [("running", "interrupted")], audit
    (status,) = await rows(database, "SELECT status FROM approval_requests WHERE id = $1", rid)
    assert status["status"] == "interrupted"
    undelivered = await rows(database, "SELECT id, kind, status FROM outbox WHERE status <> 'sent'")
    assert undelivered == [], f"outbox items lost or failed: {undelivered}"
