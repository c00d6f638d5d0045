"""The coach's per-member rate limit counts a burst of concurrent posts exactly."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.stores.memory import MemoryStore

from app.services.coach.limits import ChatRateLimiter, limiter_for


class SlowStore(MemoryStore):
    """A store whose reads take a moment, as a network store's do: races show."""

    async def get(self, key: str, renew_for: Any = None) -> bytes | None:
        await asyncio.sleep(0.001)
        return await super().get(key, renew_for)


async def test_a_concurrent_burst_is_counted_exactly() -> None:
    limiter = ChatRateLimiter(SlowStore(), per_minute=10)
    waits = await asyncio.gather(*(limiter.hit(7) for _ in range(20)))
    assert waits.count(None) == 10
    assert all(w is not None and 0 < w <= 60 for w in waits if w is not None)
    assert await limiter.hit(8) is None  # another member has their own count
    assert limiter._locks == {}  # a member's lock goes when nobody holds or waits for it


def test_one_limiter_per_store_for_the_services_built_per_request() -> None:
    store = MemoryStore()
    assert limiter_for(store, 10) is limiter_for(store, 10)
    assert limiter_for(store, 5).per_minute == 5
    assert limiter_for(MemoryStore(), 5) is not limiter_for(store, 5)


class StalledStore(MemoryStore):
    async def get(self, key: str, renew_for: Any = None) -> bytes | None:
        await asyncio.sleep(10)
        return None


async def test_a_stalled_store_lets_messages_through_quickly() -> None:
    limiter = ChatRateLimiter(StalledStore(), per_minute=1)
    async with asyncio.timeout(3):
        assert await asyncio.gather(limiter.hit(1), limiter.hit(2)) == [None, None]
