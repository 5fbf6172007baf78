"""Persistence on SQLite or PostgreSQL: incidents, outbox, silences, approval requests, audit, meta (the only module
that writes SQL; bot.store.backends runs it on either driver).

Why it looks the way it does:

* **Two engines, one behaviour.** `WSCHECK_DB` (bot.store.dburl) names a SQLite file (the default: embedded, nothing to
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
  a fencing token (bot/ha/leader.py); the leader-only writes check that token (`fence`, `_fenced`).
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

Layout of the package (split along the sections of the former bot/store.py): errors.py (the exceptions),
migrations.py (`MIGRATIONS`), rows.py (row types, conversions, one-statement helpers), ops.py (`_Ops`, the data
methods), db.py (this module: `Tx`, the lock, `Store`'s lifecycle, migration runner and transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import aiosqlite
import asyncpg

from bot.store.backends import PG_ERRORS, Conn, PostgresConn, SqliteConn, connect_postgres
from bot.store.dburl import DatabaseURL, parse_db_url
from bot.store.errors import StoreError, StoreLocked, StoreUnavailable
from bot.store.migrations import MIGRATIONS, _check_migrations
from bot.store.ops import _Ops
from bot.store.rows import _dt, _exec, _one, _rows, _ts

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
without it (replicas share the database and elect a leader, bot/ha/leader.py); `wscheck db migrate` takes it.
Advisory locks are per database, so databases on one server do not contend."""

PG_MIGRATION_LOCK_KEY = 0x7773_6368_6563_6B02
"""Transaction advisory lock around each migration step: processes migrating one database take turns."""



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
        #: The leader's fencing token (bot/ha/leader.py), or None when writes are not fenced (SQLite, one bot).
        self.fence: Callable[[], int | None] | None = None
        #: With WSCHECK_SHARDS=auto: target -> the membership epoch this replica owns it under, or None (not ours).
        #: State commits are then fenced by it instead of by the leader's token (bot/ha/shards.py).
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
        (bot.store.dburl). `exclusive=False` skips the lock: for read-mostly tools (`wscheck audit`,
        `wscheck db status`) and tests that need a second connection; the bot always opens exclusively.
        `migrate=False` only checks that the database is not newer than this wscheck (`wscheck db status` looks
        without changing anything).
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
