"""Sharding the targets among live replicas (`WSCHECK_SHARDS=auto`): pure rules, like bot.ha.lease.

Why rendezvous (highest-random-weight) hashing: every replica computes the same owner for a target from nothing
but the list of live members, with no table of assignments to keep consistent; a member that leaves moves only its
own targets (each to the member with its next-highest weight) and a member that joins takes only about 1/n of the
targets. The weight is blake2b of (member, target): stable across processes and Python versions (Python's own
`hash()` of a string is salted per process, so two replicas would disagree).

The membership comes from the database (bot/store/ `shard_beat`): each replica heartbeats its row; a row not
renewed within the TTL is reaped (deleted) by any live replica; every change of the member set (a join, a reap, a
clean leave) increments one `epoch` counter in the same transaction. A view is (epoch, members).

The rules, `(shard, observation, now) -> (shard, events)`:

* A replica owns the targets whose rendezvous owner among the view's members is itself, for that view's epoch.
  Its state commits for a target carry that epoch; the store refuses them when the epoch in the database is another
  (`Store.shard_fence`), and a membership change waits for running commits (a row lock on the epoch row): a
  commit of an old membership never lands after a new owner started.
* On a new epoch every target it still owns is reloaded from the store (`Moved.kept`): the target may have been
  owned (and committed) by another replica in between, in an epoch this replica never saw.
* A replica that has just joined takes its first share only `settle` seconds after its first successful heartbeat:
  replicas started together (a deploy, a cold start) would otherwise see the first one take every target, start
  every probe and canary at once, and hand 3/4 of them over a second later. The bench's cold start of 2,000 targets
  on 4 replicas deposed the overloaded leader that way. Members already in place are not delayed: a dead replica's
  targets move at once.
* A replica whose heartbeat has not succeeded for `ttl - margin` (counted from when the last successful one was
  *sent*, as the lease does) gives all its targets up: it may have been reaped already. Its next successful
  heartbeat (a rejoin) takes them again, with a reload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.ha.lease import margin

__all__ = ["Moved", "Shard", "View", "assign", "epoch_for", "on_beat", "on_tick", "owner", "phase", "weight"]


def weight(target: str, member: str) -> int:
    """The member's weight for the target: 64 bits of blake2b, the same in every process."""
    digest = hashlib.blake2b(f"{member}\x00{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(target: str, members: Iterable[str]) -> str | None:
    """The live member with the highest weight for `target` (ties, astronomically rare, go to the smaller name);
    None when there is no live member."""
    best: tuple[int, str] | None = None
    for member in members:
        key = (weight(target, member), member)
        if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
    return None if best is None else best[1]


def assign(targets: Iterable[str], members: Iterable[str]) -> dict[str, str]:
    """target -> owner for every target (no entry when there is no member)."""
    live = tuple(members)
    out: dict[str, str] = {}
    for target in targets:
        found = owner(target, live)
        if found is not None:
            out[target] = found
    return out


def phase(target: str) -> float:
    """Where in its interval a target's probes start, in [0, 1): spread by a hash, so that targets a replica takes
    over do not all run at once and the phase does not depend on which other targets the replica owns."""
    return int.from_bytes(hashlib.blake2b(target.encode(), digest_size=8).digest(), "big") / 2.0**64


@dataclass(frozen=True)
class View:
    """What one heartbeat saw in the database: the membership epoch and the live members."""

    epoch: int
    members: frozenset[str]


@dataclass(frozen=True)
class Shard:
    """One replica's share."""

    epoch: int | None = None
    members: frozenset[str] = frozenset()
    owned: frozenset[str] = frozenset()
    #: Local monotonic time after which the share is no longer surely ours (no successful heartbeat since).
    valid_until: float | None = None
    #: When the first successful heartbeat of this membership was sent (the settling period counts from it).
    joined_at: float | None = None


@dataclass(frozen=True)
class Moved:
    """The share changed: start probing `taken`, stop `dropped`, reload `kept` from the store (see module doc)."""

    taken: frozenset[str] = field(default_factory=frozenset)
    dropped: frozenset[str] = field(default_factory=frozenset)
    kept: frozenset[str] = field(default_factory=frozenset)
    reason: str = "epoch"


def on_beat(shard: Shard, *, me: str, targets: Iterable[str], view: View | None, sent: float, now: float,
            ttl: float, settle: float = 0.0) -> tuple[Shard, list[Moved]]:
    """The outcome of one heartbeat sent at `sent`, answered at `now` (monotonic); `view` None = it failed.
    `settle`: seconds after joining before the first share is taken (see the module's docstring)."""
    shard, events = on_tick(shard, now=now)
    if view is None:
        return shard, events
    valid_until = sent + ttl - margin(ttl)
    if now >= valid_until:
        return shard, events  # an answer too late to act on: the next heartbeat decides
    if me not in view.members:
        return shard, events  # the store always returns us after a successful beat; never own without our row
    joined_at = sent if shard.joined_at is None else shard.joined_at
    if now < joined_at + settle:
        # Settling: seen as a member, owning nothing yet (epoch None, so the first share is computed afterwards).
        return Shard(members=view.members, valid_until=valid_until, joined_at=joined_at), events
    if shard.epoch == view.epoch and shard.valid_until is not None:
        return Shard(epoch=shard.epoch, members=shard.members, owned=shard.owned,
                     valid_until=max(shard.valid_until, valid_until), joined_at=joined_at), events
    owned = frozenset(t for t, m in assign(targets, view.members).items() if m == me)
    moved = Moved(taken=owned - shard.owned, dropped=shard.owned - owned, kept=owned & shard.owned)
    new = Shard(epoch=view.epoch, members=view.members, owned=owned, valid_until=valid_until, joined_at=joined_at)
    return new, [*events, moved] if (moved.taken or moved.dropped or moved.kept) else events


def on_tick(shard: Shard, *, now: float) -> tuple[Shard, list[Moved]]:
    """Time passes: a share whose last heartbeat is too old is given up (we may have been reaped)."""
    if shard.valid_until is not None and now >= shard.valid_until:
        moved = [Moved(dropped=shard.owned, reason="expired")] if shard.owned else []
        return Shard(), moved
    return shard, []


def epoch_for(shard: Shard, target: str, *, now: float) -> int | None:
    """The epoch a state commit for `target` is fenced with, or None: not ours (or not surely ours any more)."""
    if shard.epoch is None or shard.valid_until is None or now >= shard.valid_until or target not in shard.owned:
        return None
    return shard.epoch
