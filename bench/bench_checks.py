"""Benchmark: the whole checklist through wscheck vs the seed's commands run one by one with OpenSSH.

Starts the sandbox stack (deploy/sandbox), then measures, side by side in one run:
  A. the seed's manual checklist: each command as its own `ssh host CMD` (plus curl from here),
     one after another, the way a person runs them;
  B. `wscheck check --json` as a fresh process (interpreter start and imports included: cold);
  C. the full checklist in-process on a warm SSH connection (how the bot runs it), against the
     slowest single command (`pm2 jlist`) on the same warm connection.
Prints the ratios; copy them into bench/RESULTS.md.

    .venv/bin/python bench/bench_checks.py [--rounds 15] [--tls] [--warm-only]

--tls (wt-tls): the sandbox in mode `https` and its https target, only part C: the TLS facts come from the
probes' own handshake and the certificate file is read in the same round, so the ratio must stay the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import new_sandbox  # noqa: E402

from checks import commands  # noqa: E402
from checks.config import Target, load_targets  # noqa: E402
from checks.runner import run_checks  # noqa: E402
from checks.transport.base import CommandResult, Transport  # noqa: E402
from checks.transport.ssh import SSHTransport  # noqa: E402


def seed_commands(box, target: Target) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The seed's checklist as a person runs it: one ssh per command, then curl from here."""
    ssh = box.ssh_argv
    port = target.app_port
    return [
        ssh(*commands.nginx_test(target)),                                   # nginx -t
        ssh(*commands.nginx_dump(target)),                                   # read the site config
        ssh(*commands.pm2(target, "jlist")),                                 # pm2 status
        ssh("ss", "-ltnpH"),                                                 # netstat -tulpn | grep 3003
        ssh("ps", "-eo", "pid=,ppid=,user=,comm="),                          # who is that pid
        ssh("ls", "-la", f"{target.app_dir}/.next/BUILD_ID"),                # did it compile
        ssh("tail", "-n", "200", str(box.pm2_error_log)),                    # pm2 logs kathario-saas
        ssh("curl", "-sI", f"http://127.0.0.1:{port}/"),                     # curl -I 127.0.0.1:3003
        ["curl", "-sI", target.public_url],                                  # curl -I public
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Connection: Upgrade", "-H",
         "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
         "--max-time", "2", target.public_join(target.ws_path)],               # ws through nginx
    ]


def run_seq(argvs: list[list[str]]) -> float:
    started = time.perf_counter()
    for argv in argvs:
        subprocess.run(argv, capture_output=True, timeout=60, check=False)
    return time.perf_counter() - started


def cold_cli(config: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv/bin/wscheck"), "check", "--json", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed


def cold_noop() -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/wscheck"), "checks"], capture_output=True, timeout=60, check=True)
    return time.perf_counter() - started


class UnbatchedSSH(SSHTransport):
    """wt-perf's comparison: every command on its own channel, as before the batches (Transport's default)."""

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        return Transport.start_many(self, argvs, timeout=timeout)


async def warm(target: Target, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Per round, interleaved on two warm connections: `pm2 jlist` alone, the full checklist as the bot runs it,
    and the full checklist with one channel per command (the way before wt-perf)."""
    transport = SSHTransport(target)
    unbatched = UnbatchedSSH(target)
    try:
        for t in (transport, unbatched):
            report = await run_checks(target, t)  # connect + warm up
            assert report.exit_code == 0, report.to_json_dict()
        full, jlist, solo = [], [], []
        for _ in range(rounds):
            started = time.perf_counter()
            await transport.run(commands.pm2(target, "jlist"), timeout=30)
            jlist.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = await run_checks(target, transport)
            full.append(time.perf_counter() - started)
            assert report.exit_code == 0
            started = time.perf_counter()
            report = await run_checks(target, unbatched)
            solo.append(time.perf_counter() - started)
            assert report.exit_code == 0
        return full, jlist, solo
    finally:
        await transport.aclose()
        await unbatched.aclose()


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def load_note() -> str:
    """The machine's load while the bench ran (other helpers share the 2 cores)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tls", action="store_true", help="https target (sandbox mode https), part C only")
    parser.add_argument("--warm-only", action="store_true", help="parts A and B once only (a quick look at C)")
    args = parser.parse_args()
    if args.tls:
        main_tls(args.rounds)
        return
    box, workdir = new_sandbox("bench")
    box.up()
    try:
        config = workdir / "wscheck.toml"
        config.write_text(box.target_toml())
        (target,) = load_targets(config).targets
        seeds = seed_commands(box, target)
        few = 1 if args.warm_only else max(3, args.rounds // 3)
        manual = [run_seq(seeds) for _ in range(few)]
        cold = [cold_cli(config) for _ in range(few)]
        noop = [cold_noop() for _ in range(1 if args.warm_only else 5)]
        full, jlist, solo = asyncio.run(warm(target, args.rounds))
        load = load_note()
    finally:
        box.down()
    med = statistics.median
    print(f"seed checklist, {len(seeds)} commands one by one over OpenSSH: median {med(manual):.3f} s")
    print(f"wscheck check --json, fresh process (cold):               median {med(cold):.3f} s"
          f"  -> {med(manual) / med(cold):.1f}x faster")
    print(f"full checklist in-process, warm connection:               median {med(full):.3f} s"
          f" (p90 {p90(full):.3f})  -> {med(manual) / med(full):.1f}x faster")
    print(f"  same, one SSH channel per command (no batch):           median {med(solo):.3f} s (p90 {p90(solo):.3f})")
    print(f"slowest single command (pm2 jlist), warm connection:      median {med(jlist):.3f} s"
          f" (p90 {p90(jlist):.3f})")
    print(f"full checklist / pm2 jlist:                               {med(full) / med(jlist):.2f}x"
          f"   (one channel per command: {med(solo) / med(jlist):.2f}x)")
    print(f"per-round ratio full / jlist: median {med([a / b for a, b in zip(full, jlist, strict=True)]):.2f}x")
    print(f"`wscheck checks` (interpreter + CLI, no I/O):             median {med(noop):.3f} s")
    print(f"rounds {args.rounds}; {load}")


def main_tls(rounds: int) -> None:
    box, workdir = new_sandbox("bench")
    box.up()
    try:
        box.set_mode("https")
        config = workdir / "wscheck-tls.toml"
        config.write_text(box.tls_target_toml())
        (target,) = load_targets(config).targets
        full, jlist, solo = asyncio.run(warm(target, rounds))
        load = load_note()
    finally:
        box.down()
    med = statistics.median
    print(f"https target, full checklist in-process, warm connection: median {med(full):.3f} s"
          f" (p90 {p90(full):.3f}); one channel per command {med(solo):.3f} s; {load}")
    print(f"slowest single command (pm2 jlist), warm connection:      median {med(jlist):.3f} s")
    print(f"full checklist / pm2 jlist:                               {med(full) / med(jlist):.2f}x")


if __name__ == "__main__":
    main()
