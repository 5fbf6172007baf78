"""Shared fixtures: one real sandbox stack (sshd + nginx + PM2 + Next.js) per test session.

The sandbox is installed and started by the project's own script (deploy/sandbox/); a missing sshd,
nginx or PM2 is installed, never a reason to skip.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.support.examples  # noqa: F401  (registers and loads the hypothesis profile: dev, or ci)
from tests.support.sandboxpkg import load_sandbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    module = load_sandbox()
    workdir = Path(tempfile.mkdtemp(prefix="wscheck-sbx-", dir="/tmp"))
    workdir.chmod(0o755)  # the sandbox user must traverse it
    box = module.Sandbox(workdir)
    try:
        box.up()
        yield box
    finally:
        box.down()
        if not os.environ.get("WSCHECK_KEEP_SANDBOX"):
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox_config_file(sandbox: Any) -> Path:
    path = Path(sandbox.workdir) / "wscheck.toml"
    path.write_text(sandbox.target_toml())
    return path


@pytest.fixture(scope="session")
def sandbox_target(sandbox_config_file: Path) -> Any:
    from checks.config import load_targets

    (target,) = load_targets(sandbox_config_file).targets
    return target


ENGINES = ("sqlite", "postgresql")


def store_engine() -> str:
    """WSCHECK_TEST_DB: the store engine of every test that takes `backend` or `db` (wt-ops): `sqlite` (the
    default) or `postgresql` (a fresh database per test on the session's real server)."""
    engine = os.environ.get("WSCHECK_TEST_DB", "").strip().lower() or "sqlite"
    if engine not in ENGINES:
        raise pytest.UsageError(f"WSCHECK_TEST_DB={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


def _twinned() -> set[str]:
    """Unit modules that a tests/integration/*_postgresql.py module imports whole (`from tests.unit.X import *`):
    their tests run on PostgreSQL in every run already."""
    found: set[str] = set()
    for twin in (ROOT / "tests" / "integration").glob("*_postgresql.py"):
        found.update(f"tests.unit.{m}" for m in re.findall(r"^from tests\.unit\.(\w+) import \*", twin.read_text(),
                                                           re.M))
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `store` every test whose store engine WSCHECK_TEST_DB chooses (it takes `backend` or `db`), except those
    on PostgreSQL in every run already (the `*_postgresql` modules and the unit modules they import). CI runs
    `-m "store and not sandbox"` a second time on PostgreSQL (scripts/test.sh; docs/decisions.md, wt-ops)."""
    twinned = _twinned()
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        if {"backend", "db"} & set(getattr(item, "fixturenames", ())) and "_postgresql" not in module \
                and module not in twinned:
            item.add_marker(pytest.mark.store)


@pytest.fixture
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The store's engine for tests that take it: SQLite in tmp_path, or with WSCHECK_TEST_DB=postgresql a fresh
    database on the `postgres` server, dropped afterwards. Modules under tests/integration named `*_postgresql.py`
    import a unit module's tests and override this with a database on the `postgres` server, whatever the env."""
    from tests.support.stores import PostgresBackend, SqliteBackend

    if store_engine() == "sqlite":
        yield SqliteBackend(tmp_path / "wscheck.db")
        return
    server = request.getfixturevalue("postgres")
    name = await server.create_database()
    try:
        yield PostgresBackend(server.url(name))
    finally:
        await server.drop_database(name)


@pytest.fixture
def db(backend: Any) -> str:
    """What WSCHECK_DB (or `Store.open`, `--db`) is given in a test: the SQLite path or the postgresql:// URL of
    `backend`. Tests about SQLite itself (its file, its flock) name their file in tmp_path instead."""
    return str(backend.url)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One private PostgreSQL server per test session (tests/support/postgres.py), started only when a test asks.
    Tests take a fresh database of their own from it (tests/support/stores.py)."""
    from tests.support.postgres import PostgresServer

    server = PostgresServer()
    try:
        server.up()
        yield server
    finally:
        server.down()
