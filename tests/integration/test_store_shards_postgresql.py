"""The shard membership store tests again, on a real PostgreSQL server (tests/unit/test_store_shards.py), plus what
only PostgreSQL can show: a membership change waits for a state commit that is under way (the epoch row's share
lock), so a commit of an old membership never lands after the new one began."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.store import Fenced, Store
from tests.support.stores import PostgresBackend
from tests.unit.test_store_shards import *  # noqa: F403 - the engine-neutral membership tests, collected again

TTL = 15.0


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> PostgresBackend:
    return postgres_backend


async def test_a_join_waits_for_a_commit_under_way_and_later_commits_are_refused(backend: PostgresBackend) -> None:
    async with await Store.open(backend.url, exclusive=False) as a, \
            await Store.open(backend.url, exclusive=False) as b:
        epoch, _ = await a.shard_beat(replica="a", ttl=TTL)
        a.shard_fence = {"web": epoch}.get
        entered = asyncio.Event()
        release = asyncio.Event()

        async def slow_commit() -> None:
            async with a.transaction() as tx:
                await tx.save_state("web", json.dumps({"by": "a"}))  # the fence's share lock is held from here
                entered.set()
                await release.wait()

        commit = asyncio.ensure_future(slow_commit())
        await entered.wait()
        join = asyncio.ensure_future(b.shard_beat(replica="b", ttl=TTL))
        done, _ = await asyncio.wait({join}, timeout=1.0)
        assert not done, "the join did not wait for the commit of the old membership"
        release.set()
        await commit
        assert await join == (epoch + 1, frozenset({"a", "b"}))
        with pytest.raises(Fenced):
            await a.save_state("web", json.dumps({"by": "a", "late": True}))
        assert json.loads((await b.load_states())["web"]) == {"by": "a"}
