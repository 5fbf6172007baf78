"""wt-host3 (issue 12 items 5-6) on the real sandbox over real SSH: the host faults that were only in-process.

- disk-full: the app's PM2 logs on a 4 MB tmpfs (mounted inside this sandbox's own workdir) that its out log
  filled -> `host_disk_full` (fail), from the real `df` of the directory the logs are in, naming that log;
- fd-exhausted: the app started under `prlimit --nofile=64:64`, leaking files until EMFILE -> `process_fd_exhausted`,
  with the real /proc/PID/limits and fd count;
- leaving either mode leaves a healthy sandbox (exit 0), the tmpfs unmounted.

A kernel OOM kill and a standalone build: tests/integration/test_host_real_modes.py (wt-modes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from checks.config import Target
from checks.models import Status
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.reports import causes, check_mode, explain, status
from tests.support.sandboxpkg import load_sandbox

pytestmark = pytest.mark.sandbox


async def test_a_full_log_file_system_is_named(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "disk-full")
    assert causes(report) == ["host_disk_full"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.FAIL and report.exit_code == 2, explain(report)
    # The app itself is fine: only its log file system is full.
    for cid in ("pm2.status", "port.listen", "http.local", "ws.local", "http.proxy", "ws.proxy"):
        assert status(report, cid) is Status.OK, explain(report)
    disk = report.result("host.disk")
    assert disk is not None
    mount = str(sandbox.diskfull_dir)
    assert mount.startswith(str(sandbox.workdir) + "/")  # this sandbox's own: several never collide
    full = [fs for fs in disk.details["filesystems"] if fs["mount"] == mount]
    assert len(full) == 1 and full[0]["holds"] == ["pm2_logs"] and full[0]["use_percent"] >= 98, disk.details
    assert disk.details["app_log_dirs"] == [mount]
    out_log = f"{mount}/{sandbox.app_name}-out.log"
    assert disk.details["biggest_pm2_logs"][0]["file"] == out_log, disk.details
    assert mount in cause.summary and out_log in cause.summary, cause.summary
    assert any("pm2-logrotate" in line for line in cause.fix), cause.fix

    await asyncio.to_thread(sandbox.set_mode, "healthy")
    assert not sandbox._diskfull_mounted()
    healed = await run_checks(sandbox_target, ssh)
    assert healed.exit_code == 0 and healed.diagnosis == (), explain(healed)
    healed_disk = healed.result("host.disk")
    assert healed_disk is not None and healed_disk.details["app_log_dirs"] == [], healed_disk.details


async def test_the_open_files_limit_is_named(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "fd-exhausted")
    assert causes(report) == ["process_fd_exhausted"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.FAIL and status(report, "pm2.status") is Status.OK, explain(report)
    fds = report.result("host.fds")
    assert fds is not None and fds.status is Status.FAIL
    limit = load_sandbox().FD_LIMIT
    limited = [p for p in fds.details["processes"] if p["limit"] == limit]
    assert limited, fds.details  # the real /proc/PID/limits of the app's processes
    assert max(p["open_fds"] or 0 for p in limited) >= 0.9 * limit, fds.details  # the leak holds them
    assert any("EMFILE" in line for line in fds.details["emfile_lines"]), fds.details
    assert f"of {limit} allowed" in cause.summary, cause.summary
    # What the leak breaks is its effect, not another cause: the probes are this cause's evidence.
    failing = {c.id for c in report.checks if c.status in (Status.FAIL, Status.ERROR)}
    assert failing <= set(cause.evidence), (failing, cause.evidence)

    await asyncio.to_thread(sandbox.set_mode, "healthy")
    healed = await run_checks(sandbox_target, ssh)
    assert healed.exit_code == 0 and healed.diagnosis == (), explain(healed)
    healed_fds = healed.result("host.fds")
    assert healed_fds is not None
    assert all((p["limit"] or 0) > limit for p in healed_fds.details["processes"]), healed_fds.details
