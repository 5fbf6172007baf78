"""`wscheck` (bot.cli) with scheduler timings on stderr, for bench/bench_scale.py. Not product code.

The product logs a full probe only when it ends (`full probe NAME: STATUS in N ms`), so a benchmark cannot
see when APScheduler *meant* to start a run. This wrapper changes nothing in the bot's behaviour; before
handing over to `bot.cli.main()` it adds, from the outside:

* an APScheduler listener printing each job submission (its scheduled_run_time and the wall clock at
  submission), each run skipped because the previous one was still running (max_instances=1), and each
  run missed (misfire_grace_time exceeded);
* a wrapper around `Monitor.full_probe` / `Monitor.fast_probe` printing when each scheduled run really
  started and ended;
* a wrapper around the `run_checks` that CheckService calls, printing each new checklist run (requests that
  join an identical run in flight do not start one).

Lines start with `BENCH ` and carry time.time() values:

    BENCH submitted JOB_ID SCHEDULED SUBMITTED N_COALESCED
    BENCH ran JOB_ID SCHEDULED STARTED ENDED
    BENCH skipped JOB_ID SCHEDULED NOW        (max_instances reached)
    BENCH missed JOB_ID SCHEDULED NOW         (misfire grace time exceeded)
    BENCH checkrun TARGET NOW CHECK_IDS       (CheckService starts a new checklist run; joiners don't)

With BENCH_STAGGER=1 it also offsets each target's first runs by crc32(name)/2^32 of their interval: the
what-if that showed, before a6ea518, what spreading the targets would do (a6ea518 now spreads them itself).
Since a6ea518 the product also logs each run's lateness (debug) and each skipped run (warning) itself.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.chat import service
from bot.cli import main
from bot.monitoring import monitor

_scheduled: dict[str, float] = {}


def _emit(line: str) -> None:
    sys.stderr.write("BENCH " + line + "\n")


def _listener(event: Any) -> None:
    now = time.time()
    if not isinstance(event, JobSubmissionEvent) or not event.scheduled_run_times:
        return
    scheduled = event.scheduled_run_times[-1].timestamp()
    if event.code == EVENT_JOB_SUBMITTED:
        _scheduled[event.job_id] = scheduled
        _emit(f"submitted {event.job_id} {scheduled:.6f} {now:.6f} {len(event.scheduled_run_times)}")
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        _emit(f"skipped {event.job_id} {scheduled:.6f} {now:.6f}")


def _missed(event: Any) -> None:
    run_time = getattr(event, "scheduled_run_time", None)
    if run_time is not None:
        _emit(f"missed {event.job_id} {run_time.timestamp():.6f} {time.time():.6f}")


_original_start = AsyncIOScheduler.start


def _start(self: AsyncIOScheduler, *args: Any, **kwargs: Any) -> None:
    self.add_listener(_listener, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
    self.add_listener(_missed, EVENT_JOB_MISSED)
    _original_start(self, *args, **kwargs)


Probe = Callable[[Any, str], Coroutine[Any, Any, None]]


def _timed(kind: str, original: Probe) -> Probe:
    async def probe(self: Any, name: str) -> None:
        job = f"{kind}:{name}"
        scheduled = _scheduled.get(job, float("nan"))
        started = time.time()
        try:
            await original(self, name)
        finally:
            _emit(f"ran {job} {scheduled:.6f} {started:.6f} {time.time():.6f}")

    return probe


_original_run_checks = vars(service)["run_checks"]


async def _counted_run_checks(target: Any, transport: Any, only: Any = (), **kwargs: Any) -> Any:
    """CheckService.run starts a new run here (a request joining a run in flight does not get here)."""
    _emit(f"checkrun {target.name} {time.time():.6f} {','.join(only) or 'all'}")
    return await _original_run_checks(target, transport, only, **kwargs)


_original_add_job = AsyncIOScheduler.add_job


def _staggered_add_job(self: AsyncIOScheduler, func: Any, *args: Any, **kwargs: Any) -> Any:
    """BENCH_STAGGER=1 (a what-if, not the product): spread each target's first run over its interval."""
    job_id = str(kwargs.get("id") or "")
    if job_id.startswith(("full:", "fast:")) and kwargs.get("next_run_time") is not None:
        interval = float(kwargs.get("seconds") or 0)
        phase = zlib.crc32(job_id.split(":", 1)[1].encode()) / 2**32
        kwargs["next_run_time"] = kwargs["next_run_time"] + timedelta(seconds=phase * interval)
    return _original_add_job(self, func, *args, **kwargs)


AsyncIOScheduler.start = _start
if os.environ.get("BENCH_UNBATCHED") == "1":
    # wt-perf's comparison (a what-if, not the product): every command on its own SSH channel, as before batches.
    from checks.transport.base import Transport
    from checks.transport.ssh import SSHTransport

    SSHTransport.start_many = Transport.start_many  # type: ignore[method-assign]
if os.environ.get("BENCH_STAGGER") == "1":
    AsyncIOScheduler.add_job = _staggered_add_job
monitor.Monitor.full_probe = _timed("full", monitor.Monitor.full_probe)  # type: ignore[method-assign,assignment]
monitor.Monitor.fast_probe = _timed("fast", monitor.Monitor.fast_probe)  # type: ignore[method-assign,assignment]
vars(service)["run_checks"] = _counted_run_checks

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
