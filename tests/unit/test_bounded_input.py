"""Issue 13 defects 7, 13, 14 in process: size caps, no false incident from a big config, logs read in bytes.

The captured healthy sandbox answers every command except the one under test (tests/support/captured.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from checks.facts import last_lines
from checks.models import Status
from checks.parsers import ParseError
from checks.parsers.limits import LOG_TAIL_BYTES, MAX_JLIST_BYTES, MAX_NGINX_STATEMENTS, TooLarge
from checks.parsers.nginx import parse_dump
from checks.parsers.pm2 import parse_jlist
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport
from tests.support.captured import TARGET, Replay, load, route_public_probes, serve_streams


def geo_dump(entries: int) -> str:
    head = load("healthy")
    (dump,) = [c["stdout"] for c in head["commands"] if c["argv"][-3:-2] == ["-T"] or "-T" in c["argv"]]
    body = "".join(f" 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32 1;\n" for i in range(entries))
    return dump + f"# configuration file /etc/nginx/conf.d/geo.conf:\ngeo $g {{\n default 0;\n{body}}}\n"


@pytest.fixture
def current(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FunctionTransport]]:
    holder: dict[str, FunctionTransport] = {}
    route_public_probes(monkeypatch, lambda: holder["transport"])
    yield holder


def healthy_but(current: dict[str, FunctionTransport], override: dict[str, CommandResult | str]) -> FunctionTransport:
    """The healthy capture, with the stdout of commands whose argv contains a key replaced."""
    fake = Replay(load("healthy"))

    def run(argv: tuple[str, ...]) -> CommandResult:
        for word, value in override.items():
            if word in argv:
                return value if isinstance(value, CommandResult) else CommandResult(argv, 0, value, "", 1.0)
        return fake.run(argv)

    transport = FunctionTransport(run, tcp_handler=serve_streams(fake.connect))
    current["transport"] = transport
    return transport


def test_junk_from_pm2_jlist_costs_little_cpu() -> None:
    """200k lines of `[1,` once cost 35 s of CPU, on the event loop."""
    started = time.process_time()
    with pytest.raises(ParseError):
        parse_jlist("[1,\n" * 200_000)
    assert time.process_time() - started < 2.0


def test_jlist_over_the_cap_is_refused_unread() -> None:
    with pytest.raises(TooLarge):
        parse_jlist(" " * (MAX_JLIST_BYTES + 1))


def test_a_config_over_the_statement_budget_is_refused_before_lexing() -> None:
    started = time.process_time()
    with pytest.raises(TooLarge) as caught:
        parse_dump(geo_dump(MAX_NGINX_STATEMENTS + 10_000))
    assert time.process_time() - started < 1.0
    assert caught.value.unit == "statements" and caught.value.size > MAX_NGINX_STATEMENTS


async def test_a_config_too_large_to_model_is_warn_and_no_cause(current: dict[str, FunctionTransport]) -> None:
    transport = healthy_but(current, {"-T": geo_dump(260_000)})
    report = await run_checks(TARGET, transport)
    statuses = {c.id: c.status for c in report.checks}
    assert Status.ERROR not in statuses.values() and Status.FAIL not in statuses.values(), statuses
    warned = [c for c in report.checks if c.status is Status.WARN]
    assert warned and all("too large to model" in c.summary for c in warned), [c.summary for c in warned]
    assert all(c.details["error_kind"] == "too_large" for c in warned)
    assert not report.diagnosis, "a config the bot cannot model is not a cause"


async def test_logs_are_read_in_bytes_and_a_giant_line_is_cut(current: dict[str, FunctionTransport]) -> None:
    giant = "x" * LOG_TAIL_BYTES  # what `tail -c` returns from the end of a 30 MB line
    transport = healthy_but(current, {"tail": giant})
    report = await run_checks(TARGET, transport, ["pm2.logs"])
    tails = [argv for argv in transport.calls if argv[0] == "tail"]
    assert tails and all(argv[1:3] == ("-c", str(LOG_TAIL_BYTES)) for argv in tails), tails
    (result,) = report.checks
    # the line counts as what it is (an error-log line), shortened: nothing of it beyond a screen
    assert result.status in (Status.OK, Status.WARN) and len(result.summary) < 1000, result


def test_last_lines_drops_the_partial_first_line_of_a_full_read() -> None:
    text = "partial\n" + "".join(f"line {i}\n" for i in range(300))
    assert last_lines(text, 200, cut=len(text)).splitlines() == [f"line {i}" for i in range(100, 300)]
    assert last_lines("a\nb\n", 200, cut=LOG_TAIL_BYTES) == "a\nb\n"  # a short file is whole
    assert last_lines("x" * 10, 5, cut=10) == "x" * 10  # one cut line is kept (scan_log shortens it)


async def test_the_same_dump_is_modelled_once_and_failures_are_not_kept() -> None:
    import asyncio
    import threading

    from checks.offload import parse_off_loop

    seen: list[str] = []

    def parse(text: str) -> str:
        assert threading.current_thread() is not threading.main_thread(), "parsed on the event loop's thread"
        seen.append(text)
        if text.startswith("bad"):
            raise ParseError("bad")
        return text.upper()

    same = await asyncio.gather(*(parse_off_loop(parse, "abc", cache=True) for _ in range(5)))
    assert same == ["ABC"] * 5 and seen == ["abc"], "concurrent callers share one parse"
    assert await parse_off_loop(parse, "abc", cache=True) == "ABC" and seen == ["abc"]
    for _ in range(2):
        with pytest.raises(ParseError):
            await parse_off_loop(parse, "bad", cache=True)
    assert seen.count("bad") == 2, "a failure is said again from a fresh parse"
    assert await parse_off_loop(parse, "xyz") == "XYZ" and await parse_off_loop(parse, "xyz") == "XYZ"
    assert seen.count("xyz") == 2, "no cache unless asked"
