"""bot.ha.leader on the session's real PostgreSQL: electors in this process, each with its own connection, as
replicas would have; a leader "killed" (its loop gone, its session left as it was) or cut off by a silent network
(a TCP relay that stops forwarding); the store's fenced writes under an old and a new token."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from bot.ha.leader import Elector, FencedSink
from bot.ha.lease import Deposed
from bot.store import Fenced, Store
from bot.store.dburl import parse_db_url
from bot.store.outbox import SinkError
from tests.support.botproc import BotProcess
from tests.support.stores import PostgresBackend

TTL = 3.0


@pytest.fixture
async def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    async with await Store.open(postgres_backend.url, exclusive=False):  # migrated: the lease table exists
        pass
    return postgres_backend


class Replica:
    """One elector and what it saw happen, with monotonic times."""

    def __init__(self, url: str, name: str) -> None:
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()
        self.elected_at = self.deposed_at = 0.0
        self.stop = asyncio.Event()

        async def elected(token: int) -> None:
            self.elected_at = time.monotonic()
            self.elected.set()

        def deposed(event: Deposed) -> None:
            self.deposed_at = time.monotonic()
            self.deposed.set()

        self.elector = Elector(parse_db_url(url), ttl=TTL, name=name, on_elected=elected, on_deposed=deposed)
        self.task = asyncio.ensure_future(self.elector.run(self.stop))

    async def kill(self) -> None:
        """Like SIGKILL for the lease: the loop stops where it is, the session stays open and says nothing."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)
        await self.elector.close()


async def test_one_leader_then_a_takeover_with_a_new_token_within_the_ttl(backend: PostgresBackend) -> None:
    a = Replica(backend.url, "replica a")
    await asyncio.wait_for(a.elected.wait(), 10)
    b = Replica(backend.url, "replica b")
    try:
        await asyncio.wait_for(seen(b, lambda: b.elector.view.holder == "replica a"), 10)
        assert not b.elected.is_set() and b.elector.role_name == "follower" and b.elector.token() is None
        token_a = a.elector.token()
        assert token_a is not None and a.elector.health()["role"] == "leader"
        # While a renews, b never leads: three TTLs of renewals.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(b.elected.wait(), 3 * TTL)
        assert not b.elected.is_set(), "a follower took over from a live leader"
        assert b.elector.lease_age() is not None and b.elector.lease_age() < TTL  # type: ignore[operator]

        killed = time.monotonic()
        await a.kill()
        await asyncio.wait_for(b.elected.wait(), 2 * TTL)
        took = b.elected_at - killed
        assert took <= TTL + 1.5, f"takeover took {took:.1f} s"
        assert b.elector.role.token == token_a + 1
        assert b.elector.changes == 1
        rows = await backend.rows("SELECT holder, token FROM leader_lease")
        assert rows == [("replica b", token_a + 1)]
    finally:
        await b.close()
        await a.close()


async def test_a_lease_given_up_at_a_clean_stop_is_taken_at_the_next_attempt(backend: PostgresBackend) -> None:
    a = Replica(backend.url, "replica a")
    await asyncio.wait_for(a.elected.wait(), 10)
    b = Replica(backend.url, "replica b")
    try:
        await asyncio.wait_for(seen(b, lambda: b.elector.view.holder == "replica a"), 10)
        held = a.elector.release_args()
        assert held is not None
        await a.kill()  # stopped (its jobs first, in the bot), then:
        async with await Store.open(backend.url, exclusive=False) as store:
            assert not await store.release_lease(holder="replica b", token=held[1])  # not b's to give up
            released = time.monotonic()
            assert await store.release_lease(holder=held[0], token=held[1])
            await asyncio.wait_for(b.elected.wait(), TTL)
            assert b.elected_at - released < 1.5 and b.elector.role.token == held[1] + 1
            assert not await store.release_lease(holder=held[0], token=held[1])  # a new term: not a's any more
    finally:
        await b.close()
        await a.close()


async def test_fenced_writes_refuse_an_old_token_and_take_the_new_one(backend: PostgresBackend) -> None:
    a = Replica(backend.url, "replica a")
    await asyncio.wait_for(a.elected.wait(), 10)
    old = a.elector.role.token
    assert old is not None
    async with await Store.open(backend.url, exclusive=False) as store:
        store.fence = lambda: old
        await store.save_state("web", '{"v": 1}')
        item = await store.enqueue(lane="web", kind="post_root", payload="{}")
        await a.kill()
        b = Replica(backend.url, "replica b")
        try:
            await asyncio.wait_for(b.elected.wait(), 3 * TTL)
            # The old leader's state commit and outbox records are refused, and nothing of them is written.
            with pytest.raises(Fenced, match="it leads no more"):
                await store.save_state("web", '{"v": 2}')
            with pytest.raises(Fenced):
                await store.mark_retry(item, next_attempt_at=store._now(), error="sending", uncertain=True)
            with pytest.raises(Fenced):
                async with store.transaction() as tx:
                    await tx.enqueue(lane="web", kind="reply", payload="{}", dedup_key="x")
                    await tx.save_state("web", '{"v": 3}')
            assert await store.load_states() == {"web": '{"v": 1}'}
            assert await backend.scalar("SELECT COUNT(*) FROM outbox") == 1
            assert await backend.scalar("SELECT status FROM outbox") == "pending"
            # Under the new token the same writes go through.
            store.fence = b.elector.token
            await store.save_state("web", '{"v": 2}')
            await store.mark_sent(item, result="{}")
            # No token at all (a follower): refused without asking the database.
            store.fence = lambda: None
            with pytest.raises(Fenced, match="not the leader"):
                await store.save_state("web", '{"v": 4}')
        finally:
            await b.close()
            await a.close()


async def test_a_fenced_transaction_holds_off_a_takeover_until_it_commits(backend: PostgresBackend) -> None:
    """The share lock on the lease row: a takeover that comes while the old leader's fenced transaction is open
    waits for its commit, so the write lands before the new term, never after it."""
    a = Replica(backend.url, "replica a")
    await asyncio.wait_for(a.elected.wait(), 10)
    token = a.elector.role.token
    await a.kill()
    async with await Store.open(backend.url, exclusive=False) as store:
        store.fence = lambda: token
        b: Replica | None = None
        try:
            async with store.transaction() as tx:
                await tx.save_state("web", '{"v": 1}')  # share lock on the lease row from here to the commit
                b = Replica(backend.url, "replica b")
                # a's lease expires (it renews no more); b's takeover then waits on the row lock: seen by the server.
                await asyncio.wait_for(_until_async(lambda: waiting_on_a_lock(backend, "replica b lease")), 3 * TTL)
                assert not b.elected.is_set(), "the takeover did not wait for the fenced transaction"
            await asyncio.wait_for(b.elected.wait(), 3 * TTL)
            assert await store.load_states() == {"web": '{"v": 1}'}
        finally:
            if b is not None:
                await b.close()
            await a.close()


class SilentRelay:
    """A TCP relay to PostgreSQL that can go silent (forwards nothing, closes nothing): a network cut, as the
    leader's side sees it."""

    def __init__(self, port: int) -> None:
        self.upstream_port = port
        self.cut = False
        #: Close every new connection at once (a server that is down, as a client sees a reset).
        self.refuse = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if self.cut:
                    await asyncio.Event().wait()  # swallowed: nothing goes through any more, nothing closes
                dst.write(data)
                await dst.drain()
            dst.close()  # the end of one side ends the other, as a TCP proxy does

        with contextlib.suppress(OSError, asyncio.CancelledError):
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()


async def test_a_leader_cut_from_the_database_stops_before_the_new_leader_starts(postgres: Any,
                                                                                backend: PostgresBackend) -> None:
    relay = SilentRelay(postgres.port)
    port = await relay.start()
    via_relay = backend.url.replace(f":{postgres.port}/", f":{port}/")
    assert via_relay != backend.url
    a = Replica(via_relay, "replica a")
    b: Replica | None = None
    try:
        await asyncio.wait_for(a.elected.wait(), 10)
        b = Replica(backend.url, "replica b")
        await asyncio.wait_for(seen(b, lambda: b is not None and b.elector.view.holder == "replica a"), 10)
        relay.cut = True
        await asyncio.wait_for(b.elected.wait(), 3 * TTL)
        await asyncio.wait_for(a.deposed.wait(), 1)
        assert a.deposed_at < b.elected_at, "the new leader started before the old one stopped"
        assert not a.elector.may_act() and a.elector.token() is None
        assert a.task.done() or await asyncio.wait_for(a.task, TTL) is None  # the deposed loop ends by itself
    finally:
        if b is not None:
            await b.close()
        a.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await a.task
        await a.elector._drop()
        await relay.close()


async def test_a_replica_started_while_the_database_is_unreachable_waits_for_it_then_joins(
    postgres: Any, backend: PostgresBackend, tmp_path: Path
) -> None:
    """A leader cut from the database exits (75) and systemd restarts it: it must wait for the database, not exit
    78 (which the unit never restarts) because the network is still down."""
    relay = SilentRelay(postgres.port)
    relay.refuse = True
    port = await relay.start()
    bot = BotProcess(["run", "--console"], {
        "WSCHECK_DB": backend.url.replace(f":{postgres.port}/", f":{port}/"), "WSCHECK_MONITOR": "false",
        "WSCHECK_LEADER_TTL": "3s",
    }, cwd=tmp_path)
    try:
        await bot.start(ready=r"cannot connect: .*; trying again in 1 s", stdin=True)
        await bot.wait_line(r"trying again in 2 s", timeout=10)
        relay.refuse = False
        await bot.wait_line(r"wscheck ready", timeout=30)
        await bot.wait_line(r"leader elected: .* leads with token 1\b", timeout=10)
    finally:
        code = await bot.stop()
        await relay.close()
    assert code == 0, bot.log()
    assert postgres.password not in bot.log()


async def test_the_fenced_sink_refuses_once_the_lease_may_be_over() -> None:
    sent: list[str] = []

    class Inner:
        async def post(self, **kwargs: Any) -> str:
            sent.append(kwargs["text"])
            return "1.0"

        async def update(self, **kwargs: Any) -> None:
            sent.append(kwargs["text"])

        async def find(self, **kwargs: Any) -> str | None:
            return None

    allowed = True
    sink = FencedSink(Inner(), lambda: allowed)  # type: ignore[arg-type]
    await sink.post(channel="C", text="one", blocks=[], thread_ts=None, metadata={})
    allowed = False
    with pytest.raises(SinkError, match="not the leader") as caught:
        await sink.post(channel="C", text="two", blocks=[], thread_ts=None, metadata={})
    assert not caught.value.permanent  # stays in the outbox for the next leader
    with pytest.raises(SinkError):
        await sink.update(channel="C", ts="1.0", text="three", blocks=[])
    assert sent == ["one"]


async def waiting_on_a_lock(backend: PostgresBackend, application_name: str) -> bool:
    rows = await backend.rows(f"SELECT wait_event_type FROM pg_stat_activity "  # noqa: S608 - a test constant
                              f"WHERE application_name = '{application_name}'")
    return any(row[0] == "Lock" for row in rows)


async def _until_async(condition: Any) -> None:
    """Poll the server's own view (pg_stat_activity has no notification); the caller bounds the wait."""
    for _ in range(100_000):
        if await condition():
            return
        await asyncio.sleep(0.05)  # the interval between two looks at the server, not a wait for an assumed state


async def seen(replica: Replica, condition: Any) -> None:
    """Wait until the replica's elector, after one of its attempts, satisfies `condition`."""
    async with replica.elector.attempted:
        await replica.elector.attempted.wait_for(condition)
