"""Benchmark: the bot's CPU, memory and scheduling lateness when it watches N targets.

For each N (default 50, 200, 500) this starts, in separate processes:
  * bench/simtargets.py serve: N asyncssh servers answering the checklist's commands with outputs captured
    from the real sandbox (after the time they took there), serving direct-tcpip HTTP/WebSocket to the
    "app", plus one aiohttp "nginx" for every public_url;
  * the real bot, console mode (no Slack token, stdin /dev/null), monitoring every target: full checklist
    every 30 s, fast probe (pm2.status + ws.proxy) every 10 s, one canary WebSocket per target (unless
    --canary off), jitter 0 so every run has an exact scheduled time. It runs through
    bench/_instrumented_bot.py, which only adds scheduler timings on stderr (see that file).
After a warm-up (every target checked once, then --warmup s) it samples the BOT PROCESS ONLY for
--duration s: CPU share from /proc/PID/stat (utime+stime over wall time, 1.0 = one core), RSS from
/proc/PID/status, and from the scheduler timings the lateness of every scheduled run (actual start minus
APScheduler's scheduled_run_time), runs skipped because the previous one was still running, and how long
the runs took. The simulator's own CPU is shown too: if it is saturated, lateness is its fault, not the bot's.

    .venv/bin/python bench/bench_scale.py [--targets 50,200,500] [--canary on|off|on,off] [--duration 90]
                                          [--warmup 35] [--jitter 0] [--latency-scale 1]

Target (issue): 500 targets within one core and < 300 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import PYTHON, ROOT, Sampler, bot_argv, pct, raise_nofile

from tests.support.botproc import BotProcess, bot_env

FULL_INTERVAL = 30.0
FAST_INTERVAL = 10.0
BENCH_RE = re.compile(r"^BENCH (\w+) (\S+) (.*)$")
PROBE_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) DEBUG bot\.monitor: "
                      r"full probe (\S+): (\w+) in (\d+) ms")


@dataclass
class Result:
    targets: int
    canary: bool
    jitter: float
    cpu: float = math.nan
    cpu_peak: float = math.nan
    rss_max_mb: float = math.nan
    rss_end_mb: float = math.nan
    hwm_mb: float = math.nan
    fds_end: int = 0
    sim_cpu: float = math.nan
    sim_cpu_peak: float = math.nan
    stagger: bool = False
    unbatched: bool = False
    #: The machine's 1-minute load average at the end of the window (other work shares the cores).
    load: float = math.nan
    alerts_total: int = 0
    late: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    submit_late: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    took: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    skipped: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    interval_dev: list[float] = field(default_factory=list)
    alerts: int = 0
    canary_drops: int = 0
    errors: int = 0
    startup_s: float = math.nan
    first_round_s: float = math.nan
    duration: float = 0.0
    sim_stats: dict[str, object] = field(default_factory=dict)

    def expected(self, kind: str) -> float:
        return self.targets * self.duration / (FULL_INTERVAL if kind == "full" else FAST_INTERVAL)


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


async def one(n: int, canary: bool, args: argparse.Namespace) -> Result:
    res = Result(targets=n, canary=canary, jitter=args.jitter, stagger=args.stagger, unbatched=args.unbatched)
    work = Path(tempfile.mkdtemp(prefix=f"wscheck-scale-{n}-", dir="/tmp"))
    sim = BotProcess.command([PYTHON, str(ROOT / "bench" / "simtargets.py"), "serve", "--targets", str(n),
                              "--workdir", str(work), "--latency-scale", str(args.latency_scale)],
                             bot_env({}), name="simtargets")
    bot: BotProcess | None = None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await sim.start(ready=None)
        await sim.wait_line(r"simtargets ready", stdout=True, timeout=120)
        env = bot_env({
            "WSCHECK_MONITOR": "true",
            "WSCHECK_CHECK_INTERVAL": f"{FULL_INTERVAL:g}s",
            "WSCHECK_FAST_INTERVAL": f"{FAST_INTERVAL:g}s",
            "WSCHECK_CANARY": "true" if canary else "false",
            "WSCHECK_JITTER": f"{args.jitter:g}",
            "WSCHECK_LOG_LEVEL": "debug",
            "WSCHECK_DB": str(work / "wscheck.db"),
            **({"BENCH_STAGGER": "1"} if args.stagger else {}),
            **({"BENCH_UNBATCHED": "1"} if args.unbatched else {}),
        })
        bot = BotProcess.command(bot_argv(work / "wscheck.toml", instrumented=True, console=True), env, name="bot")
        started = time.monotonic()
        await bot.start(ready=None)
        await bot.wait_line(r"wscheck ready", timeout=120)
        res.startup_s = time.monotonic() - started
        deadline = time.monotonic() + args.warmup + args.duration + 600
        bot_sampler, sim_sampler = Sampler(bot.pid), Sampler(sim.pid)
        tasks = [asyncio.ensure_future(bot_sampler.run(stop, deadline)),
                 asyncio.ensure_future(sim_sampler.run(stop, deadline))]
        # warm-up: every target had its first full checklist (the start-up burst), then --warmup seconds
        first_seen: set[str] = set()
        warm_deadline = time.monotonic() + max(120.0, n * 0.5)
        scanned = 0
        while len(first_seen) < n and time.monotonic() < warm_deadline:
            fresh, scanned = bot.err[scanned:], len(bot.err)
            for line in fresh:
                if m := PROBE_RE.match(line.text):
                    first_seen.add(m.group(2))
            if bot.proc is not None and bot.proc.returncode is not None:
                raise RuntimeError(f"the bot exited:\n{bot.tail()}")
            await asyncio.sleep(0.5)
        res.first_round_s = time.monotonic() - started
        if len(first_seen) < n:
            print(f"  warning: only {len(first_seen)}/{n} targets had a full probe during the warm-up", file=sys.stderr)
        await asyncio.sleep(args.warmup)
        mark_err, mark_out = len(bot.err), len(bot.out)
        t0, w0 = time.monotonic(), time.time()
        await asyncio.sleep(args.duration)
        t1, w1 = time.monotonic(), time.time()
        res.duration = t1 - t0
        window = bot_sampler.window(t0 - 1.5, t1 + 0.1)
        res.cpu = Sampler.cpu_share(window)
        res.load = os.getloadavg()[0]
        res.cpu_peak = Sampler.cpu_share_peak(window)
        res.rss_max_mb = max(s.rss_kb for s in window) / 1024
        res.rss_end_mb = window[-1].rss_kb / 1024
        res.hwm_mb = window[-1].hwm_kb / 1024
        res.fds_end = window[-1].fds
        res.sim_cpu = Sampler.cpu_share(sim_sampler.window(t0 - 1.5, t1 + 0.1))
        res.sim_cpu_peak = Sampler.cpu_share_peak(sim_sampler.window(t0 - 1.5, t1 + 0.1))
        _digest(res, [x.text for x in bot.err[mark_err:]], w0, w1)
        res.alerts = sum("ALERT" in x.text for x in bot.out[mark_out:])
        res.alerts_total = sum("ALERT" in x.text for x in bot.out)
        res.errors = sum(" ERROR " in x.text or "Traceback" in x.text for x in bot.err[mark_err:])
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if bot is not None:
            code = await bot.stop()
            if code not in (0, None):
                print(f"  bot exited {code}\n{bot.tail(20)}", file=sys.stderr)
        await sim.stop()
        for line in sim.out:
            if line.text.startswith("simtargets stats "):
                res.sim_stats = json.loads(line.text.removeprefix("simtargets stats "))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif bot is not None:
            (work / "bot.stderr.log").write_text("".join(line.text + "\n" for line in bot.err))
            print(f"  kept {work} (bot.stderr.log: the bot's log)", file=sys.stderr)
    return res


def _digest(res: Result, lines: list[str], w0: float, w1: float) -> None:
    last_done: dict[str, float] = {}
    for text in lines:
        if m := BENCH_RE.match(text):
            what, job, rest = m.group(1), m.group(2), m.group(3).split()
            kind = job.split(":", 1)[0]
            if kind not in ("full", "fast"):
                continue
            if what == "ran":
                scheduled, begun, ended = (float(x) for x in rest[:3])
                if w0 <= begun <= w1:
                    res.late[kind].append(begun - scheduled)
                    res.took[kind].append(ended - begun)
            elif what == "submitted":
                scheduled, submitted = float(rest[0]), float(rest[1])
                if w0 <= submitted <= w1:
                    res.submit_late[kind].append(submitted - scheduled)
            elif what == "skipped" and w0 <= float(rest[1]) <= w1:
                res.skipped[kind] += 1
            elif what == "missed" and w0 <= float(rest[1]) <= w1:
                res.missed[kind] += 1
        elif m := PROBE_RE.match(text):
            at = _log_time(m.group(1))
            if not w0 <= at <= w1 + 1:
                continue
            name, status = m.group(2), m.group(3)
            res.statuses[status] += 1
            start = at - int(m.group(4)) / 1000  # the line is logged when the run ends
            if name in last_done:
                res.interval_dev.append(start - last_done[name] - FULL_INTERVAL)
            last_done[name] = start
        elif "canary" in text and "WARNING" in text:
            res.canary_drops += 1


def _f(x: float, unit: str = "", digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}{unit}"


def _lat(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{pct(values, 50) * 1000:.0f} / {pct(values, 99) * 1000:.0f} / {max(values) * 1000:.0f} ms"


def report(results: list[Result]) -> None:
    print()
    print("| targets | canary | jitter | bot CPU (avg / peak 5 s) | bot RSS (window max / end / lifetime peak) "
          "| full runs late p50/p99/max | fast runs late p50/p99/max | runs done / expected (full, fast) "
          "| skipped | full run took p50/p99 | full probes not ok / all, alerts since start "
          "| simulator CPU (avg / peak 5 s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        done = (f"{len(r.late['full'])}/{r.expected('full'):.0f}, {len(r.late['fast'])}/{r.expected('fast'):.0f}")
        skipped = sum(r.skipped.values()) + sum(r.missed.values())
        took = r.took["full"]
        took_s = f"{pct(took, 50):.2f} / {pct(took, 99):.2f} s" if took else "-"
        bad = f"{sum(v for k, v in r.statuses.items() if k != 'ok')}/{sum(r.statuses.values())}, {r.alerts_total}"
        jitter = f"{r.jitter:g} s" + (" + stagger (what-if)" if r.stagger else "") + \
            (" + unbatched (what-if)" if r.unbatched else "")
        print(f"| {r.targets} | {'on' if r.canary else 'off'} | {jitter} | {_f(r.cpu)} / {_f(r.cpu_peak)} | "
              f"{_f(r.rss_max_mb, ' MB', 0)} / {_f(r.rss_end_mb, ' MB', 0)} / {_f(r.hwm_mb, ' MB', 0)} | "
              f"{_lat(r.late['full'])} | {_lat(r.late['fast'])} | {done} | {skipped} | {took_s} | {bad} | "
              f"{_f(r.sim_cpu)} / {_f(r.sim_cpu_peak)} |")
    print()
    for r in results:
        dev = [abs(d) for d in r.interval_dev]
        print(f"N={r.targets}: machine load average (1 min) at the end of the window {r.load:.2f} "
              f"on {os.cpu_count()} cores")
        print(f"N={r.targets} canary={'on' if r.canary else 'off'}: start-up to ready {_f(r.startup_s, ' s', 1)}, "
              f"to first full check of every target {_f(r.first_round_s, ' s', 1)}; "
              f"full-probe statuses {dict(r.statuses)}; alerts in the window {r.alerts} (since start "
              f"{r.alerts_total}); canary drops {r.canary_drops}; "
              f"error lines {r.errors}; fds {r.fds_end}")
        if dev:
            print(f"   interval between consecutive full probes of a target (from the debug lines), |deviation "
                  f"from 30 s|: median {statistics.median(dev) * 1000:.0f} ms, p99 {pct(dev, 99) * 1000:.0f} ms, "
                  f"max {max(dev) * 1000:.0f} ms ({len(dev)} intervals)")
        sub = r.submit_late["full"] + r.submit_late["fast"]
        if sub:
            print(f"   scheduler wake-up late (submission - scheduled): p50 {pct(sub, 50) * 1000:.0f} ms, "
                  f"p99 {pct(sub, 99) * 1000:.0f} ms, max {max(sub) * 1000:.0f} ms")
        if r.skipped or r.missed:
            print(f"   skipped (max_instances): {dict(r.skipped)}; missed (misfire grace): {dict(r.missed)}")
        print(f"   simulator: {r.sim_stats}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--targets", default="50,200,500", help="comma-separated target counts")
    parser.add_argument("--canary", default="on", help="on, off, or on,off")
    parser.add_argument("--duration", type=float, default=90.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=35.0,
                        help="seconds after every target's first full check, before measuring")
    parser.add_argument("--jitter", type=float, default=0.0, help="WSCHECK_JITTER (0: exact schedule)")
    parser.add_argument("--latency-scale", type=float, default=1.0,
                        help="simulated command latency as a multiple of the sandbox's (0: instant)")
    parser.add_argument("--stagger", action="store_true",
                        help="what-if for bots before a6ea518 (which spread targets themselves): offset each "
                             "target's first runs over the interval (see bench/_instrumented_bot.py)")
    parser.add_argument("--unbatched", action="store_true",
                        help="what-if for bots before wt-perf: every command on its own SSH channel, no batches")
    parser.add_argument("--keep", action="store_true", help="keep the work directories in /tmp")
    args = parser.parse_args()
    soft, hard = raise_nofile()
    counts = [int(x) for x in args.targets.split(",") if x.strip()]
    canaries = [c.strip() == "on" for c in args.canary.split(",") if c.strip()]
    print(f"RLIMIT_NOFILE {soft}/{hard}; targets {counts}; canary {args.canary}; {args.duration:g} s measured "
          f"after a {args.warmup:g} s warm-up; jitter {args.jitter:g} s", file=sys.stderr)
    results = []
    for n in counts:
        for canary in canaries:
            print(f"== {n} targets, canary {'on' if canary else 'off'}", file=sys.stderr)
            res = asyncio.run(one(n, canary, args))
            results.append(res)
            report([res])
    if len(results) > 1:
        report(results)


if __name__ == "__main__":
    main()
