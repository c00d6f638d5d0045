"""Server-sent events helpers: keep-alive comments between slow events.

When the client goes away Litestar cancels the response's cancel scope, and every await in
that task is cancelled again and again. So the source is never cleaned up in the request's
task: its pending read is cancelled (its own `finally` then runs in that separate task,
where awaits work) or, if idle, it is closed in a detached task. Both are kept referenced
until they finish so a partial answer can be saved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_cleanups: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> None:
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


def _detached(coro: Coroutine[Any, Any, Any]) -> None:
    _keep(asyncio.get_running_loop().create_task(coro))


async def pending_cleanups() -> None:
    """Wait for cleanups still running (tests and shutdown)."""
    while _cleanups:
        await asyncio.gather(*list(_cleanups), return_exceptions=True)


async def with_keepalive(
    events: AsyncIterator[T], interval: float
) -> AsyncGenerator[T | None, None]:
    """Yield each event as it comes, and None whenever `interval` seconds pass without one
    (the caller sends a comment line so proxies and browsers keep the stream open)."""
    pending: asyncio.Task[T] | None = None
    finished = False
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
                event = task.result()
            except StopAsyncIteration:
                finished = True
                return
            yield event
    finally:
        if not finished:
            aclose = getattr(events, "aclose", None)
            if pending is not None:
                _keep(pending)
                pending.cancel()  # the source's cleanup runs inside that task...
                # ...unless the read had already produced an event: then the source sits at
                # a `yield` and only an explicit close runs its cleanup (once the read ends).
                _detached(_close_after(pending, aclose))
            elif aclose is not None:
                _detached(aclose())


async def _close_after(read: asyncio.Task[Any], aclose: Any) -> None:
    with contextlib.suppress(BaseException):
        await read
    if aclose is not None:
        await aclose()
