"""Server-sent events helpers: keep-alive comments between slow events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def with_keepalive(
    events: AsyncIterator[T], interval: float
) -> AsyncGenerator[T | None, None]:
    """Yield each event as it comes, and None whenever `interval` seconds pass without one
    (the caller sends a comment line so proxies and browsers keep the stream open).

    The pending read is never cancelled by the timeout; it is cancelled only when the
    consumer goes away, which lets the source's own cleanup run."""
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except StopAsyncIteration:
                return
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
