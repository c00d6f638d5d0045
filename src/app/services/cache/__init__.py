"""Cache service: Redis (or in-process) cache-aside reads with exact invalidation.

Usage::

    cache = build_cache(get_settings())           # once per process, in the app lifespan
    await cache.start()
    page = await cache.get_or_load(
        key("challenges", "page", 1), load_page, type_=ChallengePage, ttl=60,
        group="challenge-lists",
    )
    await cache.invalidate(key("challenge", 42))  # in the same service call as the write
    await cache.invalidate_group("challenge-lists")
    await cache.close()

See ``service.py`` for the freshness, stampede and fail-open design.
"""

from __future__ import annotations

from app.services.cache.backends import Backend, MemoryBackend, Snapshot
from app.services.cache.breaker import CircuitBreaker
from app.services.cache.keys import PREFIX, family, key
from app.services.cache.redis_backend import RedisBackend, create_client
from app.services.cache.service import CacheService, CacheUnavailable
from app.settings import Settings

__all__ = [
    "PREFIX",
    "Backend",
    "CacheService",
    "CacheUnavailable",
    "CircuitBreaker",
    "MemoryBackend",
    "RedisBackend",
    "Snapshot",
    "build_cache",
    "create_client",
    "family",
    "key",
]


def build_cache(settings: Settings, **options: float) -> CacheService:
    """Redis-backed when ``settings.redis_url`` is set, else in-process.

    ``settings.cache_enabled=False`` makes every read call its loader (cache-off benchmarks).
    ``options`` are passed to ``CacheService`` (cooldown, lock_ttl, lock_wait, stale_grace).
    """
    backend: Backend
    if settings.redis_url:
        client = create_client(settings.redis_url, timeout=settings.cache_timeout)
        backend = RedisBackend(client)
    else:
        backend = MemoryBackend()
    return CacheService(
        backend, timeout=settings.cache_timeout, enabled=settings.cache_enabled, **options
    )
