"""`wscheck run`: startup -> run -> shutdown, like uvicorn's Server.

Startup loads settings and targets, opens what the bot needs and starts one front: Slack (when
SLACK_BOT_TOKEN is set) or the console. A `wscheck ready` line on stderr is the "started" signal tests
and operators wait for. SIGTERM and SIGINT stop it gracefully: the front stops taking commands,
running requests finish, connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.chat.core import Access, Bot
from bot.chat.service import CheckService
from bot.ops.logs import setup_logging
from bot.ops.metrics import Heartbeat, Metrics, OpsServer, retention_loop
from bot.settings import Settings, builtin_notice, load_config, resolve_config_path
from checks.config import ConfigError, Target, TargetsConfig
from wsmsg import Msg

if TYPE_CHECKING:
    from bot.fronts.console import ConsoleFront
    from bot.fronts.slack import SlackFront
    from bot.ha.leader import Elector
    from bot.ha.lease import Deposed
    from bot.ha.sharding import Membership
    from bot.monitoring.monitor import Monitor
    from bot.remediation.engine import Remediation
    from bot.store import Store
    from bot.store.outbox import Outbox, Sink

log = logging.getLogger("wscheck")

#: sysexits EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop on a bad token.
EXIT_CONFIG = 78
#: sysexits EX_TEMPFAIL: a leader that lost its lease stops; systemd (Restart=on-failure) brings it back as a
#: follower with fresh state (docs/ha.md).
EXIT_DEPOSED = 75
SHUTDOWN_GRACE = 10.0
#: The console front's reader task: intake, stopped before the features at shutdown.
CONSOLE_TASK = "console-front"


class BotServer:
    def __init__(self, settings: Settings, targets: TargetsConfig, *, console: bool, http: bool = False) -> None:
        self.settings = settings
        self.targets = targets
        self.console_mode = console
        self.http = http
        self.stop = asyncio.Event()
        self.service = CheckService(targets)
        self.bot = Bot(
            settings=settings,
            service=self.service,
            access=Access(allowed_channels=frozenset(settings.allowed_channels),
                          allowed_users=frozenset(settings.allowed_users)),
        )
        self.slack: SlackFront | None = None
        self.console: ConsoleFront | None = None
        self.store: Store | None = None
        self.monitor: Monitor | None = None
        self.remediation: Remediation | None = None
        self.metrics = Metrics()
        self.service.on_report.append(self.metrics.observe)
        self.ops: OpsServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Replicas on PostgreSQL: the lease (bot/ha/leader.py). None on SQLite, where the flock makes one bot.
        self.elector: Elector | None = None
        #: WSCHECK_SHARDS=auto: this replica's share of the targets (bot/ha/sharding.py).
        self.membership: Membership | None = None
        self.exit_code = 0
        self._outbox: Outbox | None = None

    async def startup(self) -> None:
        from bot.fronts.slack import StartupCancelled
        from bot.store import Store, StoreError, StoreUnavailable

        # PostgreSQL: any number of replicas share the database and elect a leader; SQLite: one bot (the flock).
        replicas = self.settings.db.engine == "postgresql"
        delay = 1.0
        while True:
            try:
                self.store = await Store.open(self.settings.db, exclusive=not replicas)
                break
            except StoreUnavailable as exc:
                # A replica restarted after losing the database (docs/ha.md) waits for it to come back, as the
                # Slack front waits for Slack: exiting 78 would keep systemd from ever restarting it.
                log.warning("%s; trying again in %.0f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                if self.stop.is_set():
                    raise StartupCancelled from None
                delay = min(delay * 2, 30.0)
            except StoreError as exc:
                raise ConfigError(str(exc)) from None  # names the database (redacted URL), never its password
        if self.console_mode:
            from bot.fronts.console import ConsoleFront

            self.console = ConsoleFront(self.bot, notice=builtin_notice(self.targets, lang=self.settings.lang))
        if replicas:
            from bot.ha.leader import Elector

            self.elector = Elector(self.settings.db, ttl=self.settings.leader_ttl, on_elected=self._elected,
                                   on_deposed=self._deposed)
            self.metrics.watch_leader(lambda: self.elector is not None and self.elector.role.leader,
                                      lambda: self.elector.changes if self.elector else 0,
                                      lambda: self.elector.lease_age() if self.elector else None)
        if self.settings.monitor:
            self.monitor = self._make_monitor(self.store)
            if self.elector is not None and self.settings.shards == "auto":
                # The heartbeats go on a connection of their own (like the lease's): queued behind the store's work
                # for hundreds of targets, they missed the TTL in the bench and the shares were given up.
                beats = await Store.open(self.settings.db, exclusive=False, migrate=False)
                self._shard(self.monitor, self.store, beats, self.elector.name)
        from bot.chat import handlers

        self.remediation = self._make_remediation(self.store)
        handlers.install_remediation(self.bot, self.remediation, self.monitor)
        if not self.console_mode:
            from bot.fronts.slack import SlackFront

            self.slack = SlackFront(self.bot, self.settings, http=self.http)
            await self.slack.start(self.stop)
        self.remediation.on_final.append(lambda status: self.metrics.approvals.labels(status).inc())
        self.remediation.on_error.append(lambda loop: self.metrics.background_errors.labels(loop).inc())
        if self.monitor is not None:
            self.monitor.remediation = self.remediation.enabled()
            monitor = self.monitor

            async def hold(target: str, request_id: str, action: str, seconds: float) -> None:
                await monitor.hold(target, request_id=request_id, action=action, seconds=seconds)

            async def release(target: str, request_id: str, healthy: bool, outcome: Msg | None) -> None:
                await monitor.release(target, request_id=request_id, healthy=healthy, outcome=outcome)

            self.remediation.on_fix_start.append(hold)
            self.remediation.on_fix_end.append(release)
            self._watch_cycles(self.monitor)
        if self.settings.metrics_port is not None:
            self.ops = OpsServer(self.metrics, self.health, host=self.settings.metrics_host,
                                 port=self.settings.metrics_port)
            await self.ops.start()
        if self.elector is None:
            await self._lead()
        else:
            if self.monitor is not None:
                self.monitor.leading = False
            self.remediation.leading = False
            self._tasks.append(asyncio.ensure_future(self.elector.run(self.stop)))
        if self.membership is not None:
            self._tasks.append(asyncio.ensure_future(self.membership.run(self.stop)))

    def _shard(self, monitor: Monitor, store: Store, beats: Store, name: str) -> None:
        """WSCHECK_SHARDS=auto: every replica probes its share of the targets and commits their states, fenced by
        the membership epoch; the leader keeps the outbox, fixes, expiry and retention (docs/ha.md, "Sharding")."""
        from bot.ha.sharding import Membership

        membership = Membership(beats, name=name, targets=self.targets.names, ttl=self.settings.leader_ttl,
                                on_moved=monitor.reshard)
        monitor.sharded = True
        monitor.owns = membership.owns
        store.shard_fence = membership.epoch_for
        self.membership = membership
        self.metrics.watch_shards(lambda: len(membership.shard.owned), lambda: len(membership.shard.members))

    async def _lead(self, *, replicas: bool = False) -> None:
        """What only one bot per database does: the scheduler, the canaries, the outbox, the interruption of
        requests a dead leader was running, the expiry and retention sweeps. A single bot does it from the start; a
        replica when it is elected (incident states are loaded from the store by `Monitor.start`)."""
        assert self.store is not None and self.remediation is not None
        if self.monitor is not None:
            self.monitor.leading = True
            await self.monitor.start()
        self.remediation.leading = True
        await self.remediation.start(pickup=replicas)
        if self._outbox is not None:  # without the monitor, remediation's own outbox worker
            self._tasks.append(asyncio.ensure_future(self._outbox.run(self.stop)))
        store = self.store

        async def purge(cutoff: datetime) -> dict[str, int]:
            return await store.purge(older_than=cutoff)

        self._tasks.append(asyncio.ensure_future(retention_loop(purge, keep=self.settings.retention, stop=self.stop)))

    async def _elected(self, token: int) -> None:
        assert self.store is not None and self.elector is not None
        elector = self.elector
        self.store.fence = elector.token
        await self._lead(replicas=True)
        log.info("leading with token %d: scheduler, canaries and outbox started", token)

    def _deposed(self, event: Deposed) -> None:
        """Leadership lost: stop sending at once (the fenced sink and the store's fence already refuse), then stop
        the process; under systemd it comes back as a follower."""
        if self.monitor is not None:
            self.monitor.leading = False
        if self.remediation is not None:
            self.remediation.leading = False
        log.error("this replica is no longer the leader (lease %s, token %d): stopping; a restart rejoins as a "
                  "follower", event.reason, event.token)
        self.exit_code = EXIT_DEPOSED
        self.stop.set()

    async def _release_lease(self) -> None:
        """After the leader's last send (the features are stopped): the lease is given up, so that a follower takes
        over at its next attempt (about a second) instead of after the TTL."""
        held = self.elector.release_args() if self.elector is not None else None
        if held is None or self.store is None:
            return
        try:
            if await self.store.release_lease(holder=held[0], token=held[1]):
                log.info("lease given up (token %d): a follower takes over", held[1])
        except Exception as exc:  # the lease then expires by itself within the TTL
            log.warning("could not give the lease up (%s); it expires within %g s", exc, self.settings.leader_ttl)

    def _watch_cycles(self, monitor: Monitor) -> None:
        heartbeat = Heartbeat(self.settings.heartbeat_url, self.targets.names,
                              min_interval=self.settings.check_interval / 2)

        async def cycle_done(name: str) -> None:
            self.metrics.last_cycle.labels(name).set(time.time())
            self.metrics.open_incidents.set(monitor.open_incidents())
            if self.store is not None:
                self.metrics.outbox_depth.set(await self.store.outbox_depth())
            await heartbeat.cycle_done(name)

        monitor.on_cycle.append(cycle_done)
        monitor.on_schedule.append(self.metrics.scheduled)
        def outbox_event(event: str) -> None:
            if event == "drain_error":
                self.metrics.background_errors.labels("outbox").inc()
            else:
                self.metrics.outbox_events.labels(event).inc()

        monitor.outbox.on_event.append(outbox_event)
        monitor.on_error.append(lambda loop: self.metrics.background_errors.labels(loop).inc())

    async def health(self) -> dict[str, Any]:
        """/healthz: the Slack connection, the scheduler, and a recent full cycle for every target."""
        front: dict[str, Any] = {"kind": "console" if self.console_mode else ("slack-http" if self.http else
                                                                             "slack-socket")}
        healthy = True
        if self.slack is not None:
            front["connected"] = await self.slack.connected()
            healthy = bool(front["connected"])
        body: dict[str, Any] = {"front": front}
        if self.elector is not None:
            body["leader"] = self.elector.health()
            healthy = healthy and self.elector.role_name != "deposed"
        if self.membership is not None:
            body["shards"] = self.membership.health()
        if self.monitor is not None and (self.monitor.leading or self.monitor.sharded):
            monitor = self.monitor.health()
            body["monitor"] = monitor
            healthy = healthy and bool(monitor["healthy"])
        body["healthy"] = healthy
        return body

    def _sink(self) -> Sink:
        """Where the bot's own messages go (alerts, approval requests): Slack, or the console."""
        from bot.fronts.sinks import ConsoleSink, SlackSink, alert_client

        if self.console is not None:
            return ConsoleSink(self.console.write, self.settings.lang)
        assert self.settings.slack_bot_token is not None
        return SlackSink(alert_client(self.settings.slack_bot_token.get_secret_value(), self.settings.slack_api_url,
                                      timeout=self.settings.slack_timeout), self.settings.lang)

    def _leader_sink(self) -> Sink:
        """The sink of the leader's jobs (the outbox): with replicas, fenced by the lease (bot/ha/leader.py)."""
        sink = self._sink()
        if self.elector is None:
            return sink
        from bot.ha.leader import FencedSink

        return FencedSink(sink, self.elector.may_act)  # the leader's posts stop when its lease may be over

    def _make_remediation(self, store: Store) -> Remediation:
        from bot.remediation.engine import Remediation
        from bot.store.outbox import Outbox

        if self.monitor is not None:
            outbox = self.monitor.outbox  # one outbox worker per database: the monitor runs it
        else:
            async def no_root(*_: Any) -> None:
                return None

            outbox = Outbox(store, self._leader_sink(), on_root_posted=no_root, root_ts=no_root)
            self._outbox = outbox  # run by the leader (`_lead`)
        return Remediation(self.settings, self.service, store, self._sink(),
                           bot_team_id=lambda: self.slack.team_id if self.slack else "",
                           approvers=self._approvers, admission=self.bot.access.rules, outbox=outbox)

    async def _approvers(self, target: Target) -> frozenset[str]:
        """User IDs, with user groups (S…) expanded through Slack (a paid-plan feature)."""
        wanted = target.approvers or tuple(self.settings.approvers)
        users = {a for a in wanted if not a.startswith("S")}
        groups = [a for a in wanted if a.startswith("S")]
        if groups and self.slack is not None:
            users |= await self.slack.usergroup_members(groups)
        elif groups:
            log.warning("approver groups %s cannot be resolved in console mode; list user IDs", ", ".join(groups))
        return frozenset(users)

    def _make_monitor(self, store: Store) -> Monitor:
        from bot.chat import handlers
        from bot.monitoring.monitor import Monitor

        monitor = Monitor(self.settings, self.service, store, self._leader_sink(), console=self.console is not None)
        handlers.install(self.bot, monitor)
        return monitor

    def ready_line(self) -> str:
        front = "console" if self.console_mode else ("slack-http" if self.slack and self.slack.http else "slack-socket")
        port = f" port={self.slack.bound_port}" if self.slack and self.slack.bound_port else ""
        return f"wscheck ready: front={front}{port} targets={','.join(self.targets.names)}"

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            await self.startup()
        except Exception as exc:
            from bot.fronts.slack import StartupCancelled, StartupError

            if isinstance(exc, StartupCancelled):
                log.info("stopped while waiting for Slack at startup")
                await self.shutdown()
                return 0
            if not isinstance(exc, StartupError | ConfigError):
                raise
            log.error("cannot start: %s", exc)
            await self.shutdown()
            return EXIT_CONFIG
        log.info(self.ready_line())
        if self.console is not None:
            self._tasks.append(asyncio.create_task(self.console.run(self.stop), name=CONSOLE_TASK))
        await self.stop.wait()
        log.info("stopping")
        await self.shutdown()
        return self.exit_code

    async def shutdown(self) -> None:
        """The reverse of intake, as uvicorn does: stop taking commands, let the running ones finish, then stop
        the features they may still need (an `approve` being handled needs remediation), then the resources."""
        if self.slack is not None:
            try:
                await asyncio.wait_for(self.slack.stop(), SHUTDOWN_GRACE)  # closes intake, then drains
            except TimeoutError:
                log.warning("Slack front did not stop within %s s", SHUTDOWN_GRACE)
        console = [task for task in self._tasks if task.get_name() == CONSOLE_TASK]
        for task in console:
            task.cancel()
        await asyncio.gather(*console, return_exceptions=True)
        if self.slack is None:
            try:
                await asyncio.wait_for(self.bot.drain(), SHUTDOWN_GRACE)
            except TimeoutError:
                log.warning("running requests did not finish within %s s", SHUTDOWN_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ops is not None:
            await self.ops.stop()
        if self.remediation is not None:
            await self.remediation.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        if self.membership is not None:
            await self.membership.leave()  # after the last probe's commit: the others take its targets at once
            await self.membership.store.close()
        await self._release_lease()
        await self.service.aclose()
        if self.store is not None:
            await self.store.close()

def main(*, config: str | None, http: bool, console: bool) -> int:
    try:
        path = resolve_config_path(config)
        overrides = {"http": True} if http else {}
        settings, targets = load_config(path, **overrides)
    except ConfigError as exc:
        print(exc.lines(), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings)
    use_console = console or not settings.slack_enabled
    if use_console and settings.slack_enabled:
        log.info("console mode requested: Slack tokens are ignored")
    server = BotServer(settings, targets, console=use_console, http=http)
    try:
        return asyncio.run(server.serve())
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        return 130

