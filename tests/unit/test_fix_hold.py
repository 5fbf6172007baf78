"""Issue 13, defect 9: the bot's own approved fix does not page. The real Monitor (incident machine, store,
outbox) fed what the fast probe saw during a restart (`pm2` says `stopping`), and the real Remediation's hooks.

Before: two failing looks during the restart opened and announced a red root alert, seconds before the fix's
own "verified healthy". Now the target's alerts are held while the fix runs and is verified; a verified fix
leaves nothing in the channel; a fix that does not verify opens the incident at once, with its outcome.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.remediation.engine import Remediation
from checks.models import Status
from tests.unit.test_monitor_harness import Harness, harness, report  # noqa: F401
from tests.unit.test_remediation_harness import harness as remediation_harness
from tests.unit.test_remediation_harness import store  # noqa: F401
from wsmsg import verbatim


async def restart_window(h: Harness) -> None:
    """What the probes see while PM2 restarts the app: `stopping`, twice (the failure threshold)."""
    for _ in range(2):
        h.clock.now += timedelta(seconds=2)
        await h.monitor.observe("web", report(Status.FAIL, pm2_status="stopping"), kind="fast", confirmed=True)


async def test_without_a_hold_the_restart_pages(harness: Harness) -> None:  # noqa: F811
    """The defect, reproduced: the same looks without a hold open and announce an incident."""
    await restart_window(harness)
    await harness.deliver()
    assert len(harness.sink.posts) == 1 and "pm2_not_online" in harness.sink.posts[0]["text"]


async def test_a_verified_fix_never_pages(harness: Harness) -> None:  # noqa: F811
    mon = harness.monitor
    await mon.hold("web", request_id="R-1", action="restart", seconds=120)
    await restart_window(harness)
    await mon.release("web", request_id="R-1", healthy=True, outcome=verbatim("verified healthy"))
    for _ in range(3):  # the incident machine settles on healthy looks; ticks in between announce nothing
        harness.clock.now += timedelta(seconds=5)
        await mon.tick_all()
        await mon.observe("web", report(Status.OK), kind="full")
    await harness.deliver()
    assert harness.sink.posts == [] and harness.sink.updates == []
    assert mon.states["web"].incident is None and "web" not in mon.holds


async def test_a_fix_that_does_not_verify_opens_the_incident_with_its_outcome(harness: Harness) -> None:  # noqa: F811
    mon = harness.monitor
    await mon.hold("web", request_id="R-2", action="restart", seconds=120)
    await restart_window(harness)
    await harness.deliver()
    assert harness.sink.posts == []
    await mon.release("web", request_id="R-2", healthy=False,
                      outcome=verbatim("still failing after 60 s: pm2_not_online"))
    await harness.deliver()  # the root (one item per lane at a time) ...
    await harness.deliver()  # ... then its thread
    texts = [p["text"] for p in harness.sink.posts]
    assert len(texts) == 2 and "pm2_not_online" in texts[0], texts
    assert harness.sink.posts[1]["thread_ts"] and "R-2" in texts[1] and "still failing" in texts[1], texts


async def test_the_hold_is_bounded(harness: Harness) -> None:  # noqa: F811
    """A fix that never reports back (a crash) does not mute the target for longer than its budget."""
    mon = harness.monitor
    await mon.hold("web", request_id="R-3", action="restart", seconds=10)
    harness.clock.now += timedelta(seconds=11)
    await restart_window(harness)
    await harness.deliver()
    assert len(harness.sink.posts) == 1


async def test_remediation_holds_before_running_and_releases_after_verifying(
    store: object, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    h = remediation_harness(store, monkeypatch, "pm2-stopped")  # type: ignore[arg-type]
    calls: list[tuple[object, ...]] = []
    remediation: Remediation = h.remediation

    async def on_start(*args: object) -> None:
        calls.append(("hold", *args, len(h.stack.fixes)))

    remediation.on_fix_start.append(on_start)

    async def release(*args: object) -> None:
        calls.append(("release", *args, len(h.stack.fixes)))

    remediation.on_fix_end.append(release)
    request = await h.request()
    await h.approve(request)
    (hold, done) = calls
    assert hold[:4] == ("hold", "sandbox", request.id, "restart") and hold[-1] == 0  # held before the command ran
    assert done[:4] == ("release", "sandbox", request.id, True) and done[-1] == 1
