"""The whole middle in-process: `run_checks()` -> `diagnose()` for every sandbox mode, over FunctionTransport fed
with the real commands' captured outputs (tests/fixtures/captured/modes/, written by capture.py there). The probe
streams are served by plain functions from the captured bytes. The same causes as the sandbox tests
(tests/integration/test_checks_sandbox.py), in seconds, with no machine set-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks.models import Status, TargetReport
from checks.runner import run_checks
from checks.transport import FunctionTransport
from tests.support.captured import TARGET, Replay, load, mode_target, replay_transport, route_public_probes
from tests.support.healthy import healthy_statuses

#: The capture's target with a short probe timeout: app-hung's silent peers are waited on for this long instead of the
#: production 5 s (it is the target's `probe_timeout` setting, so the same code path times out). The replayed peers
#: answer in-process within milliseconds (a whole mode replays in ~20 ms), so 0.5 s leaves a wide margin on a loaded
#: machine; app-hung still reaches app_unresponsive only through the probes' own TimeoutError.
FAST = TARGET.model_copy(update={"probe_timeout": 0.5})

#: What tests/integration/test_checks_sandbox.py asserts for each mode.
EXPECTED = {
    "healthy": [],
    "port-mismatch": ["port_mismatch"],
    "no-build": ["next_build_missing"],
    "nginx-no-upgrade": ["nginx_upgrade_headers_missing"],
    "nginx-invalid": ["nginx_config_invalid"],
    "port-conflict": ["port_conflict"],
    "pm2-stopped": ["pm2_not_online"],
    "dev-mode": [],
    # wt-host (issue 12)
    "app-ipv6-only": ["app_listen_address_mismatch"],
    "app-hung": ["app_unresponsive"],
    "pm2-not-saved": ["pm2_not_saved"],
    "pm2-instance-stopped": ["pm2_not_online"],  # a warning: the other instance serves
    "pm2-killed": ["pm2_not_online"],  # resurrect: the saved list has the app
    "app-outside-pm2": ["app_outside_pm2"],  # a warning: the app serves, PM2 does not supervise it
    "pm2-started-twice": ["pm2_not_online"],  # a warning: the duplicate to delete, the first copy serves
    # wt-nginxrt
    "nginx-wrong-server": ["nginx_wrong_server"],
    "nginx-ws-static": ["nginx_ws_not_proxied"],
    "nginx-ws-path-rewritten": ["ws_path_routing_mismatch"],
    "nginx-reload-pending": ["nginx_reload_pending"],
    "nginx-worker-connections": ["connection_capacity_exhausted"],
    # wt-host2 (tests/integration/test_host_sandbox.py)
    "restart-loop": ["pm2_restart_loop_online"],
    "heap-oom": ["host_out_of_memory"],
    # wt-host3 (tests/integration/test_host_real_faults.py)
    "disk-full": ["host_disk_full"],
    "fd-exhausted": ["process_fd_exhausted"],
    # wt-modes (tests/integration/test_host_real_modes.py)
    "kernel-oom": ["host_out_of_memory"],
    "static-missing": ["next_static_assets_missing"],
}


@pytest.fixture
def public_through_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FunctionTransport]]:
    current: dict[str, FunctionTransport] = {}
    route_public_probes(monkeypatch, lambda: current["transport"])
    yield current


async def replay(mode: str, current: dict[str, FunctionTransport]) -> tuple[TargetReport, Replay]:
    transport, fake = replay_transport(mode)
    current["transport"] = transport
    return await run_checks(mode_target(mode, FAST), transport), fake


@pytest.mark.parametrize("mode", list(EXPECTED))
async def test_every_mode_diagnoses_as_on_the_real_sandbox(mode: str,
                                                          public_through_fake: dict[str, FunctionTransport]) -> None:
    report, fake = await replay(mode, public_through_fake)
    assert fake.uncaptured == [], "a command the capture did not see: re-run capture.py"
    assert [c.cause for c in report.diagnosis] == EXPECTED[mode], report.to_json_dict()
    assert [c.cause for c in report.diagnosis] == load(mode)["causes"]
    if mode == "healthy":  # captured in a container: pm2.startup says systemd is not the init there
        assert {c.id: c.status for c in report.checks} == healthy_statuses(systemd=False), report.to_json_dict()
    if mode == "app-hung":  # the diagnosis came from the probes' own timeout, the setting's value
        for cid in ("http.local", "ws.local"):
            result = report.result(cid)
            assert result is not None and result.details["no_answer"] is True, report.to_json_dict()
            assert result.details["timeout"] == FAST.probe_timeout
    if mode == "dev-mode":
        build = report.result("next.build")
        assert build is not None and build.status is Status.WARN and build.details["mode"] == "dev"


async def test_replay_sees_the_same_statuses_as_the_capture(public_through_fake: dict[str, FunctionTransport]) -> None:
    for mode in EXPECTED:
        report, _ = await replay(mode, public_through_fake)
        assert {c.id: c.status.value for c in report.checks} == load(mode)["statuses"], mode
