"""Background tasks that are never lost: errors are logged, shutdown waits for them or cancels them."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable

log = logging.getLogger(__name__)


class Background:
    """A set of tasks started after an ack, by a probe, or for the bot's lifetime (canaries, the outbox).

    A bare `ensure_future` loses its exception (and, unreferenced, can be garbage-collected mid-run); here
    every task is kept until it ends and a failure is logged with its name.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None], *, name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.what, name)

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            # A task cancelled before its first step never awaited `work`: close it, or Python warns
            # "coroutine … was never awaited" at shutdown. Closing a finished coroutine does nothing.
            if inspect.iscoroutine(work):
                work.close()

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(finished)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait for what runs now (graceful shutdown of requests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
