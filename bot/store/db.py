"""Persistence on SQLite or PostgreSQL: incidents, outbox, silences, approval requests, audit, meta (the only module
that writes SQL; bot.store_backends runs it on either driver).

Why it looks the way it does:

* **Two engines, one behaviour.** `WSCHECK_DB` (bot.dburl) names a SQLite file (the default: embedded, nothing to
  run) or a PostgreSQL database (for teams that already run one, and the base for replicas). The SQL below is
  written once in the dialect both share; the schema is the same tables, columns, indexes and triggers on both
  (only the DDL spelling differs, per engine, in each `Migration`). The same tests run on both engines.
* **One writer, never blocked loop.** SQLite goes through aiosqlite (one worker thread per connection), so a slow
  disk stalls a thread, not the event loop; PostgreSQL through asyncpg (native asyncio). `Store.open(...,
  exclusive=True)` makes sure one bot uses the database: on SQLite an `fcntl.flock` on `<db>.lock`, on
  PostgreSQL a session advisory lock. A second bot would post every alert twice, so it refuses to start
  (`StoreLocked`). The kernel (the server) drops the lock when the process (the session) dies, even on SIGKILL,
  so a crashed bot never blocks its successor. The lock fd is close-on-exec, so a child cannot keep it alive.
  On PostgreSQL the bot itself opens without the lock: replicas share the database and one leads, by a lease with
  a fencing token (bot/leader.py); the leader-only writes check that token (`fence`, `_fenced`).
* **Nothing lost, nothing twice.** Slack messages are not posted by the code that decides them: they are
  written to the `outbox` table in the same transaction as the state change that caused them (`transaction()`
  gives a `Tx` with the same methods as `Store`). A drainer posts them in order per `lane`, records the result
  (`mark_sent`), or schedules a retry (`mark_retry`), or gives up on a permanently bad one (`mark_failed`).
* **Generic.** The store never imports the state machines: callers hand it JSON text (`model_dump_json()`)
  and get JSON text back. It validates that the text *is* JSON, nothing more.
* **Versioned schema.** `MIGRATIONS` is an ordered list; each step runs once, in its own transaction, and is
  recorded in `schema_migrations` (on SQLite also as `PRAGMA user_version`). An older database is upgraded on open
  (or by `wscheck db migrate`); a newer one (written by a newer wscheck) is refused, naming both versions, instead
  of being silently misread.

Datetime convention: every timestamp is stored as ISO-8601 UTC text with microseconds and an explicit offset,
always the same width (`2025-01-31T09:15:00.000000+00:00`), so SQL string comparison is time order (PostgreSQL
text columns use the "C" collation, byte order, like SQLite). Methods accept timezone-aware datetimes only (a naive
one raises `ValueError`: its meaning would be a guess) and return timezone-aware UTC datetimes.

Adding a table (or column, or index) later: append a `Migration(version=len(MIGRATIONS) + 1, name=...,
statements=(...))` to `MIGRATIONS`, with SQL both engines accept in `statements`, and where they differ the
engine's own spelling in `sqlite=(...)` and `postgresql=(...)`. Never edit or reorder a step that has shipped;
databases in the field have already run it. Statements run one by one inside one transaction (`BEGIN IMMEDIATE`
on SQLite; DDL is transactional on PostgreSQL too), so a failing step leaves the database exactly at the previous
version. Foreign keys are enforced during migrations; a SQLite step that rebuilds a referenced table should start
with `PRAGMA defer_foreign_keys = ON`. Then add the methods on `_Ops` (they appear on both `Store` and `Tx`), and
run the store tests on both engines (tests/unit/test_store.py, tests/integration/test_store_postgresql.py).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Literal, cast, get_args

import aiosqlite
import asyncpg

from bot.dburl import DatabaseURL, parse_db_url
from bot.store_backends import PG_ERRORS, Conn, PostgresConn, Row, SqliteConn, connect_postgres

__all__ = [
    "MIGRATIONS",
    "OPEN_REQUEST_STATUSES",
    "Fenced",
    "Migration",
    "OutboxItem",
    "OutboxStatus",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "Tx",
    "lock_path_for",
]

BUSY_TIMEOUT_MS = 5000
"""How long a writer waits for another connection's write transaction before failing (SQLite busy handler).
It waits in aiosqlite's worker thread, never on the event loop."""

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Truncate the WAL file back to this size after checkpoints, so a burst of writes does not leave a huge file."""

PG_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a PostgreSQL connection (DNS, TCP, TLS, authentication) before giving up with an error."""

PG_COMMAND_TIMEOUT = 30.0
"""Seconds one PostgreSQL statement may take before the session is given up (and replaced on the next call). The
store's statements take milliseconds; this only catches a server or network that stopped answering."""

PG_BOT_LOCK_KEY = 0x7773_6368_6563_6B01
"""Session advisory lock of an exclusive open on PostgreSQL: the flock's equivalent. `wscheck run` on PostgreSQL opens
without it (replicas share the database and elect a leader, bot/leader.py); `wscheck db migrate` takes it.
Advisory locks are per database, so databases on one server do not contend."""

PG_MIGRATION_LOCK_KEY = 0x7773_6368_6563_6B02
"""Transaction advisory lock around each migration step: processes migrating one database take turns."""

_EXPORT_PAGE = 500
"""Rows per query in `export_audit`: bounded memory, and no lock or read transaction held while the caller works."""

OPEN_REQUEST_STATUSES: frozenset[str] = frozenset({"pending", "approved", "running"})
"""Approval statuses that may still change. Retention never deletes a request in one of these; any other status
(succeeded, failed, denied, expired, ...) is final and the request is purged once it has not changed since the
cutoff."""

OutboxStatus = Literal["pending", "uncertain", "sent", "failed"]
_OUTBOX_STATUSES: frozenset[str] = frozenset(get_args(OutboxStatus))


class StoreError(Exception):
    """Anything the store cannot do: a newer schema, a failed migration, an unknown id, database errors. Its text
    names the database by its redacted URL: never a password."""


class StoreLocked(StoreError):
    """Another live process holds the database (a second bot would double-post every alert)."""


class StoreUnavailable(StoreError):
    """The PostgreSQL server could not be reached (network, server down): transient, unlike a bad URL or schema."""


class Fenced(StoreError):
    """A leader-only write refused: this replica's fencing token is not the lease's any more (bot/leader.py)."""


@dataclass(frozen=True)
class Migration:
    """One schema step, the same version and name on both engines. `statements` (SQL both engines accept) run
    first, then the engine's own (`sqlite` / `postgresql`: where the dialects differ, e.g. identity columns and
    trigger syntax), all in order inside one transaction. Shipped steps are never edited."""

    version: int
    name: str
    statements: tuple[str, ...] = ()
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()

    def steps(self, engine: str) -> tuple[str, ...]:
        own = self.sqlite if engine == "sqlite" else self.postgresql if engine == "postgresql" else None
        if own is None:
            raise StoreError(f"unknown database engine {engine!r}")
        return (*self.statements, *own)


_T = 'TEXT COLLATE "C"'
"""PostgreSQL text columns compare byte-wise, like SQLite's: the fixed-width ISO timestamps are ordered as text and
targets are listed in the same order on both engines, whatever the database's default locale."""
_ID = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
"""SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`: a sequence never hands out an id twice, even after deletes."""

_PG_INITIAL: tuple[str, ...] = (
    f"CREATE TABLE meta (key {_T} PRIMARY KEY, value {_T} NOT NULL, updated_at {_T} NOT NULL)",
    f"""CREATE TABLE outbox (
        id              {_ID},
        lane            {_T} NOT NULL,
        kind            {_T} NOT NULL,
        payload         {_T} NOT NULL,
        status          {_T} NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'uncertain', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {_T} NOT NULL,
        depends_on      BIGINT REFERENCES outbox (id) ON DELETE SET NULL,
        result          {_T},
        created_at      {_T} NOT NULL,
        finished_at     {_T},
        dedup_key       {_T} UNIQUE,
        last_error      {_T}
    )""",
    "CREATE INDEX outbox_open ON outbox (lane, id) WHERE status IN ('pending', 'uncertain')",
    "CREATE INDEX outbox_depends_on ON outbox (depends_on)",
    "CREATE INDEX outbox_finished ON outbox (finished_at) WHERE status IN ('sent', 'failed')",
    f"CREATE TABLE incident_states (target {_T} PRIMARY KEY, state {_T} NOT NULL, updated_at {_T} NOT NULL)",
    f"CREATE TABLE incident_history (id {_ID}, target {_T} NOT NULL, saved_at {_T} NOT NULL, state {_T} NOT NULL)",
    "CREATE INDEX incident_history_target ON incident_history (target, id)",
    "CREATE INDEX incident_history_saved_at ON incident_history (saved_at)",
    f"""CREATE TABLE silences (
        target {_T} PRIMARY KEY,
        until  {_T} NOT NULL,
        set_by {_T} NOT NULL,
        set_at {_T} NOT NULL,
        reason {_T} NOT NULL DEFAULT ''
    )""",
    f"""CREATE TABLE approval_requests (
        seq        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        id         {_T} NOT NULL UNIQUE,
        target     {_T} NOT NULL,
        action     {_T} NOT NULL,
        status     {_T} NOT NULL,
        version    INTEGER NOT NULL,
        expires_at {_T} NOT NULL,
        data       {_T} NOT NULL,
        created_at {_T} NOT NULL,
        updated_at {_T} NOT NULL
    )""",
    "CREATE INDEX approval_requests_status ON approval_requests (status, seq)",
    "CREATE INDEX approval_requests_target_action ON approval_requests (target, action, seq)",
    "CREATE INDEX approval_requests_updated_at ON approval_requests (updated_at)",
    f"""CREATE TABLE audit (
        id         {_ID},
        ts         {_T} NOT NULL,
        kind       {_T} NOT NULL,
        target     {_T},
        actor      {_T},
        request_id {_T},
        data       {_T} NOT NULL DEFAULT '{{}}'
    )""",
    "CREATE INDEX audit_target ON audit (target, id)",
    "CREATE INDEX audit_ts ON audit (ts)",
    "CREATE INDEX audit_request_id ON audit (request_id)",
    # The same rule as SQLite's triggers: no UPDATE; DELETE only below the cutoff `purge` writes into
    # audit_retention inside its own transaction. TRUNCATE skips row triggers in PostgreSQL, so it is refused too.
    f"CREATE TABLE audit_retention (cutoff {_T} NOT NULL)",
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_retention WHERE OLD.ts < cutoff) THEN
               RETURN OLD;
           END IF;
           IF TG_OP = 'DELETE' THEN
               RAISE EXCEPTION 'audit is append-only: rows are removed only by retention'
                   USING ERRCODE = 'integrity_constraint_violation';
           END IF;
           RAISE EXCEPTION 'audit is append-only' USING ERRCODE = 'integrity_constraint_violation';
       END $$""",
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="initial schema: meta, outbox, incidents, silences, approval requests, audit",
        sqlite=(
            """CREATE TABLE meta (
                key        TEXT PRIMARY KEY,
                value      TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            # AUTOINCREMENT: ids are never reused after retention deletes the newest rows, so "smaller id" always
            # means "enqueued earlier" (FIFO) and a depends_on can never point at a recycled id.
            """CREATE TABLE outbox (
                id              INTEGER PRIMARY KEY AUTOINCREMENT,
                lane            TEXT NOT NULL,
                kind            TEXT NOT NULL,
                payload         TEXT NOT NULL,
                status          TEXT NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'uncertain', 'sent', 'failed')),
                attempts        INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT NOT NULL,
                depends_on      INTEGER REFERENCES outbox (id) ON DELETE SET NULL,
                result          TEXT,
                created_at      TEXT NOT NULL,
                finished_at     TEXT,
                dedup_key       TEXT UNIQUE,
                last_error      TEXT
            )""",
            "CREATE INDEX outbox_open ON outbox (lane, id) WHERE status IN ('pending', 'uncertain')",
            "CREATE INDEX outbox_depends_on ON outbox (depends_on)",
            "CREATE INDEX outbox_finished ON outbox (finished_at) WHERE status IN ('sent', 'failed')",
            """CREATE TABLE incident_states (
                target     TEXT PRIMARY KEY,
                state      TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE incident_history (
                id       INTEGER PRIMARY KEY AUTOINCREMENT,
                target   TEXT NOT NULL,
                saved_at TEXT NOT NULL,
                state    TEXT NOT NULL
            )""",
            "CREATE INDEX incident_history_target ON incident_history (target, id)",
            "CREATE INDEX incident_history_saved_at ON incident_history (saved_at)",
            """CREATE TABLE silences (
                target TEXT PRIMARY KEY,
                until  TEXT NOT NULL,
                set_by TEXT NOT NULL,
                set_at TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT ''
            )""",
            """CREATE TABLE approval_requests (
                seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                id         TEXT NOT NULL UNIQUE,
                target     TEXT NOT NULL,
                action     TEXT NOT NULL,
                status     TEXT NOT NULL,
                version    INTEGER NOT NULL,
                expires_at TEXT NOT NULL,
                data       TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX approval_requests_status ON approval_requests (status, seq)",
            "CREATE INDEX approval_requests_target_action ON approval_requests (target, action, seq)",
            "CREATE INDEX approval_requests_updated_at ON approval_requests (updated_at)",
            """CREATE TABLE audit (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                ts         TEXT NOT NULL,
                kind       TEXT NOT NULL,
                target     TEXT,
                actor      TEXT,
                request_id TEXT,
                data       TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX audit_target ON audit (target, id)",
            "CREATE INDEX audit_ts ON audit (ts)",
            "CREATE INDEX audit_request_id ON audit (request_id)",
            # Append-only, enforced by the database itself: no UPDATE ever; DELETE only of rows older than a
            # cutoff that `purge` writes into audit_retention inside its own transaction (and removes again).
            "CREATE TABLE audit_retention (cutoff TEXT NOT NULL)",
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
               BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
               WHEN NOT EXISTS (SELECT 1 FROM audit_retention WHERE OLD.ts < cutoff)
               BEGIN SELECT RAISE(ABORT, 'audit is append-only: rows are removed only by retention'); END""",
        ),
        postgresql=_PG_INITIAL,
    ),
    Migration(
        version=2,
        name="leader lease: one row, the fencing token of the replica that leads (wt-ha)",
        # Times are seconds of the database's clock (PostgreSQL's clock_timestamp()), never a replica's: the
        # replicas' clocks are not compared with each other (bot/leader.py). SQLite has the table for the same
        # schema on both engines; a SQLite database serves one bot (the flock), which never reads it.
        sqlite=(
            """CREATE TABLE leader_lease (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                holder      TEXT NOT NULL,
                token       BIGINT NOT NULL,
                acquired_at DOUBLE PRECISION NOT NULL,
                renewed_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION NOT NULL
            )""",
        ),
        postgresql=(
            f"""CREATE TABLE leader_lease (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                holder      {_T} NOT NULL,
                token       BIGINT NOT NULL,
                acquired_at DOUBLE PRECISION NOT NULL,
                renewed_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
    Migration(
        version=3,
        name="shard membership: live replicas' heartbeats and the membership epoch (wt-shard)",
        # Times are seconds of the database's clock, like the lease. `shard_epoch` is one row, incremented in the
        # transaction of every membership change (a join, a reap, a leave); state commits of a sharded replica
        # read it FOR SHARE (bot/shards.py). SQLite has the tables for the same schema on both engines; one bot
        # owns a SQLite file, which never shards (WSCHECK_SHARDS=auto is refused there).
        sqlite=(
            """CREATE TABLE shard_members (
                replica   TEXT PRIMARY KEY,
                joined_at DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL
            )""",
            "CREATE TABLE shard_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL)",
            "INSERT INTO shard_epoch (id, epoch) VALUES (1, 0)",
        ),
        postgresql=(
            f"""CREATE TABLE shard_members (
                replica   {_T} PRIMARY KEY,
                joined_at DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL
            )""",
            "CREATE TABLE shard_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL)",
            "INSERT INTO shard_epoch (id, epoch) VALUES (1, 0)",
        ),
    ),
    Migration(
        version=4,
        name="fix holds: a target's alerts held while the bot's own fix runs, across a change of leader (wt-ops)",
        # One row per target (a new fix replaces the old hold). `until` is the hold's bound (ISO text, like every
        # timestamp); `verified` = the fix verified healthy and the hold lasts until the incident machine settles.
        sqlite=(
            """CREATE TABLE fix_holds (
                target     TEXT PRIMARY KEY,
                request_id TEXT NOT NULL,
                action     TEXT NOT NULL,
                until      TEXT NOT NULL,
                verified   INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
                set_at     TEXT NOT NULL
            )""",
        ),
        postgresql=(
            f"""CREATE TABLE fix_holds (
                target     {_T} PRIMARY KEY,
                request_id {_T} NOT NULL,
                action     {_T} NOT NULL,
                until      {_T} NOT NULL,
                verified   INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
                set_at     {_T} NOT NULL
            )""",
        ),
    ),
)


def _check_migrations(migrations: Sequence[Migration]) -> None:
    """Versions must be exactly 1..n in order: user_version N means 'the first N steps have run'."""
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise StoreError(f"MIGRATIONS[{index - 1}] has version {migration.version}, expected {index}")


_check_migrations(MIGRATIONS)


@dataclass(frozen=True)
class OutboxItem:
    """One message to deliver, as stored. `payload` and `result` are the caller's JSON text."""

    id: int
    lane: str
    kind: str
    payload: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    depends_on: int | None
    result: str | None
    created_at: datetime
    dedup_key: str | None
    last_error: str | None


# --- conversions -------------------------------------------------------------------------------------------------


def _ts(value: datetime) -> str:
    """Aware datetime -> fixed-width UTC ISO text (so that text order is time order in SQL)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: object) -> datetime:
    parsed = datetime.fromisoformat(str(text))
    if parsed.tzinfo is None:  # never written by this module; be lenient with hand-edited rows
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _require_json(text: str, what: str) -> None:
    """Reject non-JSON early: a bad payload found only by the drainer hours later is much harder to trace."""
    try:
        json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON text: {exc}") from None


def _json_default(value: object) -> object:
    """Audit data must never fail to serialise (a failed audit write would abort the action it records)."""
    if isinstance(value, datetime):
        return _ts(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)


def _outbox_item(row: Row) -> OutboxItem:
    status = str(row["status"])
    if status not in _OUTBOX_STATUSES:
        raise StoreError(f"outbox item {row['id']} has unknown status {status!r}")
    return OutboxItem(
        id=int(row["id"]),
        lane=str(row["lane"]),
        kind=str(row["kind"]),
        payload=str(row["payload"]),
        status=cast(OutboxStatus, status),  # checked against OutboxStatus just above
        attempts=int(row["attempts"]),
        next_attempt_at=_dt(row["next_attempt_at"]),
        depends_on=_opt_int(row["depends_on"]),
        result=_opt_str(row["result"]),
        created_at=_dt(row["created_at"]),
        dedup_key=_opt_str(row["dedup_key"]),
        last_error=_opt_str(row["last_error"]),
    )


def _audit_row(row: Row) -> dict[str, object]:
    data = json.loads(str(row["data"]))
    return {
        "id": int(row["id"]),
        "ts": _dt(row["ts"]),
        "kind": str(row["kind"]),
        "target": _opt_str(row["target"]),
        "actor": _opt_str(row["actor"]),
        "request_id": _opt_str(row["request_id"]),
        "data": data if isinstance(data, dict) else {"value": data},
    }


_OUTBOX_COLUMNS = (
    "o.id, o.lane, o.kind, o.payload, o.status, o.attempts, o.next_attempt_at, o.depends_on, o.result, "
    "o.created_at, o.dedup_key, o.last_error"
)


def _db_clock(conn: Conn) -> str:
    """The database's clock in seconds since the epoch, as SQL (never a replica's clock: they are not compared)."""
    if conn.engine == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    return "((julianday('now') - 2440587.5) * 86400.0)"


async def _exec(conn: Conn, sql: str, params: Iterable[object] = ()) -> int:
    """Run one statement and return its rowcount."""
    return await conn.exec(sql, tuple(params))


async def _insert(conn: Conn, sql: str, params: Iterable[object] = ()) -> int:
    """Run one INSERT and return the new row's `id`."""
    new_id = await conn.insert(sql, tuple(params))
    if new_id is None:  # pragma: no cover - only an ON CONFLICT DO NOTHING inserts nothing
        raise StoreError("INSERT stored no row")
    return new_id


async def _rows(conn: Conn, sql: str, params: Iterable[object] = ()) -> list[Row]:
    return await conn.rows(sql, tuple(params))


async def _one(conn: Conn, sql: str, params: Iterable[object] = ()) -> Row | None:
    return await conn.one(sql, tuple(params))


# --- the operations (shared by Store and Tx) ------------------------------------------------------------------


class _Ops(abc.ABC):
    """Every data method, written once against a connection, in SQL both engines accept (`?` placeholders).

    `Store` runs each call in its own short transaction (writes) or under its connection lock (reads); `Tx`
    runs them inside the caller's transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL), which is how
    a state change and the outbox items it produced become one atomic commit.
    """

    @abc.abstractmethod
    def _writing(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def _now(self) -> datetime: ...

    @abc.abstractmethod
    def _fence_source(self) -> Callable[[], int | None] | None: ...

    def _shard_source(self) -> Callable[[str], int | None] | None:
        return None

    async def _shard_fenced(self, conn: Conn, target: str) -> bool:
        """A sharded replica's state commit for `target` (bot/shards.py) goes ahead only under the membership epoch
        its share was computed for. The epoch row is read with a share lock held to the commit: a membership change
        (which updates that row) waits for this transaction, or this transaction sees the new epoch and refuses.
        False when the store is not sharded (the leader's fence applies instead)."""
        source = self._shard_source()
        if source is None:
            return False
        epoch = source(target)
        if epoch is None:
            raise Fenced(f"not this replica's target: {target} is probed by another replica")
        row = await _one(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR SHARE" if conn.engine == "postgresql"
                         else "SELECT epoch FROM shard_epoch WHERE id = 1")
        if row is None or int(row["epoch"]) != epoch:
            found = None if row is None else int(row["epoch"])
            raise Fenced(f"fenced: {target}'s share was computed for membership epoch {epoch}, the database is at "
                         f"{found}; it is re-computed at the next heartbeat")
        return True

    async def _fenced(self, conn: Conn) -> None:
        """A leader-only write (a state commit, an outbox delivery record) goes ahead only under this replica's
        fencing token (`Store.fence`, set by the leader; None on SQLite and for a single bot). The lease row is read
        with a share lock held to the commit: a takeover, which updates that row, waits for this transaction, or
        this transaction sees the new token and refuses. No write of an old term lands after a new term began."""
        source = self._fence_source()
        if source is None:
            return
        token = source()
        if token is None:
            raise Fenced("not the leader: leader-only writes are refused")
        row = await _one(conn, "SELECT token FROM leader_lease WHERE id = 1 FOR SHARE" if conn.engine == "postgresql"
                         else "SELECT token FROM leader_lease WHERE id = 1")
        if row is None or int(row["token"]) != token:
            found = None if row is None else int(row["token"])
            raise Fenced(f"fenced: this replica's token is {token}, the lease's is {found}; it leads no more")

    async def release_lease(self, *, holder: str, token: int) -> bool:
        """A leader stopping cleanly gives its lease up (expired at once), after its last send: a follower takes
        over within a second instead of a TTL. Only our own term's row; False if it was not (any more)."""
        async with self._writing() as conn:
            return bool(await _exec(conn, "UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = ? "
                                          "AND token = ?", (holder, token)))

    # shard membership (wt-shard, bot/shards.py) ------------------------------------------------------------------

    async def shard_beat(self, *, replica: str, ttl: float) -> tuple[int, frozenset[str]]:
        """One heartbeat of `replica`: renew its row (or join: insert it), reap the rows not renewed within `ttl`
        (seconds of the database's clock), bump the epoch if the member set changed, and return (epoch, live
        members) as of this transaction.

        Lock order, the same in every transaction that changes the membership: the epoch row first (FOR UPDATE),
        then member rows. A plain renewal locks its own row only. So a reaper never holds a member row while it
        waits for the epoch row (a deadlock with a replica leaving or joining at that moment), and two replicas
        reaping at once take turns: the second finds nothing left to delete and does not bump again."""
        async with self._writing() as conn:
            now = _db_clock(conn)  # a constant SQL expression per engine; the values go as parameters
            row = await _one(conn, f"SELECT COUNT(*) AS expired, SUM(CASE WHEN replica = ? THEN 1 ELSE 0 END) AS mine "  # noqa: S608
                                   f"FROM shard_members WHERE replica = ? OR last_seen < {now} - ?",
                             (replica, replica, float(ttl)))
            mine = 0 if row is None or row["mine"] is None else int(row["mine"])
            expired = (0 if row is None else int(row["expired"])) - mine
            seen = 0
            if mine and not expired:
                seen = await _exec(conn, f"UPDATE shard_members SET last_seen = {now} WHERE replica = ?",  # noqa: S608
                                   (replica,))
            if not seen:
                await _exec(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR UPDATE" if conn.engine == "postgresql"
                            else "SELECT epoch FROM shard_epoch WHERE id = 1")
                seen = await _exec(conn, f"UPDATE shard_members SET last_seen = {now} WHERE replica = ?",  # noqa: S608
                                   (replica,))
                reaped = await _exec(conn, f"DELETE FROM shard_members WHERE last_seen < {now} - ?",  # noqa: S608
                                     (float(ttl),))
                if not seen:
                    join = f"INSERT INTO shard_members (replica, joined_at, last_seen) VALUES (?, {now}, {now})"  # noqa: S608
                    await _exec(conn, join, (replica,))
                if reaped or not seen:
                    await _exec(conn, "UPDATE shard_epoch SET epoch = epoch + 1 WHERE id = 1")
            return await self._shard_view(conn)

    async def shard_leave(self, *, replica: str) -> bool:
        """A replica stopping cleanly removes its row (a new epoch): the others take its targets over at their next
        heartbeat instead of after the TTL. False if it was not a member (any more). Epoch row first (see
        `shard_beat`)."""
        async with self._writing() as conn:
            await _exec(conn, "SELECT epoch FROM shard_epoch WHERE id = 1 FOR UPDATE" if conn.engine == "postgresql"
                        else "SELECT epoch FROM shard_epoch WHERE id = 1")
            if not await _exec(conn, "DELETE FROM shard_members WHERE replica = ?", (replica,)):
                return False
            await _exec(conn, "UPDATE shard_epoch SET epoch = epoch + 1 WHERE id = 1")
            return True

    async def shard_view(self) -> tuple[int, frozenset[str]]:
        """(epoch, members) as the database has them now (members not yet reaped included)."""
        async with self._reading() as conn:
            return await self._shard_view(conn)

    @staticmethod
    async def _shard_view(conn: Conn) -> tuple[int, frozenset[str]]:
        # One statement, one snapshot: the epoch and the members it counts.
        rows = await _rows(conn, "SELECT e.epoch, m.replica FROM shard_epoch e LEFT JOIN shard_members m ON 1 = 1 "
                                 "WHERE e.id = 1")
        if not rows:
            raise StoreError("shard_epoch has no row: the database was not migrated by wscheck")
        return int(rows[0]["epoch"]), frozenset(str(r["replica"]) for r in rows if r["replica"] is not None)

    async def root_message(self, *, target: str, incident_id: str) -> str | None:
        """The ts of an incident's root message, from the outbox item that posted it (sharded replicas: the leader
        posts, the target's owner attaches the ts to its state). Found through the dedup key, which starts with the
        incident's id and a slash (bot/alerts.py)."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT result FROM outbox WHERE dedup_key >= ? AND dedup_key < ? AND lane = ? "
                                   "AND kind = 'post_root' AND status = 'sent' ORDER BY id DESC LIMIT 1",
                             (incident_id + "/", incident_id + "0", target))
        if row is None or row["result"] is None:
            return None
        ts = json.loads(str(row["result"])).get("ts")
        return str(ts) if ts else None

    # outbox ------------------------------------------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        lane: str,
        kind: str,
        payload: str,
        dedup_key: str | None = None,
        depends_on: int | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Store a message to deliver and return its id; with a `dedup_key` seen before, return that item's id
        and store nothing (so replaying the same decision after a crash does not post twice).

        A dependency that already failed permanently makes the new item fail at once (it could never be sent,
        and would block its lane forever).
        """
        _require_json(payload, "payload")
        now = self._now()
        next_at = _ts(not_before if not_before is not None else now)
        async with self._writing() as conn:
            if dedup_key is not None:
                existing = await _one(conn, "SELECT id FROM outbox WHERE dedup_key = ?", (dedup_key,))
                if existing is not None:
                    return int(existing["id"])
            status, error, finished = "pending", None, None
            if depends_on is not None:
                dep = await _one(conn, "SELECT status FROM outbox WHERE id = ?", (depends_on,))
                if dep is None:
                    raise StoreError(f"depends_on={depends_on}: no such outbox item")
                if dep["status"] == "failed":
                    status, error, finished = "failed", f"dependency {depends_on} failed", _ts(now)
            # ON CONFLICT: another connection (another process, later a replica) may store the same key between
            # the look-up above and here; it waits for that one's commit and then inserts nothing.
            new_id = await conn.insert(
                "INSERT INTO outbox (lane, kind, payload, status, next_attempt_at, depends_on, created_at, "
                "finished_at, dedup_key, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dedup_key) DO NOTHING",
                (lane, kind, payload, status, next_at, depends_on, _ts(now), finished, dedup_key, error),
            )
            if new_id is not None:
                return new_id
            existing = await _one(conn, "SELECT id FROM outbox WHERE dedup_key = ?", (dedup_key,))
            if existing is None:  # pragma: no cover - a conflict means the row exists
                raise StoreError(f"outbox dedup_key {dedup_key!r}: conflict without a row")
            return int(existing["id"])

    async def due_items(self, *, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """What to deliver now: per lane only its head (oldest pending/uncertain item), and only if it is due
        and its dependency (if any) is sent. Oldest first. A lane whose head waits for a retry or a dependency
        yields nothing, so its later items can never overtake it; other lanes are unaffected."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                f"""WITH heads AS (
                        SELECT MIN(id) AS id FROM outbox WHERE status IN ('pending', 'uncertain') GROUP BY lane
                    )
                    SELECT {_OUTBOX_COLUMNS} FROM heads h
                    JOIN outbox o ON o.id = h.id
                    LEFT JOIN outbox d ON d.id = o.depends_on
                    WHERE o.next_attempt_at <= ? AND (o.depends_on IS NULL OR d.status = 'sent')
                    ORDER BY o.id LIMIT ?""",  # noqa: S608 - constant column list, values are bound
                (_ts(now), limit),
            )
        return [_outbox_item(row) for row in rows]

    async def mark_sent(self, item_id: int, *, result: str) -> None:
        """Delivered; `result` (JSON, e.g. channel + ts) is what dependent items read via `item(dep).result`."""
        _require_json(result, "result")
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = 'sent', result = ?, attempts = attempts + 1, finished_at = ?, "
                "last_error = NULL WHERE id = ? AND status IN ('pending', 'uncertain')",
                (result, _ts(self._now()), item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)

    async def mark_retry(self, item_id: int, *, next_attempt_at: datetime, error: str, uncertain: bool = False) -> None:
        """Not delivered (yet): try again at `next_attempt_at`. `uncertain=True` means it may have been posted
        (timeout after sending): the drainer must look it up before posting it again. A retry of an uncertain
        item with `uncertain=False` (looked up: not posted) makes it plain pending again."""
        status = "uncertain" if uncertain else "pending"
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ? AND status IN ('pending', 'uncertain')",
                (status, _ts(next_attempt_at), error, item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)

    async def mark_failed(self, item_id: int, *, error: str) -> None:
        """Permanently undeliverable (e.g. `invalid_blocks`): the lane moves on. Items that depend on it, directly
        or transitively, can never be sent and fail with it rather than blocking their lanes forever."""
        now = _ts(self._now())
        async with self._writing() as conn:
            await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, finished_at = ?, last_error = ? "
                "WHERE id = ? AND status IN ('pending', 'uncertain')",
                (now, error, item_id),
            )
            if not changed:
                await self._explain_not_open(conn, item_id)
            await _exec(
                conn,
                """WITH RECURSIVE dependents(id) AS (
                       SELECT id FROM outbox WHERE depends_on = ?
                       UNION SELECT o.id FROM outbox o JOIN dependents ON o.depends_on = dependents.id
                   )
                   UPDATE outbox SET status = 'failed', finished_at = ?, last_error = ?
                   WHERE id IN (SELECT id FROM dependents) AND status IN ('pending', 'uncertain')""",
                (item_id, now, f"dependency {item_id} failed: {error}"),
            )

    @staticmethod
    async def _explain_not_open(conn: Conn, item_id: int) -> None:
        row = await _one(conn, "SELECT status FROM outbox WHERE id = ?", (item_id,))
        if row is None:
            raise StoreError(f"outbox item {item_id} does not exist")
        raise StoreError(f"outbox item {item_id} is already {row['status']}")

    async def item(self, item_id: int) -> OutboxItem | None:
        async with self._reading() as conn:
            row = await _one(conn, f"SELECT {_OUTBOX_COLUMNS} FROM outbox o WHERE o.id = ?", (item_id,))  # noqa: S608
        return None if row is None else _outbox_item(row)

    async def outbox_depth(self) -> int:
        """Items not yet delivered nor given up (pending + uncertain): the backlog gauge."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'uncertain')")
        return 0 if row is None else int(row["n"])

    # incidents ---------------------------------------------------------------------------------------------------

    async def load_states(self) -> dict[str, str]:
        """Every target's last saved state machine JSON (what a restarted bot resumes from)."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT target, state FROM incident_states ORDER BY target")
        return {str(row["target"]): str(row["state"]) for row in rows}

    async def save_state(self, target: str, state_json: str) -> None:
        """Replace a target's state; a changed state is also appended to incident_history (kept until retention).
        Saving an unchanged state writes nothing, so calling this every monitoring cycle is cheap."""
        _require_json(state_json, "state_json")
        now = _ts(self._now())
        async with self._writing() as conn:
            row = await _one(conn, "SELECT state FROM incident_states WHERE target = ?", (target,))
            if row is not None and row["state"] == state_json:
                return
            if not await self._shard_fenced(conn, target):
                await self._fenced(conn)
            await _exec(
                conn,
                "INSERT INTO incident_states (target, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (target, state_json, now),
            )
            await _exec(
                conn,
                "INSERT INTO incident_history (target, saved_at, state) VALUES (?, ?, ?)",
                (target, now, state_json),
            )

    async def state_history(self, target: str, *, limit: int = 20) -> list[tuple[datetime, str]]:
        """The target's past states, newest first (the current one included)."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                "SELECT saved_at, state FROM incident_history WHERE target = ? ORDER BY id DESC LIMIT ?",
                (target, limit),
            )
        return [(_dt(row["saved_at"]), str(row["state"])) for row in rows]

    # silences ----------------------------------------------------------------------------------------------------

    async def set_silence(self, *, target: str, until: datetime, by: str, at: datetime, reason: str = "") -> None:
        """Silence (or re-silence: the new one replaces the old) a target's alerts until `until`."""
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO silences (target, until, set_by, set_at, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET until = excluded.until, set_by = excluded.set_by, "
                "set_at = excluded.set_at, reason = excluded.reason",
                (target, _ts(until), by, _ts(at), reason),
            )

    async def clear_silence(self, target: str) -> bool:
        """Remove the target's silence; True only if it was still in force (an expired one is removed too)."""
        now = _ts(self._now())
        async with self._writing() as conn:
            row = await _one(conn, "SELECT until FROM silences WHERE target = ?", (target,))
            if row is None:
                return False
            await _exec(conn, "DELETE FROM silences WHERE target = ?", (target,))
            return str(row["until"]) > now

    async def silences(self, *, now: datetime) -> list[dict[str, object]]:
        """Active silences (until > now): dicts with target, until, by, at, reason."""
        async with self._reading() as conn:
            rows = await _rows(
                conn,
                "SELECT target, until, set_by, set_at, reason FROM silences WHERE until > ? ORDER BY target",
                (_ts(now),),
            )
        return [
            {
                "target": str(row["target"]),
                "until": _dt(row["until"]),
                "by": str(row["set_by"]),
                "at": _dt(row["set_at"]),
                "reason": str(row["reason"]),
            }
            for row in rows
        ]

    # fix holds (wt-ops) ------------------------------------------------------------------------------------------

    async def set_fix_hold(self, *, target: str, request_id: str, action: str, until: datetime,
                           verified: bool = False) -> None:
        """Hold `target`'s alerts for the bot's own fix `request_id` until `until` (replaces any hold of the target).
        In the store rather than only in the leader's memory: a new leader keeps holding (bot/monitor.py)."""
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO fix_holds (target, request_id, action, until, verified, set_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET request_id = excluded.request_id, action = excluded.action, "
                "until = excluded.until, verified = excluded.verified, set_at = excluded.set_at",
                (target, request_id, action, _ts(until), int(verified), _ts(self._now())),
            )

    async def clear_fix_hold(self, target: str, *, request_id: str) -> bool:
        """Drop the target's hold if it is still the one of `request_id` (a newer fix's hold is left alone)."""
        async with self._writing() as conn:
            return bool(await _exec(conn, "DELETE FROM fix_holds WHERE target = ? AND request_id = ?",
                                    (target, request_id)))

    async def fix_holds(self, *, now: datetime) -> list[dict[str, object]]:
        """Holds still in force (until > now): dicts with target, request_id, action, until, verified. An expired
        row is simply not returned: a hold ends by itself, whoever leads."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT target, request_id, action, until, verified FROM fix_holds "
                                     "WHERE until > ? ORDER BY target", (_ts(now),))
        return [{"target": str(r["target"]), "request_id": str(r["request_id"]), "action": str(r["action"]),
                 "until": _dt(r["until"]), "verified": bool(r["verified"])} for r in rows]

    # approval requests -------------------------------------------------------------------------------------------

    async def insert_request(
        self, *, id: str, target: str, action: str, status: str, version: int, expires_at: datetime, data: str
    ) -> None:
        _require_json(data, "data")
        now = _ts(self._now())
        async with self._writing() as conn:
            inserted = await _exec(
                conn,
                "INSERT INTO approval_requests (id, target, action, status, version, expires_at, data, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (id, target, action, status, version, _ts(expires_at), data, now, now),
            )
            if not inserted:
                raise StoreError(f"approval request {id!r} already exists")

    async def get_request(self, id: str) -> tuple[int, str] | None:
        """(version, JSON) — the version is what a later `update_request` must name as `expected_version`."""
        async with self._reading() as conn:
            row = await _one(conn, "SELECT version, data FROM approval_requests WHERE id = ?", (id,))
        return None if row is None else (int(row["version"]), str(row["data"]))

    async def update_request(self, id: str, *, expected_version: int, new_version: int, status: str, data: str,
                             fenced: bool = False) -> bool:
        """Compare-and-set: applies only if the stored version is still `expected_version`. Two people clicking
        at once both read version N; exactly one update matches, the other gets False (first decision wins).
        `fenced` (the leader starting a fix, wt-ops): also only under this replica's fencing token (`Fenced`
        otherwise), so a deposed leader that wakes up late never starts a fix the new leader may run."""
        if new_version <= expected_version:
            raise ValueError(f"new_version {new_version} must be greater than expected_version {expected_version}")
        _require_json(data, "data")
        async with self._writing() as conn:
            if fenced:
                await self._fenced(conn)
            changed = await _exec(
                conn,
                "UPDATE approval_requests SET version = ?, status = ?, data = ?, updated_at = ? "
                "WHERE id = ? AND version = ?",
                (new_version, status, data, _ts(self._now()), id, expected_version),
            )
        return changed == 1

    async def requests_by_status(self, status: str) -> list[str]:
        """JSON of every request in `status`, oldest first (pending ones for expiry, running ones on startup)."""
        async with self._reading() as conn:
            rows = await _rows(conn, "SELECT data FROM approval_requests WHERE status = ? ORDER BY seq", (status,))
        return [str(row["data"]) for row in rows]

    async def latest_request(self, *, target: str, action: str) -> str | None:
        """JSON of the most recently inserted request for target+action, whatever its status."""
        async with self._reading() as conn:
            row = await _one(
                conn,
                "SELECT data FROM approval_requests WHERE target = ? AND action = ? ORDER BY seq DESC LIMIT 1",
                (target, action),
            )
        return None if row is None else str(row["data"])

    # audit -------------------------------------------------------------------------------------------------------

    async def audit(
        self,
        *,
        kind: str,
        target: str | None,
        actor: str | None,
        request_id: str | None = None,
        data: dict[str, object] | None = None,
        at: datetime,
    ) -> int:
        """Append one audit row and return its id. There is no way to change it afterwards (triggers refuse
        UPDATE, and DELETE outside retention)."""
        text = json.dumps(data or {}, sort_keys=True, ensure_ascii=False, default=_json_default)
        async with self._writing() as conn:
            return await _insert(
                conn,
                "INSERT INTO audit (ts, kind, target, actor, request_id, data) VALUES (?, ?, ?, ?, ?, ?)",
                (_ts(at), kind, target, actor, request_id, text),
            )

    async def audit_entries(self, *, target: str | None = None, limit: int = 20) -> list[dict[str, object]]:
        """Newest first (by append order): dicts with id, ts, kind, target, actor, request_id, data (a dict)."""
        async with self._reading() as conn:
            if target is None:
                rows = await _rows(conn, "SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = await _rows(
                    conn, "SELECT * FROM audit WHERE target = ? ORDER BY id DESC LIMIT ?", (target, limit)
                )
        return [_audit_row(row) for row in rows]

    async def count_executions(self, *, target: str, since: datetime) -> int:
        """Fix runs (distinct requests with an `execution` row) on `target` at or after `since`. Counted in SQL
        over the whole window: a scan of the newest N rows under-counted when refused clicks filled them."""
        async with self._reading() as conn:
            row = await _one(
                conn,
                "SELECT COUNT(DISTINCT request_id) FROM audit WHERE target = ? AND kind = 'execution' AND ts >= ?",
                (target, _ts(since)),
            )
        return int(row[0]) if row is not None else 0

    async def export_audit(self) -> AsyncIterator[dict[str, object]]:
        """Every audit row, oldest first, fetched page by page (keyset on id): memory stays bounded, and no lock
        is held between pages, so the consumer may use the store while iterating."""
        last_id = 0
        while True:
            async with self._reading() as conn:
                rows = await _rows(
                    conn, "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", (last_id, _EXPORT_PAGE)
                )
            for row in rows:
                yield _audit_row(row)
            if len(rows) < _EXPORT_PAGE:
                return
            last_id = int(rows[-1]["id"])

    # meta + housekeeping -----------------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self._reading() as conn:
            row = await _one(conn, "SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self._writing() as conn:
            await _exec(
                conn,
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, _ts(self._now())),
            )

    async def purge(self, *, older_than: datetime, batch: int = 1000) -> dict[str, int]:
        """Retention: delete at most `batch` rows per table that are older than `older_than`, in one transaction,
        and return how many went per table (a count equal to `batch` means: call again).

        Deleted: audit rows (ts), incident_history rows (saved_at; the current state is never deleted), sent or
        failed outbox items (finished_at; except one a still-undelivered item depends on), approval requests not in
        OPEN_REQUEST_STATUSES (updated_at), silences that expired before the cutoff. Pending and uncertain outbox
        items are never deleted. No VACUUM: freed pages are reused by later inserts, so the file stops growing
        at its working-set size without ever rewriting the whole database.
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        cutoff = _ts(older_than)
        counts: dict[str, int] = {}
        async with self._writing() as conn:
            await _exec(conn, "DELETE FROM audit_retention")
            await _exec(conn, "INSERT INTO audit_retention (cutoff) VALUES (?)", (cutoff,))
            counts["audit"] = await _exec(
                conn,
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts < ? ORDER BY id LIMIT ?)",
                (cutoff, batch),
            )
            await _exec(conn, "DELETE FROM audit_retention")
            counts["incident_history"] = await _exec(
                conn,
                "DELETE FROM incident_history WHERE id IN "
                "(SELECT id FROM incident_history WHERE saved_at < ? ORDER BY id LIMIT ?)",
                (cutoff, batch),
            )
            counts["outbox"] = await _exec(
                conn,
                """DELETE FROM outbox WHERE id IN (
                       SELECT o.id FROM outbox o
                       WHERE o.status IN ('sent', 'failed') AND o.finished_at < ?
                         AND NOT EXISTS (SELECT 1 FROM outbox c
                                         WHERE c.depends_on = o.id AND c.status IN ('pending', 'uncertain'))
                       ORDER BY o.id LIMIT ?)""",
                (cutoff, batch),
            )
            open_statuses = sorted(OPEN_REQUEST_STATUSES)
            marks = ", ".join("?" for _ in open_statuses)
            counts["requests"] = await _exec(
                conn,
                f"""DELETE FROM approval_requests WHERE seq IN (
                        SELECT seq FROM approval_requests
                        WHERE status NOT IN ({marks}) AND updated_at < ? ORDER BY seq LIMIT ?)""",  # noqa: S608
                (*open_statuses, cutoff, batch),
            )
            counts["silences"] = await _exec(
                conn,
                "DELETE FROM silences WHERE target IN (SELECT target FROM silences WHERE until < ? LIMIT ?)",
                (cutoff, batch),
            )
        return counts


# --- transaction handle ----------------------------------------------------------------------------------------

_ACTIVE_TX: ContextVar[Tx | None] = ContextVar("wscheck_store_active_tx", default=None)


class Tx(_Ops):
    """The open transaction of `Store.transaction()`: the same methods as `Store`, all inside one commit.
    Valid only inside its `async with` block."""

    def __init__(self, store: Store, conn: Conn) -> None:
        self._store = store
        self._conn = conn
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("transaction is over: this Tx was used outside its `async with store.transaction()` block")

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[Conn]:
        self._check_open()
        try:
            yield self._conn
        except self._conn.errors as exc:
            if isinstance(self._conn, PostgresConn):
                self._conn.discard_if_lost(exc)
            raise self._store._wrap(exc) from exc

    def _reading(self) -> AbstractAsyncContextManager[Conn]:
        return self._writing()

    def _now(self) -> datetime:
        return self._store._now()

    def _fence_source(self) -> Callable[[], int | None] | None:
        return self._store.fence

    def _shard_source(self) -> Callable[[str], int | None] | None:
        return self._store.shard_fence


# --- the store -------------------------------------------------------------------------------------------------


def lock_path_for(path: Path) -> Path:
    """The sidecar lock file: `<db>.lock` beside the database."""
    return path.with_name(path.name + ".lock")


def _read_lock_pid(fd: int) -> str | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None


def _acquire_lock(path: Path) -> int:
    """Exclusive, non-blocking flock on `<db>.lock`; records our pid for the message a second bot prints."""
    lock_path = lock_path_for(path)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # O_CLOEXEC by default (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_lock_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            holder = f"pid {pid}" if pid else "another process"
            raise StoreLocked(
                f"database {path} is already in use by {holder} (lock {lock_path}): another wscheck bot is running "
                f"on it; stop that one first. A SQLite database serves one bot; to run more than one replica, use "
                f"PostgreSQL (WSCHECK_DB=postgresql://user@host/dbname)"
            ) from None
        raise StoreError(f"cannot lock {lock_path}: {exc}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is only a courtesy for the error message; the lock itself is held
    return fd


def _prepare_files(path: Path, *, exclusive: bool) -> int | None:
    """Create the directory and (0600: the audit log is nobody else's business) the database file, then lock.

    Synchronous on purpose: a few metadata syscalls on a local disk, and LOCK_NB never waits. Run in a worker
    thread, a cancelled open could leave the thread holding a lock fd nobody will ever close.
    """
    os.makedirs(path.parent, exist_ok=True)
    lock_fd = _acquire_lock(path) if exclusive else None
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # no-op for an existing file (mode untouched)
    except OSError as exc:
        _release_lock(lock_fd)
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    return lock_fd


def _release_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the only fd of the open file description drops the flock


async def _rollback(conn: Conn) -> None:
    """Roll back if a transaction is open. A failure here must not hide the exception that made us roll back."""
    await conn.rollback()


def _system_clock() -> datetime:
    return datetime.now(UTC)


_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*PG_ERRORS, ValueError)
"""What asyncpg's connect raises, ValueError included (a URL option it does not understand)."""


def _application_name() -> str:
    """What the PostgreSQL sessions of one Store are called in pg_stat_activity: the pid and host, shown to a
    refused second bot, and a token of the Store, by which it recognises a session of its own that it gave up."""
    return f"wscheck pid {os.getpid()} on {socket.gethostname()[:32]} #{secrets.token_hex(4)}"


class Store(_Ops):
    """The database. Open with `await Store.open(path or URL)`; use as `async with`. One connection, shared by all
    coroutines: calls are serialised by an asyncio lock so that no coroutine ever sees (or joins) another's
    half-done transaction. The same on both engines, so that behaviour (and the tests) do not depend on it."""

    def __init__(
        self, url: DatabaseURL, conn: Conn, lock_fd: int | None, clock: Callable[[], datetime], *, exclusive: bool
    ) -> None:
        self.url = url
        self.path: Path | None = url.path
        self._db = conn
        self._lock_fd = lock_fd
        self._exclusive = exclusive
        self._clock = clock
        self._mutex = asyncio.Lock()
        self._closed = False
        self._schema_version = 0
        self._app_name = ""
        #: The leader's fencing token (bot/leader.py), or None when writes are not fenced (SQLite, one bot).
        self.fence: Callable[[], int | None] | None = None
        #: With WSCHECK_SHARDS=auto: target -> the membership epoch this replica owns it under, or None (not ours).
        #: State commits are then fenced by it instead of by the leader's token (bot/shards.py).
        self.shard_fence: Callable[[str], int | None] | None = None

    @property
    def engine(self) -> str:
        """"sqlite" or "postgresql"."""
        return self.url.engine

    # lifecycle ---------------------------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        where: Path | str | DatabaseURL,
        *,
        exclusive: bool = True,
        clock: Callable[[], datetime] | None = None,
        migrate: bool = True,
    ) -> Store:
        """Lock (if `exclusive`), connect, configure, migrate. `where` is a SQLite path or a `WSCHECK_DB` value
        (bot.dburl). `exclusive=False` skips the lock: for read-mostly tools (`wscheck audit`, `wscheck db status`)
        and tests that need a second connection; the bot always opens exclusively. `migrate=False` only checks
        that the database is not newer than this wscheck (`wscheck db status` looks without changing anything).
        `clock` (default: wall clock, UTC) stamps created/updated/finished times; tests may pin it."""
        try:
            url = parse_db_url(where)
        except ValueError as exc:
            raise StoreError(f"WSCHECK_DB: {exc}") from None
        if url.engine == "postgresql":
            store = await cls._open_postgresql(url, exclusive=exclusive, clock=clock or _system_clock)
        else:
            store = await cls._open_sqlite(url, exclusive=exclusive, clock=clock or _system_clock)
        try:
            if migrate:
                await store._migrate()
            else:
                await store._check_not_newer()
        except BaseException:
            await store._abandon()
            raise
        return store

    @classmethod
    async def _open_sqlite(cls, url: DatabaseURL, *, exclusive: bool, clock: Callable[[], datetime]) -> Store:
        assert url.path is not None
        path = url.path
        lock_fd = _prepare_files(path, exclusive=exclusive)
        raw: aiosqlite.Connection | None = None
        try:
            raw = await aiosqlite.connect(path, isolation_level=None)
            raw.row_factory = sqlite3.Row
            store = cls(url, SqliteConn(raw), lock_fd, clock, exclusive=exclusive)
            await store._configure()
            return store
        except BaseException as exc:
            if raw is not None:
                await raw.close()
            _release_lock(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"database {path}: {exc}") from exc
            raise

    @classmethod
    async def _open_postgresql(cls, url: DatabaseURL, *, exclusive: bool, clock: Callable[[], datetime]) -> Store:
        app_name = _application_name()
        conn = await cls._connect_postgresql(url, app_name)
        store = cls(url, conn, None, clock, exclusive=exclusive)
        store._app_name = app_name
        try:
            if exclusive:
                await store._lock_postgresql(conn)
        except BaseException:
            await conn.close()
            raise
        return store

    @staticmethod
    async def _connect_postgresql(url: DatabaseURL, app_name: str) -> PostgresConn:
        try:
            return await connect_postgres(url.secret_dsn(), application_name=app_name,
                                          timeout=PG_CONNECT_TIMEOUT, command_timeout=PG_COMMAND_TIMEOUT)
        except _CONNECT_ERRORS as exc:
            # asyncpg's errors name the host and the user, not the password; scrub anyway (belt and braces).
            error = StoreError if isinstance(exc, asyncpg.PostgresError | ValueError) else StoreUnavailable
            raise error(f"database {url}: cannot connect: {url.scrub(str(exc)) or type(exc).__name__}") from None

    async def _lock_postgresql(self, conn: PostgresConn) -> None:
        """The flock's equivalent: a session-level advisory lock, held as long as this connection lives and
        released by the server when the session ends, even if the process is SIGKILLed or the network is cut.

        A session this very process gave up (a statement that got no answer, a network cut) may still hold it on
        the server, which has not noticed yet: that one, and only that one (this Store's own application_name), is
        terminated and the lock taken again."""
        try:
            for attempt in (1, 2):
                got = await conn.one("SELECT pg_try_advisory_lock(?) AS got", (PG_BOT_LOCK_KEY,))
                if got is not None and got["got"]:
                    return
                holder = await conn.one(
                    """SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                       WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                             SELECT oid FROM pg_database WHERE datname = current_database())
                         AND l.classid = ? AND l.objid = ? AND l.objsubid = 1""",
                    (PG_BOT_LOCK_KEY >> 32, PG_BOT_LOCK_KEY & 0xFFFFFFFF),
                )
                if attempt == 1 and holder is not None and holder["application_name"] == self._app_name:
                    await conn.one("SELECT pg_terminate_backend(?, 5000) AS gone", (int(holder["pid"]),))
                    continue
                break
        except PG_ERRORS as exc:
            raise self._wrap(exc) from exc
        who = "another wscheck bot"
        if holder is not None:
            who = f"{holder['application_name'] or 'a session'} (server pid {holder['pid']})"
        raise StoreLocked(
            f"database {self.url} is already in use by {who}: another wscheck bot is running on it; stop that one "
            f"first (this needs the database to itself)"
        )

    async def _abandon(self) -> None:
        """A failed open: close without waiting for anything, release the lock."""
        self._closed = True
        try:
            await self._db.close()
        finally:
            _release_lock(self._lock_fd)
            self._lock_fd = None

    async def close(self) -> None:
        """Wait for running calls, close the connection, release the lock. Idempotent."""
        if self._closed:
            return
        self._refuse_inside_own_tx("close")
        async with self._mutex:
            if self._closed:
                return
            await self._abandon()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def schema_version(self) -> int:
        """The database's schema version after opening (= len(MIGRATIONS))."""
        return self._schema_version

    async def _configure(self) -> None:
        conn = self._db
        row = await _one(conn, "PRAGMA journal_mode = WAL")
        mode = "" if row is None else str(row[0]).lower()
        if mode != "wal":
            raise StoreError(f"database {self.url}: cannot switch to WAL journal mode (got {mode!r})")
        for pragma in (
            # NORMAL with WAL: nothing committed is lost when the process crashes; only a power loss can drop the
            # last few commits (never corrupt the file). FULL would fsync every outbox write.
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}",
        ):
            await _exec(conn, pragma)

    async def _user_version(self) -> int:
        """The schema version: SQLite's `PRAGMA user_version`; on PostgreSQL the highest row of schema_migrations
        (the table both engines keep, with the name and time of every step)."""
        conn = self._db
        if conn.engine == "sqlite":
            row = await _one(conn, "PRAGMA user_version")
            return 0 if row is None else int(row[0])
        # A catalog scan (under the statement's snapshot), not to_regclass(): its name cache can miss a table that
        # another session created since this one last looked.
        row = await _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
                               " AND tablename = 'schema_migrations') AS present")
        if row is None or not row["present"]:
            return 0
        row = await _one(conn, "SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return 0 if row is None else int(row["v"])

    async def applied_migrations(self) -> list[tuple[int, str, datetime]]:
        """(version, name, applied_at) of every step this database has run, oldest first (`wscheck db status`)."""
        async with self._reading() as conn:
            if await self._user_version() == 0:
                return []
            rows = await _rows(conn, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        return [(int(r["version"]), str(r["name"]), _dt(r["applied_at"])) for r in rows]

    def _too_new(self, found: int, known: int) -> StoreError:
        return StoreError(
            f"database {self.url} has schema version {found}, but this wscheck only knows versions up to {known}: "
            f"it was written by a newer wscheck; upgrade wscheck (or point WSCHECK_DB at another database)"
        )

    async def _check_not_newer(self) -> None:
        known = len(MIGRATIONS)
        try:
            self._schema_version = await self._user_version()
        except self._db.errors as exc:
            raise self._wrap(exc) from exc
        if self._schema_version > known:
            raise self._too_new(self._schema_version, known)

    async def _begin_migration(self) -> None:
        """Open one migration's transaction, serialised against every other process migrating the same database:
        SQLite's BEGIN IMMEDIATE takes the write lock; PostgreSQL waits for a transaction-level advisory lock."""
        conn = self._db
        await conn.begin()
        if conn.engine == "postgresql":
            await _exec(conn, "SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK_KEY,))

    async def _migrate(self) -> None:
        """Apply the missing steps of MIGRATIONS, each in its own transaction (DDL is transactional on both
        engines). The version is re-read inside the transaction, so two processes opening an old database at
        once cannot both apply a step."""
        migrations = MIGRATIONS  # read at call time: tests substitute the module attribute
        _check_migrations(migrations)
        known = len(migrations)
        conn = self._db
        try:
            current = await self._user_version()
        except conn.errors as exc:
            raise self._wrap(exc) from exc
        if current > known:
            raise self._too_new(current, known)
        for migration in migrations[current:]:
            try:
                await self._begin_migration()
                # First, under the lock: a lookup by name would not see a table another session just created.
                await _exec(
                    conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
                )
                found = await self._user_version()
                if found > known:
                    raise self._too_new(found, known)
                if found >= migration.version:  # someone else applied it meanwhile
                    await conn.commit()
                    continue
                for statement in migration.steps(conn.engine):
                    await _exec(conn, statement)
                await _exec(
                    conn,
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _ts(self._now())),
                )
                if conn.engine == "sqlite":
                    await _exec(conn, f"PRAGMA user_version = {int(migration.version)}")
                await conn.commit()
            except BaseException as exc:
                await _rollback(conn)
                if isinstance(exc, conn.errors):
                    raise StoreError(
                        f"database {self.url}: migration {migration.version} ({migration.name}) failed: "
                        f"{self.url.scrub(str(exc))}"
                    ) from exc
                raise
        await self._check_not_newer()

    # transactions ------------------------------------------------------------------------------------------------

    def _refuse_inside_own_tx(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        active = _ACTIVE_TX.get()
        if active is not None and active._store is self and active._open:
            raise StoreError(
                f"Store.{what}() called inside this store's transaction(): use the Tx it yielded "
                f"(going through the Store would wait for the transaction to end, i.e. forever)"
            )

    def _wrap(self, exc: BaseException) -> StoreError:
        return StoreError(f"database {self.url}: {self.url.scrub(str(exc)) or type(exc).__name__}")

    async def _usable(self) -> Conn:
        """The connection, reconnected first if a PostgreSQL session was lost (server restart, network cut, a
        rollback that could not finish). Called with the mutex held. A bot that held the advisory lock takes it
        again, or stops: another bot may have started meanwhile."""
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        conn = self._db
        if isinstance(conn, PostgresConn) and conn.broken():
            fresh = await self._connect_postgresql(self.url, self._app_name)
            try:
                if self._exclusive:
                    await self._lock_postgresql(fresh)
            except BaseException:
                await fresh.close()
                raise
            self._db = conn = fresh
        return conn

    async def _begin(self) -> Conn:
        """BEGIN on a usable connection. A PostgreSQL session found dead by this BEGIN (it died while idle, so
        nothing of ours was in flight) is replaced once, and the BEGIN tried again on the new one."""
        for attempt in (1, 2):
            conn = await self._usable()
            try:
                await conn.begin()
                return conn
            except BaseException as exc:
                await _rollback(conn)  # no-op unless the BEGIN completed after we were cancelled
                if not isinstance(exc, conn.errors):
                    raise
                if isinstance(conn, PostgresConn):
                    conn.discard_if_lost(exc)
                    if attempt == 1 and conn.broken():
                        continue
                raise self._wrap(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """`BEGIN` ... `COMMIT`, or `ROLLBACK` on any exception (cancellation included). Explicit on both engines;
        on SQLite it is `BEGIN IMMEDIATE`, which takes the write lock up front, so a transaction never fails
        half-way with SQLITE_BUSY on its first write."""
        self._refuse_inside_own_tx("transaction")
        async with self._mutex:
            conn = await self._begin()
            tx = Tx(self, conn)
            token = _ACTIVE_TX.set(tx)
            try:
                yield tx
                tx._open = False
                await conn.commit()
            except BaseException as exc:
                tx._open = False
                if isinstance(conn, PostgresConn):
                    conn.discard_if_lost(exc)
                await _rollback(conn)
                if isinstance(exc, conn.errors):
                    raise self._wrap(exc) from exc
                raise
            finally:
                with contextlib.suppress(ValueError):  # exited from another context (finaliser): nothing to undo
                    _ACTIVE_TX.reset(token)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[Conn]:
        async with self.transaction() as tx:
            yield tx._conn

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Conn]:
        self._refuse_inside_own_tx("read")
        async with self._mutex:
            conn = await self._usable()
            try:
                yield conn
            except conn.errors as exc:
                if isinstance(conn, PostgresConn):
                    conn.discard_if_lost(exc)
                raise self._wrap(exc) from exc

    def _fence_source(self) -> Callable[[], int | None] | None:
        return self.fence

    def _shard_source(self) -> Callable[[str], int | None] | None:
        return self.shard_fence

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store's clock returned a naive datetime")
        return now
