"""bot.ha.lease: the leader lease as one replica sees it (pure), with hypothesis invariants over any sequence of
attempts (answered, failed, late) and ticks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ha import lease
from bot.ha.lease import Deposed, Elected, Role
from bot.settings import load_config
from checks.config import ConfigError
from tests.support.examples import examples

TTL = 15.0


def test_a_follower_that_gets_the_token_leads_until_sent_plus_ttl_minus_margin() -> None:
    role, events = lease.on_attempt(Role(), got=7, sent=100.0, now=100.2, ttl=TTL)
    assert events == [Elected(token=7)]
    assert role.leader and role.token == 7
    assert role.valid_until == 100.0 + TTL - lease.margin(TTL)
    assert lease.may_act(role, now=109.9) and not lease.may_act(role, now=110.0)


def test_no_answer_is_no_lease() -> None:
    assert lease.on_attempt(Role(), got=None, sent=1.0, now=2.0, ttl=TTL) == (Role(), [])


def test_a_renewal_extends_from_when_it_was_sent_not_answered() -> None:
    role, _ = lease.on_attempt(Role(), got=3, sent=0.0, now=0.1, ttl=TTL)
    role, events = lease.on_attempt(role, got=3, sent=5.0, now=9.0, ttl=TTL)
    assert events == [] and role.valid_until == 5.0 + TTL - lease.margin(TTL)


def test_one_failed_renewal_is_survived_and_the_deadline_is_not() -> None:
    role, _ = lease.on_attempt(Role(), got=3, sent=0.0, now=0.1, ttl=TTL)
    role, events = lease.on_attempt(role, got=None, sent=5.0, now=5.1, ttl=TTL)
    assert role.leader and events == []
    role, events = lease.on_tick(role, now=10.0)
    assert role.deposed and not role.leader and role.token is None
    assert events == [Deposed(reason="expired", token=3)]


def test_another_token_for_a_leader_is_a_deposition_never_a_new_term() -> None:
    role, _ = lease.on_attempt(Role(), got=3, sent=0.0, now=0.1, ttl=TTL)
    role, events = lease.on_attempt(role, got=4, sent=5.0, now=5.1, ttl=TTL)
    assert role.deposed and events == [Deposed(reason="taken", token=3)]


def test_an_answer_that_arrives_after_the_lease_would_be_over_is_not_acted_on() -> None:
    role, events = lease.on_attempt(Role(), got=2, sent=0.0, now=TTL, ttl=TTL)
    assert role == Role() and events == []


def test_deposed_is_final() -> None:
    role = Role(deposed=True)
    assert lease.on_attempt(role, got=9, sent=0.0, now=0.0, ttl=TTL) == (role, [])
    assert lease.on_tick(role, now=1e9) == (role, [])


step = st.one_of(
    st.tuples(st.just("attempt"), st.one_of(st.none(), st.integers(1, 4)), st.floats(0, 20), st.floats(0, 20)),
    st.tuples(st.just("tick"), st.none(), st.floats(0, 20), st.just(0.0)),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(step, max_size=40), st.floats(3, 60))
def test_invariants(steps: list[tuple[str, int | None, float, float]], ttl: float) -> None:
    """Whatever happens: a leader may act only before `sent + ttl - margin` of an attempt that returned its token
    (so before the database's expiry, which nobody can take over before); its token never changes while it leads;
    deposed is absorbing; every Elected is followed by at most one Deposed of the same token."""
    role, now = Role(), 0.0
    granted_until: float | None = None
    history: list[lease.Event] = []
    for kind, got, wait, latency in steps:
        before = role
        if kind == "attempt":
            sent = now + wait
            now = sent + latency
            role, events = lease.on_attempt(role, got=got, sent=sent, now=now, ttl=ttl)
            if got is not None and role.leader and role.token == got:
                granted_until = sent + ttl  # the database's expiry, as late as it can be
        else:
            now += wait
            role, events = lease.on_tick(role, now=now)
        history += events
        if role.leader:
            assert role.token is not None and role.valid_until is not None and granted_until is not None
            assert role.valid_until <= granted_until - lease.margin(ttl) + 1e-9
            if lease.may_act(role, now=now):
                assert now < granted_until
        if before.leader and role.leader:
            assert before.token == role.token
        if before.deposed:
            assert role == before and events == []
        if role.deposed:
            assert not lease.may_act(role, now=now) and role.token is None
    elected = [e for e in history if isinstance(e, Elected)]
    deposed = [e for e in history if isinstance(e, Deposed)]
    assert len(elected) <= 1 and len(deposed) <= len(elected)
    assert all(d.token == elected[0].token for d in deposed)


@pytest.mark.parametrize(("value", "ok"), [("15s", 15.0), ("3", 3.0), ("10m", 600.0), ("2s", None), ("11m", None),
                                           ("0", None), ("soon", None)])
def test_leader_ttl_is_a_validated_setting_naming_the_field(monkeypatch: pytest.MonkeyPatch, value: str,
                                                            ok: float | None) -> None:
    monkeypatch.setenv("WSCHECK_LEADER_TTL", value)
    if ok is not None:
        settings, _ = load_config(None)
        assert settings.leader_ttl == ok
        return
    with pytest.raises(ConfigError, match="WSCHECK_LEADER_TTL"):
        load_config(None)
