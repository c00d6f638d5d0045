"""Per-member chat rate limit on a Litestar store (Redis or in-process).

A fixed one-minute window counted with get/set, one count at a time per process (a lock
held for one store read and write, well under a millisecond): a burst of concurrent posts
is counted exactly. Across worker processes two
racing posts can still both pass (at most the limit per worker), which keeps the limiter on
the store API every backend has."""

from __future__ import annotations

import asyncio
import time

from litestar.stores.base import Store

WINDOW_SECONDS = 60
STORE_TIMEOUT = 0.5  # seconds; the lock is shared, so one stalled call must not hold it long


class ChatRateLimiter:
    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.per_minute = per_minute
        self._lock = asyncio.Lock()

    async def hit(self, user_id: int) -> int | None:
        """Count one message; return seconds to wait when over the limit, else None."""
        async with self._lock:
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    return await self._count(user_id)
            except TimeoutError:  # a stalled store lets the message through, as an error does
                return None

    async def _count(self, user_id: int) -> int | None:
        window = int(time.time() // WINDOW_SECONDS)
        key = f"coach:{user_id}:{window}"
        try:
            raw = await self.store.get(key)
            count = int(raw or b"0")
            if count >= self.per_minute:
                return WINDOW_SECONDS - int(time.time() % WINDOW_SECONDS)
            await self.store.set(key, str(count + 1).encode(), expires_in=WINDOW_SECONDS)
        except Exception:
            return None
        return None
