"""Every seed failure, over real SSH, against the real sandbox stack: failing checks *and* the cause."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checks.config import Target
from checks.models import Status, TargetReport
from checks.registry import CHECK_IDS
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.healthy import healthy_statuses
from tests.support.reports import bad, causes, check_mode, explain

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]


def statuses(report: TargetReport) -> dict[str, Status]:
    return {c.id: c.status for c in report.checks}


async def test_healthy_stack_is_all_ok_with_no_cause(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "healthy")
    assert statuses(report) == healthy_statuses(), explain(report)
    assert report.diagnosis == (), explain(report)
    assert report.exit_code == 0
    listen = report.result("port.listen")
    assert listen is not None and sandbox_target.pm2_app in listen.summary


async def test_port_mismatch(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "port-mismatch")
    assert {"port.match", "port.listen", "http.local", "ws.local", "http.proxy", "ws.proxy"} <= bad(report)
    assert "pm2.status" not in bad(report)
    assert causes(report) == ["port_mismatch"], explain(report)
    cause = report.diagnosis[0]
    port, alt = sandbox_target.app_port, sandbox.alt_port
    assert cause.summary == f"nginx proxies to {port} but {sandbox_target.pm2_app} listens on {alt}"
    assert any(f"PORT={port}" in step and "--update-env" in step for step in cause.fix)
    assert any(step.endswith("pm2 save") for step in cause.fix)


async def test_no_build(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "no-build")
    assert {"next.build", "pm2.status", "port.listen", "http.proxy", "ws.proxy"} <= bad(report), explain(report)
    assert causes(report) == ["next_build_missing"], explain(report)
    pm2 = report.result("pm2.status")
    assert pm2 is not None and "errored" in pm2.summary
    logs = report.result("pm2.logs")
    assert logs is not None and "no_production_build" in logs.details["known"], explain(report)


async def test_nginx_without_upgrade(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-no-upgrade")
    assert bad(report) == {"nginx.websocket", "ws.proxy"}, explain(report)
    assert causes(report) == ["nginx_upgrade_headers_missing"]
    fix = "\n".join(report.diagnosis[0].fix)
    assert "proxy_set_header Upgrade $http_upgrade;" in fix
    assert "proxy_http_version 1.1;" in fix


async def test_nginx_invalid(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-invalid")
    assert bad(report) == {"nginx.syntax"}, explain(report)
    assert statuses(report)["nginx.websocket"] is Status.SKIP
    assert causes(report) == ["nginx_config_invalid"]
    syntax = report.result("nginx.syntax")
    assert syntax is not None and syntax.details["file"] and syntax.details["line"]


async def test_port_conflict(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "port-conflict")
    assert {"port.conflict", "port.listen", "pm2.status"} <= bad(report), explain(report)
    assert causes(report) == ["port_conflict"], explain(report)
    logs = report.result("pm2.logs")
    assert logs is not None and "eaddrinuse" in logs.details["known"]


async def test_pm2_stopped(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "pm2-stopped")
    assert {"pm2.status", "port.listen", "http.local", "ws.local", "http.proxy", "ws.proxy"} <= bad(report)
    assert causes(report) == ["pm2_not_online"], explain(report)
    assert "stopped" in report.diagnosis[0].summary


async def test_dev_mode_is_reported(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "dev-mode")
    build = report.result("next.build")
    assert build is not None and build.status is Status.WARN and build.details["mode"] == "dev", explain(report)
    assert bad(report) == set(), explain(report)
    assert report.exit_code == 1


async def test_unreachable_port_is_target_unreachable(sandbox_target: Target) -> None:
    target = sandbox_target.model_copy(update={"port": _closed_port(), "connect_timeout": 3.0})
    report = await run_checks(target, SSHTransport(target))
    assert causes(report) == ["target_unreachable"], explain(report)
    assert report.diagnosis[0].summary.startswith("the bot cannot see the server")
    assert report.exit_code == 3
    for cid in ("pm2.status", "nginx.syntax", "port.listen"):
        result = report.result(cid)
        assert result is not None and result.status is Status.ERROR


async def test_unknown_host_key_is_refused(sandbox_target: Target, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = sandbox_target.model_copy(update={"known_hosts": str(empty)})
    report = await run_checks(target, SSHTransport(target), ["pm2"])
    pm2 = report.result("pm2.status")
    assert pm2 is not None and pm2.status is Status.ERROR
    assert "host key" in pm2.summary and "not trusted" in pm2.summary
    assert causes(report) == ["target_unreachable"]


async def test_connection_is_reused_and_commands_are_concurrent(
    sandbox: Any, sandbox_target: Target, ssh: SSHTransport
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    before = ssh.connects
    reports = await asyncio.gather(*(run_checks(sandbox_target, ssh) for _ in range(3)))
    assert all(r.exit_code == 0 for r in reports), explain(reports[0])
    assert ssh.connects - before <= 1


def test_cli_json_names_the_cause(sandbox: Any, sandbox_config_file: Path) -> None:
    sandbox.set_mode("pm2-stopped")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "--json", "--config", str(sandbox_config_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "WSCHECK_CONFIG": ""},
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stdout.splitlines()
    data = json.loads(line)
    assert data["target"] == "sandbox"
    assert data["status"] == "fail"
    assert [d["cause"] for d in data["diagnosis"]] == ["pm2_not_online"]
    assert {c["id"] for c in data["checks"]} == set(CHECK_IDS)
    assert set(data["checks"][0]) == {"id", "status", "summary", "duration_ms", "details"}
    sandbox.set_mode("healthy")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "sandbox", "--only", "pm2", "--only", "nginx.syntax",
         "--config", str(sandbox_config_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pm2.status" in proc.stdout and "nginx.syntax" in proc.stdout and "ws.proxy" not in proc.stdout


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
