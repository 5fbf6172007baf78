"""bot.ha.shards: rendezvous hashing of targets over live replicas, and one replica's share over any sequence of
heartbeats (answered, failed, late) and ticks; hypothesis invariants."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ha import lease, shards
from bot.ha.shards import Moved, Shard, View
from bot.settings import load_config
from checks.config import ConfigError

TTL = 15.0

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=12)
member_sets = st.frozensets(names, min_size=1, max_size=8)
target_sets = st.frozensets(names, min_size=1, max_size=60)


@given(targets=target_sets, members=member_sets)
def test_every_target_has_exactly_one_owner_among_the_live_members(targets: frozenset[str],
                                                                   members: frozenset[str]) -> None:
    owners = shards.assign(targets, members)
    assert set(owners) == set(targets)
    assert set(owners.values()) <= members
    # Every member computes the same answer, whatever order it lists the members in.
    assert shards.assign(targets, sorted(members, reverse=True)) == owners


@given(targets=target_sets, members=member_sets, data=st.data())
def test_removing_a_member_moves_only_its_own_targets(targets: frozenset[str], members: frozenset[str],
                                                      data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(sorted(members)))
    before = shards.assign(targets, members)
    after = shards.assign(targets, members - {gone})
    for target in targets:
        if before[target] != gone:
            assert after.get(target) == before[target]
        else:
            assert after.get(target) != gone


@given(targets=target_sets, members=member_sets, new=names)
def test_adding_a_member_moves_targets_only_to_it(targets: frozenset[str], members: frozenset[str],
                                                  new: str) -> None:
    before = shards.assign(targets, members)
    after = shards.assign(targets, members | {new})
    for target in targets:
        assert after[target] in (before[target], new)


def test_adding_a_member_moves_about_one_in_n() -> None:
    """2,000 targets, 3 -> 4 members: about a quarter move, all to the new member, and the load is even."""
    targets = [f"target-{i}" for i in range(2000)]
    members = {f"replica-{i}" for i in range(3)}
    before = shards.assign(targets, members)
    after = shards.assign(targets, members | {"replica-3"})
    moved = [t for t in targets if before[t] != after[t]]
    assert all(after[t] == "replica-3" for t in moved)
    assert 0.2 < len(moved) / len(targets) < 0.3
    counts = [sum(1 for o in after.values() if o == m) for m in members | {"replica-3"}]
    assert min(counts) > 400 and max(counts) < 600


def test_no_member_no_owner() -> None:
    assert shards.owner("web", []) is None
    assert shards.assign(["web"], []) == {}


def test_the_weight_is_stable_across_processes() -> None:
    """Python's hash() of a str is salted per process; the weight must not be (two replicas must agree)."""
    code = "from bot.ha.shards import weight; print(weight('web-1', 'replica a'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=".")
    assert int(other.stdout) == shards.weight("web-1", "replica a")


def test_phase_is_in_the_unit_interval_and_spread() -> None:
    phases = [shards.phase(f"t{i}") for i in range(1000)]
    assert all(0.0 <= p < 1.0 for p in phases)
    assert sum(1 for p in phases if p < 0.5) in range(400, 600)


# -- one replica's share ------------------------------------------------------------------------------------------


def test_a_first_beat_takes_this_replicas_targets_and_fences_them_with_the_epoch() -> None:
    targets = [f"t{i}" for i in range(50)]
    view = View(epoch=4, members=frozenset({"a", "b"}))
    shard, events = shards.on_beat(Shard(), me="a", targets=targets, view=view, sent=10.0, now=10.1, ttl=TTL)
    mine = {t for t, m in shards.assign(targets, view.members).items() if m == "a"}
    assert shard.owned == mine and events == [Moved(taken=frozenset(mine))]
    some = sorted(mine)[0]
    assert shards.epoch_for(shard, some, now=11.0) == 4
    assert shards.epoch_for(shard, some, now=10.0 + TTL - lease.margin(TTL)) is None
    other = next(t for t in targets if t not in mine)
    assert shards.epoch_for(shard, other, now=11.0) is None


def test_a_new_epoch_reloads_what_is_kept_and_moves_the_rest() -> None:
    targets = [f"t{i}" for i in range(50)]
    shard, _ = shards.on_beat(Shard(), me="a", targets=targets, view=View(1, frozenset({"a", "b"})), sent=0.0,
                              now=0.1, ttl=TTL)
    before = shard.owned
    shard, events = shards.on_beat(shard, me="a", targets=targets, view=View(2, frozenset({"a"})), sent=1.0,
                                   now=1.1, ttl=TTL)
    assert shard.owned == frozenset(targets)
    assert events == [Moved(taken=frozenset(targets) - before, kept=before)]


def test_silence_gives_everything_up_and_a_rejoin_takes_it_again() -> None:
    targets = ["x", "y"]
    shard, _ = shards.on_beat(Shard(), me="a", targets=targets, view=View(1, frozenset({"a"})), sent=0.0, now=0.1,
                              ttl=TTL)
    shard, events = shards.on_beat(shard, me="a", targets=targets, view=None, sent=5.0, now=5.1, ttl=TTL)
    assert shard.owned == {"x", "y"} and events == []
    shard, events = shards.on_tick(shard, now=TTL - lease.margin(TTL))
    assert shard == Shard() and events == [Moved(dropped=frozenset(targets), reason="expired")]
    shard, events = shards.on_beat(shard, me="a", targets=targets, view=View(1, frozenset({"a"})), sent=20.0,
                                   now=20.1, ttl=TTL)
    assert events == [Moved(taken=frozenset(targets))]


def test_a_late_answer_is_not_acted_on() -> None:
    shard, events = shards.on_beat(Shard(), me="a", targets=["x"], view=View(1, frozenset({"a"})), sent=0.0,
                                   now=TTL, ttl=TTL)
    assert shard == Shard() and events == []


beats = st.one_of(
    st.tuples(st.just("beat"), st.none() | st.tuples(st.integers(0, 5), st.frozensets(st.sampled_from("abcd"))),
              st.floats(0.0, 2 * TTL)),
    st.tuples(st.just("tick"), st.none(), st.just(0.0)),
)


@settings(max_examples=300)
@given(steps=st.lists(st.tuples(beats, st.floats(0.0, 10.0)), max_size=25), settle=st.sampled_from([0.0, 5.0]))
def test_any_sequence_keeps_the_share_consistent(steps: list[tuple[tuple[str, object, float], float]],
                                                 settle: float) -> None:
    """Whatever happens, what the events said is owned is exactly the share; a share is only ever the owner's
    targets of the last view acted on; nothing is fenced past its deadline."""
    targets = [f"t{i}" for i in range(20)]
    shard = Shard()
    probed: set[str] = set()
    now = 0.0
    for (kind, raw, delay), gap in steps:
        now += gap
        if kind == "beat":
            view = None if raw is None else View(raw[0], raw[1])  # type: ignore[index]
            shard, events = shards.on_beat(shard, me="a", targets=targets, view=view, sent=now, now=now + delay,
                                           ttl=TTL, settle=settle)
            now += delay
        else:
            shard, events = shards.on_tick(shard, now=now)
        for moved in events:
            assert not (moved.taken & probed)  # never taken twice
            assert moved.dropped <= probed and moved.kept <= probed
            probed = (probed - moved.dropped) | moved.taken
        assert probed == shard.owned
        if shard.joined_at is not None and now < shard.joined_at + settle:
            assert not shard.owned  # settling: nothing taken yet
        if shard.owned:
            assert "a" in shard.members and shard.epoch is not None
            assert shard.owned == {t for t, m in shards.assign(targets, shard.members).items() if m == "a"}
        for target in targets:
            epoch = shards.epoch_for(shard, target, now=now)
            assert epoch is None or (target in shard.owned and shard.valid_until is not None
                                     and now < shard.valid_until)


def test_a_replica_that_just_joined_settles_before_taking_its_first_share() -> None:
    """Replicas started together: none takes every target for the second before the others have joined."""
    targets = [f"t{i}" for i in range(40)]
    shard, events = shards.on_beat(Shard(), me="a", targets=targets, view=View(1, frozenset({"a"})), sent=0.0,
                                   now=0.1, ttl=TTL, settle=5.0)
    assert events == [] and shard.owned == frozenset() and shards.epoch_for(shard, "t0", now=0.2) is None
    shard, events = shards.on_beat(shard, me="a", targets=targets, view=View(3, frozenset({"a", "b", "c"})),
                                   sent=5.0, now=5.1, ttl=TTL, settle=5.0)
    mine = frozenset(t for t, m in shards.assign(targets, {"a", "b", "c"}).items() if m == "a")
    assert events == [Moved(taken=mine)] and shard.owned == mine
    # Settled once: a later change moves targets at once.
    shard, events = shards.on_beat(shard, me="a", targets=targets, view=View(4, frozenset({"a", "b"})), sent=6.0,
                                   now=6.1, ttl=TTL, settle=5.0)
    assert shard.owned == {t for t, m in shards.assign(targets, {"a", "b"}).items() if m == "a"}


@pytest.mark.parametrize(("env", "ok"), [({}, "off"), ({"WSCHECK_SHARDS": "off"}, "off"),
                                         ({"WSCHECK_SHARDS": "Auto", "WSCHECK_DB": "postgresql://u@db.internal/w"},
                                          "auto")])
def test_shards_is_a_setting_off_by_default(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], ok: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings, _ = load_config(None)
    assert settings.shards == ok


@pytest.mark.parametrize(("env", "says"), [
    ({"WSCHECK_SHARDS": "yes"}, "must be off .* or auto"),
    ({"WSCHECK_SHARDS": "auto"}, "auto needs replicas, and replicas need PostgreSQL"),
    ({"WSCHECK_SHARDS": "auto", "WSCHECK_DB": "sqlite:///tmp/x.db"}, "auto needs replicas"),
])
def test_a_bad_or_sqlite_shards_setting_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch,
                                                                     env: dict[str, str], says: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=rf"WSCHECK_SHARDS: {says}"):
        load_config(None)
