"""The store's shard membership (wt-shard): heartbeats, joins, reaps, leaves, the epoch, the fence on state commits
and the root message lookup. Engine-neutral: tests/integration/test_store_shards_postgresql.py runs them again on a
real PostgreSQL server. Times are the database's own clock; "a replica died" is its row aged by hand (last_seen
moved back), as the database would see it after the TTL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Fenced, Store
from tests.support.stores import Backend, SqliteBackend

TTL = 15.0


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    return SqliteBackend(tmp_path / "wscheck.db")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with await Store.open(backend.url, exclusive=False) as opened:
        yield opened


async def _age(backend: Backend, replica: str, seconds: float) -> None:
    assert replica.isalnum()  # a test name, quoted by hand below
    await backend.execute(f"UPDATE shard_members SET last_seen = last_seen - {float(seconds)} "  # noqa: S608
                          f"WHERE replica = '{replica}'")


async def test_a_fresh_database_has_no_member_at_epoch_zero(store: Store, backend: Backend) -> None:
    assert {"shard_members", "shard_epoch"} <= await backend.tables()
    assert await store.shard_view() == (0, frozenset())


async def test_joins_bump_the_epoch_and_renewals_do_not(store: Store) -> None:
    assert await store.shard_beat(replica="a", ttl=TTL) == (1, frozenset({"a"}))
    assert await store.shard_beat(replica="b", ttl=TTL) == (2, frozenset({"a", "b"}))
    assert await store.shard_beat(replica="a", ttl=TTL) == (2, frozenset({"a", "b"}))
    assert await store.shard_beat(replica="b", ttl=TTL) == (2, frozenset({"a", "b"}))


async def test_a_row_older_than_the_ttl_is_reaped_by_the_next_beat_of_anyone(store: Store,
                                                                              backend: Backend) -> None:
    await store.shard_beat(replica="a", ttl=TTL)
    await store.shard_beat(replica="b", ttl=TTL)
    await _age(backend, "b", TTL - 2)
    assert await store.shard_beat(replica="a", ttl=TTL) == (2, frozenset({"a", "b"}))  # not yet dead
    await _age(backend, "b", 3)
    assert await store.shard_beat(replica="a", ttl=TTL) == (3, frozenset({"a"}))
    # The dead replica coming back rejoins as a new member, in a new epoch.
    assert await store.shard_beat(replica="b", ttl=TTL) == (4, frozenset({"a", "b"}))


async def test_a_clean_leave_is_a_new_epoch_at_once(store: Store) -> None:
    await store.shard_beat(replica="a", ttl=TTL)
    await store.shard_beat(replica="b", ttl=TTL)
    assert await store.shard_leave(replica="b") is True
    assert await store.shard_view() == (3, frozenset({"a"}))
    assert await store.shard_leave(replica="b") is False
    assert await store.shard_view() == (3, frozenset({"a"}))


async def test_state_commits_are_fenced_by_the_epoch_of_the_share(store: Store) -> None:
    epoch, _ = await store.shard_beat(replica="a", ttl=TTL)
    owned: dict[str, int] = {"web": epoch}
    store.shard_fence = owned.get
    await store.save_state("web", json.dumps({"n": 1}))
    with pytest.raises(Fenced, match="another replica"):
        await store.save_state("api", json.dumps({"n": 1}))  # not ours
    await store.shard_beat(replica="b", ttl=TTL)  # a join: the share was computed for the old epoch
    with pytest.raises(Fenced, match="membership epoch"):
        await store.save_state("web", json.dumps({"n": 2}))
    # An unchanged state writes nothing, so it needs no fence.
    await store.save_state("web", json.dumps({"n": 1}))
    owned["web"] = epoch + 1
    await store.save_state("web", json.dumps({"n": 2}))
    assert json.loads((await store.load_states())["web"]) == {"n": 2}


async def test_the_root_message_is_found_by_the_incident_id_of_its_sent_post_root(store: Store) -> None:
    async with store.transaction() as tx:
        root = await tx.enqueue(lane="web", kind="post_root", payload="{}", dedup_key="web-7/IncidentOpened/1.0/0")
        reply = await tx.enqueue(lane="web", kind="reply", payload="{}", dedup_key="web-7/Reminder/2.0/0")
        other = await tx.enqueue(lane="web", kind="post_root", payload="{}", dedup_key="web-70/IncidentOpened/3.0/0")
    assert root is not None and reply is not None and other is not None
    assert await store.root_message(target="web", incident_id="web-7") is None  # not sent yet
    await store.mark_sent(other, result=json.dumps({"ts": "3.000", "channel": "C1"}))
    await store.mark_sent(reply, result=json.dumps({"ts": "2.000", "channel": "C1"}))
    assert await store.root_message(target="web", incident_id="web-7") is None
    await store.mark_sent(root, result=json.dumps({"ts": "1.000", "channel": "C1"}))
    assert await store.root_message(target="web", incident_id="web-7") == "1.000"
    assert await store.root_message(target="api", incident_id="web-7") is None
