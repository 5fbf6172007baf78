"""A command that several checks share is run once; one check's own timeout must not take it from the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from checks.facts import Facts
from checks.transport import CommandResult
from checks.transport.mock import FunctionTransport
from tests.support.captured import TARGET


class SlowTransport(FunctionTransport):
    async def run(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        await asyncio.sleep(0.2)
        return await super().run(argv, timeout=timeout)


async def test_a_check_timing_out_does_not_cancel_the_command_it_shares() -> None:
    transport = SlowTransport(lambda argv: CommandResult(argv, 0, "1796589698 +0000\n", "", 200.0))
    facts = Facts(TARGET, transport, ["nginx.reload", "host.memory"])

    async def impatient() -> None:
        async with asyncio.timeout(0.05):  # a check whose own check_timeout ends first
            await facts.run("date", ["date", "+%s %z"])

    with pytest.raises(TimeoutError):
        await impatient()
    patient = await facts.run("date", ["date", "+%s %z"])
    assert patient.stdout.startswith("1796589698")
    assert transport.calls == [("date", "+%s %z")]  # one run, shared
