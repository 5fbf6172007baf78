"""Running checks for the bot: one transport per target, shared runs, per-user rate limits.

Both the chat fronts and the monitor ask for reports through `CheckService`; identical requests in
flight for the same target share one run (a burst of `/wscheck` from five people costs one SSH round),
and a slow target only ever delays the callers that asked about it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from bot.settings import ssh_agent_path
from checks.config import Target, TargetsConfig
from checks.details import Pm2Details
from checks.items.host import restart_sample
from checks.models import TargetReport
from checks.registry import resolve_selection
from checks.runner import run_checks
from checks.transport import Transport, make_transport

#: Checklists running at once, across targets (each is ~6 SSH channels and a few probes).
MAX_PARALLEL_RUNS = 48


class CheckService:
    def __init__(self, config: TargetsConfig) -> None:
        self.config = config
        self._transports: dict[str, Transport] = {}
        self._inflight: dict[tuple[str, tuple[str, ...]], asyncio.Task[TargetReport]] = {}
        self.runs = 0
        self._slots = asyncio.Semaphore(MAX_PARALLEL_RUNS)
        #: Called with every fresh report (metrics); shared runs are reported once.
        self.on_report: list[Callable[[TargetReport], None]] = []
        #: wt-host2: per target, the PM2 restart counts of the last report that saw them (pm2.status), which the
        #: next run's pm2.restarts compares with. Kept here, where every report passes (the monitor's scheduled,
        #: fast and confirming runs, and people's), so the check and the diagnosis get it as plain data.
        self.restart_samples: dict[str, dict[str, Any]] = {}

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.config.targets

    def target(self, name: str) -> Target:
        target = self.config.get(name)
        if target is None:
            raise KeyError(name)
        return target

    def transport(self, target: Target) -> Transport:
        transport = self._transports.get(target.name)
        if transport is None:
            transport = self._transports[target.name] = make_transport(target, agent_path=ssh_agent_path())
        return transport

    async def run(self, target_name: str, checks: Sequence[str] = ()) -> TargetReport:
        """Run (or join an identical run already in flight) and return the report. Never raises for
        target problems: those are `error` results."""
        target = self.target(target_name)
        ids = resolve_selection(list(checks))
        key = (target.name, ids)
        task = self._inflight.get(key)
        if task is None:
            self.runs += 1
            task = asyncio.ensure_future(self._run_capped(target, ids))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return await asyncio.shield(task)

    async def _run_capped(self, target: Target, ids: tuple[str, ...]) -> TargetReport:
        """At most MAX_PARALLEL_RUNS checklists at once: past that, runs wait their turn *before* their own
        timeouts start, so an overloaded bot is late (visible in wscheck_schedule_lateness_seconds) instead
        of blaming healthy targets for its own queueing."""
        async with self._slots:
            return await run_checks(target, self.transport(target), ids, config_file=self.config.config_file,
                                    restart_sample=self.restart_samples.get(target.name))

    def _finished(self, key: tuple[str, tuple[str, ...]], task: asyncio.Task[TargetReport]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        report = task.result()
        pm2 = report.result("pm2.status")
        sample = restart_sample(Pm2Details.of(pm2), report.started_at.timestamp()) if pm2 is not None else None
        if sample is not None:
            self.restart_samples[report.target] = sample
        for hook in self.on_report:
            hook(report)

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await asyncio.gather(*(t.aclose() for t in self._transports.values()), return_exceptions=True)
        self._transports.clear()


class RateLimiter:
    """At most `limit` commands per user in any `window` seconds (sliding window, `now` passed in)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def allow(self, user: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next command would be allowed)."""
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault(user, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False, self.window - (now - hits[0])
        hits.append(now)
        return True, 0.0
