"""The shard membership loop of one replica (`WSCHECK_SHARDS=auto`): heartbeats in the database, the share computed
by bot.ha.shards (pure), the monitor told which targets to start and stop probing (docs/ha.md, "Sharding").

One heartbeat every min(1 s, ttl / 3), on the store's connection: renew our row, reap the dead, read (epoch,
members). A replica that dies is reaped by the first survivor's heartbeat after the TTL, and the survivors take its
targets within about a second more. A replica stopping cleanly leaves (deletes its row) after its monitor stopped,
so the others take over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.ha import lease, shards
from bot.store import Store

log = logging.getLogger("wscheck.shards")

BEAT_EVERY = 1.0
"""Seconds between heartbeats at most (ttl / 3 when that is shorter): how soon a survivor sees a reap or a join."""

OnMoved = Callable[[shards.Moved], Awaitable[None]]


class Membership:
    def __init__(self, store: Store, *, name: str, targets: Sequence[str], ttl: float, on_moved: OnMoved,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.name = name
        self.targets = tuple(targets)
        self.ttl = ttl
        self.on_moved = on_moved
        self.clock = clock
        self.shard = shards.Shard()
        #: Seconds after joining before the first share is taken (bot/ha/shards.py): replicas started together join
        #: before any of them starts probing.
        self.settle = lease.renew_every(ttl)
        #: Share changes this replica made (takeovers and hand-overs): /metrics.
        self.changes = 0
        #: Notified after every heartbeat (tests wait on it, never on a sleep).
        self.beaten = asyncio.Condition()

    def epoch_for(self, target: str) -> int | None:
        """Store.shard_fence: the epoch a state commit for `target` is fenced with, or None (not ours)."""
        return shards.epoch_for(self.shard, target, now=self.clock())

    def owns(self, target: str) -> bool:
        return self.epoch_for(target) is not None

    def health(self) -> dict[str, Any]:
        return {"mode": "auto", "owned_targets": len(self.shard.owned), "live_members": len(self.shard.members),
                "epoch": self.shard.epoch, "replica": self.name}

    def every(self) -> float:
        return min(BEAT_EVERY, lease.renew_every(self.ttl))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = self.clock()
            view = await self._beat(sent)
            await self._apply(*shards.on_beat(self.shard, me=self.name, targets=self.targets, view=view, sent=sent,
                                              now=self.clock(), ttl=self.ttl, settle=self.settle))
            async with self.beaten:
                self.beaten.notify_all()
            next_at = sent + self.every()
            while not stop.is_set():
                now = self.clock()
                await self._apply(*shards.on_tick(self.shard, now=now))
                if now >= next_at:
                    break
                wake = next_at if self.shard.valid_until is None else min(next_at, self.shard.valid_until)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, wake - now))

    async def _beat(self, sent: float) -> shards.View | None:
        budget = lease.renew_every(self.ttl)
        if self.shard.valid_until is not None:
            budget = min(budget, max(0.05, self.shard.valid_until - sent))
        try:
            epoch, members = await asyncio.wait_for(self.store.shard_beat(replica=self.name, ttl=self.ttl), budget)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a store error or a timeout: no view this time (on_tick decides when it is over)
            log.warning("shard heartbeat failed: %s", str(exc) or type(exc).__name__)
            return None
        return shards.View(epoch=epoch, members=members)

    async def _apply(self, shard: shards.Shard, events: list[shards.Moved]) -> None:
        self.shard = shard
        for moved in events:
            self.changes += 1
            log.info("shard %s (epoch %s, %d live): took %d targets, gave up %d, kept %d", moved.reason,
                     shard.epoch, len(shard.members), len(moved.taken), len(moved.dropped), len(moved.kept))
            try:
                await self.on_moved(moved)
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. the states could not be loaded: give the share up, the next beat retakes it
                log.exception("the share could not be taken over; given up until the next heartbeat")
                dropped, self.shard = self.shard.owned, shards.Shard()
                with contextlib.suppress(Exception):
                    await self.on_moved(shards.Moved(dropped=dropped, reason="failed"))
                return

    async def leave(self) -> None:
        """After the monitor stopped: our row goes, the others take our targets at their next heartbeat."""
        self.shard = shards.Shard()
        try:
            if await self.store.shard_leave(replica=self.name):
                log.info("left the shard membership: the other replicas take this one's targets over")
        except Exception as exc:  # the row is then reaped by the others after the TTL
            log.warning("could not leave the shard membership (%s); the others take over within %g s", exc,
                        self.ttl)
