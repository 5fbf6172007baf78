"""What only the PostgreSQL engine has, on the session's real server: the password in the URL (never in an error, a
log line, `wscheck config`, /healthz or the console), the real `wscheck run` on PostgreSQL (its advisory lock, its
refusal of a newer schema), `wscheck db` for operators, and a lost session (the store reconnects, and takes the
bot's lock again or stops)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

import bot.store.db as store_module
from bot.store import MIGRATIONS, Store, StoreError, StoreLocked
from bot.store.dburl import parse_db_url
from tests.support.botproc import BotProcess, bot_env
from tests.support.stores import PostgresBackend
from tests.unit.test_store import open_when_released


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend


async def wscheck(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=bot_env(env),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_wrong_password_is_an_error_that_does_not_show_it(postgres: Any, backend: PostgresBackend,
                                                                  tmp_path: Path) -> None:
    wrong = "Wr0ng-" + postgres.password
    url = backend.url.replace(postgres.password, wrong)
    with pytest.raises(StoreError) as info:
        await Store.open(url)
    message = str(info.value)
    assert "password authentication failed" in message and str(parse_db_url(url)) in message
    assert wrong not in message and postgres.password not in message

    # The real bot: one line, exit 78 (EX_CONFIG: systemd does not restart it), no password, no traceback.
    code, out, err = await wscheck("run", "--console", env={"WSCHECK_DB": url, "WSCHECK_MONITOR": "false",
                                                           "WSCHECK_LOG_LEVEL": "debug"}, cwd=tmp_path)
    assert code == 78, err
    assert "password authentication failed" in err and "Traceback" not in err
    assert wrong not in out + err and postgres.password not in out + err


async def test_the_bot_runs_on_postgresql_without_ever_printing_the_password(
    postgres: Any, backend: PostgresBackend, tmp_path: Path
) -> None:
    bot = BotProcess(["run", "--console"], {
        "WSCHECK_DB": backend.url, "WSCHECK_MONITOR": "false", "WSCHECK_METRICS_PORT": "0",
        "WSCHECK_LOG_LEVEL": "debug",
    }, cwd=tmp_path)
    try:
        await bot.start(stdin=True)
        port = int((await bot.wait_line(r"metrics and health on http://[^:]+:(\d+)/metrics")).group(1))
        async with httpx.AsyncClient(trust_env=False) as client:
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
            metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert health.status_code in (200, 503) and isinstance(health.json(), dict)
        start = len(bot.stdout_lines)
        await bot.send("history")  # reads the audit from PostgreSQL
        await bot.wait_line(r".", stdout=True, start=start)

        # Replicas share a PostgreSQL database (wt-ha): the bot takes no exclusive lock, it leads by the lease.
        assert health.json()["leader"]["role"] == "leader"
        assert "wscheck_leader 1.0" in metrics.text
        holder = await backend.scalar("SELECT holder FROM leader_lease")
        assert f"wscheck pid {bot.proc.pid if bot.proc else 0} " in str(holder)
        assert await backend.scalar("SELECT MAX(version) FROM schema_migrations") == len(MIGRATIONS)
    finally:
        assert await bot.stop() == 0, bot.log()
    everything = "\n".join([bot.log(), health.text, metrics.text])
    assert postgres.password not in everything
    async with await Store.open(backend.url) as after:  # the lock went with the process
        assert after.schema_version == len(MIGRATIONS)


async def test_run_refuses_a_database_newer_than_itself(backend: PostgresBackend, tmp_path: Path) -> None:
    async with await Store.open(backend.url):
        pass
    await backend.set_schema_version(len(MIGRATIONS) + 5)
    code, _, err = await wscheck("run", "--console", env={"WSCHECK_DB": backend.url, "WSCHECK_MONITOR": "false"},
                                 cwd=tmp_path)
    assert code == 78, err
    assert (f"database {parse_db_url(backend.url)} has schema version {len(MIGRATIONS) + 5}, but this wscheck only "
            f"knows versions up to {len(MIGRATIONS)}") in err
    assert "Traceback" not in err


async def test_db_status_and_migrate_for_operators(postgres: Any, backend: PostgresBackend, tmp_path: Path) -> None:
    env = {"WSCHECK_DB": backend.url}
    shown = str(parse_db_url(backend.url))
    code, out, _ = await wscheck("db", "status", env=env, cwd=tmp_path)
    assert code == 1 and out.splitlines()[:2] == [
        f"database: {shown} (postgresql)", f"schema: version 0; this wscheck: version {len(MIGRATIONS)}"], out
    assert "pending" in out
    code, out, _ = await wscheck("db", "migrate", env=env, cwd=tmp_path)
    assert (code, out) == (0, f"database {shown}: migrated from schema version 0 to {len(MIGRATIONS)}\n")
    code, out, err = await wscheck("db", "status", "--db", backend.url, cwd=tmp_path, env={})
    assert code == 0 and "applied" in out and "pending" not in out, out + err
    assert postgres.password not in out + err

    # `wscheck audit` reads the same database while a bot holds it.
    async with await Store.open(backend.url) as bot:
        await bot.audit(kind="execution", target="web", actor="U1", request_id="r1", data={"argv": ["x"]},
                        at=datetime(2025, 1, 1, tzinfo=UTC))
        code, out, err = await wscheck("audit", "--json", env=env, cwd=tmp_path)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["kind"], row["target"], row["data"]) == ("execution", "web", {"argv": ["x"]})


def postgres_password_free(text: str, backend: PostgresBackend) -> bool:
    secret = backend.url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    return secret not in text


async def own_session(store: Store) -> int:
    async with store._reading() as conn:
        row = await conn.one("SELECT pg_backend_pid() AS pid")
    assert row is not None
    return int(row["pid"])


async def terminate(backend: PostgresBackend, pid: int) -> None:
    conn = await asyncpg.connect(backend.url)
    try:
        # With a timeout, it returns once the session is gone (PostgreSQL 14+), not merely signalled.
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
    finally:
        await conn.close()


async def test_a_lost_session_is_reconnected_and_the_lock_taken_again(backend: PostgresBackend) -> None:
    async with await Store.open(backend.url) as store:
        await store.set_meta("k", "v")
        first = await own_session(store)
        await terminate(backend, first)  # a server restart, a network cut, an idle timeout of a proxy
        await store.set_meta("k", "v2")  # a write notices the dead session at BEGIN: a new one, transparently
        assert await store.get_meta("k") == "v2"
        second = await own_session(store)
        assert second != first

        await terminate(backend, second)
        try:
            await store.get_meta("k")  # a read may fail once (its query met the dead session), never silently
        except StoreError as exc:
            assert backend.shown in str(exc) and postgres_password_free(str(exc), backend)
        assert await store.get_meta("k") == "v2"  # then a new session
        second = await own_session(store)
        holders = await backend.rows("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert (second,) in holders  # the bot's lock came back with it
        with pytest.raises(StoreLocked):
            await Store.open(backend.url)


async def test_a_lost_session_whose_lock_another_bot_took_stops_the_store(backend: PostgresBackend) -> None:
    async with await Store.open(backend.url) as store:
        await store.set_meta("k", "v")
        await terminate(backend, await own_session(store))
        async with await open_when_released(backend.url) as usurper:  # the server dropped the dead session's lock
            await usurper.set_meta("owner", "usurper")
            errors: list[StoreError] = []
            for _ in range(2):  # the first call may only notice that its session died
                try:
                    await store.get_meta("k")
                except StoreError as exc:
                    errors.append(exc)
            assert len(errors) == 2 and isinstance(errors[-1], StoreLocked), errors
            assert await usurper.get_meta("owner") == "usurper"


async def test_a_session_lost_inside_a_transaction_loses_all_of_it_never_half(backend: PostgresBackend) -> None:
    async with await Store.open(backend.url) as store:
        with pytest.raises(StoreError):
            async with store.transaction() as tx:
                await tx.save_state("web", '{"phase": "open"}')
                await tx.enqueue(lane="alerts", kind="post", payload="{}", dedup_key="open-1")
                await terminate(backend, await own_session_in(tx))
                await tx.audit(kind="incident", target="web", actor=None, at=datetime(2025, 1, 1, tzinfo=UTC))
        # A new session; the state and its outbox row went together (the server rolled the dead session back).
        assert await store.outbox_depth() == 0
        assert await store.load_states() == {}
        assert await store.enqueue(lane="alerts", kind="post", payload="{}", dedup_key="open-1") > 0
        assert await store.outbox_depth() == 1


async def own_session_in(tx: Any) -> int:
    row = await tx._conn.one("SELECT pg_backend_pid() AS pid")
    return int(row["pid"])


async def test_a_statement_that_gets_no_answer_is_bounded_and_the_session_replaced(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server or network that stops answering (no reset) must not hang the bot: every statement is bounded."""
    monkeypatch.setattr(store_module, "PG_COMMAND_TIMEOUT", 0.5)
    async with await Store.open(backend.url) as store:
        first = await own_session(store)
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreError):
            async with store._reading() as conn:
                await conn.rows("SELECT pg_sleep(30)")  # stands in for a query the network swallowed
        assert asyncio.get_running_loop().time() - started < 10
        await store.set_meta("k", "v")  # the next call: a new session, the bot's lock taken again
        assert await own_session(store) != first
        with pytest.raises(StoreLocked):
            await Store.open(backend.url)
