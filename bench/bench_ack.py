"""Benchmark: Slack ack latency of `/wscheck` under load (50 concurrent commands while the checks run).

Starts the sandbox stack (deploy/sandbox, healthy), the strict fake Slack (tests/fakeslack: Web API, Socket
Mode, response_url) in this process, then the real bot (`wscheck run --config <sandbox toml>`, Socket Mode
against the fake, WSCHECK_MONITOR=false, WSCHECK_RATE_LIMIT=1000, a temp DB, no proxy variables). After one
warm-up command (the SSH connection is opened lazily), each round sends N `/wscheck` slash-command
envelopes at once over the Socket Mode connection, from several users, mixing the whole checklist and
single items, and records:
  * ack latency: the fake's envelope `ack_latency` (envelope sent -> ack received on the socket);
  * time to report: envelope sent -> the fake accepts the report POSTed to the envelope's response_url;
  * distinct check runs: identical requests in flight share one run. Counted exactly from the bot's
    `BENCH checkrun` lines (it runs through bench/_instrumented_bot.py, which only adds such lines; with
    --plain it runs `python -m bot.cli` and runs are counted from the reports' timings instead).

    .venv/bin/python bench/bench_ack.py [--commands 50] [--rounds 3] [--users 5] [--plain]

Target (issue): ack p99 < 200 ms while the checks themselves run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import Sampler, bot_argv, new_sandbox, pct, raise_nofile

from tests.fakeslack import FakeSlack
from tests.fakeslack.models import Envelope
from tests.support.botproc import BotProcess, bot_env

CHANNEL = "C0OPS"
#: What people type: the whole checklist (three spellings of the same request) and single items.
MIX = ("", "pm2", "nginx", "ws", "all", "port", "build", "http", "sandbox", "logs", "pm2 sandbox", "ws.proxy")
DURATION_RE = re.compile(r"\b\d+(?:\.\d+)? (?:ms|s)\b")


@dataclass
class Round:
    acks: list[float] = field(default_factory=list)
    reports: list[float] = field(default_factory=list)
    runs_exact: int | None = None
    runs_fingerprint: int = 0
    selections: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def _report_post(fake: FakeSlack, env: Envelope) -> Any:
    for post in fake.response_posts(env):
        body = post.body if isinstance(post.body, dict) else {}
        text = str(body.get("text", ""))
        if post.http_status == 200 and "running" not in text and text.startswith("sandbox"):
            return post
    return None


def _selection(text: str) -> str:
    """What a command asks for: "", "all" and the target's name are all the whole checklist."""
    text = text.replace(" sandbox", "").strip()
    return "all" if text in ("", "all", "sandbox") else text


def _fingerprint(post: Any, text: str) -> tuple[str, ...]:
    """A report's timings: two requests answered from one shared run carry identical ones."""
    blocks = json.dumps(post.body.get("blocks", []))
    stamp = re.findall(r"<!date\^(\d+)\^", blocks)
    return (text, *stamp, *DURATION_RE.findall(blocks))


async def one_round(fake: FakeSlack, bot: BotProcess, users: list[str], n: int) -> Round:
    fake.reset()
    result = Round()
    mark = len(bot.err)
    texts = [MIX[i % len(MIX)] for i in range(n)]
    result.selections = len({_selection(t) for t in texts})
    cpu0, t0 = _cpu(bot), time.monotonic()
    envs = await asyncio.gather(*(fake.send_slash_command(text, user_id=users[i % len(users)], channel_id=CHANNEL)
                                  for i, text in enumerate(texts)))
    await fake.wait_for(lambda: all(_report_post(fake, e) is not None for e in envs) or None, timeout=120,
                        what="every report via response_url")
    result.wall_s = time.monotonic() - t0
    result.cpu_s = _cpu(bot) - cpu0
    offset = time.time() - time.monotonic()
    fingerprints = set()
    for env, text in zip(envs, texts, strict=True):
        if env.ack_latency is None:
            result.problems.append(f"envelope {env.envelope_id} not acked")
            continue
        result.acks.append(env.ack_latency)
        post = _report_post(fake, env)
        result.reports.append(post.at - (env.sent_at + offset))
        fingerprints.add(_fingerprint(post, _selection(text)))
    result.runs_fingerprint = len(fingerprints)
    checkruns = [x for x in bot.err[mark:] if x.text.startswith("BENCH checkrun")]
    result.runs_exact = len(checkruns) if any(x.text.startswith("BENCH ") for x in bot.err) else None
    result.problems += list(fake.problems)
    return result


def _cpu(bot: BotProcess) -> float:
    s = Sampler(bot.pid).take()
    return s.cpu if s else float("nan")


async def bench(config: Path, args: argparse.Namespace, workdir: Path, baseline: Round) -> list[Round]:
    rounds: list[Round] = []
    async with FakeSlack() as fake:
        users = [f"U0USER{i:02d}" for i in range(args.users)]
        for i, user in enumerate(users):
            fake.add_user(user, name=f"user{i}")
        fake.add_channel(CHANNEL, "ops")
        env = bot_env({
            "SLACK_API_URL": fake.api_url,
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "WSCHECK_MONITOR": "false",
            "WSCHECK_RATE_LIMIT": "1000",
            "WSCHECK_DB": str(workdir / "wscheck.db"),
        })
        bot = BotProcess.command(bot_argv(config, instrumented=not args.plain), env, name="bot")
        try:
            await bot.start(ready=None)
            await bot.wait_line(r"wscheck ready", timeout=60)
            await fake.wait_connected(timeout=20)
            warm = await fake.send_slash_command("", user_id=users[0], channel_id=CHANNEL)
            await fake.wait_for(lambda: _report_post(fake, warm), timeout=60, what="warm-up report")
            for i in range(args.baseline):  # one command at a time, nothing else running
                env1 = await fake.send_slash_command(MIX[i % len(MIX)], user_id=users[i % len(users)],
                                                     channel_id=CHANNEL)

                def reported(env1: Envelope = env1) -> Any:
                    return _report_post(fake, env1)

                await fake.wait_for(reported, timeout=60, what="baseline report")
                offset = time.time() - time.monotonic()
                baseline.acks.append(env1.ack_latency or float("nan"))
                baseline.reports.append(_report_post(fake, env1).at - (env1.sent_at + offset))
            for i in range(args.rounds):
                r = await one_round(fake, bot, users, args.commands)
                rounds.append(r)
                print(f"  round {i + 1}: ack p50 {pct(r.acks, 50) * 1000:.0f} ms p99 {pct(r.acks, 99) * 1000:.0f} ms; "
                      f"report p50 {pct(r.reports, 50) * 1000:.0f} ms max {max(r.reports) * 1000:.0f} ms; "
                      f"runs {r.runs_exact if r.runs_exact is not None else r.runs_fingerprint}", file=sys.stderr)
                await asyncio.sleep(args.pause)
        finally:
            code = await bot.stop()
            if code != 0:
                print(f"bot exited {code}\n{bot.tail()}", file=sys.stderr)
    return rounds


def _row(name: str, values: list[float]) -> str:
    return (f"| {name} | {pct(values, 50) * 1000:.0f} ms | {pct(values, 90) * 1000:.0f} ms | "
            f"{pct(values, 99) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")


def report(rounds: list[Round], baseline: Round, args: argparse.Namespace) -> None:
    acks = [a for r in rounds for a in r.acks]
    reports = [a for r in rounds for a in r.reports]
    worst = max(rounds, key=lambda r: pct(r.acks, 99))
    print()
    print(f"{args.commands} concurrent /wscheck commands x {len(rounds)} rounds, {args.users} users, mix {list(MIX)}")
    print()
    print("| measurement | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|")
    if baseline.acks:
        print(_row(f"ack latency, one command at a time (baseline, {len(baseline.acks)})", baseline.acks))
    print(_row(f"ack latency, all {len(acks)} commands", acks))
    print(_row(f"ack latency, worst round (#{rounds.index(worst) + 1})", worst.acks))
    if baseline.reports:
        print(_row(f"time to the report, one command at a time (baseline, {len(baseline.reports)})",
                   baseline.reports))
    print(_row(f"time to the report via response_url, all {len(reports)}", reports))
    worst_rep = max(rounds, key=lambda r: max(r.reports))
    print(_row(f"time to the report, worst round (#{rounds.index(worst_rep) + 1})", worst_rep.reports))
    print()
    for i, r in enumerate(rounds, start=1):
        exact = f"{r.runs_exact} (counted in the bot)" if r.runs_exact is not None else "n/a (--plain)"
        print(f"round {i}: {len(r.acks)} acked; distinct check runs {exact}, {r.runs_fingerprint} by report "
              f"timings; {r.selections} distinct selections; all reports in {r.wall_s:.2f} s; bot CPU "
              f"{r.cpu_s:.2f} s ({r.cpu_s / r.wall_s:.2f} core); problems {Counter(r.problems) or 'none'}")
    p99 = pct(acks, 99)
    print(f"\ntarget ack p99 < 200 ms: {'MET' if p99 < 0.2 else 'NOT MET'} ({p99 * 1000:.0f} ms over all rounds, "
          f"worst round {pct(worst.acks, 99) * 1000:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--commands", type=int, default=50, help="concurrent commands per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument("--baseline", type=int, default=12, help="single commands, one at a time, first")
    parser.add_argument("--plain", action="store_true", help="run `python -m bot.cli` (no BENCH lines)")
    args = parser.parse_args()
    raise_nofile()
    box, workdir = new_sandbox("bench-ack")
    try:
        box.up()
        config = workdir / "wscheck.toml"
        baseline = Round()
        rounds = asyncio.run(bench(config, args, workdir, baseline))
    finally:
        box.down()
        shutil.rmtree(workdir, ignore_errors=True)
    report(rounds, baseline, args)


if __name__ == "__main__":
    main()
