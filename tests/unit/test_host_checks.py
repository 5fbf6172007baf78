"""wt-host (issue 12 items 1 and 3), in-process: pm2.saved, pm2.startup and port.match's addresses over
FunctionTransport, fed with the healthy sandbox's captured outputs and one changed answer per test (the variants
the sandbox cannot produce here: a systemd host, a LAN-IP upstream, a name that resolves both ways)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from checks import commands
from checks.items.pm2_boot import unit_binaries
from checks.models import Status, TargetReport
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport
from checks.transport.mock import serve_streams
from tests.support.captured import TARGET, Replay, load, route_public_probes

Override = Callable[[tuple[str, ...]], CommandResult | None]
DUMP = f"{TARGET.pm2_home}/dump.pm2"


def stat_of(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The paths of a `stat -c FORMAT PATH...` argv (none for another command)."""
    return argv[3:] if argv[:1] == ("stat",) else ()


def stat_answer(argv: tuple[str, ...], present: dict[str, str], missing: tuple[str, ...]) -> CommandResult:
    """What GNU stat prints: a line per present path, a complaint per missing one, exit 1 if any is missing."""
    out = "".join(f"{p}|{present[p]}\n" for p in stat_of(argv) if p in present)
    err = "".join(f"stat: cannot statx '{p}': No such file or directory\n" for p in stat_of(argv) if p in missing)
    return done(argv, 1 if err else 0, out, err)


def done(argv: tuple[str, ...], status: int = 0, out: str = "", err: str = "") -> CommandResult:
    return CommandResult(argv, status, out, err, 1.0)


@pytest.fixture
def current(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FunctionTransport]]:
    box: dict[str, FunctionTransport] = {}
    route_public_probes(monkeypatch, lambda: box["transport"])
    yield box


async def healthy_with(box: dict[str, FunctionTransport], override: Override, only: tuple[str, ...] = ()) \
        -> TargetReport:
    fake = Replay(load("healthy"))

    def handler(argv: tuple[str, ...]) -> CommandResult:
        return override(argv) or fake.run(argv)

    box["transport"] = FunctionTransport(handler, tcp_handler=serve_streams(fake.connect))
    return await run_checks(TARGET, box["transport"], only)


def causes(report: TargetReport) -> list[str]:
    return [c.cause for c in report.diagnosis]


# -- pm2.saved ------------------------------------------------------------------------------------------------


async def test_the_healthy_capture_is_saved(current: dict[str, FunctionTransport]) -> None:
    report = await healthy_with(current, lambda _a: None, ("pm2",))
    saved = report.result("pm2.saved")
    assert saved is not None and saved.status is Status.OK, report.to_json_dict()
    assert TARGET.pm2_app in saved.details["saved_names"]
    assert causes(report) == []


async def test_no_dump_file_means_never_saved(current: dict[str, FunctionTransport]) -> None:
    def no_dump(argv: tuple[str, ...]) -> CommandResult | None:
        if DUMP in stat_of(argv):
            return stat_answer(argv, {}, stat_of(argv))
        if argv[:2] == ("grep", "-o"):
            return done(argv, 2, "", f"grep: {DUMP}: No such file or directory")
        return None

    report = await healthy_with(current, no_dump)
    assert causes(report) == ["pm2_not_saved"], report.to_json_dict()
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["reason"] == "no_dump"
    assert report.diagnosis[0].severity is Status.WARN and report.exit_code == 1
    assert report.diagnosis[0].fix[-1].endswith(" save")


async def test_an_app_missing_from_the_dump(current: dict[str, FunctionTransport]) -> None:
    def others(argv: tuple[str, ...]) -> CommandResult | None:
        return done(argv, 0, '"name":"billing"\n"name": "worker"\n') if argv[:2] == ("grep", "-o") else None

    report = await healthy_with(current, others)
    assert causes(report) == ["pm2_not_saved"]
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["reason"] == "not_in_dump"
    assert saved.details["saved_names"] == ["billing", "worker"]


async def test_an_unreadable_dump_is_judged_by_its_date_only(current: dict[str, FunctionTransport]) -> None:
    def denied(argv: tuple[str, ...]) -> CommandResult | None:
        return done(argv, 2, "", f"grep: {DUMP}: Permission denied") if argv[:2] == ("grep", "-o") else None

    report = await healthy_with(current, denied, ("pm2.saved",))
    saved = report.result("pm2.saved")
    assert saved is not None and saved.status is Status.OK and saved.details["saved_names"] is None


async def test_an_app_recreated_since_the_save(current: dict[str, FunctionTransport]) -> None:
    """`pm2 delete` + `pm2 start` after the save: the dump names the app, but with another unique_id."""
    def recreated(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("grep", "-o"):
            return done(argv, 0, f'"name":"{TARGET.pm2_app}"\n"unique_id":"00000000-0000-0000-0000-000000000000"\n')
        return None

    report = await healthy_with(current, recreated)
    assert causes(report) == ["pm2_not_saved"]
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["reason"] == "stale"


async def test_a_stop_and_start_after_the_save_is_still_saved(current: dict[str, FunctionTransport]) -> None:
    """`pm2 stop` + `pm2 start` resets created_at past the dump's date but keeps the unique_id: a reboot
    still brings the app back, so no warning (judging by the dates alone was a false alarm)."""
    def old(argv: tuple[str, ...]) -> CommandResult | None:
        return stat_answer(argv, {DUMP: "1000|812"}, (commands.SYSTEMD_RUN_DIR,)) if DUMP in stat_of(argv) else None

    report = await healthy_with(current, old)
    saved = report.result("pm2.saved")
    assert saved is not None and saved.status is Status.OK, report.to_json_dict()
    assert causes(report) == []


async def test_an_unreadable_dump_older_than_the_app_is_stale(current: dict[str, FunctionTransport]) -> None:
    """Only the dates speak when the dump cannot be read."""
    def old_and_denied(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("grep", "-o"):
            return done(argv, 2, "", f"grep: {DUMP}: Permission denied")
        return stat_answer(argv, {DUMP: "1000|812"}, (commands.SYSTEMD_RUN_DIR,)) if DUMP in stat_of(argv) else None

    report = await healthy_with(current, old_and_denied)
    assert causes(report) == ["pm2_not_saved"]
    saved = report.result("pm2.saved")
    assert saved is not None and saved.details["reason"] == "stale" and saved.details["saved_at"] == 1000


# -- pm2.startup ----------------------------------------------------------------------------------------------


def systemd_host(state: str, unit: str, present: tuple[str, ...]) -> Override:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if commands.SYSTEMD_RUN_DIR in stat_of(argv):
            fresh = str(2**40)  # a dump saved "in the future": pm2.saved stays ok on this host
            return stat_answer(argv, {commands.SYSTEMD_RUN_DIR: "1700000000|80", DUMP: f"{fresh}|812"}, ())
        if argv[:2] == ("systemctl", "is-enabled"):
            return done(argv, 0 if state == "enabled" else 1, f"{state}\n")
        if argv[:2] == ("systemctl", "cat"):
            return done(argv, 0 if unit else 1, unit, "" if unit else "No files found for pm2-wsbox.service.")
        if argv[0] == "stat" and all(p.startswith("/home/wsbox/.nvm/") for p in argv[3:]):
            return done(argv, 1, "".join(f"{p}|1700000000|10\n" for p in argv[3:] if p in present),
                        "stat: cannot statx: No such file or directory")
        return None

    return answer


UNIT = """# /etc/systemd/system/pm2-wsbox.service
[Service]
User=wsbox
Environment=PATH=/usr/bin:/home/wsbox/.nvm/versions/node/v18.20.0/bin:/usr/local/bin
Environment=PM2_HOME=/home/wsbox/.pm2
ExecStart=/home/wsbox/.nvm/versions/node/v18.20.0/lib/node_modules/pm2/bin/pm2 resurrect
"""
NODE18 = ("/home/wsbox/.nvm/versions/node/v18.20.0/bin",
          "/home/wsbox/.nvm/versions/node/v18.20.0/lib/node_modules/pm2/bin/pm2")


def test_unit_binaries_are_exec_start_and_the_node_dirs_of_path() -> None:
    assert unit_binaries(UNIT) == [NODE18[0], NODE18[1]]


async def test_no_systemd_skips_and_says_why(current: dict[str, FunctionTransport]) -> None:
    report = await healthy_with(current, lambda _a: None, ("pm2.startup",))
    startup = report.result("pm2.startup")
    assert startup is not None and startup.status is Status.SKIP and "systemd is not the init" in startup.summary
    assert causes(report) == [] and report.exit_code == 0


async def test_no_enabled_unit(current: dict[str, FunctionTransport]) -> None:
    report = await healthy_with(current, systemd_host("disabled", "", ()))
    assert causes(report) == ["pm2_startup_missing"], report.to_json_dict()
    startup = report.result("pm2.startup")
    assert startup is not None and startup.details["unit"] == "pm2-wsbox" and startup.details["state"] == "disabled"
    cause = report.diagnosis[0]
    assert cause.severity is Status.WARN and any(line.endswith(" startup") for line in cause.fix)


async def test_a_unit_pointing_at_a_removed_node(current: dict[str, FunctionTransport]) -> None:
    report = await healthy_with(current, systemd_host("enabled", UNIT, ()))
    assert causes(report) == ["pm2_startup_missing"]
    startup = report.result("pm2.startup")
    assert startup is not None and startup.details["missing"] == list(NODE18)


async def test_an_enabled_unit_with_its_node(current: dict[str, FunctionTransport]) -> None:
    report = await healthy_with(current, systemd_host("enabled", UNIT, NODE18), ("pm2.startup",))
    startup = report.result("pm2.startup")
    assert startup is not None and startup.status is Status.OK, report.to_json_dict()


# -- port.match: addresses -------------------------------------------------------------------------------------


def nginx_upstream(host: str, extra: Override = lambda _a: None) -> Override:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[1:2] == ("-T",):
            fake = Replay(load("healthy")).run(argv)
            text = fake.stdout.replace(f"proxy_pass http://127.0.0.1:{TARGET.app_port}",
                                       f"proxy_pass http://{host}:{TARGET.app_port}")
            assert text != fake.stdout
            return done(argv, fake.exit_status, text, fake.stderr)
        return extra(argv)

    return answer


async def test_localhost_resolving_both_ways_is_a_warning(current: dict[str, FunctionTransport]) -> None:
    def getent(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("getent", "ahosts"):
            return done(argv, 0, "::1 STREAM localhost\n::1 DGRAM\n127.0.0.1 STREAM localhost\n")
        return None

    report = await healthy_with(current, nginx_upstream("localhost", getent), ("port", "nginx"))
    match = report.result("port.match")
    assert match is not None and match.status is Status.WARN, report.to_json_dict()
    assert match.details["missed"] == ["::1"] and set(match.details["dialed"]) == {"::1", "127.0.0.1"}
    assert causes(report) == ["app_listen_address_mismatch"]
    assert report.diagnosis[0].severity is Status.WARN


async def test_localhost_resolving_to_ipv4_only_is_fine(current: dict[str, FunctionTransport]) -> None:
    def getent(argv: tuple[str, ...]) -> CommandResult | None:
        return done(argv, 0, "127.0.0.1 STREAM localhost\n") if argv[:2] == ("getent", "ahosts") else None

    report = await healthy_with(current, nginx_upstream("localhost", getent), ("port",))
    match = report.result("port.match")
    assert match is not None and match.status is Status.OK and causes(report) == []


async def test_a_lan_ip_upstream_while_the_app_is_on_loopback(current: dict[str, FunctionTransport]) -> None:
    def ip_addr(argv: tuple[str, ...]) -> CommandResult | None:
        if argv == commands.IP_ADDR_ARGV:
            return done(argv, 0, "1: lo    inet 127.0.0.1/8 scope host lo\n"
                                 "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\n")
        return None

    report = await healthy_with(current, nginx_upstream("10.0.0.5", ip_addr), ("port",))
    match = report.result("port.match")
    assert match is not None and match.status is Status.FAIL and match.details["side"] == "address"
    assert causes(report) == ["app_listen_address_mismatch"]


async def test_a_lan_ip_of_another_machine_is_no_address_claim(current: dict[str, FunctionTransport]) -> None:
    def ip_addr(argv: tuple[str, ...]) -> CommandResult | None:
        return done(argv, 0, "2: eth0    inet 10.0.0.6/24 scope global eth0\n") \
            if argv == commands.IP_ADDR_ARGV else None

    report = await healthy_with(current, nginx_upstream("10.0.0.5", ip_addr), ("port",))
    match = report.result("port.match")
    assert match is not None and match.status is Status.WARN and "missed" not in match.details
    assert "app_listen_address_mismatch" not in causes(report)
