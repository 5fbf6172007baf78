"""pm2.logs: lines older than the app's current start (PM2's pm_uptime) are not "recent" (issue 9 part 7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from checks.config import Target
from checks.facts import Facts
from checks.items.pm2 import pm2_logs, since_start
from checks.models import Status
from checks.transport import CommandResult, FunctionTransport

TARGET = Target.model_validate({"name": "web", "host": "203.0.113.10", "pm2_app": "web", "app_port": 3003,
                                "app_dir": "/srv/web"})
ERR, OUT = "/home/deploy/.pm2/logs/web-error.log", "/home/deploy/.pm2/logs/web-out.log"
START = datetime(2026, 12, 6, 14, 0, 0, tzinfo=UTC)


def stamp(at: datetime, tz: timedelta = timedelta(0)) -> str:
    """PM2 `--time` prefix: the target's local time, no offset."""
    return (at + tz).strftime("%Y-%m-%dT%H:%M:%S") + ": "


def jlist() -> str:
    return json.dumps([{"name": "web", "pm_id": 0, "pid": 4242, "pm2_env": {
        "status": "online", "pm_uptime": int(START.timestamp() * 1000), "restart_time": 1,
        "pm_err_log_path": ERR, "pm_out_log_path": OUT}}])


def transport(err_text: str, out_text: str, mtime: datetime, err_mtime: datetime) -> FunctionTransport:
    def handler(argv: tuple[str, ...]) -> CommandResult:
        if "jlist" in argv:
            return CommandResult(argv, 0, jlist(), "")
        if argv[0] == "tail":
            return CommandResult(argv, 0, err_text if argv[-1] == ERR else out_text, "")
        if argv[0] == "stat":
            err_when, when = int(err_mtime.timestamp()), int(mtime.timestamp())
            return CommandResult(argv, 0, f"{ERR}|{err_when}|100\n{OUT}|{when}|100\n", "")
        raise AssertionError(argv)

    return FunctionTransport(handler)


async def check(err_text: str, out_text: str = "", mtime: datetime = START + timedelta(minutes=5),
                err_mtime: datetime | None = None) -> tuple[Status, str, dict[str, object]]:
    """`mtime` is when each log file last changed (err_mtime: the error log's, if different)."""
    facts = Facts(TARGET, transport(err_text, out_text, mtime, err_mtime or mtime), ["pm2.logs"])
    result = await pm2_logs(facts)
    return result.status, result.summary, result.details


async def test_an_error_from_before_the_start_is_not_recent() -> None:
    """The out log changed since the start (so the whole-file mtime rule reads it), but its error is older."""
    for tz in (timedelta(0), timedelta(hours=9), timedelta(hours=-5, minutes=-30)):
        old, new = START - timedelta(minutes=10), START + timedelta(seconds=3)
        out = (f"{stamp(old, tz)}Error: listen EADDRINUSE: address already in use :::3003\n"
               f"{stamp(old, tz)}    at Server.setupListenHandle (node:net:1817:16)\n"
               f"{stamp(new, tz)}ready on http://127.0.0.1:3003\n")
        status, summary, details = await check("", out, mtime=new, err_mtime=START - timedelta(hours=2))
        assert status is Status.OK, (tz, summary)
        assert details["lines_before_start"] == 2 and details["error_lines"] == []
        assert details["dated_files"] == [OUT]


async def test_an_error_after_the_start_is_recent_and_its_trace_comes_along() -> None:
    err = (f"{stamp(START - timedelta(hours=1))}Error: old failure\n"
           f"{stamp(START + timedelta(minutes=2))}Error: Cannot find module 'left-pad'\n"
           "    at Module._resolveFilename (node:internal/modules/cjs/loader:1145:15)\n")
    status, _summary, details = await check(err, mtime=START + timedelta(minutes=2))
    assert status is Status.WARN
    assert "left-pad" in json.dumps(details["error_lines"]) and "old failure" not in json.dumps(details)
    assert details["lines_before_start"] == 1


async def test_without_timestamps_the_ages_are_unknown_and_lines_are_kept() -> None:
    status, _summary, details = await check("Error: something broke\n")
    assert status is Status.WARN and details["dated_files"] == []


def test_since_start_with_explicit_offsets_needs_no_mtime() -> None:
    text = "2026-12-06 22:50:00 +09:00: Error: old\n2026-12-06 23:00:05 +09:00: Error: new\n"
    kept, dropped, known = since_start(text, START.timestamp(), None)
    assert (kept, dropped, known) == ("2026-12-06 23:00:05 +09:00: Error: new", 1, True)
