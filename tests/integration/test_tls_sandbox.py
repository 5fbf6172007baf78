"""TLS and redirects on the real sandbox (wt-tls): nginx serving certificates from the sandbox's own CA on a
second port, over real SSH. Each mode gets exactly its cause and no other; a healthy https site stays ok."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from checks.config import Target, parse_targets
from checks.models import Status
from checks.runner import run_checks
from checks.transport.ssh import SSHTransport
from tests.support.healthy import healthy_statuses
from tests.support.reports import causes, explain, status

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]


def tls_target(sandbox: Any, **update: Any) -> Target:
    """The https target of the TLS modes (public_url https://localhost:tls_port/, ca_file = the sandbox CA)."""
    (target,) = parse_targets(tomllib.loads(sandbox.tls_target_toml()), "sandbox-tls").targets
    return target.model_copy(update=update) if update else target


async def in_mode(sandbox: Any, mode: str) -> None:
    await asyncio.to_thread(sandbox.set_mode, mode)


async def test_healthy_https_is_all_ok_with_exit_0(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "https")
    target = tls_target(sandbox)
    report = await run_checks(target, ssh)
    assert {c.id: c.status for c in report.checks} == healthy_statuses(), explain(report)
    assert report.diagnosis == () and report.exit_code == 0
    tls = report.result("tls.certificate")
    assert tls is not None
    cert = tls.details["cert"]
    assert cert["sans"] == ["localhost", "IP:127.0.0.1"]
    assert "wscheck sandbox CA" in cert["issuer"]
    assert int(cert["serial"], 16) == sandbox.served_serial()
    assert 89 < tls.details["days_left"] <= 90
    # the file nginx names holds the served certificate: read over SSH, same serial
    (disk,) = tls.details["disk"]
    assert disk["path"] == f"{sandbox.tls_dir}/site.pem" and disk["cert"]["serial"] == cert["serial"]


async def test_untrusted_chain_without_the_ca(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "https")
    report = await run_checks(tls_target(sandbox, ca_file=""), ssh)
    assert causes(report) == ["tls_certificate_invalid"], explain(report)
    tls = report.result("tls.certificate")
    assert tls is not None and tls.details["verify_error"] == "untrusted"
    assert "chain is not trusted" in report.diagnosis[0].summary


async def test_expired_certificate_is_not_nginx_not_running(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "tls-expired")
    report = await run_checks(tls_target(sandbox), ssh)
    assert causes(report) == ["tls_certificate_invalid"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.FAIL
    assert "has expired" in cause.summary and "nginx is running" in cause.summary
    assert set(cause.evidence) == {"tls.certificate", "http.proxy", "ws.proxy"}
    http = report.result("http.proxy")
    assert http is not None and http.details.get("tls_error") == "expired" and not http.details.get("refused")
    # no certbot in the sandbox: the fix says "renew" in words, then nginx -t and the reload
    assert cause.fix[0].startswith("renew the certificate for localhost")
    assert any(" -t" in line for line in cause.fix) and any("reload" in line for line in cause.fix)
    assert status(report, "nginx.websocket") is Status.OK


async def test_wrong_name(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "tls-wrong-name")
    report = await run_checks(tls_target(sandbox), ssh)
    assert causes(report) == ["tls_certificate_invalid"], explain(report)
    tls = report.result("tls.certificate")
    assert tls is not None and tls.details["verify_error"] == "wrong_name"
    assert tls.details["cert"]["sans"] == ["chat.other.test"]
    assert "for another name" in report.diagnosis[0].summary


async def test_expiring_warns(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "tls-expiring")
    report = await run_checks(tls_target(sandbox), ssh)
    assert causes(report) == ["tls_certificate_expiring"], explain(report)
    assert report.diagnosis[0].severity is Status.WARN
    assert status(report, "tls.certificate") is Status.WARN
    assert report.exit_code == 1
    assert {c.id: c.status for c in report.checks if c.id != "tls.certificate"} == \
        {cid: status for cid, status in healthy_statuses().items() if cid != "tls.certificate"}, explain(report)
    # a smaller warning window: the same certificate is fine
    relaxed = await run_checks(tls_target(sandbox, tls_expiry_warning=3), ssh)
    assert relaxed.diagnosis == () and relaxed.exit_code == 0, explain(relaxed)


async def test_renewed_but_not_reloaded(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "tls-not-reloaded")
    report = await run_checks(tls_target(sandbox), ssh)
    # the served one expired, but the fix is the reload (the file is already renewed): one cause, fail
    assert causes(report) == ["tls_certificate_not_reloaded"], explain(report)
    cause = report.diagnosis[0]
    assert cause.severity is Status.FAIL
    assert f"{sandbox.tls_dir}/site.pem" in cause.summary
    assert any(line.endswith("-s reload") or "reload" in line for line in cause.fix)
    assert not any("renew" in line for line in cause.fix)
    tls = report.result("tls.certificate")
    assert tls is not None and tls.details["not_reloaded"]["serial"] != tls.details["cert"]["serial"]
    # a reload fixes it (what the reload-nginx action runs); wait until no old worker serves the old one
    renewed = int(tls.details["not_reloaded"]["serial"], 16)
    await asyncio.to_thread(sandbox._reload_nginx, "https", lambda: sandbox.served_serial() == renewed,
                            "nginx to serve the renewed certificate")
    after = await run_checks(tls_target(sandbox), ssh)
    assert after.diagnosis == (), explain(after)


async def test_ws_upgrade_redirected_http_to_https(sandbox: Any, sandbox_target: Target, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "ws-redirect")
    report = await run_checks(sandbox_target, ssh)
    assert causes(report) == ["ws_upgrade_redirected"], explain(report)
    cause = report.diagnosis[0]
    ws = report.result("ws.proxy")
    assert ws is not None and ws.details["status"] == 301
    assert ws.details["location"] == f"https://127.0.0.1:{sandbox.tls_port}/ws"
    assert ws.details["to_https"] is True
    site = Path(sandbox.site_file)
    text = await asyncio.to_thread(site.read_text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.strip() == "location /ws {")
    assert ws.details["sent_by"]["location"] == f"{site}:{line}"
    assert "http->https redirect" in cause.summary and f"{site}:{line}" in cause.summary
    assert "wss://" in " ".join(cause.fix)
    # the HTTP probe is not redirected on /, and nothing else fails
    assert status(report, "http.proxy") is Status.OK
    expected = {**healthy_statuses(), "ws.proxy": Status.FAIL, "nginx.websocket": Status.FAIL,
                "port.match": Status.SKIP}
    assert {c.id: c.status for c in report.checks} == expected, explain(report)
    assert set(cause.evidence) == {"ws.proxy", "nginx.websocket"}


async def test_http_probe_follows_same_site_redirects(sandbox: Any, ssh: SSHTransport) -> None:
    await in_mode(sandbox, "ws-redirect")
    # http_path /ws on the plain port: the HTTP probe follows the 301 to https and says so
    target = tls_target(sandbox).model_copy(update={"public_url": f"http://{sandbox.host}:{sandbox.http_port}/",
                                                    "http_path": "/ws"})
    report = await run_checks(target, ssh, ["http.proxy"])
    http = report.result("http.proxy")
    assert http is not None, explain(report)
    assert http.details["redirects"] == [{"status": 301, "from": f"http://127.0.0.1:{sandbox.http_port}/ws",
                                          "to": f"https://127.0.0.1:{sandbox.tls_port}/ws"}], explain(report)
    assert http.details["final_url"] == f"https://127.0.0.1:{sandbox.tls_port}/ws"
    if http.status is Status.OK:
        assert "after 1 same-site redirect(s)" in http.summary


def cli_check(config: Path, **env: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "WSCHECK_CONFIG": "", "WSCHECK_TLS_EXPIRY_WARNING": "", **env},
    )
    (line,) = proc.stdout.splitlines()
    data: dict[str, Any] = json.loads(line)
    return proc.returncode, data


def test_cli_exit_codes_and_the_expiry_variable(sandbox: Any) -> None:
    """`wscheck check` on the https target: 0 when healthy, 1 for an expiring certificate, 0 again when
    WSCHECK_TLS_EXPIRY_WARNING says 3 days are enough, 2 for an expired one."""
    sandbox.set_mode("https")
    config = Path(sandbox.workdir) / "wscheck-tls.toml"
    config.write_text(sandbox.tls_target_toml())
    code, data = cli_check(config)
    assert code == 0 and data["diagnosis"] == [], data
    sandbox.set_mode("tls-expiring")
    code, data = cli_check(config)
    assert code == 1 and [d["cause"] for d in data["diagnosis"]] == ["tls_certificate_expiring"], data
    code, data = cli_check(config, WSCHECK_TLS_EXPIRY_WARNING="3")
    assert code == 0 and data["diagnosis"] == [], data
    sandbox.set_mode("tls-expired")
    code, data = cli_check(config)
    assert code == 2 and [d["cause"] for d in data["diagnosis"]] == ["tls_certificate_invalid"], data
