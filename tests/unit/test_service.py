"""CheckService in-process, over FunctionTransport: identical requests in flight share one run."""

from __future__ import annotations

import asyncio

from bot.chat.service import CheckService
from checks.config import Target, TargetsConfig
from checks.transport import CommandResult, FunctionTransport

WEB = Target(name="web", pm2_app="chat", app_port=3000, app_dir="/srv/chat")


def service_with(transport: FunctionTransport) -> CheckService:
    service = CheckService(TargetsConfig(source="test", targets=(WEB,)))
    service._transports[WEB.name] = transport  # the service builds transports lazily; hand it the fake
    return service


def gated() -> tuple[FunctionTransport, asyncio.Event]:
    """Every command waits on `gate`, so all callers are surely in flight before the first run ends."""
    gate = asyncio.Event()

    async def answer(argv: tuple[str, ...]) -> CommandResult:
        await gate.wait()
        return CommandResult(argv, 1, "", "not here", 1.0)

    return FunctionTransport(answer), gate


async def test_identical_requests_share_one_run() -> None:
    alone, gate = gated()
    gate.set()
    await service_with(alone).run("web", ["pm2"])
    assert alone.calls, "the checklist ran no command: the comparison below would prove nothing"

    shared, gate = gated()
    service = service_with(shared)
    callers = [asyncio.ensure_future(service.run("web", ["pm2"])) for _ in range(4)]
    await asyncio.sleep(0)  # let every caller register before the commands answer
    gate.set()
    reports = await asyncio.gather(*callers)
    assert service.runs == 1
    assert len(shared.calls) == len(alone.calls)  # one run's commands, not four
    assert all(report is reports[0] for report in reports)

    again = await service.run("web", ["pm2"])  # a request after the run ended starts a fresh one
    assert service.runs == 2 and again is not reports[0]
