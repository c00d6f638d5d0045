"""Per-member chat rate limit on a Litestar store (Redis or in-process).

A fixed one-minute window counted with get/set: two racing requests can both pass, which
is harmless at chat rates and keeps the limiter on the store API every backend has."""

from __future__ import annotations

import time

from litestar.stores.base import Store

WINDOW_SECONDS = 60


class ChatRateLimiter:
    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.per_minute = per_minute

    async def hit(self, user_id: int) -> int | None:
        """Count one message; return seconds to wait when over the limit, else None."""
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
