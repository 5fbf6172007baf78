"""Shutdown runs in the reverse order of intake (as uvicorn does): the fronts stop taking commands, the running
requests finish, and only then the features they may need (remediation for an `approve`) and the resources."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.app import CONSOLE_TASK, BotServer
from bot.settings import load_config


class Recorder:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    async def stop(self) -> None:
        self.log.append(f"{self.name}.stop")

    async def close(self) -> None:
        self.log.append(f"{self.name}.close")

    async def aclose(self) -> None:
        self.log.append(f"{self.name}.aclose")


async def test_console_mode_stops_intake_then_drains_then_features(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings, targets = load_config(None)
    server = BotServer(settings, targets, console=True)
    log: list[str] = []
    finished = asyncio.Event()

    async def running_request() -> None:
        await asyncio.sleep(0.05)  # a check still running when the stop comes
        log.append("request.done")
        finished.set()

    async def console_front() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            log.append("console.stop")

    server.bot.spawn(running_request(), name="request")
    server._tasks.append(asyncio.create_task(console_front(), name=CONSOLE_TASK))
    server.ops = Recorder(log, "ops")  # type: ignore[assignment]
    server.remediation = Recorder(log, "remediation")  # type: ignore[assignment]
    server.monitor = Recorder(log, "monitor")  # type: ignore[assignment]
    server.store = Recorder(log, "store")  # type: ignore[assignment]
    server.service = Recorder(log, "service")  # type: ignore[assignment]
    await asyncio.sleep(0)
    await server.shutdown()
    assert finished.is_set()
    assert log == ["console.stop", "request.done", "ops.stop", "remediation.stop", "monitor.stop",
                   "service.aclose", "store.close"]


async def test_slack_front_stops_before_the_features(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings, targets = load_config(None)
    server = BotServer(settings, targets, console=False)
    log: list[str] = []
    slack: Any = Recorder(log, "slack")
    server.slack = slack
    server.remediation = Recorder(log, "remediation")  # type: ignore[assignment]
    server.monitor = Recorder(log, "monitor")  # type: ignore[assignment]
    server.service = Recorder(log, "service")  # type: ignore[assignment]
    await server.shutdown()
    assert log == ["slack.stop", "remediation.stop", "monitor.stop", "service.aclose"]
