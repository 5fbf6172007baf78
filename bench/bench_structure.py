"""The checklist's own structure against its slowest command, with the target's CPU taken out of the picture.

Why: bench_checks.py's ratio "full checklist / pm2 jlist" on the sandbox mixes two things: how the checklist is
built (what waits for what: rounds, follow-ups, channels) and CPU contention, because on this machine the bot,
sshd, every command and the app share two cores with `pm2 jlist` (node starting PM2's client, which alone keeps
more than one core busy; bench/cpu_budget.py). This bench runs the same checklist, through the same SSH
transport, against one simulated target (bench/simtargets.py: an asyncssh server answering the checklist's
current commands with the captured healthy outputs, after the time each took on the sandbox: `pm2 jlist` 100 ms,
a batch 4.5 ms a command, a single command 10 ms). The simulated commands wait instead of computing, so what is
left is the structure: when `pm2 jlist` is the slowest command and costs no CPU, how much longer is the run?

    .venv/bin/python bench/bench_structure.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import PYTHON, ROOT

from checks import commands
from checks.config import load_targets
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.botproc import BotProcess, bot_env


async def measure(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="wscheck-structure-", dir="/tmp"))
    sim = BotProcess.command([PYTHON, str(ROOT / "bench" / "simtargets.py"), "serve", "--targets", "1",
                              "--workdir", str(work), "--latency-scale", "1"], bot_env({}), name="simtargets")
    try:
        await sim.start(ready=None)
        await sim.wait_line(r"simtargets ready", stdout=True, timeout=120)
        (target,) = load_targets(work / "wscheck.toml").targets
        transport = SSHTransport(target)
        try:
            report = await run_checks(target, transport)  # warm: connection, parsers, caches
            alone: list[float] = []
            full: list[float] = []
            ratios: list[float] = []
            for _ in range(rounds):
                started = time.perf_counter()
                await transport.run(commands.pm2(target, "jlist"), timeout=30)
                alone.append(time.perf_counter() - started)
                started = time.perf_counter()
                report = await run_checks(target, transport)
                full.append(time.perf_counter() - started)
                ratios.append(full[-1] / alone[-1])
        finally:
            await transport.aclose()
    finally:
        await sim.stop()
    statuses: dict[str, int] = {}
    for check in report.checks:
        statuses[check.status.value] = statuses.get(check.status.value, 0) + 1
    med = statistics.median
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    print(f"simulated target, {len(report.checks)} checks ({counts})")
    print(f"pm2 jlist alone (simulated, 100 ms, no CPU):  median {med(alone) * 1000:.0f} ms")
    print(f"full checklist, warm connection:              median {med(full) * 1000:.0f} ms "
          f"(p90 {sorted(full)[int(0.9 * (len(full) - 1))] * 1000:.0f} ms)")
    print(f"full checklist / pm2 jlist, structure only:   {med(full) / med(alone):.2f}x "
          f"(per-round median {med(ratios):.2f}x)")
    print(f"rounds {rounds}; load average {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} cores")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
