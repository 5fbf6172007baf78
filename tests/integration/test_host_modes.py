"""wt-host (issue 12 items 1-3), on the real sandbox over real SSH: each mode names its cause and no other.

- app-ipv6-only: the app on [::1]:app_port, nginx dialing 127.0.0.1 -> `app_listen_address_mismatch`;
- app-hung: a blocked event loop (PM2 online, the port accepting) -> `app_unresponsive`, named within the probe
  timeout while the other checks finish on their own;
- pm2-not-saved: the app recreated after the last `pm2 save` -> `pm2_not_saved` (a warning, exit 1);
- healthy: saved, so exit 0; pm2.startup is `skip` exactly where systemd is not the init (it says why).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from checks.config import Target
from checks.models import Status
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.healthy import SYSTEMD_INIT, healthy_statuses
from tests.support.reports import causes, check_mode, explain, status

pytestmark = pytest.mark.sandbox



async def test_healthy_is_saved_and_exit_0(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "healthy")
    assert {c.id: c.status for c in report.checks} == healthy_statuses(), explain(report)
    assert report.diagnosis == () and report.exit_code == 0, explain(report)
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["dump"] == f"{sandbox.pm2_home}/dump.pm2"
    assert sandbox_target.pm2_app in (saved.details["saved_names"] or [])
    startup = report.result("pm2.startup")
    assert startup is not None
    if not SYSTEMD_INIT:
        assert "systemd is not the init" in startup.summary, startup.summary


async def test_app_on_ipv6_loopback_only(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "app-ipv6-only")
    assert causes(report) == ["app_listen_address_mismatch"], explain(report)
    assert status(report, "port.listen") is Status.OK  # it does listen on the port: only the address is wrong
    assert status(report, "pm2.status") is Status.OK
    match = report.result("port.match")
    assert match is not None and match.status is Status.FAIL and match.details["side"] == "address"
    port = sandbox_target.app_port
    assert match.details["listen_addrs"] == [f"[::1]:{port}"]
    assert match.details["dialed"] == ["127.0.0.1"]
    cause = report.diagnosis[0]
    assert {"port.match", "http.proxy", "ws.proxy"} <= set(cause.evidence)
    assert any("HOSTNAME=" in line and "--update-env" in line for line in cause.fix), cause.fix
    assert any(f"proxy_pass http://[::1]:{port};" in line for line in cause.fix), cause.fix


async def test_hung_app_is_named_within_the_probe_timeout(sandbox: Any, sandbox_target: Target,
                                                         ssh: SSHTransport) -> None:
    await asyncio.to_thread(sandbox.set_mode, "app-hung")
    started = time.perf_counter()
    report = await run_checks(sandbox_target, ssh)
    took = time.perf_counter() - started
    assert causes(report) == ["app_unresponsive"], explain(report)
    assert status(report, "pm2.status") is Status.OK and status(report, "port.listen") is Status.OK
    for cid in ("http.local", "ws.local", "http.proxy", "ws.proxy"):
        r = report.result(cid)
        assert r is not None and r.status is Status.FAIL and r.details.get("no_answer"), explain(report)
    # The probes wait in parallel, and nothing else waits for them: the whole run is one probe timeout long.
    assert took < sandbox_target.probe_timeout + 3, took
    for quick in ("nginx.syntax", "pm2.status", "port.listen", "next.build"):
        r = report.result(quick)
        assert r is not None and r.duration_ms < sandbox_target.probe_timeout * 1000, (quick, r.duration_ms)
    from bot.remediation.actions import proposal
    action, _why = proposal(report, sandbox_target)
    assert action == "restart"


async def test_pm2_list_not_saved(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "pm2-not-saved")
    assert causes(report) == ["pm2_not_saved"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.WARN and report.exit_code == 1
    assert cause.fix[-1].endswith("pm2 save")
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["reason"] == "stale", explain(report)
    # What the cause promises: after `pm2 save` the same checks are clean.
    await asyncio.to_thread(sandbox.pm2, "save")
    again = await run_checks(sandbox_target, ssh, ["pm2.saved"])
    assert again.diagnosis == () and status(again, "pm2.saved") is Status.OK, explain(again)
