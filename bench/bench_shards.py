"""Benchmark: N simulated targets sharded over R `wscheck run` replicas on one PostgreSQL (issue 14, part 3).

Starts a private PostgreSQL server (tests/support/postgres.py), bench/simtargets.py with N targets (as
bench_scale.py does) and R real bots in console mode with WSCHECK_SHARDS=auto, full checklist every 30 s, fast
probe every 10 s, a canary per target (unless --canary off). After every target had a full probe (by whichever
replica owns it) and a --warmup, it samples EACH REPLICA'S PROCESS for --duration s: CPU share (1.0 = one core),
RSS; and from the debug lines which replica probed which target: every target must be probed, and by one replica
only (overlap 0). The machine's load average is printed with the result: other work shares the cores.

    .venv/bin/python bench/bench_shards.py [--targets 2000] [--replicas 4] [--duration 60] [--warmup 20]
    .venv/bin/python bench/bench_shards.py --targets 100 --replicas 2 --duration 15 --warmup 5   # a quick check

Target (issue): 2,000 targets on 4 replicas, each replica under one core and 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import PYTHON, ROOT, Sampler, bot_argv, raise_nofile

from tests.support.botproc import BotProcess, bot_env
from tests.support.postgres import PostgresServer

PROBE = re.compile(r"DEBUG bot\.monitor: (full|fast) probe (\S+): (\w+) in")


def _probed(bot: BotProcess, start: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for line in bot.err[start:]:
        if m := PROBE.search(line.text):
            seen[m.group(2)] = seen.get(m.group(2), 0) + 1
    return seen


def _write_logs(where: Path, bots: list[BotProcess]) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for bot in bots:
        (where / f"{bot.name}.log").write_text("".join(x.text + "\n" for x in bot.err))


async def bench(args: argparse.Namespace, url: str) -> int:
    n, replicas = args.targets, args.replicas
    work = Path(tempfile.mkdtemp(prefix=f"wscheck-shards-{n}-", dir="/tmp"))
    sim = BotProcess.command([PYTHON, str(ROOT / "bench" / "simtargets.py"), "serve", "--targets", str(n),
                              "--workdir", str(work)], bot_env({}), name="simtargets")
    bots: list[BotProcess] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await sim.start(ready=None)
        await sim.wait_line(r"simtargets ready", stdout=True, timeout=300)
        env = bot_env({"WSCHECK_MONITOR": "true", "WSCHECK_CHECK_INTERVAL": "30s", "WSCHECK_FAST_INTERVAL": "10s",
                       "WSCHECK_CANARY": "true" if args.canary == "on" else "false", "WSCHECK_JITTER": "0",
                       "WSCHECK_LOG_LEVEL": "debug", "WSCHECK_DB": url, "WSCHECK_SHARDS": "auto",
                       "WSCHECK_LEADER_TTL": f"{args.ttl:g}s"})
        started = time.monotonic()
        for i in range(replicas):
            bot = BotProcess.command(bot_argv(work / "wscheck.toml", console=True), env, name=f"replica{i}")
            await bot.start(ready=None)
            bots.append(bot)
        for bot in bots:
            await bot.wait_line(r"wscheck ready", timeout=300)
        deadline = time.monotonic() + args.warmup + args.duration + 900
        samplers = [Sampler(b.pid) for b in bots]
        sim_sampler = Sampler(sim.pid)
        tasks = [asyncio.ensure_future(s.run(stop, deadline)) for s in [*samplers, sim_sampler]]
        # Warm-up: every target probed by someone (all replicas joined, shares settled), then --warmup s.
        warm_deadline = time.monotonic() + max(180.0, n * 0.3)
        while time.monotonic() < warm_deadline:
            seen = set().union(*(_probed(b, 0) for b in bots))
            if len(seen) >= n:
                break
            for b in bots:
                if b.proc is not None and b.proc.returncode is not None:
                    why = [x.text for x in b.err if (" ERROR " in x.text or " WARNING " in x.text)
                           and "Future exception" not in x.text and "TransportError" not in x.text]
                    raise RuntimeError(f"{b.name} exited {b.proc.returncode}:\n" + "\n".join(why[-30:]))
            await asyncio.sleep(1.0)
        first_round = time.monotonic() - started
        await asyncio.sleep(args.warmup)
        marks = [len(b.err) for b in bots]
        t0 = time.monotonic()
        await asyncio.sleep(args.duration)
        t1 = time.monotonic()
        load = os.getloadavg()
        print(f"\n{n} targets on {replicas} replicas, canary {args.canary}, TTL {args.ttl:g} s, {t1 - t0:.0f} s "
              f"measured after a {args.warmup:g} s warm-up (every target first probed {first_round:.0f} s after the "
              f"start); load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} cores")
        print("| replica | targets probed in the window | probes done / expected | CPU avg / peak 5 s (cores) "
              "| RSS max / end | error lines |")
        print("|---|---|---|---|---|---|")
        owners: dict[str, list[int]] = {}
        worst_cpu, worst_rss = 0.0, 0.0
        for i, (bot, sampler, mark) in enumerate(zip(bots, samplers, marks, strict=True)):
            probed = _probed(bot, mark)
            for name in probed:
                owners.setdefault(name, []).append(i)
            window = sampler.window(t0 - 1.5, t1 + 0.1)
            cpu, peak = Sampler.cpu_share(window), Sampler.cpu_share_peak(window)
            rss_max, rss_end = max(s.rss_kb for s in window) / 1024, window[-1].rss_kb / 1024
            worst_cpu, worst_rss = max(worst_cpu, cpu), max(worst_rss, rss_max)
            errors = sum(" ERROR " in x.text or "Traceback" in x.text for x in bot.err[mark:])
            expected = len(probed) * (t1 - t0) * (1 / 30 + 1 / 10)
            print(f"| {i} | {len(probed)} | {sum(probed.values())} / {expected:.0f} | {cpu:.2f} / {peak:.2f} | "
                  f"{rss_max:.0f} MB / "
                  f"{rss_end:.0f} MB | {errors} |")
        sim_cpu = Sampler.cpu_share(sim_sampler.window(t0 - 1.5, t1 + 0.1))
        overlap = sum(1 for v in owners.values() if len(v) > 1)
        print(f"\ntargets probed: {len(owners)}/{n}; probed by more than one replica: {overlap}; "
              f"simulator CPU {sim_cpu:.2f} cores")
        met = worst_cpu < 1.0 and worst_rss < 300 and overlap == 0 and len(owners) == n
        print(f"target (each replica < 1 core and < 300 MB, every target probed by exactly one): "
              f"{'met' if met else 'NOT met'} (worst CPU {worst_cpu:.2f}, worst RSS {worst_rss:.0f} MB)")
        return 0 if met else 1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bot in bots:
            await bot.stop()
        await sim.stop()
        if args.logs:
            _write_logs(Path(args.logs), bots)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--canary", choices=("on", "off"), default="on")
    parser.add_argument("--ttl", type=float, default=15.0, help="WSCHECK_LEADER_TTL in seconds")
    parser.add_argument("--logs", default="", help="a directory to write each replica's log to")
    args = parser.parse_args()
    raise_nofile()
    server = PostgresServer()
    try:
        server.up()
        name = asyncio.run(server.create_database())
        code = asyncio.run(bench(args, server.url(name)))
    finally:
        server.down()
    sys.exit(code)


if __name__ == "__main__":
    main()
