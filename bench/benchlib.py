"""Shared helpers of the benchmarks: a fresh sandbox, the bot's argv, /proc sampling, percentiles.

Not a benchmark itself. The scripts in bench/ run as `python bench/NAME.py`, so this module is on their path.
The sandbox package and the process harness are the tests' (tests/support/sandboxpkg.py, tests/support/botproc.py:
`BotProcess.command(argv, env)` runs any program, `bot_env` cleans the environment); `load_sandbox` is re-exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
if str(ROOT) not in sys.path:  # the scripts import tests.support (the sandbox package, the process harness)
    sys.path.insert(0, str(ROOT))

from tests.support.sandboxpkg import load_sandbox  # noqa: E402


def new_sandbox(name: str) -> tuple[Any, Path]:
    """A sandbox (not yet up) in a fresh /tmp/wscheck-NAME-* directory the sandbox user may enter; (box, workdir)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"wscheck-{name}-", dir="/tmp"))
    workdir.chmod(0o755)
    return load_sandbox().Sandbox(workdir), workdir


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- percentiles --------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Percentile `q` (0-100), linear interpolation between closest ranks; nan when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 10 else f"{seconds:.1f} s"


def secs(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds:.2f} s"


# -- a process and its /proc figures ------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds (children not included)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_kb(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) / VmSize of `pid` in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "Threads"):
            out[key] = int(value.split()[0])
    return out


def proc_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def established_to(pid: int, port: int) -> set[int]:
    """Inodes of `pid`'s ESTABLISHED TCP sockets whose remote port is `port` (IPv4 loopback)."""
    inodes: set[int] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        return set()
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote, state, inode = parts[2], parts[3], int(parts[9])
            if state == "01" and inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


@dataclass
class Sample:
    at: float
    cpu: float
    rss_kb: int
    hwm_kb: int
    fds: int


@dataclass
class Sampler:
    """Samples one pid's CPU seconds, RSS and fds every `interval` seconds (run as a task)."""

    pid: int
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def take(self) -> Sample | None:
        try:
            mem = proc_mem_kb(self.pid)
            sample = Sample(at=time.monotonic(), cpu=proc_cpu_seconds(self.pid), rss_kb=mem.get("VmRSS", 0),
                            hwm_kb=mem.get("VmHWM", 0), fds=proc_fds(self.pid))
        except (OSError, ValueError, IndexError):
            return None
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event, deadline: float) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            self.take()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    @staticmethod
    def cpu_share(samples: Sequence[Sample]) -> float:
        """CPU seconds per wall second between the first and last sample (1.0 = one core busy)."""
        if len(samples) < 2 or samples[-1].at <= samples[0].at:
            return math.nan
        return (samples[-1].cpu - samples[0].cpu) / (samples[-1].at - samples[0].at)

    @staticmethod
    def cpu_share_peak(samples: Sequence[Sample], span: float = 5.0) -> float:
        """Highest CPU share over any `span`-second stretch of the samples."""
        best = math.nan
        j = 0
        for i in range(len(samples)):
            while j < i and samples[i].at - samples[j].at > span:
                j += 1
            if i > j and samples[i].at - samples[j].at >= span * 0.8:
                share = (samples[i].cpu - samples[j].cpu) / (samples[i].at - samples[j].at)
                best = share if math.isnan(best) else max(best, share)
        return best


# -- the bot's argv (the process harness is tests/support/botproc.py: BotProcess) ----------------------------


def bot_argv(config: Path, *, instrumented: bool = False, console: bool = False) -> list[str]:
    """The real `wscheck run` (or the same, through bench/_instrumented_bot.py, for scheduler timings)."""
    head = [PYTHON, str(ROOT / "bench" / "_instrumented_bot.py")] if instrumented else [PYTHON, "-m", "bot.cli"]
    return [*head, "run", "--config", str(config), *(["--console"] if console else [])]
