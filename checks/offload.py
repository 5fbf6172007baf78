"""Parsing off the event loop: one worker thread, and a parse of the same text done once (issue 13, 7 and 14).

Why one thread and not the default pool: a parse is pure Python and holds the GIL; six of them at once (six
`/wscheck nginx` in a row) starve the event loop's thread far more than one does, and acks wait. Why a cache:
the monitor reads the same `nginx -T` dump every few seconds, and a 5 MB one costs about 2 s of CPU to
model; the result depends on the text alone, so the same text is modelled once (and callers that arrive
while it is being modelled wait for that parse rather than starting their own).

A process pool would shield the loop completely, but it costs a second interpreter per bot and a copy of
each input; measured here (bench/bench_bounded.py), one thread and the cache keep acks well inside Slack's
budget.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wscheck-parse")
#: Models kept per parser: a few targets' configs (small objects; the text is not kept, only its digest).
_CACHE_SIZE = 16
_cache: OrderedDict[tuple[str, str], asyncio.Future[Any]] = OrderedDict()


async def parse_off_loop(parse: Callable[[str], T], text: str, *, cache: bool = False) -> T:
    """`parse(text)` in the parse thread; with `cache`, the same text is parsed once (errors are not kept)."""
    loop = asyncio.get_running_loop()
    if not cache:
        return await loop.run_in_executor(_EXECUTOR, parse, text)
    key = (f"{parse.__module__}.{parse.__qualname__}", hashlib.sha256(text.encode("utf-8", "replace")).hexdigest())
    future = _cache.get(key)
    if future is not None and future.get_loop() is loop:
        _cache.move_to_end(key)
        return await asyncio.shield(future)
    future = loop.run_in_executor(_EXECUTOR, parse, text)
    _cache[key] = future
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    try:
        return await asyncio.shield(future)
    except BaseException:
        if _cache.get(key) is future and future.done():
            del _cache[key]  # a failure (or too large) is said again next time, from a fresh parse
        raise
