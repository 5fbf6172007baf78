"""wt-host3 in-process: the disk-full and fd-exhausted sandbox modes replayed from their captures
(tests/fixtures/captured/modes/, recorded from the real sandbox by capture.py), and the cost of the new look at the
app's PM2 log directories: a command only where the logs are outside `$PM2_HOME/logs`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks import commands
from checks.models import Status, TargetReport
from checks.runner import run_checks
from checks.transport import FunctionTransport
from tests.support.captured import TARGET, load, replay_transport, route_public_probes

LOG_DIRS_SCRIPT = commands.log_dirs_usage(["/x"])[2]


@pytest.fixture
def public_through_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FunctionTransport]]:
    current: dict[str, FunctionTransport] = {}
    route_public_probes(monkeypatch, lambda: current["transport"])
    yield current


async def replay(mode: str, current: dict[str, FunctionTransport]) -> TargetReport:
    transport, fake = replay_transport(mode)
    current["transport"] = transport
    report = await run_checks(TARGET, transport)
    assert fake.uncaptured == [], "a command the capture did not see: re-run capture.py"
    return report


def ran_log_dirs_df(mode: str) -> bool:
    return any(c["argv"][:3] == ["sh", "-c", LOG_DIRS_SCRIPT] for c in load(mode)["commands"])


async def test_full_log_file_system_is_the_cause(public_through_fake: dict[str, FunctionTransport]) -> None:
    report = await replay("disk-full", public_through_fake)
    assert [c.cause for c in report.diagnosis] == ["host_disk_full"]
    disk = report.result("host.disk")
    assert disk is not None and disk.status is Status.FAIL
    (logs_fs,) = [fs for fs in disk.details["filesystems"] if "pm2_logs" in fs["holds"]]
    assert logs_fs["use_percent"] >= 98 and logs_fs["mount"] == disk.details["app_log_dirs"][0]
    assert logs_fs["mount"] not in (TARGET.app_dir, TARGET.pm2_home)
    biggest = disk.details["biggest_pm2_logs"][0]["file"]
    assert biggest.startswith(logs_fs["mount"] + "/") and biggest.endswith("-out.log")
    assert report.diagnosis[0].severity is Status.FAIL and biggest in report.diagnosis[0].summary


async def test_fd_limit_is_the_cause(public_through_fake: dict[str, FunctionTransport]) -> None:
    report = await replay("fd-exhausted", public_through_fake)
    assert [c.cause for c in report.diagnosis] == ["process_fd_exhausted"]
    fds = report.result("host.fds")
    assert fds is not None and fds.status is Status.FAIL and fds.details["emfile_lines"]
    assert {p["limit"] for p in fds.details["processes"]} == {64}


@pytest.mark.parametrize(("mode", "extra"), [("healthy", False), ("heap-oom", False), ("disk-full", True)])
def test_log_dirs_are_looked_at_only_when_elsewhere(mode: str, extra: bool) -> None:
    """The usual layout (logs in `$PM2_HOME/logs`) adds no command to the round; logs elsewhere add one df."""
    assert ran_log_dirs_df(mode) is extra
