"""The two engines under bot.store: one small connection interface, written once for aiosqlite and once for asyncpg.

Why so thin: bot.store writes its SQL once, in the dialect both engines share (`?` placeholders, `ON CONFLICT ...
DO UPDATE`, `WITH RECURSIVE`, partial indexes), and only these five verbs differ between the drivers: run a statement
and count rows, insert and return the new id, fetch rows, and begin / commit / roll back an explicit transaction.
Rows come back as `sqlite3.Row` or `asyncpg.Record`; both answer `row["column"]` and `row[0]`, which is all the store
uses. Anything engine-specific that is not a verb (PRAGMAs, the flock, advisory locks, how the schema version is
stored) lives in `Store`, next to the code that needs it.

Transactions are always explicit (`begin()` ... `commit()`), on both engines: SQLite's `BEGIN IMMEDIATE` takes the
write lock up front; PostgreSQL's `BEGIN` is READ COMMITTED, where the store's conditional UPDATEs (`... WHERE
version = ?`, `... AND status IN (...)`) re-check their condition on the row after waiting for a concurrent writer,
so a compare-and-set still has exactly one winner.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol, cast

import aiosqlite
import asyncpg

__all__ = ["PG_ERRORS", "Conn", "PostgresConn", "Row", "SqliteConn", "connect_postgres", "pg_placeholders"]


class Row(Protocol):
    """What both drivers' rows offer: by column name and by position."""

    def __getitem__(self, key: int | str, /) -> Any: ...


PG_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError,
)
"""What asyncpg raises for a database problem: server errors, a closed connection, a protocol out of step (a FATAL
that arrived between two queries), the network, a connect timeout."""

_SESSION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError, OSError, TimeoutError,
)
"""Errors after which the session cannot be trusted any more (as opposed to an SQL error, after which it can)."""


class Conn(abc.ABC):
    """One open connection. Not safe for concurrent use: the store serialises calls with its own lock."""

    engine: str
    errors: tuple[type[BaseException], ...]

    @abc.abstractmethod
    async def exec(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed (0 for DDL)."""

    @abc.abstractmethod
    async def insert(self, sql: str, params: Sequence[object] = ()) -> int | None:
        """Run one INSERT into a table whose key column is `id`; the new row's id, or None when it stored nothing
        (`ON CONFLICT ... DO NOTHING`)."""

    @abc.abstractmethod
    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    async def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        found = await self.rows(sql, params)
        return found[0] if found else None

    @abc.abstractmethod
    async def begin(self) -> None: ...

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def rollback(self) -> None:
        """Roll back if a transaction is open; never raises (a failure must not hide why we roll back)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class SqliteConn(Conn):
    """aiosqlite: one worker thread per connection, so a slow disk stalls a thread, never the event loop."""

    engine = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    async def exec(self, sql: str, params: Sequence[object] = ()) -> int:
        async with self.raw.execute(sql, tuple(params)) as cursor:
            return int(cursor.rowcount)

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int | None:
        async with self.raw.execute(sql, tuple(params)) as cursor:
            # lastrowid keeps the previous INSERT's id when this one stored nothing: the row count decides.
            if cursor.rowcount < 1 or cursor.lastrowid is None:
                return None
            return int(cursor.lastrowid)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return list(cast(Sequence[Row], await self.raw.execute_fetchall(sql, tuple(params))))

    async def begin(self) -> None:
        await self.exec("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self.raw.commit()

    async def rollback(self) -> None:
        # sqlite3's rollback() is a no-op outside a transaction. Enqueued on the connection's worker thread before
        # anything else can be, so it runs even if the awaiting task is cancelled again.
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self.raw.rollback()

    async def close(self) -> None:
        await self.raw.close()


@functools.lru_cache(maxsize=512)
def pg_placeholders(sql: str) -> str:
    """`?` -> `$1, $2, ...` outside quoted literals and identifiers, so the store writes its SQL once."""
    out: list[str] = []
    quote: str | None = None
    n = 0
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(char)
    return "".join(out)


def _count(status: str) -> int:
    """asyncpg returns the command tag (`UPDATE 3`, `INSERT 0 1`, `CREATE TABLE`): its last number is the count."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def connect_postgres(dsn: str, *, application_name: str, timeout: float, command_timeout: float) -> PostgresConn:
    """Connect with the operator's URL (libpq syntax; sslmode etc. in its query). `application_name` shows in
    pg_stat_activity, which is how a refused second bot learns who holds the database. `command_timeout` bounds
    every statement: a network cut without a reset would otherwise hang the store (and the bot) forever."""
    raw = await asyncpg.connect(dsn, timeout=timeout, command_timeout=command_timeout,
                                server_settings={"application_name": application_name})
    try:
        # TCP keepalives from the server's side: a session whose client vanished (network cut, machine gone) ends
        # within about a minute instead of the kernel's two hours, and with it the bot's advisory lock. Set after
        # connecting, not as startup parameters, which poolers such as PgBouncer refuse. Ignored on Unix sockets.
        for setting in ("tcp_keepalives_idle = 30", "tcp_keepalives_interval = 10", "tcp_keepalives_count = 3"):
            await raw.execute(f"SET {setting}")
    except BaseException:
        raw.terminate()
        raise
    return PostgresConn(raw)


class PostgresConn(Conn):
    """asyncpg: native asyncio protocol, prepared statements cached per connection."""

    engine = "postgresql"
    errors = PG_ERRORS

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    @staticmethod
    def _sql(sql: str, params: Sequence[object]) -> str:
        # Without parameters the statement goes as-is (DDL with $$-quoted function bodies included).
        return pg_placeholders(sql) if params else sql

    async def exec(self, sql: str, params: Sequence[object] = ()) -> int:
        return _count(str(await self.raw.execute(self._sql(sql, params), *params)))

    async def insert(self, sql: str, params: Sequence[object] = ()) -> int | None:
        new_id = await self.raw.fetchval(self._sql(sql, params) + " RETURNING id", *params)
        return None if new_id is None else int(new_id)

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return list(cast(Sequence[Row], await self.raw.fetch(self._sql(sql, params), *params)))

    async def begin(self) -> None:
        await self.raw.execute("BEGIN")

    async def commit(self) -> None:
        await self.raw.execute("COMMIT")

    async def rollback(self) -> None:
        if self.raw.is_closed():
            return
        try:
            if self.raw.is_in_transaction():
                await self.raw.execute("ROLLBACK")
        except BaseException as exc:
            # Cancelled or broken half-way: the session's state is unknown, so drop it. The server rolls back
            # whatever was open when the session ends; the store reconnects on its next call.
            self.raw.terminate()
            if not isinstance(exc, Exception):
                raise

    def broken(self) -> bool:
        return bool(self.raw.is_closed())

    def discard_if_lost(self, exc: BaseException) -> None:
        """After an error that means the session is gone (terminated by the server, network cut, protocol out of
        step), drop it, so that the store's next call starts a new one instead of failing on this one forever."""
        if isinstance(exc, _SESSION_LOST) and not self.raw.is_closed():
            self.raw.terminate()

    async def close(self) -> None:
        if not self.raw.is_closed():
            try:
                await self.raw.close(timeout=5)
            except PG_ERRORS:
                self.raw.terminate()
