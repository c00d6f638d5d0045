"""Per-member chat rate limit on a Litestar store (Redis or in-process).

A fixed one-minute window counted with get/set, one count at a time per member in a process
(a lock per member, held for one store read and write): a burst of concurrent posts is
counted exactly. Across worker processes two racing posts can still both pass (at most the
limit per worker), which keeps the limiter on the store API every backend has. Coach
services are built per request, so the limiter is the process's one per store
(`limiter_for`): a limiter per request would hold a lock no other request sees."""

from __future__ import annotations

import asyncio
import time
import weakref

from litestar.stores.base import Store

WINDOW_SECONDS = 60
STORE_TIMEOUT = 0.5  # seconds: a member's next post waits behind a stalled call no longer


class ChatRateLimiter:
    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.per_minute = per_minute
        # A member's lock lives while a post holds or awaits it, then goes by itself.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def hit(self, user_id: int) -> int | None:
        """Count one message; return seconds to wait when over the limit, else None."""
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    return await self._count(user_id)
            except TimeoutError:  # a stalled store lets the message through, as errors do
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


_LIMITERS: dict[int, ChatRateLimiter] = {}


def limiter_for(store: Store, per_minute: int) -> ChatRateLimiter:
    """The process-wide limiter for this store and limit."""
    limiter = _LIMITERS.get(id(store))
    if limiter is None or limiter.store is not store or limiter.per_minute != per_minute:
        limiter = _LIMITERS[id(store)] = ChatRateLimiter(store, per_minute)
    return limiter
