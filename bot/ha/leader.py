"""Leader election among replicas sharing one PostgreSQL: a lease row with a fencing token (docs/ha.md).

The rules live in bot.ha.lease (pure); this module runs them: one SQL statement per attempt on a connection of its
own (never queued behind the store's work, and bounded by its own timeout), every ttl / 3 while leader and every
second (at most) while following, so that a follower takes over within about one second of the lease's expiry.

The lease row (`leader_lease`, one row, id = 1) holds the holder's name, the fencing token, and times in seconds of
the *database's* clock (`clock_timestamp()`): the replicas' clocks are never compared with each other. Taking over
is one conditional upsert: it succeeds only when the row is ours (a renewal, token unchanged) or expired (a
takeover, token + 1); two followers racing for an expired lease are serialised by the row lock, and the second one's
condition is re-checked against the first one's new row, so exactly one wins.

Fencing: the token goes with every leader-only write. The store's fenced writes (state commits and outbox delivery
records) check, in their own transaction, that the lease row still carries this token, and hold a share lock on
the row until they commit, so a takeover (an UPDATE of that row) waits for them or they see the new token and fail:
no state of an old term is committed after a new term began. Slack itself knows nothing of tokens, so posts are
fenced on our side: `FencedSink` refuses once the lease is no longer surely ours (bot.ha.lease.may_act), which is a
margin *before* anybody else may take over; and an outbox item is marked uncertain (a fenced write) before its
post, so a new leader looks it up by its metadata instead of posting it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.ha import lease
from bot.store.backends import PG_ERRORS, PostgresConn, connect_postgres
from bot.store.dburl import DatabaseURL
from bot.store.outbox import Message, Sink, SinkError

log = logging.getLogger("wscheck.leader")

FOLLOW_POLL = 1.0
"""Seconds between a follower's attempts (at most; ttl / 3 when that is shorter). One cheap UPDATE that matches no
row while the leader is alive."""

_ATTEMPT = """
INSERT INTO leader_lease (id, holder, token, acquired_at, renewed_at, expires_at)
VALUES (1, $1, 1, EXTRACT(EPOCH FROM clock_timestamp())::float8,
        EXTRACT(EPOCH FROM clock_timestamp())::float8, EXTRACT(EPOCH FROM clock_timestamp())::float8 + $3::float8)
ON CONFLICT (id) DO UPDATE SET
    token = CASE WHEN leader_lease.holder = EXCLUDED.holder AND leader_lease.token = $2
                 THEN leader_lease.token ELSE leader_lease.token + 1 END,
    acquired_at = CASE WHEN leader_lease.holder = EXCLUDED.holder AND leader_lease.token = $2
                       THEN leader_lease.acquired_at ELSE EXCLUDED.acquired_at END,
    holder = EXCLUDED.holder,
    renewed_at = EXCLUDED.renewed_at,
    expires_at = EXCLUDED.expires_at
WHERE (leader_lease.holder = EXCLUDED.holder AND leader_lease.token = $2)
   OR leader_lease.expires_at < EXCLUDED.renewed_at
RETURNING token
"""
"""Renew our lease ($2 = our token) or take an expired one (token + 1), or do nothing (a live lease of another)."""

_LOOK = ("SELECT holder, token, EXTRACT(EPOCH FROM clock_timestamp())::float8 - renewed_at AS age "
         "FROM leader_lease WHERE id = 1")


_ATTEMPT_ERRORS: tuple[type[BaseException], ...] = (*PG_ERRORS, TimeoutError)


def replica_name() -> str:
    """How this replica is named in the lease row (and in logs): pid, host, and a random part, so that a restarted
    process with a recycled pid is never taken for its predecessor."""
    return f"wscheck pid {os.getpid()} on {socket.gethostname()[:32]} #{secrets.token_hex(4)}"


@dataclass
class LeaseView:
    """What a replica last saw of the lease row (for /healthz and /metrics)."""

    holder: str | None = None
    token: int | None = None
    #: Seconds since the lease was last renewed, by the database's clock, when it was looked at.
    age: float | None = None
    seen_at: float | None = None


class Elector:
    def __init__(self, url: DatabaseURL, *, ttl: float, name: str | None = None,
                 on_elected: Callable[[int], Awaitable[None]] | None = None,
                 on_deposed: Callable[[lease.Deposed], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.ttl = ttl
        self.name = name or replica_name()
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.clock = clock
        self.role = lease.Role()
        self.view = LeaseView()
        #: Token changes this replica has seen (its own takeovers included): "leader changes" in /metrics.
        self.changes = 0
        self.elected_at: datetime | None = None
        #: Notified after every attempt (tests and /healthz wait on what the replica saw, never on a sleep).
        self.attempted = asyncio.Condition()
        self._starting: asyncio.Future[None] | None = None
        self._held: int | None = None
        self._conn: PostgresConn | None = None

    # -- what the rest of the bot asks ------------------------------------------------------------------------

    @property
    def role_name(self) -> str:
        return "leader" if self.role.leader else ("deposed" if self.role.deposed else "follower")

    def token(self) -> int | None:
        """The fencing token while the lease is surely ours; None otherwise (fenced writes then refuse)."""
        return self.role.token if lease.may_act(self.role, now=self.clock()) else None

    def may_act(self) -> bool:
        return lease.may_act(self.role, now=self.clock())

    def lease_age(self) -> float | None:
        """Seconds since the lease was last renewed (by whoever holds it), as of now."""
        if self.view.age is None or self.view.seen_at is None:
            return None
        return max(0.0, self.view.age + (self.clock() - self.view.seen_at))

    def health(self) -> dict[str, Any]:
        age = self.lease_age()
        return {"role": self.role_name, "token": self.role.token, "leader": self.view.holder,
                "leader_token": self.view.token, "lease_age": None if age is None else round(age, 3),
                "leader_changes": self.changes, "ttl": self.ttl, "replica": self.name}

    # -- the loop ---------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        finally:
            await self.close()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.role.deposed:
            sent = self.clock()
            got = await self._attempt(sent)
            self._apply(*lease.on_attempt(self.role, got=got, sent=sent, now=self.clock(), ttl=self.ttl))
            async with self.attempted:
                self.attempted.notify_all()
            if self.role.deposed:
                break
            pause = lease.renew_every(self.ttl) if self.role.leader else min(FOLLOW_POLL, lease.renew_every(self.ttl))
            next_at = sent + pause
            # Wake up at the next attempt or when the lease stops being surely ours, whichever comes first.
            while not stop.is_set():
                now = self.clock()
                self._apply(*lease.on_tick(self.role, now=now))
                if self.role.deposed or now >= next_at:
                    break
                wake = next_at if self.role.valid_until is None else min(next_at, self.role.valid_until)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, wake - now))

    def _apply(self, role: lease.Role, events: list[lease.Event]) -> None:
        self.role = role
        for event in events:
            if isinstance(event, lease.Elected):
                log.info("leader elected: this replica (%s) leads with token %d", self.name, event.token)
                self.elected_at = datetime.now().astimezone()
                if self.on_elected is not None:
                    # In a task of its own: starting the leader's jobs (loading states, interrupting a dead leader's
                    # fix and editing its message in Slack) must not hold up the next renewal.
                    self._starting = asyncio.ensure_future(self._start_leading(self.on_elected, event.token))
            else:
                log.error("leadership lost (%s) with token %d: this replica stops acting as leader", event.reason,
                          event.token)
                if self.on_deposed is not None:
                    self.on_deposed(event)

    async def _start_leading(self, start: Callable[[int], Awaitable[None]], token: int) -> None:
        """A leader that cannot start its jobs must not sit on the lease: it gives it up like a deposed one."""
        try:
            await start(token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the leader's jobs could not start; giving the lease up")
            if self.role.leader and self.role.token == token:
                self.role = lease.Role(deposed=True)
                if self.on_deposed is not None:
                    self.on_deposed(lease.Deposed(reason="failed", token=token))

    async def _attempt(self, sent: float) -> int | None:
        """One attempt, bounded so that it ends before the lease would (a silent network must not keep a leader
        waiting past its lease). Any failure is "no lease": the connection is dropped and made again next time."""
        budget = lease.renew_every(self.ttl)
        if self.role.valid_until is not None:
            budget = min(budget, max(0.05, self.role.valid_until - sent))
        try:
            return await asyncio.wait_for(self._attempt_once(), budget)
        except _ATTEMPT_ERRORS as exc:
            log.warning("lease attempt failed: %s", self.url.scrub(str(exc)) or type(exc).__name__)
            await self._drop()
            return None

    async def _attempt_once(self) -> int | None:
        conn = await self._connection()
        # The token the database last gave us, even one we did not act on (an answer that came too late): renewing
        # it is safe (nobody else acted under it: holder names are unique per process) and spares the team a TTL
        # without a leader. -1 matches no row.
        mine = self._held if self._held is not None else -1
        got = await conn.raw.fetchval(_ATTEMPT, self.name, mine, float(self.ttl))
        self._held = None if got is None else int(got)
        row = await conn.raw.fetchrow(_LOOK)
        if row is not None:
            token = int(row["token"])
            if self.view.token is not None and token != self.view.token:
                self.changes += 1
                if not (got is not None and int(got) == token):
                    log.info("leader changed: %s holds the lease with token %d", row["holder"], token)
            elif self.view.token is None and got is None:
                log.info("following: %s holds the lease with token %d", row["holder"], token)
            self.view = LeaseView(holder=str(row["holder"]), token=token, age=float(row["age"]),
                                  seen_at=self.clock())
        return None if got is None else int(got)

    async def _connection(self) -> PostgresConn:
        if self._conn is None or self._conn.broken():
            self._conn = await connect_postgres(self.url.secret_dsn(), application_name=f"{self.name} lease"[:63],
                                                timeout=lease.renew_every(self.ttl),
                                                command_timeout=lease.renew_every(self.ttl))
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.raw.terminate()

    def release_args(self) -> tuple[str, int] | None:
        """(holder, token) to give the lease up with at a clean shutdown, if it is still surely ours."""
        token = self.token()
        return None if token is None else (self.name, token)

    async def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class FencedSink:
    """The leader's sink: every post and edit goes out only while the lease is surely ours (see the module's
    docstring). Refused sends are an ordinary, retryable SinkError: the item stays in the outbox for the leader
    that comes next."""

    def __init__(self, inner: Sink, may_act: Callable[[], bool]) -> None:
        self.inner = inner
        self.may_act = may_act

    def _check(self) -> None:
        if not self.may_act():
            raise SinkError("not the leader: this replica's lease is over, it sends nothing any more")

    def render(self, message: Message) -> tuple[str, list[dict[str, Any]]]:
        return self.inner.render(message)

    async def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None,
                   metadata: dict[str, Any]) -> str:
        self._check()
        return await self.inner.post(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
                                     metadata=metadata)

    async def update(self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self._check()
        await self.inner.update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def find(self, *, channel: str, thread_ts: str | None, key: str, since: datetime) -> str | None:
        return await self.inner.find(channel=channel, thread_ts=thread_ts, key=key, since=since)
