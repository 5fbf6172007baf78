"""wt-perf: a batch over the sandbox's real sshd gives each command exactly what its own channel gives, and a
command that hangs in a batch does not hold the others back."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from checks.config import Target
from checks.transport.base import CommandTimeout
from checks.transport.ssh import SSHTransport

pytestmark = pytest.mark.sandbox

COMMANDS = [
    ["echo", "plain"],
    ["printf", "no newline at the end"],
    ["sh", "-c", "echo to stderr >&2; printf partial >&2; exit 3"],
    ["cat", "/nonexistent/wscheck-batch-test"],
    ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo"],
    ["printf", "%s\\n", "quotes ' \" $HOME `id` ; | & stay text"],
    ["definitely-not-a-command-wscheck"],
]


async def test_a_batch_gives_each_command_its_own_result(sandbox_target: Target) -> None:
    transport = SSHTransport(sandbox_target)
    try:
        alone = [await transport.run(c, timeout=10) for c in COMMANDS]
        batched = await asyncio.gather(*transport.start_many(COMMANDS, timeout=10))
        assert [(r.argv, r.exit_status, r.stdout, r.stderr) for r in batched[:-1]] == \
            [(r.argv, r.exit_status, r.stdout, r.stderr) for r in alone[:-1]]
        # A missing command: the same status; who says so differs (the batch's sh: "sh: 8: X: not found", a single
        # command's own `timeout`: "timeout: failed to run command 'X'"), both name it.
        assert batched[-1].exit_status == alone[-1].exit_status == 127
        assert COMMANDS[-1][0] in batched[-1].stderr and COMMANDS[-1][0] in alone[-1].stderr
        assert alone[-1].exit_status == 127 and alone[2].exit_status == 3  # the cases are what they claim
        assert transport.connects == 1
    finally:
        await transport.aclose()


async def test_a_hung_command_does_not_hold_the_rest_of_its_batch(sandbox_target: Target) -> None:
    marker = f"{60 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"  # a sleep nobody else runs
    transport = SSHTransport(sandbox_target)
    try:
        hung, after = transport.start_many([["sleep", marker], ["echo", "after"]], timeout=8.0)
        result = await after
        assert result.ok and result.stdout == "after\n"
        assert not hung.done(), "the echo waited for the sleep"
        hung.cancel()  # the caller gives up: the batch is stopped (the target's `timeout` bounds the rest)
        with pytest.raises(asyncio.CancelledError):
            await hung
        assert (await transport.run(["true"], timeout=5)).ok  # the connection is still good
    finally:
        await transport.aclose()


async def test_a_command_over_its_timeout_in_a_batch_is_a_timeout(sandbox_target: Target) -> None:
    transport = SSHTransport(sandbox_target)
    try:
        slow, fine = transport.start_many([["sleep", "5"], ["echo", "fine"]], timeout=1.0)
        with pytest.raises(CommandTimeout):
            await slow
        assert (await fine).stdout == "fine\n"
    finally:
        await transport.aclose()


async def test_a_batch_that_ends_early_hands_the_rest_to_their_own_channels(sandbox_target: Target) -> None:
    """The batch's shell dies (a login shell that cannot run it would look the same): the commands it did not answer
    still get their own answers, not a connection error."""
    transport = SSHTransport(sandbox_target)
    # the inner sh's parent is the batch's sh
    killer = ["sh", "-c", "kill -KILL $PPID"]
    try:
        first, _kill, after = transport.start_many([["echo", "first"], killer, ["echo", "after"]], timeout=10)
        assert (await first).stdout == "first\n"
        assert (await after).stdout == "after\n"
        assert transport.connects == 1
    finally:
        await transport.aclose()


async def test_the_connection_prefers_aes_gcm_from_asyncssh_s_own_set(sandbox_target: Target) -> None:
    """The order is ours (cheaper per packet for the bot, bench/RESULTS.md "CPU budget"); the set is asyncssh's."""
    from asyncssh.encryption import get_default_encryption_algs

    from checks.transport.ssh import CIPHER_PREFERENCE

    assert {a.encode() for a in CIPHER_PREFERENCE} == set(get_default_encryption_algs())
    transport = SSHTransport(sandbox_target)
    try:
        await transport.run(["true"], timeout=10)
        conn = await transport._connection()
        assert conn.get_extra_info("send_cipher") == CIPHER_PREFERENCE[0]
        assert conn.get_extra_info("recv_cipher") == CIPHER_PREFERENCE[0]
    finally:
        await transport.aclose()


async def test_a_batch_runs_in_a_lowered_scheduling_group_and_a_single_command_does_not(
        sandbox_target: Target) -> None:
    """RENICE lowers the batch channel's own session group; `pm2 jlist` (its own channel) and the app keep theirs."""
    transport = SSHTransport(sandbox_target)
    try:
        probe = ["sh", "-c", "cat /proc/self/autogroup 2>/dev/null || echo none"]
        batched, _ = await asyncio.gather(*transport.start_many([probe, ["true"]], timeout=10))
        single = await transport.run(probe, timeout=10)
        if single.stdout.strip() == "none":  # the kernel has no autogroup: nothing to lower
            assert batched.stdout.strip() == "none"
        else:
            assert batched.stdout.split()[-2:] == ["nice", "19"], batched
            assert single.stdout.split()[-2:] == ["nice", "0"], single
            assert batched.stdout.split()[0] != single.stdout.split()[0]  # two sessions, two groups
    finally:
        await transport.aclose()
