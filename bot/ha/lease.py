"""The leader lease as seen by one replica: pure `(role, observation, now) -> (role, events)`, like
bot.monitoring.incidents.

Why a pure core: what makes leader election safe is a handful of rules that are easy to state and easy to get
subtly wrong in an event loop full of timeouts. Here they are, in one place, tested with hypothesis
(tests/unit/test_lease.py); bot.ha.leader only does the I/O (one SQL statement per attempt) and feeds the results in.

The rules:

* A replica is leader only with a token it got from the database (the lease row's fencing token: an integer the
  database increments at every takeover, never reused).
* It stays leader until `valid_until`, which is counted on the replica's own monotonic clock from the moment it
  *sent* its last successful attempt, not from the moment the answer came back: the database stamped the lease's
  expiry (`database now + ttl`) after that moment, so `sent + ttl` is never later than the expiry the others see.
  Minus a `margin` (ttl / 3): the time a deposed leader may still need to notice, and to let a message already on
  the wire land, before anybody else may take over.
* Renewals happen every ttl / 3: one failed renewal is survived, two in a row are not.
* Leadership lost is final for the process (`deposed`): it stops everything a leader does and exits, and comes back
  (under systemd) as a follower with fresh state. Like Kubernetes' controller managers, which exit when they lose
  their lease: restarting the leader's jobs in a process that has just been fenced off is where the subtle bugs
  live, and a restart is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

MARGIN_FRACTION = 1 / 3
"""Part of the TTL a leader gives up at the end of its lease: it stops acting ttl * (1 - this) after its last
successful renewal was sent, the others may take over only after ttl (measured by the database)."""

RENEW_FRACTION = 1 / 3
"""Renew every ttl * this: one renewal may fail without losing the lease."""


@dataclass(frozen=True)
class Role:
    leader: bool = False
    #: The fencing token held while leader (None when not).
    token: int | None = None
    #: Local monotonic time after which a leader must not act any more.
    valid_until: float | None = None
    #: Leadership was lost: final for this process.
    deposed: bool = False


@dataclass(frozen=True)
class Elected:
    token: int
    type: Literal["elected"] = "elected"


@dataclass(frozen=True)
class Deposed:
    #: expired (not renewed in time), taken (another token in the row), failed (the leader's jobs did not start)
    reason: Literal["expired", "taken", "failed"]
    token: int
    type: Literal["deposed"] = "deposed"


Event = Elected | Deposed


def margin(ttl: float) -> float:
    return ttl * MARGIN_FRACTION


def renew_every(ttl: float) -> float:
    return ttl * RENEW_FRACTION


def on_attempt(role: Role, *, got: int | None, sent: float, now: float, ttl: float) -> tuple[Role, list[Event]]:
    """The outcome of one attempt to take or renew the lease, sent at `sent`, answered at `now` (both monotonic).

    `got` is the token the database says we hold now, or None (someone else holds a live lease, or the attempt
    failed: no answer is no lease)."""
    role, events = on_tick(role, now=now)
    if role.deposed:
        return role, events
    if role.leader:
        assert role.token is not None
        if got == role.token:
            return replace(role, valid_until=max(role.valid_until or sent, sent + ttl - margin(ttl))), []
        if got is None:
            return role, []  # a failed renewal: still leader until valid_until (on_tick decides)
        # The database gave us another token: the row changed hands in between (we were taken over and took it
        # back?). Never carry on under a new term in the same process.
        return Role(deposed=True), [Deposed(reason="taken", token=role.token)]
    if got is None:
        return role, []
    if sent + ttl - margin(ttl) <= now:
        return role, []  # the answer came too late to act on it; the next attempt renews it
    return Role(leader=True, token=got, valid_until=sent + ttl - margin(ttl)), [Elected(token=got)]


def on_tick(role: Role, *, now: float) -> tuple[Role, list[Event]]:
    """Time passes: a leader whose lease is no longer surely its own stops."""
    if role.leader and role.valid_until is not None and now >= role.valid_until:
        assert role.token is not None
        return Role(deposed=True), [Deposed(reason="expired", token=role.token)]
    return role, []


def may_act(role: Role, *, now: float) -> bool:
    """Whether a leader's job (a post, a state commit) may go ahead at `now`."""
    return role.leader and role.valid_until is not None and now < role.valid_until
