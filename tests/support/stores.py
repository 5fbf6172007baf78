"""The store tests' view of an engine: where a fresh database is, and how to look at it behind the store's back.

tests/unit/test_store.py runs every engine-neutral store test against the `backend` fixture (SQLite, in tmp_path);
tests/integration/test_store_postgresql.py imports the same test functions and overrides `backend` with a fresh
database on the session's real PostgreSQL server. Raw access (`scalar`, `execute`) uses the engine's own driver on
its own connection, so a test can check what is really stored, or tamper with it as an attacker or a hand-edit would.
"""

from __future__ import annotations

import abc
import sqlite3
from pathlib import Path

import asyncpg

from bot.store.dburl import parse_db_url


class Backend(abc.ABC):
    engine: str
    url: str
    """What `Store.open` is given: a path for SQLite, a postgresql:// URL (with the password) for PostgreSQL."""
    refused: type[Exception]
    """What the driver raises when a trigger or constraint refuses a statement."""

    @property
    def shown(self) -> str:
        """How the database appears in messages (the redacted URL / the path)."""
        return str(parse_db_url(self.url))

    @abc.abstractmethod
    async def execute(self, sql: str) -> None:
        """One statement on a connection of its own, in autocommit."""

    @abc.abstractmethod
    async def rows(self, sql: str) -> list[tuple[object, ...]]: ...

    async def scalar(self, sql: str) -> object:
        found = await self.rows(sql)
        return found[0][0] if found else None

    @abc.abstractmethod
    async def tables(self) -> set[str]: ...

    @abc.abstractmethod
    async def set_schema_version(self, version: int) -> None:
        """Pretend the database was migrated to `version` by some wscheck (newer or older than this one)."""


class SqliteBackend(Backend):
    engine = "sqlite"
    refused = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = str(path)

    def _con(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    async def execute(self, sql: str) -> None:
        con = self._con()
        try:
            con.execute(sql)
        finally:
            con.close()

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        con = self._con()
        try:
            return [tuple(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()

    async def tables(self) -> set[str]:
        return {str(r[0]) for r in await self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    async def set_schema_version(self, version: int) -> None:
        await self.execute(f"PRAGMA user_version = {int(version)}")


class PostgresBackend(Backend):
    engine = "postgresql"
    refused = asyncpg.IntegrityConstraintViolationError

    def __init__(self, url: str) -> None:
        self.url = url

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def tables(self) -> set[str]:
        rows = await self.rows("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {str(r[0]) for r in rows}

    async def set_schema_version(self, version: int) -> None:
        await self.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        await self.execute(f"DELETE FROM schema_migrations WHERE version > {int(version)}")  # noqa: S608 - an int
        if version > 0:
            await self.execute(f"INSERT INTO schema_migrations VALUES ({int(version)}, 'set by a test', "  # noqa: S608
                               "'2025-01-01T00:00:00.000000+00:00') ON CONFLICT DO NOTHING")
