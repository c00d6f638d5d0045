"""How late this process's event loop runs its timers (the cache's timeouts depend on it).

A 50 ms Redis timeout measured on a loop that is itself 80 ms behind fires although Redis
answered in 0.2 ms; the cache would then run the loader (far more CPU than the read) and
open its circuit breaker, which makes the loop later still. The cache adds the measured
lag to its timeouts so that they judge Redis, not our own CPU."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Gauge

LOOP_LAG = Gauge(
    "momentum_event_loop_lag_seconds",
    "How late the event loop ran a timer, recently (decaying maximum).",
    multiprocess_mode="max",
)


class LoopLagMonitor:
    """Samples timer lateness every `interval` s; `lag` jumps up at once and decays slowly."""

    def __init__(self, interval: float = 0.05, decay: float = 0.8, ceiling: float = 1.0) -> None:
        self.interval = interval
        self.decay = decay
        self.ceiling = ceiling  # never stretch a timeout by more than this
        self.lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - before - self.interval)
            self.lag = min(self.ceiling, max(late, self.lag * self.decay))
            LOOP_LAG.set(self.lag)
