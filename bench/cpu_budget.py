"""The CPU a full checklist costs, summed over every process it wakes, against the wall time of `pm2 jlist`.

Why: bench_checks.py's ratio "full checklist / slowest command" mixes two things: waiting (round trips, a
follow-up after the slowest command) and CPU contention, when the bot, sshd, the target's commands and the app
share a few cores. timeline.py showed that the run no longer waits after jlist. This bench says whether the CPU
alone allows the target ratio: when the whole checklist needs C CPU-seconds and the machine has n cores, no
schedule can end before C / n, so `max(jlist, C / n) / jlist` is the lowest ratio this machine can show. And
`pm2 jlist` alone is node starting PM2's client, which keeps more than one core busy (V8's compiler and GC
threads): held to one core (`taskset`) it is slower, which is what it becomes while the rest of the checklist
keeps the other core busy.

It counts CPU where the kernel accounts it: the bot process (its own threads), and every process of the sandbox
(sshd with its sessions and their commands, nginx, the PM2 daemon and the app), as utime + stime plus the
cutime + cstime of the children they reaped. A command that ran and exited inside a run is counted in the sshd
session that waited for it. Per run, the split by part shows where to cut.

    .venv/bin/python bench/cpu_budget.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import load_sandbox, new_sandbox  # noqa: E402

from checks import commands  # noqa: E402
from checks.config import Target, load_targets  # noqa: E402
from checks.runner import run_checks  # noqa: E402
from checks.transport.ssh import SSHTransport  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, CPU seconds of the process and of its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return name, int(fields[1]), (utime + stime + cutime + cstime) / TICK


def sandbox_cpu(box: object) -> dict[str, float]:
    """CPU seconds so far of the sandbox's processes, by part: sshd (and every command run through it), nginx,
    pm2 (the God Daemon and the app)."""
    sb = load_sandbox()
    roots = sb._pids_with_env(sb.MARKER_ENV, str(box.workdir), box._pw().pw_uid)  # type: ignore[attr-defined]
    roots |= {box.sshd_pid, box.nginx_master_pid()}  # type: ignore[attr-defined]  # root's, without the marker
    parts = {"sshd": 0.0, "nginx": 0.0, "pm2+app": 0.0}
    stats = {pid: s for pid in os.listdir("/proc") if pid.isdigit() and (s := _stat(int(pid))) is not None
             for pid in [int(pid)]}
    children: dict[int, list[int]] = {}
    for pid, (_name, ppid, _cpu) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    for root in roots:
        if root in seen or root not in stats:
            continue
        name = stats[root][0]
        part = "sshd" if name.startswith("sshd") else "nginx" if name.startswith("nginx") else "pm2+app"
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            parts[part] += stats[pid][2]
            todo.extend(children.get(pid, []))
    return parts


async def measure(box: object, target: Target, rounds: int) -> None:
    transport = SSHTransport(target)
    rows: dict[str, list[dict[str, float]]] = {"pm2 jlist alone": [], "pm2 jlist, 1 core": [], "full checklist": []}
    try:
        await run_checks(target, transport)
        for _ in range(rounds):
            for name in rows:
                before, bot_before, started = sandbox_cpu(box), time.process_time(), time.perf_counter()
                if name == "full checklist":
                    report = await run_checks(target, transport)
                    assert report.exit_code == 0, report.to_json_dict()
                elif name == "pm2 jlist alone":
                    await transport.run(commands.pm2(target, "jlist"), timeout=30)
                else:  # the same command held to one core (util-linux taskset on the target)
                    await transport.run(["taskset", "-c", "0", *commands.pm2(target, "jlist")], timeout=30)
                wall = time.perf_counter() - started
                bot = time.process_time() - bot_before
                # The sessions reap their commands as they end; let the last exit reach the accounting.
                await asyncio.sleep(0.2)
                after = sandbox_cpu(box)
                row = {part: after[part] - before[part] for part in after}
                row.update(bot=bot, wall=wall)
                row["total"] = sum(v for k, v in row.items() if k != "wall")
                rows[name].append(row)
    finally:
        await transport.aclose()
    cores = len(os.sched_getaffinity(0))
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    print(f"{cores} cores; load average {os.getloadavg()[0]:.2f}; medians of {rounds} rounds (CPU in ms)")
    print(f"{'':18} {'wall':>6} {'total':>6} {'bot':>6} {'sshd':>6} {'nginx':>6} {'pm2+app':>8}")
    for name, m in med.items():
        print(f"{name:18} {m['wall'] * 1000:6.0f} {m['total'] * 1000:6.0f} {m['bot'] * 1000:6.0f} "
              f"{m['sshd'] * 1000:6.0f} {m['nginx'] * 1000:6.0f} {m['pm2+app'] * 1000:8.0f}")
    jlist, full, pinned = med["pm2 jlist alone"], med["full checklist"], med["pm2 jlist, 1 core"]
    floor = max(jlist["wall"], full["total"] / cores)
    rest = full["total"] - jlist["total"]
    spare = cores * jlist["wall"] - jlist["total"]
    print(f"pm2 jlist alone keeps {jlist['total'] / jlist['wall']:.2f} cores busy; held to one core it takes "
          f"{pinned['wall'] / jlist['wall']:.2f}x its time")
    print(f"the rest of the checklist: {rest * 1000:.0f} ms CPU; what the cores have beside jlist in its own time: "
          f"{spare * 1000:.0f} ms")
    print(f"full checklist / jlist, measured: {full['wall'] / jlist['wall']:.2f}x")
    print(f"lowest ratio the CPU allows on {cores} cores: max(jlist, total/{cores}) / jlist = "
          f"{floor / jlist['wall']:.2f}x (total {full['total'] * 1000:.0f} ms CPU)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    box, workdir = new_sandbox("cpubudget")
    box.up()
    try:
        config = workdir / "wscheck.toml"
        config.write_text(box.target_toml())
        (target,) = load_targets(config).targets
        asyncio.run(measure(box, target, args.rounds))
    finally:
        box.down()


if __name__ == "__main__":
    main()
