"""Self-monitoring: /healthz and /metrics (Prometheus), a dead-man's-switch heartbeat, retention.

A monitoring bot that dies quietly is worse than none: the team believes it is watched. So the bot
serves its own health (Slack connection, scheduler alive, last successful cycle per target), exports
counters a Prometheus can alert on, and can ping an external dead-man's switch after each healthy
cycle, so that *silence* from the bot is noticed elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from checks.models import TargetReport

log = logging.getLogger(__name__)

RETENTION_EVERY = 3600.0


class Metrics:
    """The bot's Prometheus metrics, in a registry of their own (no process-global state in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("wscheck_checks_total", "Checks run, by check id and status", ["check", "status"],
                              registry=self.registry)
        self.check_seconds = Histogram("wscheck_check_duration_seconds", "Check duration", ["check"],
                                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=self.registry)
        self.reports = Counter("wscheck_reports_total", "Checklist runs, by target and overall status",
                               ["target", "status"], registry=self.registry)
        self.open_incidents = Gauge("wscheck_open_incidents", "Open incidents", registry=self.registry)
        self.outbox_depth = Gauge("wscheck_outbox_depth", "Alert messages waiting in the outbox",
                                  registry=self.registry)
        self.approvals = Counter("wscheck_approvals_total", "Remediation requests by final outcome", ["outcome"],
                                 registry=self.registry)
        self.schedule_lateness = Histogram("wscheck_schedule_lateness_seconds",
                                           "How late scheduled runs start (full, fast, tick)", ["job"],
                                           buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30), registry=self.registry)
        self.skipped_runs = Counter("wscheck_skipped_runs_total",
                                    "Scheduled runs skipped because the previous one still ran (a slow target)",
                                    ["job"], registry=self.registry)
        # --- wt-rel2: reliability (issue 13) ---
        self.outbox_events = Counter("wscheck_outbox_events_total",
                                     "Outbox trouble: lookup_failed (an uncertain message could not be looked up), "
                                     "uncertain_overdue (outcome still unknown after the bounded time)", ["event"],
                                     registry=self.registry)
        self.background_errors = Counter("wscheck_background_errors_total",
                                         "Errors a background loop survived (canary, scheduler, outbox, expiry)",
                                         ["loop"], registry=self.registry)
        # --- end wt-rel2 ---
        self.last_cycle = Gauge("wscheck_last_cycle_timestamp_seconds", "Last completed full check per target",
                                ["target"], registry=self.registry)
        # --- wt-ha: replicas on PostgreSQL (bot/ha/leader.py); absent with SQLite (one bot) ---
        self.leader: Gauge | None = None
        self.leader_changes: Gauge | None = None
        self.lease_age: Gauge | None = None

    def watch_leader(self, role: Callable[[], bool], changes: Callable[[], int],
                     age: Callable[[], float | None]) -> None:
        """Role, leader changes and lease age, read when /metrics is scraped (no loop to keep them fresh)."""
        self.leader = Gauge("wscheck_leader", "1 when this replica is the leader, 0 when it follows",
                            registry=self.registry)
        self.leader.set_function(lambda: 1.0 if role() else 0.0)
        self.leader_changes = Gauge("wscheck_leader_changes", "Leader changes (new fencing tokens) this replica saw",
                                    registry=self.registry)
        self.leader_changes.set_function(lambda: float(changes()))
        self.lease_age = Gauge("wscheck_lease_age_seconds",
                               "Seconds since the leader last renewed its lease (NaN before the first look)",
                               registry=self.registry)
        self.lease_age.set_function(lambda: float("nan") if (a := age()) is None else a)

    def watch_shards(self, owned: Callable[[], int], members: Callable[[], int]) -> None:
        """WSCHECK_SHARDS=auto: this replica's share and the live members it last saw, read when scraped."""
        self.shard_owned = Gauge("wscheck_shard_owned_targets", "Targets this replica probes (its share)",
                                 registry=self.registry)
        self.shard_owned.set_function(lambda: float(owned()))
        self.shard_members = Gauge("wscheck_shard_live_members", "Live replicas sharing the targets, as last seen",
                                   registry=self.registry)
        self.shard_members.set_function(lambda: float(members()))

    def scheduled(self, job: str, late: float, skipped: bool) -> None:
        if skipped:
            self.skipped_runs.labels(job).inc()
        else:
            self.schedule_lateness.labels(job).observe(late)

    def observe(self, report: TargetReport) -> None:
        self.reports.labels(report.target, report.status.value).inc()
        for check in report.checks:
            self.checks.labels(check.id, check.status.value).inc()
            self.check_seconds.labels(check.id).observe(check.duration_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


Health = Callable[[], Awaitable[dict[str, Any]]]


class OpsServer:
    """`GET /healthz` (JSON, 200 healthy / 503 not) and `GET /metrics` on WSCHECK_METRICS_PORT."""

    def __init__(self, metrics: Metrics, health: Health, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("metrics and health on http://%s:%s/metrics and /healthz", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        body = await self.health()
        return web.json_response(body, status=200 if body.get("healthy") else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Heartbeat:
    """Pings WSCHECK_HEARTBEAT_URL once every target completed a monitoring cycle since the last ping."""

    def __init__(self, url: str, targets: list[str], *, min_interval: float) -> None:
        self.url = url
        self.pending = set(targets)
        self.targets = list(targets)
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = asyncio.Lock()
        self.pings = 0

    async def cycle_done(self, target: str) -> None:
        if not self.url:
            return
        async with self._lock:
            self.pending.discard(target)
            if self.pending or time.monotonic() - self._last < self.min_interval:
                return
            self.pending = set(self.targets)
            self._last = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=5, follow_redirects=True) as client:
                response = await client.get(self.url)
            self.pings += 1
            if response.status_code >= 400:
                log.warning("heartbeat answered HTTP %s", response.status_code)
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", type(exc).__name__)


async def retention_loop(purge: Callable[[datetime], Any], *, keep: float, stop: asyncio.Event) -> None:
    """Delete audit rows, incident history and delivered messages older than `keep` seconds, hourly."""
    while not stop.is_set():
        cutoff = datetime.now(UTC) - timedelta(seconds=keep)
        try:
            while True:
                counts: dict[str, int] = await purge(cutoff)
                purged = {k: v for k, v in counts.items() if v}
                if purged:  # a pass that deleted nothing says nothing
                    log.info("retention: purged %s", ", ".join(f"{k}={v}" for k, v in purged.items()))
                if not counts or max(counts.values(), default=0) < 1000:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention purge failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETENTION_EVERY)
