"""wt-host2 on the real sandbox: PM2 restarting an online app (watch on the app's own log), the V8 heap limit,
and the disk thresholds against the real `df`, over real SSH. Each mode gets its cause and no other; the healthy
sandbox stays all ok with exit 0.

A full disk and EMFILE are real sandbox modes since wt-host3 (tests/integration/test_host_real_faults.py); here
the thresholds are also driven by the `disk_warn_percent` / `disk_fail_percent` settings against the real `df`.
A kernel OOM kill stays in-process (tests/unit/test_host_resources.py; deploy/sandbox/README.md says why).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.remediation import actions
from checks.config import Target
from checks.models import Status, TargetReport
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.reports import causes, explain

pytestmark = pytest.mark.sandbox


def result(report: TargetReport, check_id: str) -> Any:
    found = report.result(check_id)
    assert found is not None
    return found


async def in_mode(sandbox: Any, mode: str) -> None:
    await asyncio.to_thread(sandbox.set_mode, mode)


async def test_healthy_host_checks_are_ok(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "healthy")
    report = await run_checks(sandbox_target, ssh)
    assert report.exit_code == 0, explain(report)
    for check_id in ("host.memory", "host.disk", "host.fds", "pm2.restarts", "next.static"):
        assert result(report, check_id).status is Status.OK, explain(report)
    disk = result(report, "host.disk").details
    assert any("app_dir" in fs["holds"] for fs in disk["filesystems"]), disk
    assert disk["biggest_pm2_logs"], disk  # the sandbox's PM2 logs, named
    memory = result(report, "host.memory").details
    assert memory["mem_total_mb"] > 0 and memory["mem_available_mb"] > 0
    fds = result(report, "host.fds").details
    assert any(p["open_fds"] and p["limit"] for p in fds["processes"]), fds


async def test_watch_restart_loop_is_named_while_pm2_says_online(sandbox: Any, sandbox_target: Target,
                                                                 ssh: SSHTransport) -> None:
    await in_mode(sandbox, "restart-loop")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["pm2_restart_loop_online"], explain(report)
    restarts = result(report, "pm2.restarts")
    assert restarts.details["kind"] == "watch" and restarts.details["watch"] is True, explain(report)
    assert any("Change detected on path" in line for line in restarts.details["reason_lines"])
    # The sample the bot keeps (bot.chat.service) makes the next look compare counts as well.
    first = restarts.details["restarts"]
    again = await run_checks(sandbox_target, ssh, restart_sample={"at": report.started_at.timestamp(),
                                                                  "restarts": {"0": first}})
    assert causes(again) == ["pm2_restart_loop_online"], explain(again)
    assert result(again, "pm2.restarts").details["delta"] is not None


async def test_one_stopped_instance_of_two_is_a_warning_not_an_app_down(sandbox: Any, sandbox_target: Target,
                                                                        ssh: SSHTransport) -> None:
    """Issue 12, item 10: nothing "down" while the same report proves the app up. Cluster mode, one instance of two
    stopped: pm2.status warns, the probes pass, and the cause is a warning (no incident) that restarts the one."""
    await in_mode(sandbox, "pm2-instance-stopped")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["pm2_not_online"], explain(report)
    assert report.diagnosis[0].severity is Status.WARN and report.exit_code == 1, explain(report)
    status = result(report, "pm2.status")
    assert status.status is Status.WARN and status.details["partial"] is True
    assert sorted(i["status"] for i in status.details["instances"]) == ["online", "stopped"]
    for probe in ("http.local", "ws.local", "http.proxy", "ws.proxy", "port.listen"):
        assert result(report, probe).status is Status.OK, explain(report)
    stopped = next(i for i in status.details["instances"] if i["status"] == "stopped")
    assert any(str(line).endswith(f"restart {stopped['pm_id']}") for line in report.diagnosis[0].fix)
    await in_mode(sandbox, "healthy")
    assert (await run_checks(sandbox_target, ssh)).exit_code == 0


async def test_pm2_gone_with_the_app_still_saved_is_fixed_by_resurrect(sandbox: Any, sandbox_target: Target,
                                                                      ssh: SSHTransport) -> None:
    """A2: PM2 restarted without its list (here `pm2 kill`; a reboot without `pm2 startup` leaves the same): the
    cause says the saved list has the app and the fix is `pm2 resurrect`, not "PM2 runs as another user"."""
    await in_mode(sandbox, "pm2-killed")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["pm2_not_online"], explain(report)
    cause = report.diagnosis[0]
    assert "dump.pm2" in cause.summary and "resurrect" in str(cause.fix[0]), cause
    saved = result(report, "pm2.saved")
    assert saved.status is Status.SKIP and saved.details["saved_not_running"] is True, explain(report)
    await in_mode(sandbox, "healthy")
    assert (await run_checks(sandbox_target, ssh)).exit_code == 0


async def test_the_app_running_outside_pm2_is_a_warning_never_a_conflict_to_kill(
        sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    """Started by hand on app_port (PM2 does not know it): the site works, so not `port_conflict` (its fix kills the
    holder, taking the site down) and not "the app is down": a warning naming the process, with the way under PM2."""
    await in_mode(sandbox, "app-outside-pm2")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["app_outside_pm2"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.WARN, explain(report)
    holder = result(report, "port.conflict").details["foreign"][0]
    assert holder["name"] == "node" and f"pid {holder['pid']}" in cause.summary
    for probe in ("http.local", "ws.local", "http.proxy", "ws.proxy"):
        assert result(report, probe).status is Status.OK, explain(report)
    await in_mode(sandbox, "healthy")
    assert (await run_checks(sandbox_target, ssh)).exit_code == 0


async def test_the_app_started_twice_is_a_duplicate_to_delete_not_a_crash_loop(
        sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    """`pm2 start` run twice in fork mode: the copy fails to bind while the first serves. A warning naming the copy,
    fixed by deleting it (a restart would only repeat the failure), not "crash-looping" as if the app were down."""
    await in_mode(sandbox, "pm2-started-twice")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["pm2_not_online"], explain(report)
    cause = report.diagnosis[0]
    status = result(report, "pm2.status")
    assert cause.severity is Status.WARN and status.details["duplicates"] is True, explain(report)
    assert str(cause.fix[0]).endswith(f"delete {status.details['culprit']}"), cause.fix
    for probe in ("http.proxy", "ws.proxy"):
        assert result(report, probe).status is Status.OK, explain(report)
    await in_mode(sandbox, "healthy")
    assert (await run_checks(sandbox_target, ssh)).exit_code == 0


async def test_heap_oom_is_named_instead_of_a_crash(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "heap-oom")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["host_out_of_memory"], explain(report)
    memory = result(report, "host.memory")
    assert memory.details["kind"] == "heap" and "heap out of memory" in memory.details["heap_oom_lines"][-1]
    # The fix names the app's heap, not the host's memory (the host has plenty).
    assert any("max-old-space-size" in line for line in report.diagnosis[0].fix)
    # Back to healthy: the old heap lines are before the app's new start, so they are history.
    await in_mode(sandbox, "healthy")
    healed = await run_checks(sandbox_target, ssh)
    assert healed.exit_code == 0, explain(healed)


async def test_disk_thresholds_against_the_real_df(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    """The real df of the sandbox's file systems; the thresholds stand in for a full disk (see the module doc)."""
    await in_mode(sandbox, "healthy")
    report = await run_checks(sandbox_target, ssh, ["host"])
    used = max(fs["use_percent"] for fs in result(report, "host.disk").details["filesystems"])
    assert used >= 1
    warn_at = sandbox_target.model_copy(update={"disk_warn_percent": used, "disk_fail_percent": 100})
    warned = await run_checks(warn_at, ssh)
    assert causes(warned) == ["host_disk_full"], explain(warned)
    assert warned.diagnosis[0].severity is Status.WARN and warned.exit_code == 1
    full = sandbox_target.model_copy(update={"disk_warn_percent": used, "disk_fail_percent": used})
    failed = await run_checks(full, ssh)
    assert causes(failed) == ["host_disk_full"] and failed.diagnosis[0].severity is Status.FAIL, explain(failed)
    assert any("pm2-logrotate" in line for line in failed.diagnosis[0].fix)
    # The rebuild action refuses to start on it, and says why (free disk at app_dir below the gate).
    gate = sandbox_target.model_copy(update={"rebuild_min_disk_mb": 10**6})
    with pytest.raises(actions.NotOffered) as refused:
        actions.plan("rebuild", gate, failed)
    assert "rebuild_min_disk_mb" in str(refused.value)
    assert actions.plan("rebuild", sandbox_target, failed).action == "rebuild"
