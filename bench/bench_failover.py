"""Benchmark: failover of the leader among two `wscheck run` replicas on one PostgreSQL (issue 14, part 2).

Starts the sandbox stack, a private PostgreSQL server (tests/support/postgres.py), the strict fake Slack in this
process and two real bots (Socket Mode against the fake) with the production defaults of what matters here:
WSCHECK_LEADER_TTL=15s, WSCHECK_FAST_INTERVAL=10s, WSCHECK_CHECK_INTERVAL=60s.

Each run: wait a random 0-TTL/3 s (the phase of the kill within the leader's renewal cycle; seeded), SIGKILL the
leader (by its pid; t0 = the kill returned), then time until the new leader's first scheduled
check *started* (the end of its first `full|fast probe sandbox: … in N ms` debug line minus N), and until its
election line. The killed replica is started again and waits as the follower. The last run breaks the app right
after the kill ("a break during the failover is still alerted"): time from t0 to the root alert in the fake channel.

Across all runs: root messages posted (must be exactly 1, for the last run's break) and replies posted twice (0).

    .venv/bin/python bench/bench_failover.py [--runs 10]

Target (issue): SIGKILL -> the new leader's first scheduled check <= TTL + one fast interval (25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import bot_argv, new_sandbox, pct, raise_nofile

from tests.fakeslack import FakeSlack
from tests.support.botproc import BotProcess, bot_env
from tests.support.postgres import PostgresServer

ALERTS = "C0ALERTS"
TTL, FAST, FULL = 15.0, 10.0, 60.0
APP = "kathario-saas"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
PROBE = re.compile(r"(full|fast) probe sandbox: \w+ in (\d+) ms")


def _log_wall(text: str) -> float:
    m = LOG_TIME.match(text)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else math.nan


def _roots(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages(ALERTS) if (m.metadata or {}).get("event_type") == "wscheck_alert"]


async def bench(box: Any, url: str, runs: int, workdir: Path, seed: int) -> list[dict[str, float]]:
    results: list[dict[str, float]] = []
    rng = random.Random(seed)
    async with FakeSlack() as fake:
        fake.add_channel(ALERTS, "alerts")
        env = bot_env({
            "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
            "WSCHECK_DB": url, "WSCHECK_ALERT_CHANNEL": ALERTS, "WSCHECK_LEADER_TTL": f"{TTL:g}s",
            "WSCHECK_CHECK_INTERVAL": f"{FULL:g}s", "WSCHECK_FAST_INTERVAL": f"{FAST:g}s", "WSCHECK_LOG_LEVEL": "debug",
        })
        config = workdir / "wscheck.toml"
        config.write_text(box.target_toml())
        bots = [BotProcess.command(bot_argv(config), env, name=f"bot{i}") for i in (1, 2)]
        try:
            await bots[0].start(ready=None)
            await bots[0].wait_line(r"leader elected", timeout=60)
            await bots[1].start(ready=None)
            await bots[1].wait_line(r"following: ", timeout=60)
            leader, follower = 0, 1
            for index in range(1, runs + 1):
                last = index == runs
                await asyncio.sleep(rng.uniform(0, TTL / 3))  # the kill's phase in the renewal cycle
                mark = len(bots[follower].err)
                assert bots[leader].proc is not None
                bots[leader].proc.send_signal(signal.SIGKILL)
                t0 = time.time()
                await bots[leader].proc.wait()
                if last:
                    await asyncio.to_thread(box.pm2, "stop", APP)
                elected = await bots[follower].wait_line(r"leader elected", timeout=3 * TTL, start=mark)
                probe = await bots[follower].wait_line(PROBE.pattern, timeout=3 * TTL, start=mark)
                m = PROBE.search(probe.text)
                assert m is not None
                started = _log_wall(probe.text) - int(m.group(2)) / 1000
                run = {"elected": _log_wall(elected.text) - t0, "first_check": started - t0, "alert": math.nan}
                if last:
                    root = await fake.wait_for(lambda: next(iter(_roots(fake)), None), timeout=120, what="root")
                    run["alert"] = float(root.ts) - t0
                results.append(run)
                print(f"run {index}: elected {run['elected']:.1f} s, first check {run['first_check']:.1f} s"
                      + (f", alert {run['alert']:.1f} s" if last else ""), file=sys.stderr)
                if not last:  # the killed one comes back as the follower
                    bots[leader] = BotProcess.command(bot_argv(config), env, name=f"bot{leader + 1}")
                    await bots[leader].start(ready=None)
                    await bots[leader].wait_line(r"following: ", timeout=60)
                    leader, follower = follower, leader
            replies = [json.dumps(r.metadata, sort_keys=True) for root in _roots(fake)
                       for r in fake.replies(ALERTS, root.ts) if r.metadata]
            results.append({"roots": float(len(_roots(fake))), "dup_replies": float(len(replies) - len(set(replies)))})
        finally:
            for bot in bots:
                await bot.stop()
            await asyncio.to_thread(box.pm2, "start", APP)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1, help="seed of the random phase before each kill")
    args = parser.parse_args()
    raise_nofile()
    box, workdir = new_sandbox("bench-failover")
    server = PostgresServer()
    try:
        box.up()
        server.up()
        name = asyncio.run(server.create_database())
        results = asyncio.run(bench(box, server.url(name), args.runs, workdir, args.seed))
    finally:
        server.down()
        box.down()
        shutil.rmtree(workdir, ignore_errors=True)
    *runs, totals = results
    target = TTL + FAST
    for key in ("elected", "first_check"):
        values = [r[key] for r in runs]
        print(f"{key:12} median {pct(values, 50):5.1f} s  max {max(values):5.1f} s  (target <= {target:g} s: "
              f"{'met' if max(values) <= target else 'MISSED'})")
    print(f"alert for a break during the failover: {runs[-1]['alert']:.1f} s after the SIGKILL")
    print(f"root messages {totals['roots']:g} (expected 1), replies posted twice {totals['dup_replies']:g}")


if __name__ == "__main__":
    main()
