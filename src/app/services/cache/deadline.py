"""A timeout that gives a late event loop one more turn before it gives up.

When our own loop is behind, the timer of a 50 ms Redis timeout and the socket read that
would have answered in time become ready in the same loop turn, and the timer wins (libuv
runs due timers before it polls; asyncio queues the reader's wake-up behind them): the reply
that already arrived is cancelled, the read falls back to the database and, three in a row,
the circuit breaker opens, which loads the loop further. The mixed load run showed that
spiral. So when the timer itself runs late, it waits one short slice more, by which time the
reply's wake-up runs first; a timer that fires on time still cancels at once.
(Written here because ``asyncio.timeout`` cancels unconditionally; it is reused for the
cancellation and its TimeoutError.)"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    """``async with Deadline(0.05, grace=0.01):`` - cancels the call after `seconds`, or after
    one more slice of `grace` when the loop ran the timer more than `grace` late. Like
    ``asyncio.timeout``, it returns once the cancelled call has unwound (redis-py may first
    wait on its own socket timeout)."""

    __slots__ = ("_due", "_grace", "_handle", "_loop", "_seconds", "_window", "extended")

    def __init__(self, seconds: float, *, grace: float) -> None:
        self._seconds = seconds
        self._grace = grace
        self.extended = False  # the loop was late and the call got its extra slice

    async def __aenter__(self) -> Deadline:
        self._loop = asyncio.get_running_loop()
        self._window = asyncio.timeout(None)
        await self._window.__aenter__()
        self._due = self._loop.time() + self._seconds
        self._handle = self._loop.call_at(self._due, self._expire)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        await self._window.__aexit__(exc_type, exc, tb)

    def _expire(self) -> None:
        now = self._loop.time()
        if not self.extended and now - self._due > self._grace:
            self.extended = True
            self._handle = self._loop.call_at(now + self._grace, self._expire)
        else:
            self._window.reschedule(now)  # cancels the call; __aexit__ raises TimeoutError
