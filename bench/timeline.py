"""Where a full checklist's time goes: a per-command timeline of one warm run against the sandbox.

Why: the ratio "full checklist / slowest command" (bench_checks.py) says how much the run costs beyond its
slowest command, not why. This prints, for the median of N warm runs, every command with the moment it was
asked for, the moment it got an SSH channel (the transport allows MAX_CHANNELS at once) and the moment it
ended, and every check with its end, relative to the run's start. A command asked late is a follow-up that
waited for another one; a command asked early but started late waited for a channel.

    .venv/bin/python bench/timeline.py [--rounds 9] [--mode MODE] [--ablation]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import new_sandbox  # noqa: E402

from checks import commands  # noqa: E402
from checks.config import Target, load_targets  # noqa: E402
from checks.items import CHECK_FUNCTIONS  # noqa: E402
from checks.runner import run_checks  # noqa: E402
from checks.transport.base import CommandResult  # noqa: E402
from checks.transport.ssh import SSHTransport  # noqa: E402


class _Semaphore(asyncio.Semaphore):
    """The transport's channel semaphore, noting when each acquire is granted (the command's real start)."""

    def __init__(self, value: int, sink: list[float]) -> None:
        super().__init__(value)
        self.sink = sink

    async def acquire(self) -> bool:
        got = await super().acquire()
        self.sink.append(time.perf_counter())
        return got


class TimedSSH(SSHTransport):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.granted: list[float] = []
        self._channels = _Semaphore(self._channels._value, self.granted)
        self.rows: list[tuple[float, float, float, str]] = []
        self.t0 = 0.0
        self.batches = 0

    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        asked = time.perf_counter()
        mark = len(self.granted)
        result = await super().run(argv, timeout=timeout)
        # The grant that follows `asked` is not always this command's; good enough for a timeline (FIFO semaphore).
        start = self.granted[mark] if mark < len(self.granted) else asked
        self.rows.append((asked - self.t0, start - self.t0, time.perf_counter() - self.t0, commands.display(argv)))
        return result

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        asked = time.perf_counter()
        mark = len(self.granted)
        self.batches += len(argvs) > 1
        tag = f"[batch {self.batches}/{len(argvs)}] " if len(argvs) > 1 else ""
        futures = super().start_many(argvs, timeout=timeout)

        def note(argv: Sequence[str], _fut: object) -> None:
            start = self.granted[mark] if mark < len(self.granted) else asked
            self.rows.append((asked - self.t0, start - self.t0, time.perf_counter() - self.t0,
                              tag + commands.display(argv)))

        if tag:
            for argv, fut in zip(argvs, futures, strict=True):
                fut.add_done_callback(functools.partial(note, argv))
        return futures


async def measure(target: Target, rounds: int) -> None:
    transport = TimedSSH(target)
    try:
        await run_checks(target, transport)
        timelines: list[tuple[float, list[Any], list[Any], float]] = []
        for _ in range(rounds):
            started = time.perf_counter()
            await transport.run(commands.pm2(target, "jlist"), timeout=30)
            jlist = time.perf_counter() - started
            transport.rows = []
            transport.batches = 0
            transport.t0 = time.perf_counter()
            report = await run_checks(target, transport)
            total = time.perf_counter() - transport.t0
            checks = sorted((c.duration_ms / 1000, c.id, c.status.value) for c in report.checks)
            timelines.append((total, list(transport.rows), checks, jlist))
        timelines.sort(key=lambda t: t[0])
        total, rows, checks, jlist = timelines[len(timelines) // 2]
        print(f"median run {total * 1000:.0f} ms (runs {', '.join(f'{t[0] * 1000:.0f}' for t in timelines)});"
              f" pm2 jlist alone {statistics.median(t[3] for t in timelines) * 1000:.0f} ms;"
              f" {len(rows)} commands; checks {len(CHECK_FUNCTIONS)}")
        print(f"{'asked':>7} {'chan':>7} {'end':>7} {'dur':>6}  command")
        for asked, start, end, cmd in sorted(rows):
            print(f"{asked * 1000:7.1f} {start * 1000:7.1f} {end * 1000:7.1f} {(end - start) * 1000:6.1f}  {cmd[:110]}")
        print("checks (end ms, status):")
        for end, cid, status in checks:
            print(f"  {end * 1000:7.1f}  {cid:16} {status}")
    finally:
        await transport.aclose()


ABLATIONS: dict[str, set[str]] = {
    "without the probes": {"http.local", "ws.local", "http.proxy", "ws.proxy", "ws.sessions", "tls.certificate"},
    "without the nginx checks": {"nginx.syntax", "nginx.websocket", "nginx.reload", "nginx.errors"},
    "without the host checks": {"host.memory", "host.disk", "host.fds"},
    # the checks whose commands a merged process table and fewer follow-up channels would save (wt-floor)
    "without daemon/reload/fds/disk": {"pm2.daemon", "nginx.reload", "host.fds", "host.disk"},
}


async def ablation(target: Target, rounds: int) -> None:
    """How much each part of the checklist slows `pm2 jlist` inside the run (and the bot's own CPU per run)."""
    from checks.registry import CHECK_IDS

    transport = TimedSSH(target)
    selections = {"full checklist": [], **{k: [c for c in CHECK_IDS if c not in v] for k, v in ABLATIONS.items()},
                  "pm2.status and the probes": ["pm2.status", "http.local", "http.proxy", "ws.local", "ws.proxy"],
                  "pm2.status alone": ["pm2.status"]}
    inside: dict[str, list[float]] = {k: [] for k in selections}
    cpu: dict[str, list[float]] = {k: [] for k in selections}
    alone: list[float] = []
    try:
        await run_checks(target, transport)
        for _ in range(rounds):
            started = time.perf_counter()
            await transport.run(commands.pm2(target, "jlist"), timeout=30)
            alone.append(time.perf_counter() - started)
            for name, only in selections.items():
                transport.rows, transport.t0 = [], time.perf_counter()
                used = time.process_time()
                await run_checks(target, transport, only)
                cpu[name].append(time.process_time() - used)
                inside[name].append(next(end - start for _, start, end, cmd in transport.rows if "jlist" in cmd))
    finally:
        await transport.aclose()
    med = statistics.median
    print(f"pm2 jlist alone: median {med(alone) * 1000:.0f} ms")
    for name in selections:
        print(f"{name:26} jlist inside the run {med(inside[name]) * 1000:4.0f} ms; bot CPU per run "
              f"{med(cpu[name]) * 1000:3.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--mode", default="", help="a sandbox mode to set first (default: healthy)")
    parser.add_argument("--ablation", action="store_true", help="jlist inside runs without parts of the checklist")
    args = parser.parse_args()
    box, workdir = new_sandbox("timeline")
    box.up()
    try:
        if args.mode:
            box.set_mode(args.mode)
        config = workdir / "wscheck.toml"
        config.write_text(box.target_toml())
        (target,) = load_targets(config).targets
        asyncio.run(ablation(target, args.rounds) if args.ablation else measure(target, args.rounds))
    finally:
        box.down()


if __name__ == "__main__":
    main()
