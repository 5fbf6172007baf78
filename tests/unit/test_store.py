"""The store: schema versions, the single-bot lock, the outbox's delivery guarantees, conditional approval updates,
append-only audit, retention. Real SQLite files in tmp_path, real second processes for the lock.

Every test here that takes `backend` (or `store`) is engine-neutral: tests/integration/test_store_postgresql.py
imports them all and runs them again on a real PostgreSQL server by overriding the `backend` fixture. What only
SQLite has (PRAGMAs, the file's mode, the lock file) is in tests/unit/test_store_sqlite.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import bot.store as store_module
import bot.store.db as store_db
import bot.store.migrations as store_migrations
import bot.store.ops as store_ops
import bot.store.rows as store_rows
from bot.store import MIGRATIONS, Migration, Store, StoreError, StoreLocked, lock_path_for
from tests.support.stores import Backend, SqliteBackend

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, for the timestamps the store stamps itself (created/finished/updated)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wscheck.db"


@pytest.fixture
def backend(db_path: Path) -> Backend:
    """The engine under test: SQLite here; tests/integration/test_store_postgresql.py overrides it."""
    return SqliteBackend(db_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(backend: Backend, clock: Clock) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, clock=clock) as opened:
        yield opened


# --- schema and migrations ---------------------------------------------------------------------------------------


async def test_migrates_empty_database(store: Store, backend: Backend) -> None:
    assert store.schema_version == len(MIGRATIONS) >= 1
    assert store.engine == backend.engine
    tables = await backend.tables()
    applied = await backend.rows("SELECT version, name FROM schema_migrations ORDER BY version")
    assert {"meta", "outbox", "incident_states", "incident_history", "silences", "approval_requests", "audit"} <= tables
    assert applied == [(m.version, m.name) for m in MIGRATIONS]
    assert [(v, n) for v, n, _ in await store.applied_migrations()] == applied


async def test_reopen_is_a_noop_and_keeps_data(backend: Backend) -> None:
    async with await Store.open(backend.url) as first:
        await first.set_meta("k", "v")
    async with await Store.open(backend.url) as second:
        assert second.schema_version == len(MIGRATIONS)
        assert await second.get_meta("k") == "v"
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)


async def test_older_database_is_upgraded_by_new_steps(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Store.open(backend.url) as old:
        await old.set_meta("k", "kept")
    step = Migration(
        version=len(MIGRATIONS) + 1,
        name="add notes",
        statements=(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE INDEX n ON notes (body)",
        ),
    )
    monkeypatch.setattr(store_db, "MIGRATIONS", (*MIGRATIONS, step))
    async with await Store.open(backend.url, migrate=False) as looking:  # `wscheck db status`: looks, changes nothing
        assert looking.schema_version == len(MIGRATIONS)
    async with await Store.open(backend.url) as new:
        assert new.schema_version == step.version
        assert await new.get_meta("k") == "kept"
        async with new.transaction() as tx:
            await tx._conn.exec("INSERT INTO notes (id, body) VALUES (1, 'x')")
    assert await backend.scalar("SELECT MAX(version) FROM schema_migrations") == step.version
    assert await backend.scalar("SELECT body FROM notes") == "x"

    # The code without that step now meets a database newer than it knows: refused, naming both versions.
    monkeypatch.setattr(store_db, "MIGRATIONS", MIGRATIONS)
    for migrate in (True, False):
        with pytest.raises(StoreError) as info:
            await Store.open(backend.url, migrate=migrate)
        message = str(info.value)
        assert f"schema version {step.version}" in message
        assert f"up to {len(MIGRATIONS)}" in message
        assert backend.shown in message


async def test_newer_database_is_refused_and_releases_the_lock(backend: Backend) -> None:
    await backend.set_schema_version(99)
    with pytest.raises(StoreError, match=rf"schema version 99.*up to {len(MIGRATIONS)}"):
        await Store.open(backend.url)
    await backend.set_schema_version(0)
    async with await Store.open(backend.url) as ok:  # the failed open did not keep the lock
        assert ok.schema_version == len(MIGRATIONS)


async def test_failing_migration_leaves_previous_version(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Store.open(backend.url):
        pass
    bad = Migration(
        version=len(MIGRATIONS) + 1,
        name="broken",
        statements=("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"),
    )
    monkeypatch.setattr(store_db, "MIGRATIONS", (*MIGRATIONS, bad))
    with pytest.raises(StoreError, match=rf"migration {bad.version} \(broken\) failed"):
        await Store.open(backend.url)
    assert await backend.scalar("SELECT MAX(version) FROM schema_migrations") == len(MIGRATIONS)
    assert "half" not in await backend.tables()
    monkeypatch.setattr(store_db, "MIGRATIONS", MIGRATIONS)
    async with await Store.open(backend.url) as ok:  # rolled back whole: the store is fine at the old version
        assert ok.schema_version == len(MIGRATIONS)


async def test_two_processes_migrating_at_once_apply_each_step_once(backend: Backend) -> None:
    opened = await asyncio.gather(*(Store.open(backend.url, exclusive=False) for _ in range(3)))
    for one in opened:
        assert one.schema_version == len(MIGRATIONS)
        await one.close()
    assert await backend.scalar("SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)


def test_migration_versions_must_be_contiguous() -> None:
    with pytest.raises(StoreError, match="expected 2"):
        store_migrations._check_migrations((MIGRATIONS[0], replace(MIGRATIONS[0], version=3)))


# --- the single-bot lock -----------------------------------------------------------------------------------------

HOLDER = """
import asyncio, sys
from bot.store import Store

async def main() -> None:
    store = await Store.open(sys.argv[1])
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

CONTENDER = """
import asyncio, sys
from bot.store import Store, StoreLocked

async def main() -> int:
    try:
        store = await Store.open(sys.argv[1])
    except StoreLocked as exc:
        print("LOCKED", exc, flush=True)
        return 3
    await store.close()
    print("OPENED", flush=True)
    return 0

sys.exit(asyncio.run(main()))
"""


async def python(script: str, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )


async def contend(where: str) -> tuple[int, str]:
    proc = await python(CONTENDER, where)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def open_when_released(where: str) -> Store:
    """SQLite: the kernel drops the flock with the process. PostgreSQL: the server ends the session (and its
    advisory lock) when it reads the closed socket, a moment later: wait for that, by trying."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await Store.open(where)
        except StoreLocked:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_second_bot_on_same_database_is_refused_until_the_first_is_killed(backend: Backend) -> None:
    holder = await python(HOLDER, backend.url)
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 60) == b"ready\n"

        code, out = await contend(backend.url)  # another process
        assert code == 3, out
        assert out.startswith("LOCKED") and f"pid {holder.pid}" in out and backend.shown in out
        assert out.count("\n") == 1  # one line, fit for a log or a systemd status
        if backend.engine == "sqlite":  # one bot per SQLite file; replicas are PostgreSQL's
            assert "PostgreSQL" in out

        with pytest.raises(StoreLocked, match=rf"pid {holder.pid}"):  # and this process
            await Store.open(backend.url)

        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel alone releases the lock
        assert await asyncio.wait_for(holder.wait(), 60) == -signal.SIGKILL
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()

    async with await open_when_released(backend.url) as successor:
        await successor.set_meta("alive", "yes")
        code, out = await contend(backend.url)  # now we are the one holding it
        assert code == 3 and f"pid {os.getpid()}" in out
    code, out = await contend(backend.url)
    assert (code, out) == (0, "OPENED\n")
    if backend.engine == "sqlite":
        assert lock_path_for(Path(backend.url)).exists()


async def test_exclusive_false_shares_the_database(store: Store, backend: Backend) -> None:
    with pytest.raises(StoreLocked):
        await Store.open(backend.url)
    async with await Store.open(backend.url, exclusive=False) as reader:
        await store.set_meta("k", "v")
        assert await reader.get_meta("k") == "v"


# --- outbox ------------------------------------------------------------------------------------------------------


async def test_outbox_is_fifo_per_lane_and_a_retrying_lane_does_not_block_others(store: Store, clock: Clock) -> None:
    a1 = await store.enqueue(lane="a", kind="post", payload='{"n": 1}')
    a2 = await store.enqueue(lane="a", kind="post", payload='{"n": 2}')
    b1 = await store.enqueue(lane="b", kind="post", payload='{"n": 3}')
    b2 = await store.enqueue(lane="b", kind="post", payload='{"n": 4}')
    assert await store.outbox_depth() == 4

    assert [i.id for i in await store.due_items(now=clock.now)] == [a1, b1]  # heads only

    # Lane a's head hits a 429: a2 must not overtake it, lane b keeps flowing.
    await store.mark_retry(a1, next_attempt_at=clock.now + timedelta(seconds=30), error="ratelimited")
    await store.mark_sent(b1, result='{"ts": "1.1"}')
    assert [i.id for i in await store.due_items(now=clock.now)] == [b2]
    await store.mark_sent(b2, result='{"ts": "1.2"}')
    assert await store.due_items(now=clock.now) == []

    later = clock.now + timedelta(seconds=30)
    due = await store.due_items(now=later)
    assert [i.id for i in due] == [a1]
    assert due[0].attempts == 1 and due[0].last_error == "ratelimited" and due[0].status == "pending"
    await store.mark_sent(a1, result="{}")
    assert [i.id for i in await store.due_items(now=later)] == [a2]
    assert await store.outbox_depth() == 1


async def test_not_before_and_limit(store: Store, clock: Clock) -> None:
    future = await store.enqueue(lane="x", kind="k", payload="{}", not_before=clock.now + timedelta(minutes=5))
    for lane in "abc":
        await store.enqueue(lane=lane, kind="k", payload="{}")
    assert len(await store.due_items(now=clock.now, limit=2)) == 2
    assert future not in [i.id for i in await store.due_items(now=clock.now)]
    assert future in [i.id for i in await store.due_items(now=clock.now + timedelta(minutes=5))]


async def test_depends_on_waits_for_the_dependency_result(store: Store, clock: Clock) -> None:
    root = await store.enqueue(lane="alerts", kind="post", payload='{"text": "down"}')
    reply = await store.enqueue(lane="thread", kind="reply", payload='{"text": "details"}', depends_on=root)
    assert [i.id for i in await store.due_items(now=clock.now)] == [root]  # the reply waits, in another lane

    await store.mark_retry(root, next_attempt_at=clock.now, error="timeout", uncertain=True)
    assert [i.id for i in await store.due_items(now=clock.now)] == [root]  # uncertain is not sent

    await store.mark_sent(root, result='{"channel": "C1", "ts": "171.5"}')
    (due,) = await store.due_items(now=clock.now)
    assert due.id == reply and due.depends_on == root
    dependency = await store.item(root)
    assert dependency is not None and json.loads(dependency.result or "null") == {"channel": "C1", "ts": "171.5"}

    with pytest.raises(StoreError, match="no such outbox item"):
        await store.enqueue(lane="t", kind="reply", payload="{}", depends_on=9999)


async def test_failed_dependency_fails_its_dependents_instead_of_blocking_their_lanes(
    store: Store, clock: Clock
) -> None:
    root = await store.enqueue(lane="alerts", kind="post", payload="{}")
    reply = await store.enqueue(lane="thread", kind="reply", payload="{}", depends_on=root)
    grandchild = await store.enqueue(lane="thread2", kind="reply", payload="{}", depends_on=reply)
    after = await store.enqueue(lane="thread", kind="post", payload="{}")

    await store.mark_failed(root, error="invalid_blocks")
    for item_id in (root, reply, grandchild):
        item = await store.item(item_id)
        assert item is not None and item.status == "failed"
    failed_reply = await store.item(reply)
    assert failed_reply is not None and failed_reply.last_error == f"dependency {root} failed: invalid_blocks"
    assert [i.id for i in await store.due_items(now=clock.now)] == [after]  # lane "thread" moved on

    late = await store.enqueue(lane="t3", kind="reply", payload="{}", depends_on=root)
    late_item = await store.item(late)
    assert late_item is not None and late_item.status == "failed"


async def test_dedup_key_stores_one_item(store: Store) -> None:
    first = await store.enqueue(lane="a", kind="post", payload='{"v": 1}', dedup_key="incident-7-open")
    again = await store.enqueue(lane="a", kind="post", payload='{"v": 2}', dedup_key="incident-7-open")
    async with store.transaction() as tx:
        in_tx = await tx.enqueue(lane="b", kind="post", payload="{}", dedup_key="incident-7-open")
    other = await store.enqueue(lane="a", kind="post", payload="{}", dedup_key="incident-7-close")
    assert first == again == in_tx != other
    item = await store.item(first)
    assert item is not None and item.payload == '{"v": 1}' and item.dedup_key == "incident-7-open"
    assert await store.outbox_depth() == 2


async def test_dedup_key_holds_across_connections_enqueuing_at_once(store: Store, backend: Backend) -> None:
    """Two connections (two processes, later two replicas) storing the same decision at once: one row, one id."""
    async with await Store.open(backend.url, exclusive=False) as other:
        for round_no in range(20):
            key = f"incident-{round_no}-open"
            ids = await asyncio.gather(
                store.enqueue(lane="a", kind="post", payload='{"by": "A"}', dedup_key=key),
                other.enqueue(lane="a", kind="post", payload='{"by": "B"}', dedup_key=key),
            )
            assert ids[0] == ids[1], ids
    assert await store.outbox_depth() == 20


async def test_uncertain_retry_and_failure_semantics(store: Store, clock: Clock) -> None:
    item_id = await store.enqueue(lane="a", kind="post", payload='{"metadata": {"event_type": "wscheck"}}')
    nxt = await store.enqueue(lane="a", kind="post", payload="{}")

    await store.mark_retry(item_id, next_attempt_at=clock.now, error="read timeout", uncertain=True)
    item = await store.item(item_id)
    assert item is not None
    assert (item.status, item.attempts, item.last_error) == ("uncertain", 1, "read timeout")
    assert json.loads(item.payload)["metadata"] == {"event_type": "wscheck"}  # what the caller looks up by

    # Looked it up: it was not posted. Back to plain pending, still the lane's head.
    await store.mark_retry(item_id, next_attempt_at=clock.now, error="not found after timeout")
    item = await store.item(item_id)
    assert item is not None and (item.status, item.attempts) == ("pending", 2)
    assert [i.id for i in await store.due_items(now=clock.now)] == [item_id]

    await store.mark_failed(item_id, error="invalid_blocks")
    item = await store.item(item_id)
    assert item is not None and (item.status, item.attempts, item.last_error) == ("failed", 3, "invalid_blocks")
    assert [i.id for i in await store.due_items(now=clock.now)] == [nxt]

    await store.mark_sent(nxt, result='{"ts": "1"}')
    sent = await store.item(nxt)
    assert sent is not None and (sent.status, sent.attempts, sent.result) == ("sent", 1, '{"ts": "1"}')

    with pytest.raises(StoreError, match="already sent"):
        await store.mark_sent(nxt, result="{}")
    with pytest.raises(StoreError, match="already failed"):
        await store.mark_retry(item_id, next_attempt_at=clock.now, error="x")
    with pytest.raises(StoreError, match="does not exist"):
        await store.mark_failed(12345, error="x")
    assert await store.item(12345) is None


async def test_item_fields_round_trip(store: Store, clock: Clock) -> None:
    when = clock.now + timedelta(seconds=3)
    item_id = await store.enqueue(lane="L", kind="K", payload='{"a": [1]}', dedup_key="d", not_before=when)
    item = await store.item(item_id)
    assert item == store_module.OutboxItem(
        id=item_id,
        lane="L",
        kind="K",
        payload='{"a": [1]}',
        status="pending",
        attempts=0,
        next_attempt_at=when,
        depends_on=None,
        result=None,
        created_at=clock.now,
        dedup_key="d",
        last_error=None,
    )
    assert item.created_at.tzinfo is not None


# --- transactions ------------------------------------------------------------------------------------------------


async def test_state_and_its_messages_commit_together(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save_state("web-1", '{"phase": "open"}')
        await tx.enqueue(lane="alerts", kind="post", payload='{"text": "down"}')
        await tx.audit(kind="incident", target="web-1", actor=None, at=T0)
    assert await store.load_states() == {"web-1": '{"phase": "open"}'}
    assert await store.outbox_depth() == 1
    assert len(await store.audit_entries()) == 1


async def test_exception_inside_a_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as tx:
            await tx.save_state("web-1", '{"phase": "open"}')
            await tx.enqueue(lane="alerts", kind="post", payload="{}", dedup_key="k")
            await tx.set_meta("last_alive_at", "x")
            raise RuntimeError("boom")
    assert await store.outbox_depth() == 0
    assert await store.load_states() == {}
    assert await store.get_meta("last_alive_at") is None
    # The dedup key was rolled back too, so the retried decision is stored.
    assert await store.enqueue(lane="alerts", kind="post", payload="{}", dedup_key="k") > 0


async def test_cancelled_transaction_rolls_back_and_store_stays_usable(store: Store) -> None:
    entered = asyncio.Event()

    async def slow() -> None:
        async with store.transaction() as tx:
            await tx.enqueue(lane="a", kind="post", payload="{}")
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.outbox_depth() == 0
    await store.enqueue(lane="a", kind="post", payload="{}")
    assert await store.outbox_depth() == 1


async def test_using_the_store_inside_its_own_transaction_is_an_error_not_a_deadlock(store: Store) -> None:
    async with store.transaction() as tx:
        with pytest.raises(StoreError, match="use the Tx"):
            await store.get_meta("k")
        with pytest.raises(StoreError, match="use the Tx"):
            await store.enqueue(lane="a", kind="k", payload="{}")
        await tx.set_meta("k", "v")
    with pytest.raises(StoreError, match="transaction is over"):
        await tx.get_meta("k")
    assert await store.get_meta("k") == "v"


async def test_concurrent_callers_never_see_an_uncommitted_transaction(store: Store) -> None:
    release = asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as tx:
            await tx.set_meta("k", "uncommitted")
            await release.wait()
            raise RuntimeError("rolled back")

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    reader = asyncio.create_task(store.get_meta("k"))
    await asyncio.sleep(0.05)
    assert not reader.done()  # waits for the transaction rather than reading into it
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert await reader is None


async def test_closed_store_refuses_calls(backend: Backend) -> None:
    opened = await Store.open(backend.url)
    await opened.close()
    await opened.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await opened.get_meta("k")


# --- incidents ---------------------------------------------------------------------------------------------------


async def test_states_and_history(store: Store, clock: Clock) -> None:
    await store.save_state("a", '{"n": 1}')
    clock.advance(minutes=1)
    await store.save_state("a", '{"n": 1}')  # unchanged: no history row
    await store.save_state("a", '{"n": 2}')
    await store.save_state("b", '{"n": 9}')
    assert await store.load_states() == {"a": '{"n": 2}', "b": '{"n": 9}'}
    assert await store.state_history("a") == [(clock.now, '{"n": 2}'), (T0, '{"n": 1}')]
    with pytest.raises(ValueError, match="JSON"):
        await store.save_state("a", "not json")


async def test_text_sorts_in_byte_order_on_every_engine(store: Store) -> None:
    """Targets are listed in the same order everywhere: SQLite compares bytes; PostgreSQL's store columns use the
    "C" collation, whatever the database's default (the test servers' databases default to ICU English, where
    'a' < 'B' < '_z' would hold instead)."""
    names = ["b", "B", "a", "A", "_z", "web-10", "web-9", "é"]
    for name in names:
        await store.save_state(name, "{}")
        await store.set_silence(target=name, until=T0 + timedelta(hours=1), by="U", at=T0)
    assert list(await store.load_states()) == sorted(names)
    assert [s["target"] for s in await store.silences(now=T0)] == sorted(names)


# --- silences ----------------------------------------------------------------------------------------------------


async def test_silences_active_expired_and_cleared(store: Store, clock: Clock) -> None:
    await store.set_silence(target="a", until=T0 + timedelta(hours=1), by="U1", at=T0, reason="deploy")
    await store.set_silence(target="b", until=T0 + timedelta(minutes=5), by="U2", at=T0)
    assert await store.silences(now=T0) == [
        {"target": "a", "until": T0 + timedelta(hours=1), "by": "U1", "at": T0, "reason": "deploy"},
        {"target": "b", "until": T0 + timedelta(minutes=5), "by": "U2", "at": T0, "reason": ""},
    ]
    assert [s["target"] for s in await store.silences(now=T0 + timedelta(minutes=5))] == ["a"]  # b expired

    # Re-silencing replaces; clearing reports whether it was in force.
    await store.set_silence(target="a", until=T0 + timedelta(hours=2), by="U3", at=T0, reason="longer")
    (only,) = await store.silences(now=T0 + timedelta(minutes=90))
    assert only["by"] == "U3"
    clock.advance(minutes=10)
    assert await store.clear_silence("b") is False  # expired already
    assert await store.clear_silence("a") is True
    assert await store.clear_silence("a") is False
    assert await store.silences(now=T0) == []


# --- approvals ---------------------------------------------------------------------------------------------------


async def insert(
    store: Store, rid: str, status: str = "pending", *, target: str = "web-1", action: str = "fix"
) -> None:
    await store.insert_request(
        id=rid,
        target=target,
        action=action,
        status=status,
        version=1,
        expires_at=T0 + timedelta(minutes=15),
        data=json.dumps({"id": rid, "status": status}),
    )


async def test_requests_queries(store: Store) -> None:
    await insert(store, "r1")
    await insert(store, "r2", "running")
    await insert(store, "r3", target="web-2")
    await insert(store, "r4", action="restart")
    await insert(store, "r5")
    assert await store.get_request("r1") == (1, '{"id": "r1", "status": "pending"}')
    assert await store.get_request("nope") is None
    assert [json.loads(d)["id"] for d in await store.requests_by_status("pending")] == ["r1", "r3", "r4", "r5"]
    assert [json.loads(d)["id"] for d in await store.requests_by_status("running")] == ["r2"]
    latest = await store.latest_request(target="web-1", action="fix")
    assert latest is not None and json.loads(latest)["id"] == "r5"
    assert await store.latest_request(target="web-9", action="fix") is None
    with pytest.raises(StoreError, match="already exists"):
        await insert(store, "r1")


async def test_update_request_is_compare_and_set(store: Store) -> None:
    await insert(store, "r1")
    assert await store.update_request("r1", expected_version=1, new_version=2, status="approved", data='{"v": 2}')
    assert not await store.update_request("r1", expected_version=1, new_version=2, status="denied", data='{"v": 9}')
    assert await store.get_request("r1") == (2, '{"v": 2}')
    assert [json.loads(d) for d in await store.requests_by_status("approved")] == [{"v": 2}]
    assert not await store.update_request("missing", expected_version=1, new_version=2, status="x", data="{}")
    with pytest.raises(ValueError, match="greater"):
        await store.update_request("r1", expected_version=2, new_version=2, status="x", data="{}")


async def test_concurrent_decisions_on_two_connections_exactly_one_wins(store: Store, backend: Backend) -> None:
    async with await Store.open(backend.url, exclusive=False) as other:
        for round_no in range(20):
            rid = f"r{round_no}"
            await insert(store, rid)
            results = await asyncio.gather(
                store.update_request(rid, expected_version=1, new_version=2, status="approved", data='{"by": "A"}'),
                other.update_request(rid, expected_version=1, new_version=2, status="denied", data='{"by": "B"}'),
            )
            assert sorted(results) == [False, True], results
            winner = "A" if results[0] else "B"
            assert await other.get_request(rid) == (2, json.dumps({"by": winner}))


async def test_the_same_request_inserted_on_two_connections_at_once_is_stored_once(
    store: Store, backend: Backend
) -> None:
    async with await Store.open(backend.url, exclusive=False) as other:
        for round_no in range(10):
            results = await asyncio.gather(insert(store, f"q{round_no}"), insert(other, f"q{round_no}"),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1 and isinstance(errors[0], StoreError), results
            assert "already exists" in str(errors[0])
    assert len(await store.requests_by_status("pending")) == 10


# --- audit -------------------------------------------------------------------------------------------------------


async def test_audit_entries_newest_first_and_export_oldest_first(store: Store) -> None:
    ids = []
    for n in range(5):
        ids.append(
            await store.audit(
                kind="click",
                target="a" if n % 2 == 0 else "b",
                actor=f"U{n}",
                request_id="r1",
                data={"n": n, "when": T0, "tags": {"x"}},
                at=T0 + timedelta(seconds=n),
            )
        )
    entries = await store.audit_entries()
    assert [e["id"] for e in entries] == ids[::-1]
    assert entries[0] == {
        "id": ids[4],
        "ts": T0 + timedelta(seconds=4),
        "kind": "click",
        "target": "a",
        "actor": "U4",
        "request_id": "r1",
        "data": {"n": 4, "when": "2025-01-01T12:00:00.000000+00:00", "tags": ["x"]},
    }
    assert [e["actor"] for e in await store.audit_entries(target="a", limit=2)] == ["U4", "U2"]
    assert [e["id"] async for e in store.export_audit()] == ids


async def test_export_pages_through_many_rows_and_lets_the_consumer_use_the_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_ops, "_EXPORT_PAGE", 7)
    async with store.transaction() as tx:
        for n in range(30):
            await tx.audit(kind="k", target=None, actor=None, data={"n": n}, at=T0)
    seen = []
    async for entry in store.export_audit():
        seen.append(entry["data"])
        await store.get_meta("k")  # no lock held between pages
    assert seen == [{"n": n} for n in range(30)]


async def test_audit_is_append_only_in_the_database_itself(store: Store, backend: Backend) -> None:
    await store.audit(kind="execution", target="a", actor="U1", at=T0)
    for statement in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit",
                      "DELETE FROM audit WHERE ts < '9999'"):
        with pytest.raises(backend.refused, match="append-only"):
            await backend.execute(statement)
    if backend.engine == "postgresql":  # TRUNCATE skips row triggers there: refused by its own trigger
        with pytest.raises(backend.refused, match="append-only"):
            await backend.execute("TRUNCATE audit")
    assert [e["actor"] for e in await store.audit_entries()] == ["U1"]
    assert not hasattr(store, "delete_audit")


# --- meta --------------------------------------------------------------------------------------------------------


async def test_meta(store: Store) -> None:
    assert await store.get_meta("last_alive_at") is None
    await store.set_meta("last_alive_at", T0.isoformat())
    await store.set_meta("last_alive_at", (T0 + timedelta(seconds=30)).isoformat())
    assert await store.get_meta("last_alive_at") == (T0 + timedelta(seconds=30)).isoformat()


# --- datetimes ---------------------------------------------------------------------------------------------------


async def test_datetimes_must_be_aware_and_come_back_as_utc(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.audit(kind="k", target=None, actor=None, at=datetime(2025, 1, 1))
    seoul = timezone(timedelta(hours=9))
    await store.set_silence(target="a", until=datetime(2025, 1, 1, 22, 0, tzinfo=seoul), by="U", at=T0)
    (silence,) = await store.silences(now=T0)
    assert silence["until"] == datetime(2025, 1, 1, 13, 0, tzinfo=UTC)
    assert silence["until"].tzinfo == UTC  # type: ignore[attr-defined]
    assert store_rows._ts(T0) == "2025-01-01T12:00:00.000000+00:00"
    assert store_rows._ts(datetime(2025, 1, 1, 21, 0, 0, 5, tzinfo=seoul)) == "2025-01-01T12:00:00.000005+00:00"


async def test_payloads_must_be_json(store: Store) -> None:
    with pytest.raises(ValueError, match="payload must be JSON"):
        await store.enqueue(lane="a", kind="k", payload="{oops")
    assert await store.outbox_depth() == 0


# --- retention ---------------------------------------------------------------------------------------------------


async def test_purge_is_bounded_counted_and_keeps_what_is_still_needed(
    store: Store, clock: Clock, backend: Backend
) -> None:
    old = T0
    async with store.transaction() as tx:
        for n in range(25):
            await tx.audit(kind="k", target="a", actor=None, data={"n": n}, at=old)
        for n in range(12):
            item = await tx.enqueue(lane=f"l{n}", kind="post", payload="{}")
            await tx.mark_sent(item, result="{}")
        root = await tx.enqueue(lane="root", kind="post", payload="{}")
        await tx.mark_sent(root, result='{"ts": "1"}')
        waiting = await tx.enqueue(lane="reply", kind="reply", payload="{}", depends_on=root)
        await tx.mark_retry(waiting, next_attempt_at=old + timedelta(days=30), error="ratelimited")
        pending = await tx.enqueue(lane="p", kind="post", payload="{}")
        bad = await tx.enqueue(lane="bad", kind="post", payload="{}")
        await tx.mark_failed(bad, error="invalid_blocks")
        for n in range(4):
            await tx.save_state("a", json.dumps({"n": n}))
        await tx.set_silence(target="gone", until=old + timedelta(hours=1), by="U", at=old)
        await tx.set_silence(target="kept", until=old + timedelta(days=365), by="U", at=old)
    for rid, status in (("f1", "succeeded"), ("f2", "denied"), ("f3", "expired"), ("o1", "pending"), ("o2", "running")):
        await insert(store, rid, status)

    clock.advance(days=10)
    await store.audit(kind="k", target="a", actor=None, data={"n": "new"}, at=clock.now)
    new_item = await store.enqueue(lane="new", kind="post", payload="{}")
    await store.mark_sent(new_item, result="{}")

    cutoff = T0 + timedelta(days=1)
    first = await store.purge(older_than=cutoff, batch=10)
    assert first == {"audit": 10, "incident_history": 4, "outbox": 10, "requests": 3, "silences": 1}
    second = await store.purge(older_than=cutoff, batch=10)
    assert second == {"audit": 10, "incident_history": 0, "outbox": 3, "requests": 0, "silences": 0}
    third = await store.purge(older_than=cutoff, batch=10)
    assert third == {"audit": 5, "incident_history": 0, "outbox": 0, "requests": 0, "silences": 0}
    assert set((await store.purge(older_than=cutoff)).values()) == {0}

    assert [e["data"] for e in await store.audit_entries()] == [{"n": "new"}]
    assert await store.load_states() == {"a": '{"n": 3}'}  # the current state is never purged
    root_item = await store.item(root)
    assert root_item is not None and root_item.result == '{"ts": "1"}'  # a waiting reply still needs it
    assert await store.item(bad) is None
    assert await store.item(new_item) is not None
    assert await store.outbox_depth() == 2  # pending and retrying items are never purged
    assert {i.id for i in await store.due_items(now=clock.now + timedelta(days=30))} == {waiting, pending}
    still_open = [*await store.requests_by_status("pending"), *await store.requests_by_status("running")]
    assert [json.loads(d)["id"] for d in still_open] == ["o1", "o2"]
    assert await store.get_request("f1") is None
    assert [s["target"] for s in await store.silences(now=T0)] == ["kept"]

    # Retention opened the audit table for deletion only for its own transaction.
    await store.audit(kind="k", target=None, actor=None, at=T0)
    with pytest.raises(backend.refused, match="append-only"):
        await backend.execute("DELETE FROM audit")

    # Once the reply is delivered, the root may go too.
    await store.mark_sent(waiting, result="{}")
    clock.advance(days=100)
    counts = await store.purge(older_than=clock.now)
    assert counts["outbox"] == 3  # root, waiting, new_item
    with pytest.raises(ValueError, match="batch"):
        await store.purge(older_than=cutoff, batch=0)
