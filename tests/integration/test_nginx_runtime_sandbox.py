"""Issue 11 on the real nginx (wt-nginxrt): the public host on another server block, nginx answering /ws itself,
a fix on disk never reloaded, nginx out of worker_connections. Each mode gets exactly its cause and no other, over
real SSH; the healthy stack after each stays all ok with exit 0 (the heal reloads what it rewrote)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from checks.config import Target
from checks.models import Status
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.healthy import healthy_statuses
from tests.support.reports import bad, check_mode, explain
from tests.support.sandboxpkg import load_sandbox

pytestmark = pytest.mark.sandbox


async def assert_healthy(sandbox: Any, target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, target, ssh, "healthy")
    assert {c.id: c.status for c in report.checks} == healthy_statuses(), explain(report)
    assert report.diagnosis == () and report.exit_code == 0, explain(report)


async def test_wrong_server_block(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-wrong-server")
    assert [c.cause for c in report.diagnosis] == ["nginx_wrong_server"], explain(report)
    cause = report.diagnosis[0]
    site = str(sandbox.site_file)
    # both blocks, with file and line: the 404 default_server nginx picks and the app's block
    assert "server catch-all.invalid" in cause.summary and "server chat.example.test" in cause.summary
    assert f"{site}:3)" in cause.summary, cause.summary
    assert bad(report) == {"nginx.websocket", "port.match", "http.proxy", "ws.proxy"}, explain(report)
    assert set(cause.evidence) == bad(report)
    await assert_healthy(sandbox, sandbox_target, ssh)


async def test_ws_path_answered_by_nginx(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-ws-static")
    assert [c.cause for c in report.diagnosis] == ["nginx_ws_not_proxied"], explain(report)
    assert bad(report) == {"nginx.websocket", "port.match", "ws.proxy"}, explain(report)
    summary = report.diagnosis[0].summary
    assert "location /ws" in summary and "static files" in summary, summary
    await assert_healthy(sandbox, sandbox_target, ssh)


async def test_ws_path_handed_to_the_app_as_another_path(sandbox: Any, sandbox_target: Target,
                                                        ssh: SSHTransport) -> None:
    """A12: `proxy_pass http://127.0.0.1:PORT/;` in `location /ws`: the headers are all there, the app answers /ws
    directly, and nginx hands it `/`: the route model says so, with the line to change."""
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-ws-path-rewritten")
    assert [c.cause for c in report.diagnosis] == ["ws_path_routing_mismatch"], explain(report)
    assert bad(report) == {"ws.proxy"}, explain(report)
    websocket = report.result("nginx.websocket")
    assert websocket is not None and websocket.details["path"] == "/ws" and websocket.details["upstream_path"] == "/"
    cause = report.diagnosis[0]
    assert f"{sandbox.site_file}:" in cause.summary and "/ws" in cause.summary, cause.summary
    assert any(f"proxy_pass http://127.0.0.1:{sandbox.app_port};" in str(line) for line in cause.fix), cause.fix
    await assert_healthy(sandbox, sandbox_target, ssh)


async def test_fix_on_disk_never_reloaded(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-reload-pending")
    assert [c.cause for c in report.diagnosis] == ["nginx_reload_pending"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.FAIL and set(cause.evidence) == {"nginx.reload", "ws.proxy"}, explain(report)
    reload = report.result("nginx.reload")
    assert reload is not None and reload.status is Status.WARN
    assert [p["file"] for p in reload.details["pending"]] == [str(sandbox.site_file)]
    assert reload.details["pending"][0]["mtime"] > reload.details["loaded_at"] + 1
    websocket = report.result("nginx.websocket")
    assert websocket is not None and websocket.status is Status.OK  # the disk is right, nginx runs the old one
    assert any("reload" in line for line in cause.fix), cause.fix
    await assert_healthy(sandbox, sandbox_target, ssh)


async def test_worker_connections_exhausted(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    report = await check_mode(sandbox, sandbox_target, ssh, "nginx-worker-connections")
    assert [c.cause for c in report.diagnosis] == ["connection_capacity_exhausted"], explain(report)
    errors = report.result("nginx.errors")
    assert errors is not None and errors.status is Status.FAIL
    assert errors.details["counts"].get("worker_connections", 0) >= 1
    assert errors.details["worker_connections"] == 2
    assert "2 worker_connections are not enough" in report.diagnosis[0].summary
    assert bad(report) == {"nginx.errors", "http.proxy", "ws.proxy"}, explain(report)
    await assert_healthy(sandbox, sandbox_target, ssh)


async def test_port_mismatch_has_the_refused_upstream_as_evidence(sandbox: Any, sandbox_target: Target,
                                                                 ssh: SSHTransport) -> None:
    """The error log says which address nginx dialled and was refused on."""
    await asyncio.to_thread(sandbox.set_mode, "port-mismatch")
    # a user's request first (the checks' own probes run concurrently with the log tail)
    module = load_sandbox()
    assert await asyncio.to_thread(module.http_status, sandbox.http_port) == 502
    report = await run_checks(sandbox_target, ssh)
    assert [c.cause for c in report.diagnosis] == ["port_mismatch"], explain(report)
    errors = report.result("nginx.errors")
    assert errors is not None and errors.status is Status.OK, explain(report)
    assert f"127.0.0.1:{sandbox_target.app_port}" in errors.details["upstreams_refused"], explain(report)
    assert "nginx.errors" in report.diagnosis[0].evidence
    await assert_healthy(sandbox, sandbox_target, ssh)
