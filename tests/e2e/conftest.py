"""Fixtures of the e2e monitoring tests: one strict fake Slack per module with the alert channel and Alice, and
a healthy sandbox around each test (a module with other users or channels defines its own `fake`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakeslack import FakeSlack
from tests.support.alertchannel import ALERTS, ALICE


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_user(ALICE, name="alice")
        server.add_channel(ALERTS, "alerts")
        yield server


@pytest.fixture
async def healthy(sandbox: Any, fake: FakeSlack) -> AsyncIterator[None]:
    await asyncio.to_thread(sandbox.set_mode, "healthy")
    fake.reset()
    yield
    fake.assert_all_acked()
    fake.assert_no_problems()
    await asyncio.to_thread(sandbox.set_mode, "healthy")
