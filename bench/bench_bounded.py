"""Benchmark (issue 13): acks while a 5 MB nginx config is checked, and no remote process left by hung commands.

Part 1 — acks. Starts the sandbox stack (deploy/sandbox, healthy), adds a ~5 MB `geo` list next to its site
(nginx includes sites-enabled/*, so `nginx -T` dumps it and `nginx -t` validates it), starts the strict fake
Slack (tests/fakeslack) and the real bot (`wscheck run`, monitor on: a full check every 2 s and a fast probe
every 1 s, so the dump is parsed over and over), then sends `/wscheck nginx` every `--spacing` s (each asks
for a parse too) and records the fake's envelope ack latency (envelope sent -> ack on the socket) and the
bot's peak RSS (VmHWM). Two configs: one the bot still models (150k statements, parsed in a worker thread)
and one over the model's budget (260k statements: refused before lexing, `warn`).

Part 2 — hung commands. 20 commands that never end on their own (`sleep`, with a command timeout of 1 s)
through the real SSHTransport against the sandbox's sshd; then counts those left running on the target.

    .venv/bin/python bench/bench_bounded.py [--commands 60] [--spacing 0.1]

Targets (issue 13): ack p99 < 200 ms while a 5 MB config is being checked; no remote process left after
20 hung commands.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from benchlib import Sampler, bot_argv, new_sandbox, pct, raise_nofile

from checks.config import load_targets
from checks.transport.base import CommandTimeout
from checks.transport.ssh import SSHTransport
from tests.fakeslack import FakeSlack
from tests.support.botproc import BotProcess, bot_env

CHANNEL = "C0OPS"
USER = "U0BENCH"


def geo_block(entries: int, width: int) -> str:
    lines = "".join(f"    10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32 {'v' * width};\n" for i in range(entries))
    return f"geo $remote_addr $wscheck_bench_geo {{\n    default 0;\n{lines}}}\n"


async def churn(site: Path, geo: str, stop: asyncio.Event) -> None:
    """Rewrite the geo list every second with one value changed: every check meets a dump it has not modelled."""
    n = 0
    while not stop.is_set():
        n += 1
        await asyncio.to_thread(site.write_text, geo.replace("default 0;", f"default {n};", 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def acks(box: Any, config: Path, workdir: Path, geo: str, args: argparse.Namespace,
               changing: bool) -> dict[str, Any]:
    site = Path(box.site_file).parent / "zz-wscheck-bench-geo"
    site.write_text(geo)
    site.chmod(0o644)
    test = box.nginx("-t")
    if test.returncode != 0:
        raise SystemExit(f"nginx refuses the bench config: {test.stderr}")
    try:
        async with FakeSlack() as fake:
            fake.add_user(USER, name="bench")
            fake.add_channel(CHANNEL, "ops")
            env = bot_env({
                "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
                "WSCHECK_DB": str(workdir / f"{uuid.uuid4().hex}.db"), "WSCHECK_ALERT_CHANNEL": CHANNEL,
                "WSCHECK_CHECK_INTERVAL": "2s", "WSCHECK_FAST_INTERVAL": "1s", "WSCHECK_JITTER": "0",
                "WSCHECK_RATE_LIMIT": "1000", "WSCHECK_LOG_LEVEL": "debug",
            })
            bot = BotProcess.command(bot_argv(config), env, name="bot")
            stop = asyncio.Event()
            churner = asyncio.ensure_future(churn(site, geo, stop)) if changing else None
            try:
                await bot.start(ready=None)
                # Commands start with the bot: the first full check (the first parse) runs meanwhile.
                await bot.wait_line(r"wscheck ready", timeout=90)
                await fake.wait_connected(timeout=20)

                async def one(i: int) -> Any:
                    await asyncio.sleep(i * args.spacing)
                    return await fake.send_slash_command("nginx", user_id=USER, channel_id=CHANNEL)

                started = time.monotonic()
                envs = await asyncio.gather(*(one(i) for i in range(args.commands)))
                await fake.wait_for(lambda: all(fake.responses(e) for e in envs) or None, timeout=180,
                                    what="every answer")
                wall = time.monotonic() - started
                sample = Sampler(bot.pid).take()
                full = [x.text for x in bot.err if "full probe sandbox:" in x.text]
                latencies = [e.ack_latency for e in envs if e.ack_latency is not None]
                return {"acks": latencies, "missing": len(envs) - len(latencies), "wall": wall,
                        "hwm_mb": (sample.hwm_kb / 1024) if sample else float("nan"),
                        "full_probes": len(full), "last_full": full[-1].split("full probe ")[-1] if full else "-",
                        "roots": sum(1 for m in fake.messages(CHANNEL)
                                     if (m.metadata or {}).get("event_type") == "wscheck_alert"),
                        "problems": list(fake.problems)}
            finally:
                stop.set()
                if churner is not None:
                    await churner
                await bot.stop()
    finally:
        site.unlink(missing_ok=True)


def running(needle: str) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode():
                    count += 1
            except OSError:
                continue
    return count


async def hung(config: Path, count: int) -> dict[str, Any]:
    (target,) = load_targets(config).targets
    transport = SSHTransport(target)
    marker = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"
    started = time.monotonic()
    try:
        results = await asyncio.gather(*(transport.run(["sleep", marker], timeout=1.0) for _ in range(count)),
                                       return_exceptions=True)
        timeouts = sum(isinstance(r, CommandTimeout) for r in results)
        others = [repr(r) for r in results if not isinstance(r, CommandTimeout)]
        wall = time.monotonic() - started
        for _ in range(100):  # the last TERMs land within a moment; poll /proc for up to 5 s
            if running(f"sleep {marker}") == 0:
                break
            await asyncio.sleep(0.05)
        left = running(f"sleep {marker}")
        after = await transport.run(["true"], timeout=5)
        return {"timeouts": timeouts, "others": others, "left": left, "wall": wall, "next_ok": after.ok,
                "connects": transport.connects}
    finally:
        await transport.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--commands", type=int, default=60, help="slash commands per config")
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between commands")
    parser.add_argument("--hung", type=int, default=20, help="hung commands in part 2")
    args = parser.parse_args()
    raise_nofile()
    box, workdir = new_sandbox("bench-bounded")
    rows = []
    try:
        box.up()
        config = workdir / "wscheck.toml"
        config.write_text(box.target_toml())
        modelled, over = geo_block(150_000, 15), geo_block(260_000, 1)
        for name, geo, changing in (
                ("150k statements, rewritten every second (a fresh parse per check)", modelled, True),
                ("150k statements, unchanged (parsed once, in the parse thread)", modelled, False),
                ("260k statements (over the budget: warn, refused before lexing)", over, False)):
            size = len(geo) / 2**20
            result = asyncio.run(acks(box, config, workdir, geo, args, changing))
            rows.append((f"{size:.1f} MB geo, {name}", result))
            a = result["acks"]
            print(f"  {name}: ack p50 {pct(a, 50) * 1000:.0f} ms p99 {pct(a, 99) * 1000:.0f} ms max "
                  f"{max(a) * 1000:.0f} ms", file=sys.stderr)
        hung_result = asyncio.run(hung(config, args.hung))
    finally:
        box.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.commands} `/wscheck nginx`, one every {args.spacing:g} s, while the monitor checks every 1-2 s\n")
    print("| config | acks | p50 | p99 | max | bot peak RSS | full probes (last) | incidents |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, r in rows:
        a = r["acks"]
        worst = max(worst, pct(a, 99))
        print(f"| {name} | {len(a)} (+{r['missing']} not acked) | {pct(a, 50) * 1000:.0f} ms | "
              f"{pct(a, 99) * 1000:.0f} ms | {max(a) * 1000:.0f} ms | {r['hwm_mb']:.0f} MB | "
              f"{r['full_probes']} ({r['last_full']}) | {r['roots']} |")
    print(f"\ntarget ack p99 < 200 ms: {'MET' if worst < 0.2 else 'NOT MET'} (worst p99 {worst * 1000:.0f} ms)")
    h = hung_result
    print(f"\n{args.hung} hung commands (command timeout 1 s): {h['timeouts']} CommandTimeout, other outcomes "
          f"{h['others'] or 'none'}, in {h['wall']:.1f} s; left running on the target: {h['left']}; "
          f"next command ok: {h['next_ok']}; SSH connections opened: {h['connects']}")
    print(f"target no remote process left: {'MET' if h['left'] == 0 else 'NOT MET'}")


if __name__ == "__main__":
    main()
