"""Incident state machine, table-driven: each scenario is a list of steps and the events each step must emit.

A step is (seconds after T0, what happened, healthy or cause ids, confirmed, silence until (s) or None,
expected event types). Between steps the state goes through JSON, as the caller persists it, and the root
message of each new incident is attached, as the caller does after posting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.monitoring.incidents import (
    EVENT_ADAPTER,
    BotWasDown,
    CauseChanged,
    Event,
    Flapping,
    FlapSettled,
    Incident,
    IncidentOpened,
    IncidentPolicy,
    IncidentResolved,
    ManualRun,
    Observation,
    Reminder,
    Silence,
    TargetState,
    attach_root,
    note_manual_run,
    observe,
    on_startup,
    summarize,
    tick,
)
from checks.config import Target
from checks.diagnosis import diagnose
from checks.models import Cause, CheckResult, Status, TargetReport
from checks.registry import CHECK_IDS
from tests.support.examples import examples

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TARGET = "web"
POLICY = IncidentPolicy()

# what ran
FULL, FAST, CANARY, MANUAL, TICK = "full", "fast", "canary", "manual", "tick"
CHECKED = {FULL: CHECK_IDS, MANUAL: CHECK_IDS, FAST: ("pm2.status", "ws.proxy"), CANARY: ("ws.proxy",)}

# what it found (cause ids; "!check" = a failing check no cause explains, as a canary reports it)
OK: tuple[str, ...] = ()
NGINX = ("nginx_config_invalid",)
PM2 = ("pm2_not_online",)
BUILD = ("next_build_missing",)
UNREACH = ("target_unreachable",)
WARN_ONLY = ("nginx_ws_timeout_short",)
WS_BLIP = ("!ws.proxy",)

APP_DOWN = ("port.listen", "http.local", "ws.local", "http.proxy", "ws.proxy", "pm2.logs")
LIBRARY: dict[str, Cause] = {
    "target_unreachable": Cause(cause="target_unreachable", summary="the bot cannot see the server: timed out",
                                severity=Status.ERROR, evidence=CHECK_IDS),
    "nginx_config_invalid": Cause(cause="nginx_config_invalid", summary="nginx config is invalid: unknown directive",
                                  evidence=("nginx.syntax", "nginx.websocket", "port.match")),
    "next_build_missing": Cause(cause="next_build_missing", summary="no production build (.next/BUILD_ID missing)",
                                evidence=("next.build", "pm2.status", *APP_DOWN)),
    "pm2_not_online": Cause(cause="pm2_not_online", summary="kathario-saas is errored",
                            evidence=("pm2.status", *APP_DOWN)),
    "nginx_upgrade_headers_missing": Cause(cause="nginx_upgrade_headers_missing", summary="no Upgrade header",
                                           evidence=("nginx.websocket", "ws.proxy")),
    "nginx_ws_timeout_short": Cause(cause="nginx_ws_timeout_short", summary="proxy_read_timeout 60s",
                                    severity=Status.WARN, evidence=("nginx.websocket",)),
}

# expected event types
OPEN, RES, CHG, REM = "incident_opened", "incident_resolved", "cause_changed", "reminder"
FLAP, SETTLE, MAN, DOWN = "flapping", "flap_settled", "manual_run", "bot_was_down"
F, C = False, True  # confirmed

Step = tuple[float, str, tuple[str, ...], bool, float | None, tuple[str, ...]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_obs(seconds: float, kind: str, found: Sequence[str], confirmed: bool = False) -> Observation:
    """What the monitor would hand over: causes restricted to the checks that ran, as the diagnosis would."""
    checked = CHECKED[kind]
    causes: list[Cause] = []
    failing: list[str] = []
    for name in found:
        if name.startswith("!"):
            failing.append(name[1:])
            continue
        cause = LIBRARY[name]
        evidence = tuple(e for e in cause.evidence if e in checked)
        assert evidence, f"{name} cannot be seen by a {kind} observation"
        causes.append(cause.model_copy(update={"evidence": evidence}))
        if cause.severity in (Status.FAIL, Status.ERROR):
            failing.extend(evidence)
    return Observation(target=TARGET, at=at(seconds), kind=kind,
                       checked=checked, causes=tuple(causes), failing_checks=tuple(dict.fromkeys(failing)),
                       confirmed=confirmed)


def silence_until(seconds: float | None) -> Silence | None:
    if seconds is None:
        return None
    return Silence(target=TARGET, until=at(seconds), by="U0SILENCER", at=T0)


def step(state: TargetState, s: Step, policy: IncidentPolicy = POLICY) -> tuple[TargetState, list[Event]]:
    seconds, kind, found, confirmed, until, _ = s
    now, silence = at(seconds), silence_until(until)
    if kind == TICK:
        return tick(state, now=now, policy=policy, silence=silence)
    obs = make_obs(seconds, kind, found, confirmed)
    if kind == MANUAL:
        return note_manual_run(state, obs, by="U0HUMAN", now=now, policy=policy, silence=silence)
    return observe(state, obs, now=now, policy=policy, silence=silence)


def persisted(state: TargetState) -> TargetState:
    """What the caller writes and reads back; it must be the very same state."""
    back = TargetState.model_validate_json(state.model_dump_json())
    assert back == state
    assert back.model_dump_json() == state.model_dump_json()
    return back


def play(steps: Sequence[Step], policy: IncidentPolicy = POLICY,
         state: TargetState | None = None) -> tuple[TargetState, list[Event]]:
    state = state or TargetState(target=TARGET)
    everything: list[Event] = []
    for s in steps:
        state, events = step(state, s, policy)
        assert [e.type for e in events] == list(s[5]), f"step at {s[0]} s: {[e.type for e in events]}"
        for event in events:
            assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event
            if isinstance(event, IncidentOpened) and not event.reused_root:
                state = attach_root(state, event.incident.id, channel="C0ALERTS", ts=f"{1700000000 + s[0]}.000100")
        everything.extend(events)
        state = persisted(state)
    return state, everything


def opened(t0: float = 0, found: tuple[str, ...] = NGINX) -> list[Step]:
    """Two failing full runs: the incident opens at t0 + 60."""
    return [(t0, FULL, found, F, None, ()), (t0 + 60, FULL, found, F, None, (OPEN,))]


SCENARIOS: dict[str, tuple[list[Step], IncidentPolicy]] = {
    "two consecutive failures open": (opened(), POLICY),
    "one confirmed failure opens at once": ([(0, FAST, PM2, C, None, (OPEN,))], POLICY),
    "an intermittent single failure never opens": ([
        (0, FULL, NGINX, F, None, ()), (60, FULL, OK, F, None, ()), (120, FULL, NGINX, F, None, ()),
        (180, FULL, OK, F, None, ()), (240, FULL, PM2, F, None, ()), (300, FULL, OK, F, None, ()),
    ], POLICY),
    "the streak is per target, not per cause": ([
        (0, FULL, NGINX, F, None, ()), (60, FULL, PM2, F, None, (OPEN,)),
    ], POLICY),
    "a partial healthy probe that cannot see the failure does not break the streak": ([
        (0, FULL, NGINX, F, None, ()), (30, CANARY, OK, F, None, ()), (60, FULL, NGINX, F, None, (OPEN,)),
    ], POLICY),
    "a partial healthy probe that sees the failure's checks does break it": ([
        (0, FULL, PM2, F, None, ()), (30, FAST, OK, F, None, ()), (60, FULL, PM2, F, None, ()),
    ], POLICY),
    "threshold of 3": ([
        (0, FULL, PM2, F, None, ()), (60, FULL, PM2, F, None, ()), (120, FULL, PM2, F, None, (OPEN,)),
    ], IncidentPolicy(failure_threshold=3)),
    "two successes resolve": ([
        *opened(), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)), (240, FULL, OK, F, None, ()),
    ], POLICY),
    "a failure between successes restarts the count": ([
        *opened(), (120, FULL, OK, F, None, ()), (180, FULL, NGINX, F, None, ()), (240, FULL, OK, F, None, ()),
        (300, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "reminders every interval while open": ([
        *opened(), (3659, TICK, OK, F, None, ()), (3660, TICK, OK, F, None, (REM,)),
        (3700, FULL, NGINX, F, None, ()), (7259, TICK, OK, F, None, ()), (7260, FULL, NGINX, F, None, (REM,)),
    ], POLICY),
    "one reminder for several missed intervals": ([
        *opened(), (60 + 3 * 3600, TICK, OK, F, None, (REM,)), (61 + 3 * 3600, TICK, OK, F, None, ()),
    ], POLICY),
    "a cause change restarts the reminder interval": ([
        *opened(), (3000, FULL, PM2, F, None, (CHG,)), (3660, TICK, OK, F, None, ()), (6599, TICK, OK, F, None, ()),
        (6600, TICK, OK, F, None, (REM,)),
    ], POLICY),
    "no reminder while silenced, the overdue one after": ([
        *opened(), (3660, TICK, OK, F, 5000, ()), (4999, FULL, NGINX, F, 5000, ()), (5000, TICK, OK, F, 5000, (REM,)),
    ], POLICY),
    "a cause change is posted once": ([
        *opened(), (120, FULL, PM2, F, None, (CHG,)), (180, FULL, PM2, F, None, ()), (240, FULL, PM2, F, None, ()),
    ], POLICY),
    "a fast probe cannot replace a cause it cannot see": ([
        *opened(found=BUILD), (120, FAST, PM2, F, None, ()), (180, FULL, BUILD, F, None, ()),
    ], POLICY),
    "a more fundamental cause replaces the headline even from a partial probe": ([
        *opened(found=PM2), (120, FAST, UNREACH, F, None, (CHG,)), (180, FULL, PM2, F, None, (CHG,)),
    ], POLICY),
    "a canary failure without diagnosis opens as unknown, a full run names the cause": ([
        (0, CANARY, WS_BLIP, C, None, (OPEN,)), (60, FULL, BUILD, F, None, (CHG,)),
    ], POLICY),
    "warn causes never open": ([
        (0, FULL, WARN_ONLY, F, None, ()), (60, FULL, WARN_ONLY, F, None, ()), (120, FULL, WARN_ONLY, C, None, ()),
    ], POLICY),
    "a warn cause beside a failing one does not change the headline": ([
        (0, FULL, (*WARN_ONLY, *PM2), C, None, (OPEN,)), (60, FULL, PM2, F, None, ()),
    ], POLICY),
    "silence before the incident: tracked, announced when the silence ends": ([
        (0, FULL, NGINX, F, 600, ()), (60, FULL, NGINX, F, 600, ()), (599, TICK, OK, F, 600, ()),
        (600, TICK, OK, F, 600, (OPEN,)), (660, FULL, OK, F, None, ()), (720, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "silence before the incident: announced by the first observation after it": ([
        (0, FULL, NGINX, F, 600, ()), (60, FULL, NGINX, F, 600, ()), (660, FULL, NGINX, F, None, (OPEN,)),
    ], POLICY),
    "silence before the incident: resolved during it, never posted": ([
        (0, FULL, NGINX, F, 600, ()), (60, FULL, NGINX, F, 600, ()), (120, FULL, OK, F, 600, ()),
        (180, FULL, OK, F, 600, ()), (600, TICK, OK, F, 600, ()), (660, FULL, OK, F, None, ()),
        (4000, TICK, OK, F, None, ()),
    ], POLICY),
    "silence starting mid-incident: quiet, the change posted once it is over": ([
        *opened(), (120, FULL, PM2, F, 600, ()), (180, TICK, OK, F, 600, ()), (600, FULL, PM2, F, 600, (CHG,)),
        (660, FULL, PM2, F, None, ()),
    ], POLICY),
    "a resolve during a silence of an announced incident is posted": ([
        *opened(), (120, FULL, OK, F, 3600, ()), (180, FULL, OK, F, 3600, (RES,)),
    ], POLICY),
    "flapping: one notice over many flaps, quiet, then settled and resolved": ([
        *opened(),                                                       # transition 1 (t=60)
        (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)),  # 2 (t=180)
        (240, FAST, PM2, C, None, (OPEN, FLAP)),                         # 3 (t=240): re-open reuses the root
        (300, FULL, OK, F, None, ()), (360, FULL, OK, F, None, ()),      # shadow close
        (420, FULL, PM2, C, None, ()),                                   # shadow open
        (480, FULL, BUILD, F, None, ()),                                 # no cause change while flapping
        (540, FULL, OK, F, None, ()), (600, FULL, OK, F, None, ()),
        (660, CANARY, WS_BLIP, C, None, ()), (720, FULL, OK, F, None, ()), (780, FULL, OK, F, None, ()),
        (780 + 1799, TICK, OK, F, None, ()),
        (780 + 1800, TICK, OK, F, None, (SETTLE, RES)),
        (780 + 1900, FULL, OK, F, None, ()),
    ], POLICY),
    "flapping that settles still failing: reminders resume": ([
        *opened(found=PM2), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)),
        (240, FULL, PM2, C, None, (OPEN, FLAP)),
        (300, FULL, PM2, F, None, ()), (2039, TICK, OK, F, None, ()),
        (2040, FULL, PM2, F, None, (SETTLE,)),
        (2040 + 3599, TICK, OK, F, None, ()), (2040 + 3600, TICK, OK, F, None, (REM,)),
        (2040 + 3700, FULL, OK, F, None, ()), (2040 + 3760, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "no reminder while flapping": ([
        *opened(found=PM2), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)),
        (240, FULL, PM2, C, None, (OPEN, FLAP)),
        *[(240 + 1200 * i + d, FULL, found, conf, None, ())
          for i in range(1, 6) for d, found, conf in ((0, OK, F), (60, OK, F), (120, PM2, C))],
        (240 + 1200 * 5 + 3600, TICK, OK, F, None, (SETTLE,)),
    ], POLICY),
    "a flap reached on a close keeps the root open instead of resolving": ([
        *opened(), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)),
        (240, FULL, NGINX, C, None, (OPEN,)),
        (300, FULL, OK, F, None, ()), (360, FULL, OK, F, None, (FLAP,)),
        (360 + 1800, TICK, OK, F, None, (SETTLE, RES)),
    ], IncidentPolicy(flap_count=4)),
    "a re-open inside the flap window reuses the root, outside it opens a new one": ([
        *opened(), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,)),
        (240, FULL, PM2, C, None, (OPEN,)),
        (300, FULL, OK, F, None, ()), (360, FULL, OK, F, None, (RES,)),
        (360 + 1800, FULL, NGINX, C, None, (OPEN,)),
    ], IncidentPolicy(flap_count=10)),
    "no flap detection during a silence": ([
        *opened(), (120, FULL, OK, F, 5000, ()), (180, FULL, OK, F, 5000, (RES,)),
        (240, FULL, NGINX, C, 5000, ()), (300, FULL, OK, F, 5000, ()), (360, FULL, OK, F, 5000, ()),
        (420, FULL, NGINX, C, 5000, ()), (5000, TICK, OK, F, 5000, (OPEN,)),
        (5060, FULL, OK, F, None, ()), (5120, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "a fast probe cannot resolve an nginx incident": ([
        *opened(), (90, FAST, OK, F, None, ()), (120, FAST, OK, F, None, ()), (150, FAST, OK, F, None, ()),
        (180, FULL, OK, F, None, ()), (210, FAST, OK, F, None, ()), (240, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "an unrelated canary blip neither resets nor counts": ([
        *opened(), (120, FULL, OK, F, None, ()), (150, CANARY, WS_BLIP, C, None, ()),
        (180, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "a partial probe naming a new cause does reset the success streak": ([
        *opened(), (120, FULL, OK, F, None, ()), (150, FAST, PM2, F, None, ()), (180, FULL, OK, F, None, ()),
        (240, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "a failure that bears on the incident resets the success streak": ([
        *opened(found=PM2), (120, FULL, OK, F, None, ()), (150, CANARY, WS_BLIP, F, None, ()),
        (180, FULL, OK, F, None, ()), (240, FULL, OK, F, None, (RES,)),
    ], POLICY),
    "a manual run notes itself in the incident's thread": ([
        *opened(), (120, MANUAL, NGINX, F, None, (MAN,)), (180, MANUAL, OK, F, None, (MAN,)),
        (240, MANUAL, OK, F, None, (MAN, RES)), (300, MANUAL, OK, F, None, ()),
    ], POLICY),
    "a manual run that confirms a failure opens, then notes itself": ([
        (0, MANUAL, PM2, C, None, (OPEN, MAN)),
    ], POLICY),
    "a manual run during a silence or a flap says nothing": ([
        *opened(), (120, MANUAL, NGINX, F, 600, ()), (180, FULL, OK, F, None, ()), (240, FULL, OK, F, None, (RES,)),
        (300, FULL, NGINX, C, None, (OPEN, FLAP)), (360, MANUAL, OK, F, None, ()),
    ], POLICY),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    steps, policy = SCENARIOS[name]
    play(steps, policy)


# -- details the tables do not show -------------------------------------------------------------------------------


def test_opening_keeps_the_first_failure_time_and_a_deterministic_id() -> None:
    state, events = play([(0, FULL, PM2, F, None, ()), (90, FULL, PM2, F, None, (OPEN,))])
    inc = events[0].incident
    assert inc.first_failure_at == at(0) and inc.opened_at == at(90)
    assert inc.id == f"web-{int(at(90).timestamp())}"
    assert (inc.cause, inc.kind, inc.announced) == ("pm2_not_online", "down", True)
    assert state.incident is not None and state.incident.root_ts is not None
    _, more = play([(150, FULL, OK, F, None, ()), (210, FULL, OK, F, None, (RES,))], state=state)
    resolved = more[0]
    assert isinstance(resolved, IncidentResolved)
    assert resolved.duration == 210 and resolved.incident.resolved_at == at(210)
    assert resolved.incident.root_ts == state.incident.root_ts


def test_the_streak_opens_with_the_root_most_visible_cause() -> None:
    _, events = play([(0, FULL, NGINX, F, None, ()), (60, FULL, PM2, F, None, (OPEN,))])
    assert events[0].incident.cause == "pm2_not_online"  # the full run looked at nginx and found it fine
    _, events = play([(0, FULL, BUILD, F, None, ()), (60, FAST, PM2, F, None, (OPEN,))])
    assert events[0].incident.cause == "next_build_missing"  # the fast probe cannot see next.build


def test_unreachable_is_its_own_kind() -> None:
    _, events = play([*opened(found=UNREACH), (120, FULL, PM2, F, None, (CHG,))])
    first, change = events
    assert first.incident.kind == "unreachable" and first.incident.cause == "target_unreachable"
    assert isinstance(change, CauseChanged)
    assert change.incident.kind == "down" and change.previous_cause == "target_unreachable"
    assert change.previous_summary.startswith("the bot cannot see the server")


def test_cause_change_keeps_the_incident() -> None:
    _, events = play([*opened(), (120, FULL, PM2, F, None, (CHG,))])
    assert events[0].incident.id == events[1].incident.id
    assert events[1].incident.root_ts is not None


def test_reopen_in_the_flap_window_reuses_id_and_root() -> None:
    steps, policy = SCENARIOS["a re-open inside the flap window reuses the root, outside it opens a new one"]
    _, events = play(steps, policy)
    first, resolved, again, _, new = events
    assert isinstance(again, IncidentOpened) and again.reused_root
    assert resolved.incident.root_ts is not None  # attached by the caller after posting `first`
    assert (again.incident.id, again.incident.root_ts) == (first.incident.id, resolved.incident.root_ts)
    assert again.incident.cause == "pm2_not_online" and again.incident.first_failure_at == at(0)
    assert isinstance(new, IncidentOpened) and not new.reused_root and new.incident.id != first.incident.id


def test_exactly_one_flapping_notice() -> None:
    steps, policy = SCENARIOS["flapping: one notice over many flaps, quiet, then settled and resolved"]
    state, events = play(steps, policy)
    flaps = [e for e in events if isinstance(e, Flapping)]
    assert len(flaps) == 1 and flaps[0].transitions == 3 and flaps[0].window == 1800
    settled = next(e for e in events if isinstance(e, FlapSettled))
    assert not settled.still_failing and not settled.incident.flapping
    resolved = events[-1]
    assert isinstance(resolved, IncidentResolved)
    assert resolved.incident.resolved_at == at(780)  # when it recovered, not when the flap window ran out
    assert len({e.incident.id for e in events}) == 1
    assert state.incident is None and state.last_incident is not None


def test_an_incident_opened_during_a_silence_waits_unannounced() -> None:
    state, _ = play([(0, FULL, NGINX, F, 600, ()), (60, FULL, NGINX, F, 600, ())])
    assert state.incident is not None and not state.incident.announced
    assert "not announced" in summarize(state).en
    state, events = play([(120, FULL, PM2, F, 600, ()), (600, TICK, OK, F, 600, (OPEN,))], state=state)
    assert events[0].incident.cause == "pm2_not_online"  # updated silently: nobody had been told
    assert events[0].incident.first_failure_at == at(0)


def test_restart_continues_the_open_incident_in_its_thread() -> None:
    state, _ = play(opened())
    assert state.incident is not None
    root = state.incident.root_ts
    restored = TargetState.model_validate_json(state.model_dump_json())
    assert restored == state

    same, events = on_startup(restored, now=at(120), last_alive_at=at(100), check_interval=60)
    assert (same, events) == (restored, [])
    later, events = on_startup(restored, now=at(4000), last_alive_at=at(400), check_interval=60)
    assert [e.type for e in events] == [DOWN]
    assert isinstance(events[0], BotWasDown) and events[0].down_for == 3600
    assert events[0].incident.root_ts == root
    assert on_startup(restored, now=at(4000), last_alive_at=None, check_interval=60)[1] == []
    # it counts as a reminder: the next one is an interval after the restart, not at once
    later, events = tick(persisted(later), now=at(4001), policy=POLICY, silence=None)
    assert events == []
    _, events = play([(4060, FULL, OK, F, None, ()), (4120, FULL, OK, F, None, (RES,))], state=later)
    assert events[0].incident.root_ts == root


def test_no_bot_was_down_for_an_unannounced_incident() -> None:
    state, _ = play([(0, FULL, NGINX, F, 600, ()), (60, FULL, NGINX, F, 600, ())])
    assert on_startup(state, now=at(5000), last_alive_at=at(100), check_interval=60)[1] == []


def test_attach_root_only_touches_the_named_incident() -> None:
    state, events = play(opened())
    assert attach_root(state, "web-0", channel="C1", ts="1.2") == state
    inc_id = events[0].incident.id
    moved = attach_root(state, inc_id, channel="C2", ts="9.9")
    assert moved.incident is not None and (moved.incident.channel, moved.incident.root_ts) == ("C2", "9.9")


def test_events_round_trip_through_json() -> None:
    state, _ = play(opened())
    assert state.incident is not None
    inc = state.incident
    samples: list[Event] = [
        IncidentOpened(incident=inc, reused_root=True),
        CauseChanged(incident=inc, previous_cause="x", previous_summary="y"),
        Reminder(incident=inc, open_for=3600.5), Flapping(incident=inc, transitions=3, window=1800),
        FlapSettled(incident=inc, still_failing=True), IncidentResolved(incident=inc, duration=252),
        ManualRun(incident=inc, by="U1", healthy=False, summary="s"), BotWasDown(incident=inc, down_for=99.0),
    ]
    for event in samples:
        assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event
    assert Incident.model_validate_json(inc.model_dump_json()) == inc
    assert IncidentPolicy.model_validate_json(POLICY.model_dump_json()) == POLICY
    obs = make_obs(0, FAST, PM2, C)
    assert Observation.model_validate_json(obs.model_dump_json()) == obs
    sil = silence_until(60)
    assert sil is not None and Silence.model_validate_json(sil.model_dump_json()) == sil


def test_observation_from_a_real_diagnosis() -> None:
    target = Target.model_validate({"name": "web", "host": "203.0.113.10", "user": "deploy",
                                    "pm2_app": "kathario-saas", "app_port": 3003, "app_dir": "/root/kathario-saas"})
    bad = {"pm2.status": Status.FAIL, "port.listen": Status.FAIL, "http.local": Status.FAIL,
           "ws.local": Status.FAIL, "http.proxy": Status.FAIL, "ws.proxy": Status.FAIL, "port.match": Status.SKIP}
    checks = [CheckResult(id=cid, status=bad.get(cid, Status.OK), summary=cid) for cid in CHECK_IDS]
    report = TargetReport(target="web", host=target.host, checks=tuple(checks), diagnosis=diagnose(target, checks))
    obs = Observation.from_report(report, kind="full", at=at(0))
    assert obs.checked == CHECK_IDS and "ws.proxy" in obs.failing_checks and "port.match" not in obs.failing_checks
    assert [c.cause for c in obs.failing_causes] == ["pm2_not_online"] and not obs.healthy
    healthy = [CheckResult(id=cid, status=Status.OK, summary=cid) for cid in CHECK_IDS]
    ok = TargetReport(target="web", host=target.host, checks=tuple(healthy), diagnosis=diagnose(target, healthy))
    assert Observation.from_report(ok, kind="fast", at=at(1), confirmed=True).healthy


def test_failing_checks_explained_by_a_warn_cause_are_not_a_failure() -> None:
    warn = Cause(cause="app_port_misconfigured", summary="wscheck app_port differs", severity=Status.WARN,
                 evidence=("port.match", "port.listen"))
    obs = Observation(target=TARGET, at=T0, kind="full", checked=CHECK_IDS, causes=(warn,),
                      failing_checks=("port.listen",))
    assert obs.healthy
    extra = obs.model_copy(update={"failing_checks": ("port.listen", "ws.proxy")})
    assert [(c.cause, c.evidence) for c in extra.failing_causes] == [("unknown", ("ws.proxy",))]


def test_summarize() -> None:
    state = TargetState(target=TARGET)
    assert summarize(state).en == "web: ok"
    state, _ = play([(0, FULL, NGINX, F, None, ())], state=state)
    assert summarize(state).en.startswith("web: failing since 2025-03-01 09:00 UTC (nginx_config_invalid")
    state, _ = play([(60, FULL, NGINX, F, None, (OPEN,)), (120, FULL, OK, F, None, ())], state=state)
    line = summarize(state).en
    assert line.startswith("web: DOWN since 2025-03-01 09:00 UTC — nginx_config_invalid: nginx config is invalid")
    assert "recovering" in line and "\n" not in line
    state, _ = play(opened(found=UNREACH))
    assert "the bot cannot see the server" in summarize(state).en
    state, _ = play([*opened(), (120, FULL, OK, F, None, ()), (180, FULL, OK, F, None, (RES,))])
    assert summarize(state).en == "web: ok (last checked 2025-03-01 09:03 UTC)"


def test_misuse_is_refused() -> None:
    state = TargetState(target=TARGET)
    with pytest.raises(ValueError, match="timezone-aware"):
        observe(state, make_obs(0, FULL, OK), now=datetime(2025, 3, 1), policy=POLICY, silence=None)
    other = make_obs(0, FULL, OK).model_copy(update={"target": "other"})
    with pytest.raises(ValueError, match="other"):
        observe(state, other, now=T0, policy=POLICY, silence=None)


# -- invariants over random histories -----------------------------------------------------------------------------

KINDS = st.sampled_from([FULL, FULL, FAST, CANARY, MANUAL, TICK])
FOUND = st.sampled_from([OK, OK, OK, NGINX, PM2, BUILD, UNREACH, WARN_ONLY, WS_BLIP, (*WARN_ONLY, *PM2)])
STEPS = st.lists(
    st.tuples(st.integers(1, 1500), KINDS, FOUND, st.booleans(), st.sampled_from([None, None, 300, 3000])),
    max_size=80,
)
POLICIES = st.builds(
    IncidentPolicy,
    failure_threshold=st.integers(1, 3), success_threshold=st.integers(1, 3),
    reminder_interval=st.sampled_from([600.0, 3600.0]), flap_window=st.sampled_from([600.0, 1800.0]),
    flap_count=st.integers(2, 5),
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=STEPS, policy=POLICIES)
def test_invariants_over_random_histories(raw: list[tuple[int, str, tuple[str, ...], bool, Any]],
                                          policy: IncidentPolicy) -> None:
    state = TargetState(target=TARGET)
    clock = 0.0
    announced_open: set[str] = set()  # ids the channel was told are open
    flapping: set[str] = set()
    for dt, kind, found, confirmed, silence_for in raw:
        clock += dt
        if kind in (FAST, CANARY) and found in (NGINX, BUILD, WARN_ONLY, (*WARN_ONLY, *PM2)):
            found = PM2 if kind == FAST else WS_BLIP  # what such a probe can see
        until = None if silence_for is None else clock + silence_for - dt  # started at the previous step
        state, events = step(state, (clock, kind, found, confirmed, until, ()), policy)
        silenced = until is not None and at(clock) < at(until)

        assert len(events) <= 3
        if silenced:
            assert all(isinstance(e, IncidentResolved) for e in events), events
        for e in events:
            iid = e.incident.id
            if isinstance(e, IncidentOpened):
                assert not announced_open, "a second open incident"
                announced_open.add(iid)
                if not e.reused_root:
                    state = attach_root(state, iid, channel="C0ALERTS", ts=f"{clock}")
            elif isinstance(e, IncidentResolved):
                assert iid in announced_open, "resolved without an announced open"
                announced_open.discard(iid)
                flapping.discard(iid)
                assert e.duration >= 0
            else:
                assert iid in announced_open, f"{e.type} about an incident the channel does not know open"
                if iid in flapping:
                    assert isinstance(e, FlapSettled), f"{e.type} while flapping"
                    flapping.discard(iid)
                elif isinstance(e, Flapping):
                    flapping.add(iid)
        inc = state.incident
        assert announced_open == ({inc.id} if inc is not None and inc.announced else set())
        assert flapping == ({inc.id} if inc is not None and inc.flapping else set())
        if inc is not None:
            assert inc.is_open and inc.first_failure_at <= inc.opened_at
            assert inc.cause == inc.headline.cause and inc.headline.severity in (Status.FAIL, Status.ERROR)
            assert (inc.kind == "unreachable") == (inc.cause in ("target_unreachable", "pm2_binary_not_found"))
        if state.last_incident is not None:
            assert state.last_incident.resolved_at is not None
        state = persisted(state)


def test_flap_settling_during_a_silence_waits_for_the_silence_to_end() -> None:
    """Found by the invariants test: the thread was told "flapping", so it must hear the settle."""
    policy = IncidentPolicy(failure_threshold=1, success_threshold=1, reminder_interval=600, flap_window=600,
                            flap_count=2)
    state = TargetState(target=TARGET)
    state, events = step(state, (1, FULL, NGINX, False, None, ()), policy)
    state = attach_root(state, events[0].incident.id, channel="C0ALERTS", ts="1")
    state, events = step(state, (2, FULL, OK, False, None, ()), policy)
    assert [e.type for e in events] == ["flapping"]
    state, _ = step(state, (3, FULL, NGINX, False, None, ()), policy)
    state, events = step(state, (603, FULL, NGINX, False, 3003, ()), policy)  # silenced: nothing, still flapping
    assert events == [] and state.incident is not None and state.incident.flapping
    state, events = tick(state, now=at(3004), policy=policy, silence=None)
    assert [e.type for e in events] == ["flap_settled"]
    assert state.incident is not None and not state.incident.flapping
