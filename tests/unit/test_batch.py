"""wt-perf: commands of one round run as one batch script; every command's result is exactly its own.

The script runs in a real `sh` here (the target's shell is a POSIX sh too), and what it prints is split back in
small chunks, as the SSH channel delivers it.
"""

from __future__ import annotations

import asyncio
import random
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from checks import commands
from checks.facts import Facts
from checks.parsers.limits import LOG_TAIL_BYTES
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport
from checks.transport.batch import RENICE, BatchReader, batch_outputs, batch_script, new_nonce, split_script
from checks.transport.mock import serve_streams
from tests.support.captured import TARGET, Replay, load, route_public_probes

COMMANDS = [
    ["echo", "plain"],
    ["printf", "no newline at the end"],
    ["sh", "-c", "echo to stderr >&2; printf partial >&2; exit 3"],
    ["cat", "/nonexistent/wscheck-batch-test"],
    ["printf", ""],
    ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; printf '\\n\\n'"],
    # a line that looks like a boundary, with another nonce: it is output like any other
    ["printf", "\\n0123456789abcdef01234567 7 0\\n"],
    ["printf", "%s\\n", "quotes ' \" $HOME `id` ; | & stay text"],
]


def alone(argv: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def run_batch(commands: list[list[str]], chunk: int) -> dict[int, tuple[int, str, str]]:
    nonce = new_nonce()
    script = batch_script([shlex.join(c) for c in commands], nonce)
    # A session of its own, as an SSH channel is: the script lowers its session's scheduling group (RENICE).
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, start_new_session=True)
    results: dict[int, tuple[int, str, str]] = {}
    reader = BatchReader(nonce, len(commands), lambda i, s, o, e: results.__setitem__(i, (s, o, e)))
    rng = random.Random(chunk)
    out, err = done.stdout, done.stderr
    while out or err:  # interleaved, in chunks of random size, as two SSH streams arrive
        size = rng.randint(1, chunk)
        if out and (not err or rng.random() < 0.5):
            reader.feed_stdout(out[:size])
            out = out[size:]
        else:
            reader.feed_stderr(err[:size])
            err = err[size:]
    assert reader.complete
    return results


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_each_command_of_a_batch_gets_exactly_its_own_result(chunk: int) -> None:
    commands = COMMANDS if chunk > 1 else COMMANDS[:5]  # byte by byte: the short ones
    results = run_batch(commands, chunk)
    assert [results[i] for i in range(len(commands))] == [alone(c) for c in commands]


def test_the_script_names_the_same_commands_and_nothing_else() -> None:
    nonce = new_nonce()
    script = batch_script([shlex.join(c) for c in COMMANDS], nonce)
    assert split_script(script) == (nonce, COMMANDS)
    assert script.splitlines()[0] == RENICE
    with pytest.raises(ValueError):
        batch_script(["true"], "'; rm -rf / #")


def test_batch_outputs_is_what_the_script_prints() -> None:
    nonce = new_nonce()
    expected = [alone(c) for c in COMMANDS]
    script = batch_script([shlex.join(c) for c in COMMANDS], nonce)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, start_new_session=True)
    assert batch_outputs(nonce, expected) == (done.stdout, done.stderr)


def test_a_marker_out_of_order_is_refused() -> None:
    nonce = new_nonce()
    reader = BatchReader(nonce, 2, lambda *_: None)
    with pytest.raises(ValueError):
        reader.feed_stdout(f"out\n{nonce} 1 0\n")


class GroupingTransport(FunctionTransport):
    """Records which commands the checks' facts hand over together."""

    groups: list[list[tuple[str, ...]]]

    def start_many(self, argvs: Sequence[Sequence[str]], *, timeout: float) -> list[asyncio.Future[CommandResult]]:
        self.groups.append([tuple(a) for a in argvs])
        return super().start_many(argvs, timeout=timeout)


@pytest.fixture
def healthy(monkeypatch: pytest.MonkeyPatch) -> tuple[GroupingTransport, Replay]:
    replay = Replay(load("healthy"))
    transport = GroupingTransport(replay.run, tcp_handler=serve_streams(replay.connect))
    transport.groups = []
    route_public_probes(monkeypatch, lambda: transport)
    return transport, replay


async def test_the_first_round_is_handed_over_together_lead_commands_first(
        healthy: tuple[GroupingTransport, Replay]) -> None:
    transport, replay = healthy
    report = await run_checks(TARGET, transport)
    assert report.exit_code == 0, [(c.id, c.status, c.summary) for c in report.checks if c.status.value != "ok"]
    assert replay.uncaptured == []
    first = transport.groups[0]
    assert len(first) >= 10, transport.groups
    assert first[0] == tuple(commands.nginx_dump(TARGET))  # its answer starts nginx's follow-ups: first in line
    jlist = tuple(commands.pm2(TARGET, "jlist"))
    assert jlist in transport.calls and all(jlist not in g for g in transport.groups), "jlist starts alone, at once"
    # a batch changes how commands start, never which: each ran once
    assert len(transport.calls) == len(set(transport.calls))


async def test_the_guessed_reads_are_the_ones_the_checks_use_on_a_healthy_target(
        healthy: tuple[GroupingTransport, Replay]) -> None:
    """PM2's default log paths and the processes under the God Daemon: on the healthy sandbox both guesses are
    right, so no read is doubled and none waits for `pm2 jlist` (wt-perf)."""
    transport, _replay = healthy
    report = await run_checks(TARGET, transport)
    assert report.exit_code == 0
    logs = Facts(TARGET, transport, ()).guessed_app_logs()
    assert logs and all(tuple(commands.tail(p, LOG_TAIL_BYTES)) in transport.calls for p in logs)
    fds = [c for c in transport.calls if c[:2] == ("sh", "-c") and "Max open files" in c[2]]
    assert len(fds) == 1, fds
    pm2 = next(c for c in report.checks if c.id == "pm2.status")
    pids = {i["pid"] for i in pm2.details["instances"]}  # type: ignore[union-attr]
    assert pids and pids <= {int(p) for p in fds[0][4:]}
    # both guessed reads were in the first group, next to jlist, not after it
    assert {tuple(commands.tail(p, LOG_TAIL_BYTES)) for p in logs} <= set(transport.groups[0])


def test_a_batch_runs_below_the_app_on_the_cpu() -> None:
    """Reniced: the reads only need to end before `pm2 jlist`, and must not take CPU from the app (or from jlist)."""
    own = alone(["sh", "-c", "ps -o ni= -p $$"])[1].strip()
    results = run_batch([["sh", "-c", "ps -o ni= -p $$"]], 4096)
    assert int(results[0][1]) >= min(19, int(own) + 10), (own, results)


def test_a_batch_lowers_its_own_session_s_scheduling_group_only() -> None:
    """Where the kernel groups tasks by session (autogroup), nice alone leaves the batch equal to the app: the batch
    lowers its session's group, and only that one (the caller's group is untouched)."""
    before = Path("/proc/self/autogroup").read_text() if Path("/proc/self/autogroup").exists() else None
    results = run_batch([["cat", "/proc/self/autogroup"], ["echo", "next"]], 4096)
    assert results[1] == (0, "next\n", ""), results  # no word of RENICE leaks into a command's result
    if before is None:  # a kernel without autogroup: nothing to lower, and nothing said about it
        assert results[0][0] != 0 and "autogroup" in results[0][2]
    else:
        assert results[0][0] == 0 and results[0][1].split()[-2:] == ["nice", "19"], results
        assert Path("/proc/self/autogroup").read_text() == before
