"""Monitoring of an expiring certificate (wt-tls): a `warn` cause opens no incident, yet the channel hears about it
once per certificate, before a human notices; a renewed certificate that later nears expiry is told again."""

from __future__ import annotations

from datetime import timedelta

from checks.diagnosis import diagnose
from checks.models import CheckResult, Status, TargetReport
from tests.unit.test_monitor_harness import WEB, Harness, harness

__all__ = ["harness"]


def expiring(serial: str, days: float) -> TargetReport:
    tls = CheckResult(id="tls.certificate", status=Status.WARN, summary="expiring", details={
        "tls": True, "expiring": True, "days_left": days, "expiry_warning_days": 14, "certbot": "",
        "cert": {"serial": serial, "sans": ["chat.example.com"], "subject": "CN=chat.example.com",
                 "not_after": "2027-01-01T00:00:00+00:00"}})
    http = CheckResult(id="http.proxy", status=Status.OK, summary="ok")
    return TargetReport(target="web", host="local", checks=(http, tls), diagnosis=diagnose(WEB, [http, tls]))


async def test_one_notice_per_expiring_certificate(harness: Harness) -> None:
    mon = harness.monitor
    first = expiring("ABC123", 9.5)
    assert [c.cause for c in first.diagnosis] == ["tls_certificate_expiring"]
    for _ in range(3):  # every cycle sees it; the channel hears it once
        await mon.observe("web", first, kind="full")
        harness.clock.now += timedelta(minutes=1)
        await harness.deliver()
    assert mon.states["web"].incident is None  # a warning opens no incident
    (post,) = harness.sink.posts
    assert post["channel"] == "C0ALERTS1" and post["thread_ts"] is None
    assert "*web*" in post["text"] and "expires in 9 day(s)" in post["text"]
    assert post["metadata"]["event_payload"]["op"] == "tls-expiring:web:ABC123"
    # renewed, and months later the new one nears expiry: that is another certificate, told again
    await mon.observe("web", expiring("DEF456", 4.0), kind="full")
    await harness.deliver()
    assert len(harness.sink.posts) == 2 and "expires in 4 day(s)" in harness.sink.posts[1]["text"]


async def test_no_notice_without_an_expiring_cause(harness: Harness) -> None:
    ok = CheckResult(id="tls.certificate", status=Status.OK, summary="ok",
                     details={"tls": True, "cert": {"serial": "ABC"}})
    await harness.monitor.observe("web", TargetReport(target="web", host="local", checks=(ok,)), kind="full")
    await harness.deliver()
    assert harness.sink.posts == []
