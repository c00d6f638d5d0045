"""Circuit breaker for the cache's Redis calls: skip Redis for a few seconds after failures."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.services.cache.metrics import CACHE_CIRCUIT_OPEN

log = structlog.get_logger(__name__)


class CircuitBreaker:
    """Closed -> open for ``cooldown`` s -> one probe call -> closed, or open again.

    A connection error opens it at once; timeouts open it after ``timeout_threshold`` in a
    row, so one event-loop hiccup under CPU load does not send every read to the database
    for ``cooldown`` seconds (each timed-out call still falls back to its loader).
    """

    def __init__(
        self,
        cooldown: float,
        *,
        timeout_threshold: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown = cooldown
        self.timeout_threshold = timeout_threshold
        self._clock = clock
        self._open_until: float | None = None
        self._timeouts = 0
        self.opened = 0  # times it opened (for tests and logs)

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        now = self._clock()
        if now < self._open_until:
            return False
        # Half-open: let this one call probe; others keep skipping for a short while.
        self._open_until = now + min(self.cooldown, 1.0)
        return True

    def success(self) -> None:
        self._timeouts = 0
        if self._open_until is not None:
            self._open_until = None
            CACHE_CIRCUIT_OPEN.set(0)
            log.info("cache.circuit_closed")

    def failure(self, op: str, exc: BaseException) -> None:
        was_open = self._open_until is not None
        if isinstance(exc, TimeoutError | RedisTimeoutError) and not was_open:
            self._timeouts += 1
            if self._timeouts < self.timeout_threshold:
                log.warning("cache.timeout", op=op, in_a_row=self._timeouts)
                return
        self._timeouts = 0
        self._open_until = self._clock() + self.cooldown
        CACHE_CIRCUIT_OPEN.set(1)
        if not was_open:
            self.opened += 1
            log.warning(
                "cache.circuit_opened",
                op=op,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                cooldown_s=self.cooldown,
            )
