"""Monitoring: scheduled checks, a WebSocket canary per target, incidents, alerts.

APScheduler runs, per target, the full checklist every `check_interval` and a fast probe (PM2 status +
WebSocket through nginx) every `fast_interval`, with jitter, `max_instances=1` and `coalesce`. A canary
keeps one WebSocket open through nginx and pings it; the moment it drops (or a fast probe fails) the
full checklist runs again at once to confirm and to name the cause — which is what lets an alert reach
the channel within seconds instead of after two intervals.

The decisions are the pure state machine's (bot/monitoring/incidents.py); this module only does the I/O: run
checks, feed observations, persist the state together with the messages it produced (one SQLite
transaction), and wake the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bot.chat.service import CheckService
from bot.ha import shards
from bot.i18n import text
from bot.monitoring import incidents as inc
from bot.monitoring.alerts import AlertOp, fix_outcome_note, ops_for, silence_note
from bot.mrkdwn import mention
from bot.ops.tasks import Background
from bot.outgoing import TlsExpiring, dump
from bot.settings import Settings
from bot.store import Fenced, Store
from bot.store.outbox import Outbox, Payload, Sink
from checks.config import Target
from checks.details import HttpDetails, Pm2Details, TlsDetails
from checks.models import Status, TargetReport
from checks.probes import SIO_CONNECT, engineio_uri, parse_open_packet
from checks.registry import CHECKS
from wsmsg import Msg, joined, verbatim

log = logging.getLogger(__name__)

FAST_CHECKS = ("pm2.status", "ws.proxy")
TICK_INTERVAL = 5.0
#: A PM2 app that (re)started less than this ago is healing, not down: confirm again after it.
RESTART_GRACE = 8.0
CANARY_BACKOFF_MAX = 30.0
#: The canary's first wait before reconnecting after a drop (doubled up to CANARY_BACKOFF_MAX).
CANARY_BACKOFF_MIN = 1.0
#: A failure streak that has seen this many PM2 restarts without healing is a failure like any other (a slow
#: crash loop). Counted in restarts, not in looks: at a 1 s fast interval, with the canary and the scheduled
#: full probe, one restart is looked at four or five times before it is up, and each look is set aside.
MAX_SET_ASIDE = 3


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _drain(ws: Any, engineio: bool = False) -> None:
    """Consume the canary's incoming messages until the connection closes (however it closes).

    On a Socket.IO target (wt-sio) it also answers Engine.IO's heartbeat: the server sends ping `2` every
    pingInterval and closes a client that does not answer pong `3` within pingTimeout."""
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            if engineio and message == "2":
                await ws.send("3")


async def _engineio_open(ws: Any, timeout: float) -> None:
    """A Socket.IO target's answer is its Engine.IO open packet; then join the main namespace (`40`), or the
    server drops the canary after its connectTimeout (45 s by default)."""
    async with asyncio.timeout(timeout):
        first = await ws.recv()
    if not isinstance(first, str):
        raise ValueError("the first message is binary, not an Engine.IO open packet")
    parse_open_packet(first)
    await ws.send(SIO_CONNECT)


#: What a PM2 app that is still starting explains: its own checks and nginx's 502 in front of it
#: (CheckSpec.downstream_of_app; checks.diagnosis._APP_DOWN_EFFECTS says why port.conflict is not one).
APP_STARTING = frozenset(c.id for c in CHECKS if c.downstream_of_app)


def healing(report: TargetReport, grace: float = RESTART_GRACE) -> bool:
    """PM2 is restarting the app right now (a crash it is healing), so a failure is not yet confirmed."""
    pm2 = report.result("pm2.status")
    if pm2 is None or Pm2Details.of(pm2).crash_loop:
        return False
    failing = {c.id for c in report.checks if c.status in (Status.FAIL, Status.ERROR)}
    if failing - APP_STARTING or HttpDetails.of(report.result("http.proxy")).refused:
        return False  # something a starting app does not explain (nginx down, config invalid, ...)
    for instance in Pm2Details.of(pm2).instances:
        if instance.status == "launching":
            return True
        if instance.status == "online" and instance.uptime_s is not None and instance.uptime_s < grace:
            return True
    return False


def restart_mark(report: TargetReport) -> tuple[object, ...]:
    """Which PM2 (re)start of the app a report saw: each instance's pid and restart count."""
    return tuple((i.pm_id, i.pid, i.restarts) for i in Pm2Details.of(report.result("pm2.status")).instances)


#: How long after a failed verification an incident that opens is said to follow the fix.
FIX_OUTCOME_TTL = timedelta(minutes=15)


class FixHold:
    """Alerts of one target held while the bot's own approved fix runs and is verified (issue 13: a restart paged
    the channel with "the app is down … `stopping`" seconds before its own "verified healthy").

    The hold is handed to the pure incident machine as a silence: the machine keeps running underneath (streaks,
    an unannounced incident), good news about an announced incident still goes out, nothing new is announced.
    """

    def __init__(self, request_id: str, action: str, until: datetime) -> None:
        self.request_id = request_id
        self.action = action
        self.until = until
        #: Set when verification failed: said in the thread of the incident that then opens.
        self.outcome: Msg | None = None
        #: After a verified fix: the hold only lasts until the machine has settled (no open incident).
        self.verified = False

    def over(self, state: inc.TargetState | None, now: datetime) -> bool:
        """Pure: the hold ends at its bound, or once a verified fix has let the incident machine settle."""
        settled = self.verified and (state is None or (state.incident is None and not state.consecutive_failures))
        return now >= self.until or settled


class Monitor:
    def __init__(self, settings: Settings, service: CheckService, store: Store, sink: Sink, *,
                 console: bool = False, clock: Callable[[], datetime] = _utcnow,
                 canary_backoff: float = CANARY_BACKOFF_MIN) -> None:
        self.settings = settings
        #: A parameter so a test of reconnects need not wait the production second per drop.
        self.canary_backoff = canary_backoff
        #: WSCHECK_LANG: what the alerts are rendered in (the monitor posts through the outbox itself).
        self.lang = settings.lang
        self.service = service
        self.store = store
        self.console = console
        self.clock = clock
        #: Alerts offer a "Propose <fix>" button when remediation is on.
        self.remediation = False
        #: False on a follower replica (bot/ha/leader.py): it runs no probe, no canary, no outbox, commits no state,
        #: and reads the leader's states from the store when a command needs them.
        self.leading = True
        #: WSCHECK_SHARDS=auto (bot/ha/sharding.py): this replica probes, and commits the states of, only the targets
        #: it owns (`owns`, `reshard`); the leader keeps the outbox. False: the leader probes every target.
        self.sharded = False
        self.owns: Callable[[str], bool] = lambda _name: True
        #: Sharded: the targets whose probes and canary run here.
        self.owned: set[str] = set()
        self._canaries: dict[str, asyncio.Task[None]] = {}
        #: The probe runs in flight per target (full, fast, confirm): a target handed to another replica stops
        #: being probed here at once, not when a run that started before the hand-over ends (`_unschedule`).
        self._probing: dict[str, set[asyncio.Task[Any]]] = {}
        self.policy = inc.IncidentPolicy(
            failure_threshold=settings.failure_threshold,
            success_threshold=settings.success_threshold,
            reminder_interval=settings.reminder_interval,
            flap_window=settings.flap_window,
            flap_count=settings.flap_count,
        )
        self.states: dict[str, inc.TargetState] = {}
        self.locks: dict[str, asyncio.Lock] = {t.name: asyncio.Lock() for t in service.targets}
        self.outbox = Outbox(store, sink, on_root_posted=self._root_posted, root_ts=self._root_ts, clock=clock)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.stop_event = asyncio.Event()
        self._tasks = Background("monitor")
        self._confirming: set[str] = set()
        self._rechecking: set[str] = set()
        #: Per target, the PM2 restarts (see `restart_marks`) whose failures were set aside in this streak.
        self._set_aside: dict[str, set[tuple[object, ...]]] = {}
        self.last_cycle: dict[str, datetime] = {}
        #: Called after each completed full probe of a target (heartbeat, metrics).
        self.on_cycle: list[Callable[[str], Awaitable[None]]] = []
        #: Called for each scheduled run: (job kind, seconds late, skipped) (metrics).
        self.on_schedule: list[Callable[[str, float, bool], None]] = []
        self.canary_up: dict[str, bool] = {}
        self._started_at: datetime | None = None
        #: Called with the loop's name ("canary", "full", "fast", "tick", "confirm") each time one survives an
        #: error of its own (a store error: disk full, a locked database) (metrics).
        self.on_error: list[Callable[[str], None]] = []
        #: Targets whose alerts are held while the bot's own fix runs (see FixHold).
        self.holds: dict[str, FixHold] = {}
        #: After a failed verification: (request id, action, outcome) for the incident that opens next.
        self._fix_outcomes: dict[str, tuple[str, str, Msg, datetime]] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def channel_for(self, target: Target) -> str:
        if self.console:
            return "console"
        return target.alert_channel or self.settings.alert_channel

    def mention_for(self, target: Target) -> str:
        return target.alert_mention or self.settings.alert_mention

    async def start(self) -> None:
        """The leader's part (a single bot's everything): the outbox, and unless sharded every target's probes."""
        self._started_at = self._started_at or self.clock()
        await self.restore_holds()
        if self.sharded:
            # The targets' probes follow the membership (`reshard`); the leader alone delivers the outbox.
            self._tasks.spawn(self.outbox.run(self.stop_event), name="outbox")
            return
        saved = await self.store.load_states()
        last_alive_raw = await self.store.get_meta("last_alive_at")
        last_alive = datetime.fromisoformat(last_alive_raw) if last_alive_raw else None
        now = self.clock()
        for target in self.service.targets:
            raw = saved.get(target.name)
            state = inc.TargetState.model_validate_json(raw) if raw else inc.TargetState(target=target.name)
            state, events = inc.on_startup(state, now=now, last_alive_at=last_alive,
                                           check_interval=self.settings.check_interval)
            self.states[target.name] = state
            if events:
                await self._commit(target, state, events, now)
            if not self.channel_for(target):
                log.warning("no alert channel for %s: set WSCHECK_ALERT_CHANNEL or the target's alert_channel; "
                            "incidents are tracked but not posted", target.name)
        self._tasks.spawn(self.outbox.run(self.stop_event), name="outbox")
        count = len(self.service.targets) or 1
        for index, target in enumerate(self.service.targets):
            # Spread the targets over the interval: with 500 targets all running their checklist at the same
            # instant, the burst saturates the event loop and the probes' own timeouts fail healthy targets
            # (bench/RESULTS.md, "Scale"). Jitter alone (a few seconds) does not spread a burst that long.
            self._schedule(target, index / count, now)
        self._start_scheduler()

    def _schedule(self, target: Target, phase: float, now: datetime) -> None:
        """A target's full and fast probe jobs (first runs at `phase` of their interval) and its canary."""
        name = target.name
        full, fast = self.settings.check_interval, self.settings.fast_interval
        self.scheduler.add_job(self.full_probe, "interval", args=[name], seconds=full, id=f"full:{name}",
                               jitter=min(self.settings.jitter, full / 4), max_instances=1, coalesce=True,
                               next_run_time=now + timedelta(seconds=phase * full),
                               misfire_grace_time=int(full) + 1)
        self.scheduler.add_job(self.fast_probe, "interval", args=[name], seconds=fast, id=f"fast:{name}",
                               jitter=min(self.settings.jitter, fast / 4), max_instances=1, coalesce=True,
                               next_run_time=now + timedelta(seconds=fast * (1 + phase)),
                               misfire_grace_time=int(fast) + 1)
        if self.settings.canary:
            # Sharded, a replica takes hundreds of targets at once (a join, a takeover): their canaries connect
            # spread over one fast interval, not all in the same instant.
            work = self._canary_after(target, phase * self.settings.fast_interval) if self.sharded \
                else self.canary(target)
            self._canaries[name] = self._tasks.spawn(work, name=f"canary {name}")

    async def _canary_after(self, target: Target, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), delay)
        if not self.stop_event.is_set():
            await self.canary(target)

    def _unschedule(self, name: str) -> None:
        for job in (f"full:{name}", f"fast:{name}"):
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job)
        for task in self._probing.pop(name, set()):
            task.cancel()  # its commit would be refused anyway (fenced by the shard epoch); its SSH work stops now
        canary = self._canaries.pop(name, None)
        if canary is not None:
            canary.cancel()
        self.canary_up.pop(name, None)
        self.last_cycle.pop(name, None)

    async def reshard(self, moved: shards.Moved) -> None:
        """The membership moved targets (bot/ha/sharding.py): stop probing what went to another replica, start what
        came here, and reload from the store every target still ours (another replica may have committed it in
        an epoch this one never saw). A target taken over goes on with its open incident: the state, the root
        message's ts and the thread are in the store."""
        self._started_at = self._started_at or self.clock()
        for name in sorted(moved.dropped):
            self._unschedule(name)
            self.owned.discard(name)
        if not (moved.taken or moved.kept):
            return
        saved = await self.store.load_states()
        now = self.clock()
        for name in sorted(moved.taken | moved.kept):
            async with self.locks[name]:
                raw = saved.get(name)
                self.states[name] = (inc.TargetState.model_validate_json(raw) if raw
                                     else inc.TargetState(target=name))
        for name in sorted(moved.taken):
            if name not in self.owned:
                self.owned.add(name)
                self._schedule(self.service.target(name), shards.phase(name), now)
        self._start_scheduler()

    async def _pull_root(self, target: Target) -> None:
        """Sharded: the leader posted the root message of an incident this replica owns and recorded its ts in the
        outbox; attach it to the state here, so that the next commit carries it (buttons, threads, silence notes)."""
        state = self.states[target.name]
        incident = state.incident
        if not self.sharded or incident is None or not incident.announced or incident.root_ts:
            return
        channel = self.channel_for(target)
        if not channel:
            return
        ts = await self.store.root_message(target=target.name, incident_id=incident.id)
        if ts:
            self.states[target.name] = inc.attach_root(state, incident.id, channel=channel, ts=ts)

    def _start_scheduler(self) -> None:
        if self.scheduler.running:
            return
        self.scheduler.add_job(self.tick_all, "interval", seconds=TICK_INTERVAL, id="tick", max_instances=1,
                               coalesce=True)
        self.scheduler.add_listener(self._on_submission, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()

    def _on_submission(self, event: JobSubmissionEvent) -> None:
        """How late runs start, and the runs skipped because the previous one still runs (a slow target)."""
        if not event.scheduled_run_times:
            return
        late = max(0.0, (self.clock() - event.scheduled_run_times[-1]).total_seconds())
        skipped = event.code == EVENT_JOB_MAX_INSTANCES
        if skipped:
            log.warning("%s skipped: its previous run is still going (%.1f s after its time)", event.job_id, late)
        else:
            log.debug("%s started %.0f ms after its time", event.job_id, late * 1000)
        for hook in self.on_schedule:
            hook(str(event.job_id).split(":", 1)[0], late, skipped)

    async def refresh(self) -> None:
        """On a follower: the incident states as the leader last committed them (for status, silences, buttons);
        sharded: those of the targets other replicas own."""
        if self.leading and not self.sharded:
            return
        saved = await self.store.load_states()
        for target in self.service.targets:
            if self.sharded and target.name in self.owned:
                continue
            raw = saved.get(target.name)
            self.states[target.name] = (inc.TargetState.model_validate_json(raw) if raw
                                        else inc.TargetState(target=target.name))

    async def stop(self) -> None:
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self._tasks.cancel()
        if not self.leading:
            return  # a follower (or a deposed leader) delivers nothing
        try:
            await asyncio.wait_for(self.outbox.drain_once(), 5)
        except Exception:  # best effort: what is not delivered stays in the outbox for the next start
            log.warning("outbox not drained at shutdown; it will be delivered at the next start")

    def survived(self, loop: str, name: str) -> None:
        """A background loop hit an error of its own: log it with its traceback, count it, and let the loop go on.

        One `disk full` used to end a target's canary until the bot restarted (issue 13): a loop that stops on the
        first error is a watch that silently stopped watching."""
        log.exception("%s %s: error survived; carrying on", loop, name)
        for hook in self.on_error:
            hook(loop)

    # -- probes ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _in_flight(self, name: str) -> Iterator[None]:
        """Register the running probe of `name`, so that handing the target over cancels it (`_unschedule`)."""
        task = asyncio.current_task()
        if task is not None:
            self._probing.setdefault(name, set()).add(task)
        try:
            yield
        finally:
            if task is not None:
                self._probing.get(name, set()).discard(task)

    def _handed_over(self, name: str) -> bool:
        """A probe cancelled because its target went to another replica (not a shutdown)."""
        return self.sharded and name not in self.owned

    async def full_probe(self, name: str) -> None:
        try:
            with self._in_flight(name):
                report = await self.service.run(name)
            await self.observe(name, report, kind="full")
            await self._alive(name)
            for hook in self.on_cycle:
                await hook(name)
        except asyncio.CancelledError:
            if not (self.stop_event.is_set() or self._handed_over(name)):
                raise
            return  # shutting down, or handed over: a run cut short is not an error worth a traceback
        except Exception:
            self.survived("full", name)
            return
        log.debug("full probe %s: %s in %.0f ms%s", name, report.status.value, report.duration_ms,
                  "".join(f" {r.id}={r.status.value}" for r in report.checks if r.status is not Status.OK))

    async def fast_probe(self, name: str) -> None:
        try:
            with self._in_flight(name):
                report = await self.service.run(name, FAST_CHECKS)
            failing = report.status in (Status.FAIL, Status.ERROR)
            await self.observe(name, report, kind="fast")
            state = self.states[name]
            if failing and not (state.incident is not None and state.incident.announced):
                # Outside this job: the next fast run must not be skipped while the confirmation runs.
                self._tasks.spawn(self.confirm(name, reason="fast probe failed"), name=f"confirm {name}")
            await self._alive(name)
        except asyncio.CancelledError:
            if not (self.stop_event.is_set() or self._handed_over(name)):
                raise
            return
        except Exception:
            self.survived("fast", name)
            return
        log.debug("fast probe %s: %s in %.0f ms", name, report.status.value, report.duration_ms)


    async def confirm(self, name: str, *, reason: str) -> None:
        """Re-run the whole checklist at once: a failure seen again right away is confirmed."""
        if name in self._confirming:
            return
        self._confirming.add(name)
        try:
            log.info("confirming %s: %s", name, reason)
            with self._in_flight(name):
                report = await self.service.run(name)
            await self.observe(name, report, kind="full", confirmed=report.status in (Status.FAIL, Status.ERROR))
        except asyncio.CancelledError:
            if self._handed_over(name) and not self.stop_event.is_set():
                return
            raise
        except Exception:
            self.survived("confirm", name)
        finally:
            self._confirming.discard(name)

    def _recheck_later(self, name: str) -> None:
        """PM2 is restarting the app: look again once it had time to come up (outside the scheduler's job)."""
        if name in self._rechecking:
            return
        self._rechecking.add(name)

        async def later() -> None:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), RESTART_GRACE)
                if not self.stop_event.is_set():
                    await self.confirm(name, reason="PM2 restarted the app a moment ago")
            finally:
                self._rechecking.discard(name)

        self._tasks.spawn(later(), name=f"recheck {name}")

    async def canary(self, target: Target) -> None:
        """One long-lived WebSocket through nginx; a drop or a missed pong triggers a confirmation."""
        scheme = target.public_endpoint()[0]
        uri = ("wss" if scheme == "https" else "ws") + target.public_join(target.ws_path)[len(scheme):]
        engineio = target.ws_protocol == "socket.io"
        uri = engineio_uri(uri) if engineio else uri
        origin = f"{scheme}://{target.public_url.split('://', 1)[1].split('/', 1)[0]}"
        backoff = self.canary_backoff
        while not self.stop_event.is_set():
            was_up = False
            reason = ""
            try:
                async with ws_connect(uri, ping_interval=None, open_timeout=5, close_timeout=1,
                                      origin=origin,  # type: ignore[arg-type]
                                      user_agent_header="wscheck-canary/0.1",
                                      ssl=ssl.create_default_context() if scheme == "https" else None) as ws:
                    if engineio:
                        await _engineio_open(ws, 5)
                    was_up = True
                    self.canary_up[target.name] = True
                    backoff = self.canary_backoff
                    # Read (and drop) what the app sends: unread messages pile up and, past websockets' queue
                    # limit, stop it from reading anything — pongs included. The reader also ends the moment the
                    # connection closes, which is what wakes this loop up between pings.
                    reader = asyncio.ensure_future(_drain(ws, engineio))
                    try:
                        reason = await self._ping_until_closed(ws, reader)
                    finally:
                        reader.cancel()
                        await asyncio.gather(reader, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as exc:
                reason = f"WebSocket closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except (InvalidHandshake, OSError, TimeoutError) as exc:
                reason = f"WebSocket handshake failed: {exc}"
            except ValueError as exc:  # wt-sio: no Engine.IO open packet
                reason = f"WebSocket opened, but {exc}"
            self.canary_up[target.name] = False
            if was_up and not self.stop_event.is_set():
                log.warning("canary %s: %s", target.name, reason)
                try:
                    await self._canary_failed(target.name, reason)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.survived("canary", target.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), backoff)
            backoff = min(CANARY_BACKOFF_MAX, backoff * 2)

    async def _ping_until_closed(self, ws: Any, reader: asyncio.Task[None]) -> str:
        """Ping every canary_ping_interval; return why the canary is down (closed, or a pong too late)."""
        while True:
            pong = await ws.ping()
            try:
                await asyncio.wait_for(pong, self.settings.canary_pong_timeout)
            except TimeoutError:
                return f"no pong within {self.settings.canary_pong_timeout:g} s"
            done, _ = await asyncio.wait({reader}, timeout=self.settings.canary_ping_interval)
            if done:
                code = ws.close_code
                return f"WebSocket closed ({code if code is not None else 'no close frame'})"

    async def _canary_failed(self, name: str, reason: str) -> None:
        now = self.clock()
        obs = inc.Observation(target=name, at=now, kind="canary", checked=("ws.proxy",),
                              failing_checks=("ws.proxy",))
        await self._apply(name, obs, now)
        await self.confirm(name, reason=f"canary: {reason}")

    # -- state -----------------------------------------------------------------------------------

    async def observe(self, name: str, report: TargetReport, *, kind: inc.ObservationKind,
                      confirmed: bool = False, manual_by: str | None = None) -> list[inc.Event]:
        """Feed a report to the incident machine, unless PM2 is healing the app right now.

        A failing report taken while PM2 (re)starts the app (launching, or online for less than
        RESTART_GRACE) says "starting", not "down": feeding it would open incidents for restarts that
        heal and post cause changes during every recovery. It is set aside and the target is looked
        at again once the app had time to come up.
        """
        failing = report.status in (Status.FAIL, Status.ERROR)
        if manual_by is None and failing and healing(report) and self._may_set_aside(name, report):
            log.info("%s: PM2 is restarting the app; checking again in %.0f s", name, RESTART_GRACE)
            self._recheck_later(name)
            return []
        if not failing:
            self._set_aside.pop(name, None)
        now = self.clock()
        obs = inc.Observation.from_report(report, kind=kind, at=now, confirmed=confirmed)
        events = await self._apply(name, obs, now, manual_by=manual_by)
        await self._tls_expiry_notice(self.service.target(name), report)
        return events

    async def _tls_expiry_notice(self, target: Target, report: TargetReport) -> None:
        """wt-tls: a certificate close to expiry is a `warn` cause, which opens no incident; it gets one notice
        per certificate (target + serial, the outbox's dedup key, kept until retention), before a human notices."""
        cause = next((c for c in report.diagnosis if c.cause == "tls_certificate_expiring"), None)
        cert = TlsDetails.of(report.result("tls.certificate")).cert
        serial = cert.serial if cert is not None else None
        channel = self.channel_for(target)
        if cause is None or not serial or not channel:
            return
        key = f"tls-expiring:{target.name}:{serial}"
        payload = Payload(kind="notice", target=target.name, incident_id="", key=key, channel=channel,
                          message=dump(TlsExpiring(target=target.name, cause=cause)))
        async with self.store.transaction() as tx:
            await tx.enqueue(lane=target.name, kind="notice", payload=payload.dump(), dedup_key=key)
        self.outbox.wake()

    def _may_set_aside(self, name: str, report: TargetReport) -> bool:
        """Whether this healing report's restart is still within the streak's budget (and note it if so).

        Every look at the same restart is set aside; a streak that saw MAX_SET_ASIDE restarts is a crash loop.
        """
        seen = self._set_aside.setdefault(name, set())
        mark = restart_mark(report)
        if mark not in seen and len(seen) >= MAX_SET_ASIDE:
            return False
        seen.add(mark)
        return True

    async def _apply(self, name: str, obs: inc.Observation, now: datetime, *,
                     manual_by: str | None = None) -> list[inc.Event]:
        target = self.service.target(name)
        if self.sharded and not self.owns(name):
            return []  # handed over a moment ago: the new owner looks at it itself
        async with self.locks[name]:
            silence = await self._silence(name, now)
            await self._pull_root(target)
            state = self.states[name]
            if manual_by is not None:
                state, events = inc.note_manual_run(state, obs, by=manual_by, now=now, policy=self.policy,
                                                    silence=silence)
            else:
                state, events = inc.observe(state, obs, now=now, policy=self.policy, silence=silence)
            try:
                await self._commit(target, state, events, now)
            except Fenced as exc:
                if not self.sharded:
                    raise
                log.info("%s: not committed, the target moved to another replica (%s)", name, exc)
                return []
            return events

    async def tick_all(self) -> None:
        now = self.clock()
        for target in self.service.targets:
            if self.sharded and not self.owns(target.name):
                continue
            try:
                async with self.locks[target.name]:
                    silence = await self._silence(target.name, now)
                    await self._pull_root(target)
                    state, events = inc.tick(self.states[target.name], now=now, policy=self.policy,
                                             silence=silence)
                    await self._commit(target, state, events, now)
            except Fenced as exc:
                if not self.sharded:
                    self.survived("tick", target.name)
                else:
                    log.info("%s: not committed, the target moved to another replica (%s)", target.name, exc)
            except Exception:  # one target's store error must not stop the others' ticks
                self.survived("tick", target.name)
        try:
            await self.store.set_meta("last_alive_at", now.isoformat())
        except Exception:
            self.survived("tick", "last_alive_at")

    async def _alive(self, name: str) -> None:
        now = self.clock()
        self.last_cycle[name] = now
        await self.store.set_meta("last_alive_at", now.isoformat())

    async def _silence(self, name: str, now: datetime) -> inc.Silence | None:
        found: inc.Silence | None = None
        for row in await self.store.silences(now=now):
            if row["target"] == name:
                found = inc.Silence.model_validate({k: row[k] for k in ("target", "until", "by", "at")})
        hold = self.holds.get(name)
        if self.sharded:
            # The leader runs the fix, the owner probes: the store's hold is the one both see (the leader updates
            # it when the fix verifies, drops it when it does not).
            hold = await self._stored_hold(name, now)
        if hold is not None:
            if hold.over(self.states.get(name), now):
                self.holds.pop(name, None)
                await self._forget_hold(name, hold.request_id)
            elif found is None or found.until < hold.until:
                return inc.Silence(target=name, until=hold.until, by=f"fix {hold.request_id}", at=now)
        return found

    # -- the bot's own fixes -----------------------------------------------------------------------

    async def hold(self, name: str, *, request_id: str, action: str, seconds: float) -> None:
        """Hold `name`'s alerts while an approved fix runs and is verified (at most `seconds`). Also in the store:
        if this leader dies mid-fix, the next one keeps holding until the same bound (the fix's command may still
        be running on the target, and the app coming back from it must not page)."""
        held = FixHold(request_id, action, self.clock() + timedelta(seconds=seconds))
        self.holds[name] = held
        self._fix_outcomes.pop(name, None)
        log.info("%s: alerts held while fix %s runs", name, request_id)
        await self._save_hold(name, held)

    async def restore_holds(self) -> None:
        """At start (a takeover, a restart): the holds the previous leader left that are still in force."""
        now = self.clock()
        for row in await self.store.fix_holds(now=now):
            name = str(row["target"])
            if name not in self.locks:
                continue
            until = row["until"]
            assert isinstance(until, datetime)
            held = FixHold(str(row["request_id"]), str(row["action"]), until)
            held.verified = bool(row["verified"])
            self.holds[name] = held
            log.info("%s: alerts still held for fix %s until %s (set before this start)", name, held.request_id,
                     until.isoformat(timespec="seconds"))

    async def _stored_hold(self, name: str, now: datetime) -> FixHold | None:
        for row in await self.store.fix_holds(now=now):
            if row["target"] == name:
                until = row["until"]
                assert isinstance(until, datetime)
                held = FixHold(str(row["request_id"]), str(row["action"]), until)
                held.verified = bool(row["verified"])
                return held
        return None

    async def _save_hold(self, name: str, held: FixHold) -> None:
        """The hold in memory is what this process acts on; the store's copy is for a successor. A store error
        loses only the hand-over, never the hold itself."""
        try:
            await self.store.set_fix_hold(target=name, request_id=held.request_id, action=held.action,
                                          until=held.until, verified=held.verified)
        except Exception:
            log.warning("%s: could not record the hold of fix %s in the store; a new leader would not know it",
                        name, held.request_id, exc_info=True)

    async def _forget_hold(self, name: str, request_id: str) -> None:
        try:
            await self.store.clear_fix_hold(name, request_id=request_id)
        except Exception:  # the row ends by its own `until` anyway
            log.warning("%s: could not drop the hold of fix %s from the store", name, request_id, exc_info=True)

    async def release(self, name: str, *, request_id: str, healthy: bool, outcome: Msg | None) -> None:
        """The fix is over. Verified healthy: stay quiet until the incident machine has settled (bounded by the
        check interval times the success threshold); otherwise stop holding at once, and the incident that opens
        (now, from what was held, or at the next failing look) carries the fix's outcome in its thread."""
        hold = self.holds.get(name)
        if hold is None or hold.request_id != request_id:
            return
        if healthy:
            hold.verified = True
            grace = self.settings.check_interval * (self.settings.success_threshold + 1)
            hold.until = min(hold.until, self.clock() + timedelta(seconds=grace))
            await self._save_hold(name, hold)
            return
        del self.holds[name]
        await self._forget_hold(name, request_id)
        if outcome is not None:
            self._fix_outcomes[name] = (request_id, hold.action, outcome, self.clock())
        log.info("%s: fix %s did not verify; alerts no longer held", name, request_id)
        if self.sharded and not self.owns(name):
            return  # the owner's own ticks and probes go on with it
        now = self.clock()
        async with self.locks[name]:
            state, events = inc.tick(self.states[name], now=now, policy=self.policy,
                                     silence=await self._silence(name, now))
            await self._commit(self.service.target(name), state, events, now)

    async def _commit(self, target: Target, state: inc.TargetState, events: list[inc.Event], now: datetime) -> None:
        """Save the state and enqueue its messages in one transaction: both happen, or neither."""
        ops = [op for seq, event in enumerate(events)
               for op in ops_for(event, mention=self.mention_for(target), now=now, remediation=self.remediation,
                                 seq=seq)]
        opened = [e.incident for e in events if isinstance(e, inc.IncidentOpened)]
        if opened and target.name in self._fix_outcomes:
            request_id, action, outcome, at = self._fix_outcomes.pop(target.name)
            if now - at <= FIX_OUTCOME_TTL:  # an incident much later is not about the fix
                ops.append(fix_outcome_note(opened[-1], request_id=request_id, action=action, outcome=outcome,
                                            now=now))
        await self._store_ops(target, state, ops)
        self.states[target.name] = state
        for event in events:
            log.info("incident %s: %s", event.incident.id, event.type)

    async def _store_ops(self, target: Target, state: inc.TargetState | None, ops: list[AlertOp]) -> None:
        channel = self.channel_for(target)
        async with self.store.transaction() as tx:
            if state is not None:
                await tx.save_state(target.name, state.model_dump_json())
            for op in ops if channel else []:
                payload = Payload(kind=op.kind, target=op.target, incident_id=op.incident_id, key=op.key,
                                  channel=channel, message=dump(op.message))
                await tx.enqueue(lane=target.name, kind=op.kind, payload=payload.dump(), dedup_key=op.key)
        if ops and channel:
            self.outbox.wake()

    async def _root_posted(self, target: str, incident_id: str, channel: str, ts: str) -> None:
        if self.sharded and not self.owns(target):
            return  # the owner attaches it from the outbox (`_pull_root`): one writer per target's state
        async with self.locks[target]:
            state = inc.attach_root(self.states[target], incident_id, channel=channel, ts=ts)
            await self.store.save_state(target, state.model_dump_json())
            self.states[target] = state

    async def _root_ts(self, target: str, incident_id: str) -> str | None:
        state = self.states.get(target)
        for incident in (state.incident, state.last_incident) if state is not None else ():
            if incident is not None and incident.id == incident_id and incident.root_ts:
                return incident.root_ts
        if self.sharded:  # the owner's state may not carry it yet (or this replica's copy is old)
            return await self.store.root_message(target=target, incident_id=incident_id)
        return None

    # -- commands ----------------------------------------------------------------------------------

    async def manual_run(self, name: str, by: str) -> TargetReport:
        """Someone pressed Run checks (or ran /wscheck) during an incident: note it in the thread."""
        report = await self.service.run(name)
        # On a follower the leader's (sharded: the owner's) next probe sees the same: only they commit state.
        if (self.owns(name) if self.sharded else self.leading):
            await self.observe(name, report, kind="manual", manual_by=by)
        return report

    async def silence(self, name: str, *, until: datetime, by: str) -> None:
        await self.refresh()
        now = self.clock()
        target = self.service.target(name)
        async with self.locks[name]:
            await self.store.set_silence(target=name, until=until, by=by, at=now)
            state = self.states[name]
            ops = [silence_note(state.incident, by=by, until=until, now=now)] if state.incident and \
                state.incident.announced and state.incident.root_ts else []
            await self._store_ops(target, None, ops)

    async def unsilence(self, name: str, *, by: str) -> bool:
        await self.refresh()
        now = self.clock()
        target = self.service.target(name)
        async with self.locks[name]:
            cleared = await self.store.clear_silence(name)
            state = self.states[name]
            ops = [silence_note(state.incident, by=by, until=None, now=now)] if cleared and state.incident and \
                state.incident.announced and state.incident.root_ts else []
            await self._store_ops(target, None, ops)
        return cleared

    async def status_lines(self) -> list[Msg]:
        await self.refresh()
        now = self.clock()
        silences = {str(row.get("target")): row for row in await self.store.silences(now=now)}
        lines = []
        for target in self.service.targets:
            state = self.states.get(target.name)
            parts = [verbatim(f"• *{target.name}*: "), inc.summarize(state) if state else text("monitor.not_checked")]
            row = silences.get(target.name)
            if row:
                until = row.get("until")
                when = until.strftime("%Y-%m-%d %H:%M UTC") if isinstance(until, datetime) else str(until)
                parts.append(text("monitor.silenced_by", user=mention(str(row["by"])), until=when))
            lines.append(joined(parts, ""))
        return lines

    def open_incidents(self) -> int:
        return sum(1 for s in self.states.values() if s.incident is not None and s.incident.is_open)

    def health(self) -> dict[str, Any]:
        """For /healthz: scheduler alive and the last completed cycle per target (stale = not healthy)."""
        now = self.clock()
        stale_after = timedelta(seconds=3 * self.settings.check_interval + 30)
        started = self._started_at or now
        targets = {}
        # Sharded, a replica with no share (settling, or more replicas than targets) has no scheduler to run.
        healthy = self.scheduler.running or (self.sharded and not self.owned)
        for target in self.service.targets:
            if self.sharded and target.name not in self.owned:
                continue
            at = self.last_cycle.get(target.name)
            fresh = (now - at) < stale_after if at else (now - started) < stale_after
            healthy = healthy and fresh
            targets[target.name] = {"last_cycle": at.isoformat() if at else None, "fresh": fresh,
                                    "canary_up": self.canary_up.get(target.name)}
        return {"scheduler": self.scheduler.running, "targets": targets, "open_incidents": self.open_incidents(),
                "healthy": healthy}
