"""Two `wscheck run` replicas on one real PostgreSQL, the strict fake Slack and the sandbox stack (issue 14 part 2).

Both replicas keep a Socket Mode connection; one leads (runs the probes and the outbox). The leader is SIGKILLed
(by its pid) in the middle of an incident or in the middle of posting, or cut from the database by a silent
network; an approval is clicked on the follower while the other leads. The follower takes over within the lease's
TTL plus one fast interval, loads the open incident from the database, and goes on in the same thread: one root
message, no reply twice.
Every wait is for a real event (a log line, a message in the fake channel), never a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_alerts import monitor_env
from tests.fakeslack import FakeSlack
from tests.integration.test_leader_postgresql import SilentRelay
from tests.support.alertchannel import ALERTS, ALICE, roots
from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox

BOB = "U0BOB"
TTL = 3.0
FAST = 1.0


@pytest.fixture
async def database(postgres: Any) -> AsyncIterator[str]:
    name = await postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        await postgres.drop_database(name)


async def replica(fake: FakeSlack, config: Path, url: str, **extra: str) -> BotProcess:
    env = monitor_env(fake, Path("unused"), WSCHECK_LEADER_TTL=f"{TTL:g}s", WSCHECK_FAST_INTERVAL=f"{FAST:g}s",
                      WSCHECK_METRICS_PORT="0", **extra)
    env["WSCHECK_DB"] = url
    bot = BotProcess(["run", "--config", str(config)], env, cwd=ROOT)
    await bot.start()
    return bot


async def ops(bot: BotProcess) -> dict[str, Any]:
    """The replica's /healthz (status and JSON) and /metrics (text)."""
    port = int((await bot.wait_line(r"metrics and health on http://[^:]+:(\d+)/metrics")).group(1))
    async with httpx.AsyncClient(trust_env=False) as client:
        health = await client.get(f"http://127.0.0.1:{port}/healthz")
        metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
    return {"status": health.status_code, "health": health.json(), "metrics": metrics.text}


def thread_replies(fake: FakeSlack, ts: str) -> list[Any]:
    return fake.replies(ALERTS, ts)


def assert_no_reply_twice(fake: FakeSlack, ts: str) -> None:
    """Each message the bot decides has one outbox key, carried in its metadata: no key twice in the thread."""
    keys = [json.dumps(m.metadata, sort_keys=True) for m in thread_replies(fake, ts) if m.metadata]
    assert len(keys) == len(set(keys)), fake.dump()


async def recovers_in_its_thread(fake: FakeSlack, sandbox: Any, root: Any) -> None:
    """The app back: the recovery reply lands in the incident's thread, under its one root, with nothing twice."""
    await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
    await fake.wait_for(lambda: [r for r in thread_replies(fake, root.ts) if "Resolved after" in r.text] or None,
                        timeout=60, what="the recovery reply in the incident's thread")
    assert len(roots(fake)) == 1, fake.dump()
    assert_no_reply_twice(fake, root.ts)


async def test_the_follower_takes_over_a_killed_leader_and_goes_on_in_the_same_thread(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, database: str, healthy: None
) -> None:
    a = await replica(fake, sandbox_config_file, database)
    b: BotProcess | None = None
    try:
        await a.wait_line(r"leader elected: this replica .* leads with token 1\b", timeout=15)
        await a.wait_line(r"full probe sandbox: ok", timeout=30)
        b = await replica(fake, sandbox_config_file, database)
        await b.wait_line(r"following: wscheck pid \d+ .* holds the lease with token 1\b", timeout=15)
        assert len(fake.socket.open_connections) == 2, "both replicas keep their Slack connection"
        leader, follower = await ops(a), await ops(b)
        assert leader["health"]["leader"]["role"] == "leader" and leader["health"]["leader"]["token"] == 1
        assert follower["health"]["leader"]["role"] == "follower" and follower["status"] == 200, follower
        assert follower["health"]["leader"]["lease_age"] < TTL and "monitor" not in follower["health"]
        assert "wscheck_leader 1.0" in leader["metrics"] and "wscheck_leader 0.0" in follower["metrics"]
        assert "wscheck_lease_age_seconds" in follower["metrics"]

        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        root = await fake.wait_for(lambda: next(iter(roots(fake)), None), timeout=40, what="the incident's root")
        assert "pm2_not_online" in root.text
        # Only the leader probes: the follower never ran a check.
        assert not [line for line in b.lines if "full probe sandbox" in line or "fast probe sandbox" in line]

        killed_at = time.monotonic()
        await a.kill()  # SIGKILL by pid: no goodbye, the lease row stays as it was
        mark = len(b.lines)
        await b.wait_line(r"leader elected: this replica .* leads with token 2\b", timeout=3 * TTL, start=mark)
        elected = time.monotonic() - killed_at
        # Elected = its scheduler starts, with the first full check due at once ...
        assert elected <= TTL + FAST, f"the follower took over {elected:.1f} s after the SIGKILL"
        await b.wait_line(r"(full|fast) probe sandbox", timeout=3 * TTL, start=mark)
        checked = time.monotonic() - killed_at
        # ... and done (a checklist of the sandbox takes well under 2 s).
        assert checked <= TTL + FAST + 2.0, f"the new leader's first check ended {checked:.1f} s after the SIGKILL"
        # The open incident goes on: the new leader says so in its thread (never a new root).
        await fake.wait_for(lambda: [r for r in thread_replies(fake, root.ts) if "bot was down" in r.text] or None,
                            timeout=10, what="the takeover note in the incident's thread")

        await recovers_in_its_thread(fake, sandbox, root)
        await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=20,
                            what="the root edited to resolved")
        assert [m for m in fake.messages(ALERTS) if m.ts != root.ts and m.via == "chat.postMessage"] == [], \
            fake.dump()
        after = await ops(b)
        assert after["health"]["leader"]["role"] == "leader" and after["health"]["leader"]["token"] == 2
        assert after["health"]["leader"]["leader_changes"] == 1 and "wscheck_leader_changes 1.0" in after["metrics"]
    finally:
        if b is not None:
            assert await b.stop() == 0, b.log()
        await a.stop()


async def test_an_approval_clicked_on_the_follower_runs_once_on_the_leader(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, database: str, healthy: None
) -> None:
    fake.add_user(BOB, name="bob")
    extra = {"WSCHECK_MONITOR": "false", "WSCHECK_APPROVERS": BOB, "WSCHECK_RATE_LIMIT": "1000",
             "WSCHECK_VERIFY_TIMEOUT": "30s"}
    a = await replica(fake, sandbox_config_file, database, **extra)
    b: BotProcess | None = None
    try:
        await a.wait_line(r"leader elected: this replica .* leads with token 1\b", timeout=15)
        on_a = max(c.id for c in fake.socket.open_connections)
        b = await replica(fake, sandbox_config_file, database, **extra)
        await b.wait_line(r"following: .* holds the lease with token 1\b", timeout=15)
        on_b = max(c.id for c in fake.socket.open_connections)
        assert on_a != on_b
        before = restarts(sandbox)

        fake.socket.route_to = on_a  # the request reaches the leader ...
        request = await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=ALERTS)
        message = await fake.wait_for(lambda: next(iter(approvals(fake)), None), timeout=30,
                                      what="the approval message (posted by the leader's outbox)")
        rid = message.metadata["event_payload"]["op"]
        fake.socket.route_to = on_b  # ... the Approve click the follower
        clicked = await fake.send_block_action("wscheck_approve", rid, user_id=BOB, channel_id=ALERTS,
                                               message_ts=message.ts, strict=False)
        assert (request.connection_id, clicked.connection_id) == (on_a, on_b)
        await b.wait_line(rf"request {rid} approved on this follower; the leader executes it", timeout=15)
        await a.wait_line(rf"request {rid}: running restart on sandbox", timeout=15)
        await fake.wait_for(lambda: "succeeded" in fake.message(ALERTS, message.ts).text or None, timeout=60,
                            what="the approval message edited to succeeded")
        # Verified: the stack is healthy again (a request made while it restarts would be for another problem).
        await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, message.ts) if "Verified healthy" in r.text]
                            or None, timeout=60, what="the fix verified")
        assert restarts(sandbox) == before + 1
        assert not [line for line in b.lines if f"request {rid}: running" in line], "the follower ran it too"
        assert len(approvals(fake)) == 1, fake.dump()

        # The other way round: requested on the follower (queued for the leader's outbox), approved on the leader.
        fake.socket.route_to = on_b
        await fake.send_slash_command("restart sandbox", user_id=ALICE, channel_id=ALERTS)
        second = await fake.wait_for(lambda: approvals(fake)[1] if len(approvals(fake)) > 1 else None, timeout=30,
                                     what="the second approval message")
        rid2 = second.metadata["event_payload"]["op"]
        fake.socket.route_to = on_a
        await fake.send_block_action("wscheck_approve", rid2, user_id=BOB, channel_id=ALERTS, message_ts=second.ts,
                                     strict=False)
        await a.wait_line(rf"request {rid2}: running restart on sandbox", timeout=15)
        await fake.wait_for(lambda: "succeeded" in fake.message(ALERTS, second.ts).text or None, timeout=60,
                            what="the second approval message edited to succeeded")
        assert restarts(sandbox) == before + 2
        assert not [line for line in b.lines if ": running restart" in line]

        # A clean stop of the leader gives the lease up after its last send: the follower takes over at once.
        mark = len(b.lines)
        stopped = time.monotonic()
        assert await a.stop() == 0, a.log()
        await a.wait_line(r"lease given up \(token 1\)", timeout=1)
        await b.wait_line(r"leader elected: this replica .* leads with token 2\b", timeout=TTL, start=mark)
        assert time.monotonic() - stopped < TTL, "the follower waited for the lease to expire"
    finally:
        if b is not None:
            assert await b.stop() == 0, b.log()
        assert await a.stop() == 0, a.log()


def approvals(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages(ALERTS) if (m.metadata or {}).get("event_type") == "wscheck_approval"]


def restarts(sandbox: Any) -> int:
    proc = sandbox.app_process()
    return int(proc["pm2_env"]["restart_time"]) if proc else -1


async def test_a_leader_cut_from_the_database_stops_and_the_follower_goes_on_in_the_thread(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, postgres: Any, database: str, healthy: None
) -> None:
    relay = SilentRelay(postgres.port)
    port = await relay.start()
    a = await replica(fake, sandbox_config_file, database.replace(f":{postgres.port}/", f":{port}/"))
    b: BotProcess | None = None
    try:
        await a.wait_line(r"leader elected: this replica .* leads with token 1\b", timeout=15)
        b = await replica(fake, sandbox_config_file, database)
        await b.wait_line(r"following: .* holds the lease with token 1\b", timeout=15)
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        root = await fake.wait_for(lambda: next(iter(roots(fake)), None), timeout=40, what="the incident's root")

        relay.cut = True  # nothing reaches the database from the leader any more, and nothing says so
        await a.wait_line(r"leadership lost \(expired\) with token 1", timeout=3 * TTL)
        mark = len(b.lines)
        await b.wait_line(r"leader elected: this replica .* leads with token 2\b", timeout=3 * TTL, start=mark)
        assert a.proc is not None
        # It stops by itself (no signal from here), with EX_TEMPFAIL: systemd restarts it as a follower.
        assert await asyncio.wait_for(a.proc.wait(), 60) == 75, a.log()

        await recovers_in_its_thread(fake, sandbox, root)
    finally:
        if b is not None:
            assert await b.stop() == 0, b.log()
        await a.stop()
        await relay.close()


async def test_a_leader_killed_mid_delivery_leaves_nothing_lost_and_nothing_posted_twice(
    fake: FakeSlack, sandbox: Any, sandbox_config_file: Path, database: str, healthy: None
) -> None:
    a = await replica(fake, sandbox_config_file, database)
    b: BotProcess | None = None
    try:
        await a.wait_line(r"leader elected: this replica .* leads with token 1\b", timeout=15)
        b = await replica(fake, sandbox_config_file, database)
        await b.wait_line(r"following: .* holds the lease with token 1\b", timeout=15)
        # The root's post reaches Slack, its answer does not come back before the leader dies.
        fake.hang_next("chat.postMessage", 20)
        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        root = await fake.wait_for(lambda: next(iter(roots(fake)), None), timeout=40, what="the incident's root")
        await a.kill()  # while its post of the root waits for Slack's answer: the outbox item is "uncertain"
        mark = len(b.lines)
        await b.wait_line(r"leader elected: this replica .* leads with token 2\b", timeout=3 * TTL, start=mark)
        await b.wait_line(r"had reached Slack already \(found by metadata\); not posting it again", timeout=20,
                          start=mark)
        await recovers_in_its_thread(fake, sandbox, root)
    finally:
        if b is not None:
            assert await b.stop() == 0, b.log()
        await a.stop()
