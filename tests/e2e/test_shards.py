"""Three `wscheck run` replicas with WSCHECK_SHARDS=auto on one real PostgreSQL, the strict fake Slack and the
sandbox stack listed under six target names (issue 14 part 3).

Each target is probed by exactly one replica; an outage opens one incident per target, each with one root (posted
by the leader's outbox, whoever owns the target). A replica that owns targets is SIGKILLed (by its pid): a survivor
probes its targets within the TTL plus one fast interval, goes on with their open incidents and resolves them in
their threads; no root twice, no reply twice. Every wait is for a real event (a log line, a message), never a time.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ha import FAST, TTL, assert_no_reply_twice, database, ops, replica, thread_replies
from tests.fakeslack import FakeSlack
from tests.support.alertchannel import roots
from tests.support.botproc import BotProcess

pytestmark = pytest.mark.sandbox

__all__ = ["database"]  # the fixture, imported from test_ha

NAMES = [f"shard{i}" for i in range(6)]
PROBE = re.compile(r"(?:full|fast) probe (shard\d+):")


@pytest.fixture
def sharded_config(sandbox: Any, tmp_path: Path) -> Path:
    path = tmp_path / "wscheck.toml"
    path.write_text("\n".join(sandbox.target_toml(name) for name in NAMES))
    return path


def probed(bot: BotProcess, start: int) -> set[str]:
    return {m.group(1) for line in bot.lines[start:] if (m := PROBE.search(line))}


async def any_line(bots: list[BotProcess]) -> None:
    """Until any replica logs anything (at debug level they log every probe): the next look at their state."""
    waits = [asyncio.ensure_future(b.wait_line(r".", timeout=10, start=len(b.lines))) for b in bots]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def stable(bots: list[BotProcess], members: int) -> list[set[str]]:
    """Wait until every replica sees `members` live members and the shares cover every target once; the shares."""
    deadline = time.monotonic() + 30
    while True:
        seen = [await ops(bot) for bot in bots]
        shares = [set(s["health"].get("monitor", {}).get("targets", {})) for s in seen]
        if all(s["health"]["shards"]["live_members"] == members for s in seen) and \
                sorted(t for share in shares for t in share) == sorted(NAMES):
            for s, share in zip(seen, shares, strict=True):
                assert s["health"]["shards"]["owned_targets"] == len(share)
                assert f"wscheck_shard_owned_targets {float(len(share))}" in s["metrics"]
                assert f"wscheck_shard_live_members {float(members)}" in s["metrics"]
            return shares
        assert time.monotonic() < deadline, [s["health"] for s in seen]
        await any_line(bots)


async def test_each_target_is_probed_by_one_replica_and_a_killed_ones_targets_move_to_a_survivor(
    fake: FakeSlack, sandbox: Any, sharded_config: Path, database: str, healthy: None
) -> None:
    bots: list[BotProcess] = []
    try:
        for _ in range(3):
            bots.append(await replica(fake, sharded_config, database, WSCHECK_SHARDS="auto"))
        shares = await stable(bots, 3)
        # Each target probed, and only by its owner.
        marks = [len(b.lines) for b in bots]
        for name in NAMES:
            owner = next(i for i, share in enumerate(shares) if name in share)
            await bots[owner].wait_line(rf"(?:full|fast) probe {name}:", timeout=15, start=marks[owner])
        for bot, share, mark in zip(bots, shares, marks, strict=True):
            assert probed(bot, mark) <= share, bot.log()

        await asyncio.to_thread(sandbox.pm2, "stop", "kathario-saas")
        await fake.wait_for(lambda: len(roots(fake)) >= len(NAMES) or None, timeout=60,
                            what="one root per target")
        leader = next(i for i, b in enumerate(bots) if any("leader elected: this replica" in x for x in b.lines))
        victim = max((i for i in range(3) if i != leader), key=lambda i: len(shares[i]))
        assert shares[victim], "the replica to kill owns no target (6 targets over 3 replicas)"
        survivors = [b for i, b in enumerate(bots) if i != victim]
        marks = [len(b.lines) for b in survivors]
        killed_at = time.monotonic()
        await bots[victim].kill()
        # Every target of the dead replica is probed by a survivor within the TTL plus one fast interval (and the
        # time of a fast check of the sandbox, well under 2 s).
        for name in sorted(shares[victim]):
            pattern = rf"(?:full|fast) probe {name}:"
            waits = [asyncio.ensure_future(b.wait_line(pattern, timeout=3 * TTL + 10, start=m))
                     for b, m in zip(survivors, marks, strict=True)]
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            assert any(w.exception() is None for w in done), f"{name} was not probed by a survivor"
            took = time.monotonic() - killed_at
            assert took <= TTL + FAST + 1.0 + 2.0, f"{name} probed again {took:.1f} s after the SIGKILL"
        taken_by = [probed(b, m) & shares[victim] for b, m in zip(survivors, marks, strict=True)]
        assert set().union(*taken_by) == shares[victim] and not (taken_by[0] & taken_by[1]), taken_by
        after = await stable(survivors, 2)
        assert set().union(*after) == set(NAMES)

        # The open incidents go on in their threads: resolved there, one root each, nothing twice.
        await asyncio.to_thread(sandbox.pm2, "start", "kathario-saas")
        for root in roots(fake):
            await fake.wait_for(lambda r=root: [x for x in thread_replies(fake, r.ts) if "Resolved after" in x.text]
                                or None, timeout=60, what=f"the recovery reply under {root.text[:40]!r}")
            assert_no_reply_twice(fake, root.ts)
        assert len(roots(fake)) == len(NAMES), fake.dump()
        assert sorted(r.metadata["event_payload"]["incident"].split("-")[0] for r in roots(fake)) == sorted(NAMES)
    finally:
        for bot in bots:
            await bot.stop()
