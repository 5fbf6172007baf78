"""What only the SQLite engine of the store has: its PRAGMAs, the database file's mode, the version in
`PRAGMA user_version`, and the URL forms of WSCHECK_DB that name a SQLite file. The engine-neutral store tests are
tests/unit/test_store.py (run on PostgreSQL too by tests/integration/test_store_postgresql.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

import bot.store.db as store_module
from bot.store import MIGRATIONS, Store
from bot.store.backends import SqliteConn


async def test_configures_the_connection_and_keeps_the_file_private(tmp_path: Path) -> None:
    db_path = tmp_path / "wscheck.db"
    async with await Store.open(db_path) as store:
        assert store.engine == "sqlite" and store.path == db_path
        async with store._reading() as conn:
            assert isinstance(conn, SqliteConn)
            pragmas = {
                name: (await conn.rows(f"PRAGMA {name}"))[0][0]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version")
            }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": store_module.BUSY_TIMEOUT_MS,
        "user_version": len(MIGRATIONS),
    }
    assert os.stat(db_path).st_mode & 0o077 == 0  # the audit log is not world-readable


async def test_sqlite_url_forms_open_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "wscheck.db"
    absolute_url = f"sqlite:///{db_path}"  # three slashes, then the absolute path: four in all
    assert absolute_url.startswith("sqlite:////")
    async with await Store.open(absolute_url) as absolute:
        await absolute.set_meta("k", "v")
        assert absolute.path == db_path
    monkeypatch.chdir(tmp_path)  # the relative form: sqlite:///wscheck.db, relative to the working directory
    async with await Store.open("sqlite:///wscheck.db", exclusive=False) as relative:
        assert await relative.get_meta("k") == "v"
        assert relative.path == Path("wscheck.db")
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    finally:
        con.close()
