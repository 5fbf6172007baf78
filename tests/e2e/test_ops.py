"""Self-monitoring end to end: /healthz, /metrics, the heartbeat and JSON logs of a real bot process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.botproc import ROOT, BotProcess

pytestmark = pytest.mark.sandbox


@pytest.fixture
async def heartbeat() -> AsyncIterator[tuple[str, asyncio.Event]]:
    pinged = asyncio.Event()

    async def ping(request: web.Request) -> web.Response:
        pinged.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ping/abc", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/ping/abc", pinged
    await runner.cleanup()


async def test_healthz_metrics_heartbeat_and_json_logs(
    sandbox: Any, sandbox_config_file: Path, db: str, heartbeat: tuple[str, asyncio.Event]
) -> None:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    url, pinged = heartbeat
    bot = BotProcess(["run", "--config", str(sandbox_config_file)], {
        "WSCHECK_DB": str(db), "WSCHECK_METRICS_PORT": "0", "WSCHECK_METRICS_HOST": "127.0.0.1",
        "WSCHECK_HEARTBEAT_URL": url, "WSCHECK_CHECK_INTERVAL": "2s", "WSCHECK_FAST_INTERVAL": "1s",
        "WSCHECK_JITTER": "0", "WSCHECK_LOG_FORMAT": "json",
    }, cwd=ROOT)
    await bot.start(ready=r'"msg": "wscheck ready')
    try:
        port = int((await bot.wait_line(r"metrics and health on http://127\.0\.0\.1:(\d+)/metrics")).group(1))
        # The heartbeat is pinged once every target completed a full cycle: then the metrics have it too.
        await asyncio.wait_for(pinged.wait(), 30)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
            assert 'wscheck_checks_total{check="pm2.status",status="ok"}' in metrics, metrics[:2000]
            assert "wscheck_check_duration_seconds_bucket" in metrics
            assert "wscheck_open_incidents 0.0" in metrics
            assert "wscheck_outbox_depth" in metrics
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200, health
            assert health["healthy"] is True
            assert health["monitor"]["targets"]["sandbox"]["fresh"] is True
        for line in bot.lines:
            record = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(record)
    finally:
        assert await bot.stop() == 0, bot.log()
