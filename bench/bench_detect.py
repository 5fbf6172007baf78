"""Benchmark: detection latency, from breaking the sandbox stack to the alert reaching (fake) Slack.

Starts the sandbox stack (deploy/sandbox), the strict fake Slack (tests/fakeslack) in this process, and the
real bot once (`python -m bot.cli run`, Socket Mode against the fake) with monitoring at the production
defaults: WSCHECK_CHECK_INTERVAL=60s, WSCHECK_FAST_INTERVAL=10s, WSCHECK_CANARY_PING_INTERVAL=5s, jitter
2 s, failure/success thresholds 2, canary on. Two settings differ from the defaults, neither on the
detection path: WSCHECK_FLAP_WINDOW=1s (else from the 2nd run on the bot would reuse the previous incident's
root message, and from the 3rd on it would call the target flapping and go quiet: every run must open a NEW incident)
and WSCHECK_RATE_LIMIT=1000 (the bench presses buttons as one user).

Each run, the bot kept running across runs:
  1. settle: no open incident, the canary's WebSocket to nginx established (seen in /proc as a TCP
     connection of the bot process to nginx's port that lasts), PM2's uptime past the bot's 8 s restart
     grace with no "checking again" recheck pending, then 2 s of quiet plus a random 0-10 s (the phase
     of the break within the canary's 5 s ping cycle and the 10 s fast-probe cycle);
  2. break the stack, and time from the breaking command's return (t0) to the moment the fake stored the
     new root alert in the channel (its `ts` is the fake's wall clock at storage):
       app  "the app goes down": `pm2 stop kathario-saas` (t0 = the command returned; the app dies while it
            runs, so "from the command's start" is shown too);
       ws   "the WebSocket is cut": SIGTERM to nginx's master (fast shutdown: every connection through
            nginx, the canary's WebSocket included, closes at once; plain HTTP fails as well). Why not
            `set_mode("nginx-no-upgrade")`: a reload leaves established WebSockets to the old worker until
            worker_shutdown_timeout (3 s in the sandbox), and set_mode returns only after that, so its return
            is not the moment of the cut;
       noupgrade (optional) the seed story's nginx site without the upgrade headers, reloaded: t0 = the
            moment the old nginx worker (holding the canary's WebSocket) is gone, polled every 10 ms;
  3. restore (`pm2 start` / `set_mode("healthy")`), wait until nginx answers 200 and 101 again, press the
     alert's "Run checks" button twice (two healthy full runs = the success threshold; waiting for two
     60 s full probes would make each run take two minutes) and wait for the root to say "resolved after".
The bot's own log says what triggered the confirming full run ("confirming sandbox: canary: …" or "…: fast
probe failed"); the table shows it with the time to that line and to the incident being opened.

    .venv/bin/python bench/bench_detect.py [--runs 10] [--scenarios app,ws] [--canary on|off]

Targets (issue): WebSocket drop -> alert <= 2 s; PM2 leaving online -> alert <= fast_interval + 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import bot_argv, established_to, load_sandbox, new_sandbox, pct, raise_nofile

from tests.fakeslack import FakeSlack
from tests.fakeslack.models import Envelope
from tests.support.botproc import BotProcess, bot_env

ALERTS = "C0ALERTS"
ALICE = "U0ALICE"
APP = "kathario-saas"
RUN_CHECKS = "wscheck_incident_run"  # bot.monitoring.alerts.ACTION_INCIDENT_RUN
FAST_INTERVAL = 10.0
RESTART_GRACE = 8.0  # bot.monitoring.monitor.RESTART_GRACE
CHECK_INTERVAL = 60.0
CAUSE_RE = re.compile(r"\b([a-z0-9]+(?:_[a-z0-9]+)+)\b")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass
class Run:
    scenario: str
    index: int
    latency: float = math.nan  # t0 -> root stored by the fake
    from_command: float = math.nan  # command start -> root stored
    to_confirm: float = math.nan  # t0 -> "confirming" log line
    to_opened: float = math.nan  # t0 -> "incident …: incident_opened" log line
    trigger: str = ""
    cause: str = ""
    note: str = ""


@dataclass
class Ctx:
    box: Any
    module: Any
    fake: FakeSlack
    bot: BotProcess
    canary: bool
    rng: random.Random
    runs: list[Run] = field(default_factory=list)


def _log_wall(text: str) -> float:
    m = LOG_TIME.match(text)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else math.nan


def _roots(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages(ALERTS) if (m.metadata or {}).get("event_type") == "wscheck_alert"]


async def _stack_healthy(ctx: Ctx, timeout: float = 90) -> None:
    m, port = ctx.module, ctx.box.http_port

    def ok() -> bool:
        return bool(m.http_status(port, timeout=3) == 200 and m.ws_handshake_status(port, timeout=3) == 101)

    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(ok):
        if time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not come back healthy")
        await asyncio.sleep(0.2)


async def _canary_up(ctx: Ctx, timeout: float = 90) -> None:
    """The canary's WebSocket: a connection from the bot to nginx that is still there 1.5 s later."""
    if not ctx.canary:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = established_to(ctx.bot.pid, ctx.box.http_port)
        await asyncio.sleep(1.5)
        if first & established_to(ctx.bot.pid, ctx.box.http_port):
            return
    raise RuntimeError(f"the canary did not reconnect within {timeout} s\n{ctx.bot.tail()}")


async def _app_settled(ctx: Ctx, timeout: float = 60) -> None:
    """PM2's uptime past the bot's RESTART_GRACE (8 s), and no "checking again" recheck pending.

    A failure seen while the app (re)started less than 8 s ago is set aside as healing and looked at
    again 8 s later: breaking the stack in that window measures the grace, not the detection.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = await asyncio.to_thread(ctx.box.app_process)
        env = (proc or {}).get("pm2_env", {})
        uptime = time.time() - float(env.get("pm_uptime", 0)) / 1000 if env.get("status") == "online" else 0.0
        recheck = [x.at for x in ctx.bot.err if "checking again in" in x.text]
        quiet = not recheck or time.monotonic() - recheck[-1] > RESTART_GRACE + 1.5
        if uptime > RESTART_GRACE + 2 and quiet:
            return
        await asyncio.sleep(1.0)
    raise RuntimeError("the app did not settle (PM2 uptime / pending recheck)")


async def _resolve(ctx: Ctx, root: Any) -> None:
    """Press "Run checks" until the incident resolves (two healthy manual runs = the success threshold)."""
    fake = ctx.fake
    for _ in range(6):
        if "resolved after" in fake.message(ALERTS, root.ts).text:
            break
        click = await fake.send_block_action(RUN_CHECKS, user_id=ALICE, channel_id=ALERTS, message_ts=root.ts)

        def answered(click: Envelope = click) -> list[Any] | None:
            return fake.response_posts(click) or None

        await fake.wait_for(answered, timeout=60, what="the Run checks answer")
        await asyncio.sleep(0.3)
    await fake.wait_for(lambda: "resolved after" in fake.message(ALERTS, root.ts).text or None, timeout=60,
                        what="the resolve edit")
    await fake.wait_for(lambda: [r for r in fake.replies(ALERTS, root.ts) if "Resolved after" in r.text] or None,
                        timeout=60, what="the resolved reply")


async def _break(ctx: Ctx, scenario: str) -> tuple[float, float]:
    """Break the stack; (command start, t0) as time.time()."""
    box = ctx.box
    if scenario == "app":
        started = time.time()
        await asyncio.to_thread(box.pm2, "stop", APP)
        return started, time.time()
    if scenario == "ws":
        master = box.nginx_master_pid()
        if not master:
            raise RuntimeError("nginx is not running")
        started = time.time()
        os.kill(master, signal.SIGTERM)
        return started, time.time()
    if scenario == "noupgrade":
        return await asyncio.to_thread(_no_upgrade, box)
    raise ValueError(scenario)


def _no_upgrade(box: Any) -> tuple[float, float]:
    """The no-upgrade site, reloaded; t0 = the old worker (and the WebSockets it held) is gone."""
    before = box._nginx_workers()
    box._write_user_file(box.site_file, box.site_text(upgrade=False))
    started = time.time()
    if box.nginx("-s", "reload").returncode != 0:
        raise RuntimeError("nginx -s reload failed")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in before):
            return started, time.time()
        time.sleep(0.01)
    raise RuntimeError("the old nginx worker did not exit")


async def _restore(ctx: Ctx, scenario: str) -> None:
    if scenario == "app":
        await asyncio.to_thread(ctx.box.pm2, "start", APP)
    else:
        await asyncio.to_thread(ctx.box.set_mode, "healthy")
    await _stack_healthy(ctx)


async def one_run(ctx: Ctx, scenario: str, index: int, timeout: float) -> Run:
    fake, bot = ctx.fake, ctx.bot
    run = Run(scenario=scenario, index=index)
    await fake.wait_for(lambda: all("resolved after" in m.text for m in _roots(fake)) or None, timeout=120,
                        what="no open incident")
    await _canary_up(ctx)
    await _app_settled(ctx)
    # 2 s of quiet, plus a random phase: the canary pings every 5 s and the fast probe runs every 10 s, so
    # a run cadence that is regular would always break the stack at the same point of those cycles.
    await asyncio.sleep(2.0 + ctx.rng.uniform(0, FAST_INTERVAL))
    known = {m.ts for m in _roots(fake)}
    mark = len(bot.err)
    started, t0 = await _break(ctx, scenario)
    try:
        root = await fake.wait_for(lambda: next((m for m in _roots(fake) if m.ts not in known), None),
                                   timeout=timeout, what=f"the {scenario} alert")
    except AssertionError:
        run.note = f"no alert within {timeout:g} s"
        root = None
    if root is not None:
        at = float(root.ts)
        run.latency, run.from_command = at - t0, at - started
        cause = CAUSE_RE.search(root.text)
        run.cause = cause.group(1) if cause else root.text[:40]
    for line in bot.err[mark:]:
        if "confirming sandbox:" in line.text and not run.trigger:
            run.trigger = line.text.split("confirming sandbox:", 1)[1].strip()
            run.to_confirm = _log_wall(line.text) - t0
        if "incident_opened" in line.text and math.isnan(run.to_opened):
            run.to_opened = _log_wall(line.text) - t0
    await _restore(ctx, scenario)
    if root is not None:
        await _resolve(ctx, root)
    print(f"  {scenario} #{index}: alert {run.latency:.2f} s after t0 ({run.from_command:.2f} s after the command "
          f"started); confirm at {run.to_confirm:.2f} s via {run.trigger[:60]!r}; {run.cause} {run.note}",
          file=sys.stderr)
    return run


async def bench(box: Any, module: Any, args: argparse.Namespace, workdir: Path, log_lines: list[str]) -> list[Run]:
    runs: list[Run] = []
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    async with FakeSlack() as fake:
        fake.add_user(ALICE, name="alice")
        fake.add_channel(ALERTS, "alerts")
        env = bot_env({
            "SLACK_API_URL": fake.api_url,
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "WSCHECK_DB": str(workdir / "wscheck.db"),
            "WSCHECK_ALERT_CHANNEL": ALERTS,
            "WSCHECK_CHECK_INTERVAL": f"{CHECK_INTERVAL:g}s",
            "WSCHECK_FAST_INTERVAL": f"{FAST_INTERVAL:g}s",
            "WSCHECK_CANARY_PING_INTERVAL": "5s",
            "WSCHECK_CANARY": "true" if args.canary == "on" else "false",
            "WSCHECK_FLAP_WINDOW": "1s",
            "WSCHECK_RATE_LIMIT": "1000",
            "WSCHECK_LOG_LEVEL": "debug",
        })
        bot = BotProcess.command(bot_argv(workdir / "wscheck.toml"), env, name="bot")
        ctx = Ctx(box=box, module=module, fake=fake, bot=bot, canary=args.canary == "on", rng=random.Random(args.seed))
        try:
            await bot.start(ready=None)
            await bot.wait_line(r"wscheck ready", timeout=60)
            await fake.wait_connected(timeout=20)
            await bot.wait_line(r"full probe sandbox: ok", timeout=60)
            for i in range(1, args.runs + 1):
                for scenario in scenarios:
                    runs.append(await one_run(ctx, scenario, i, args.timeout))
            problems = [p for p in fake.problems if "not acked" in p or "rejected" in p]
            if problems:
                print(f"fake Slack problems: {Counter(problems)}", file=sys.stderr)
        finally:
            code = await bot.stop()
            if code != 0:
                print(f"bot exited {code}\n{bot.tail()}", file=sys.stderr)
            if args.log:
                log_lines.extend(f"{x.wall:.3f} {x.text}" for x in bot.err)
    return runs


def _stats(values: list[float]) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "- | - | -"
    return f"{pct(vals, 50):.2f} s | {pct(vals, 90):.2f} s | {max(vals):.2f} s"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    targets = {"app": ("PM2 leaving online", FAST_INTERVAL + 2), "ws": ("WebSocket drop", 2.0),
               "noupgrade": ("WebSocket drop", 2.0)}
    print()
    print(f"check_interval {CHECK_INTERVAL:g} s, fast_interval {FAST_INTERVAL:g} s, canary ping 5 s, "
          f"canary {args.canary}, jitter 2 s (defaults)")
    print()
    print("| scenario | runs | alerted | break -> alert median | p90 | max | target | met? "
          "| from the command's start, median | -> confirm run starts, median | -> incident opened, median "
          "| triggered by |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scenario in dict.fromkeys(r.scenario for r in runs):
        rs = [r for r in runs if r.scenario == scenario]
        lat = [r.latency for r in rs if not math.isnan(r.latency)]
        what, target = targets[scenario]
        met = "yes" if lat and len(lat) == len(rs) and max(lat) <= target else (
            "median only" if lat and pct(lat, 50) <= target else "no")
        triggers = Counter(("canary" if r.trigger.startswith("canary") else
                            "fast probe" if "fast probe" in r.trigger else r.trigger[:30] or "?") for r in rs)
        print(f"| {scenario} | {len(rs)} | {len(lat)} | {_stats([r.latency for r in rs])} | {what} <= {target:g} s "
              f"| {met} | {pct([r.from_command for r in rs if not math.isnan(r.from_command)], 50):.2f} s "
              f"| {pct([r.to_confirm for r in rs if not math.isnan(r.to_confirm)], 50):.2f} s "
              f"| {pct([r.to_opened for r in rs if not math.isnan(r.to_opened)], 50):.2f} s "
              f"| {dict(triggers)} |")
    print()
    for r in runs:
        print(f"{r.scenario} #{r.index}: {r.latency:.3f} s (from command start {r.from_command:.3f} s; confirm "
              f"{r.to_confirm:.3f} s; opened {r.to_opened:.3f} s) {r.cause} via {r.trigger[:70]!r} {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="runs per scenario (>= 10 for the issue)")
    parser.add_argument("--scenarios", default="app,ws", help="comma-separated: app, ws, noupgrade")
    parser.add_argument("--canary", default="on", choices=("on", "off"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one alert")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random phase before each break")
    parser.add_argument("--log", default="", help="write the bot's stderr (with arrival times) to this file")
    args = parser.parse_args()
    raise_nofile()
    module = load_sandbox()
    box, workdir = new_sandbox("bench-detect")
    runs: list[Run] = []
    log_lines: list[str] = []
    try:
        box.up()
        runs = asyncio.run(bench(box, module, args, workdir, log_lines))
    finally:
        if args.log:
            Path(args.log).write_text("\n".join(log_lines) + "\n")
        box.down()
        shutil.rmtree(workdir, ignore_errors=True)
    report(runs, args)


if __name__ == "__main__":
    main()
