"""The cache service: cache-aside reads, exact invalidation, stampede protection, fail-open.

Freshness (no read older than a completed write):
  every entry carries the *stamp* (key version, group generation) its loader saw before
  it started; ``invalidate`` atomically replaces the key's version and deletes the entry,
  ``invalidate_group`` replaces the group's generation. Writes are compare-and-set on the
  stamp, so a loader that started before an invalidation can never store its old result,
  and a read after the invalidation sees a new stamp, so it never joins an older flight.
Stampedes:
  in a process, concurrent misses of one (key, stamp) share one flight (one loader run).
  Across processes the flight leader takes a Redis lock (SET NX PX + token): the winner
  loads; the others serve the previous, still-valid value as ``stale`` if there is one
  (entries outlive their TTL by a grace period for this), else poll briefly for the
  winner's value, taking the lock themselves if it is released, then load as a last resort.
  Stale values are never invalidated ones: only TTL-expired, which every write path keeps
  exact by invalidating.
Fail-open:
  every Redis call is bounded by ``timeout``; an error or timeout calls the loader, opens
  a circuit breaker (Redis is skipped entirely for ``cooldown`` s, then one probe call),
  is logged and counted as ``error``. Invalidations that could not reach Redis are kept
  and replayed before this process reads from Redis again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
import structlog
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore

from app.services.cache.backends import Backend, Snapshot
from app.services.cache.breaker import CircuitBreaker
from app.services.cache.deadline import Deadline
from app.services.cache.keys import NAMESPACE, family
from app.services.cache.loop_lag import LoopLagMonitor
from app.services.cache.metrics import (
    CACHE_LOAD_DURATION,
    CACHE_LOADS,
    CACHE_OPERATIONS,
)
from app.services.cache.redis_backend import RedisBackend

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

log = structlog.get_logger(__name__)

MAX_TTL = 24 * 3600
MAX_PENDING = 10_000


class CacheUnavailable(Exception):
    """Redis failed, timed out, or is skipped while the circuit breaker is open."""


class _LeaderGone(Exception):
    """The task running a shared load was cancelled; waiters load for themselves."""


_Flight = asyncio.Future[tuple[bytes, str, str]]  # (payload, etag, result label)


class CacheService:
    """Cache-aside reads of msgspec values with exact invalidation (see the module doc)."""

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float = 0.05,
        enabled: bool = True,
        cooldown: float = 5.0,
        lock_ttl: float = 5.0,
        lock_wait: float = 0.5,
        stale_grace: float = 300.0,
    ) -> None:
        self.backend = backend
        self.enabled = enabled
        self.timeout = timeout
        self.breaker = CircuitBreaker(cooldown)
        self.loop_lag = LoopLagMonitor()
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.stale_grace = stale_grace
        self._flights: dict[tuple[str, str | None, tuple[str, str]], _Flight] = {}
        self._pending_keys: set[str] = set()
        self._pending_groups: set[str] = set()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
        self._stores: dict[str, Store] | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Check the connection once at startup (never fails: a dead Redis opens the breaker)."""
        if self.enabled and self.backend.distributed:
            self.loop_lag.start()
        if self.enabled and isinstance(self.backend, RedisBackend):
            try:
                async with asyncio.timeout(max(self.timeout * 20, 1.0)):
                    await self.backend.warm_up()
            except Exception as exc:
                self.breaker.failure("start", ConnectionError(f"warm-up failed: {exc!r}"))

    async def close(self) -> None:
        await self.loop_lag.stop()
        await self.backend.close()

    async def ping(self) -> bool:
        """True when the backend answers within the timeout (bypasses the breaker)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.backend.ping()
        except Exception:
            return False

    def stores(self) -> dict[str, Store]:
        """Litestar stores for sessions and rate limits, on the cache's Redis pool if any."""
        if self._stores is None:
            if isinstance(self.backend, RedisBackend):
                client = self.backend.client
                self._stores = {
                    name: RedisStore(client, namespace=f"{NAMESPACE}:{name}")
                    for name in ("sessions", "rate_limit")
                }
            else:
                self._stores = {"sessions": MemoryStore(), "rate_limit": MemoryStore()}
        return self._stores

    # ---- reads -----------------------------------------------------------------------

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        type_: type[T],
        ttl: int,
        group: str | None = None,
    ) -> T:
        """The cached value of ``key``, or ``loader()``'s result (stored for ``ttl`` s)."""
        value, _ = await self._get(key, loader, type_, ttl, group)
        return value

    async def get_or_load_versioned(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        type_: type[T],
        ttl: int,
        group: str | None = None,
    ) -> tuple[T, str]:
        """Like ``get_or_load`` plus the value's version token (a content hash, for ETags)."""
        value, etag = await self._get(key, loader, type_, ttl, group)
        return value, etag if etag is not None else self._etag(self._encoder.encode(value))

    async def get_or_load_peek(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        type_: type[T],
        ttl: int,
        peek: str | None,
        peek_type: type[P],
    ) -> tuple[T, P | None]:
        """``get_or_load(key)`` plus, in the same round trip, ``peek``'s value if it is cached
        and fresh (None otherwise: a peek never loads; no ``peek``, a plain read). For a read
        whose next key can be guessed, e.g. the rank of the points a member had last time."""
        if peek is None:
            value, _ = await self._get(key, loader, type_, ttl, None)
            return value, None
        fam = family(key)
        snaps = await self._read(fam, lambda: self.backend.read_many([(key, None), (peek, None)]))
        if snaps is None:
            return await self._load(fam, loader), None
        snap, peeked = snaps
        value, _ = await self._from_snapshot(key, loader, type_, ttl, None, snap)
        hit = self._hit(peeked, peek_type, family(peek))
        return value, hit[0] if hit is not None else None

    async def version(self, key: str, group: str | None = None) -> str | None:
        """The cached value's version token (changes iff the value does), None if unknown."""
        if not self.enabled:
            return None
        try:
            await self._flush_pending()
            snap = await self._guard(
                "version", lambda: self.backend.read(key, group, with_data=False)
            )
        except CacheUnavailable:
            return None
        return snap.etag if snap.fresh else None

    async def _get(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        type_: type[T],
        ttl: int,
        group: str | None,
    ) -> tuple[T, str | None]:
        fam = family(key)
        snap = await self._read(fam, lambda: self.backend.read(key, group))
        if snap is None:
            return await self._load(fam, loader), None
        return await self._from_snapshot(key, loader, type_, ttl, group, snap)

    async def _read(self, fam: str, call: Callable[[], Awaitable[R]]) -> R | None:
        """A backend read after replaying pending invalidations; None when the cache is off
        or unavailable (then counted as an error: the caller loads)."""
        if not self.enabled:
            return None
        try:
            await self._flush_pending()
            return await self._guard("read", call)
        except CacheUnavailable:
            CACHE_OPERATIONS.labels(fam, "error").inc()
            return None

    async def _from_snapshot(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        type_: type[T],
        ttl: int,
        group: str | None,
        snap: Snapshot,
    ) -> tuple[T, str | None]:
        """The value for what a read saw: the entry on a hit, else one shared load."""
        fam = family(key)
        cached = self._hit(snap, type_, fam)
        if cached is not None:
            return cached[0], snap.etag

        flight_id = (key, group, snap.stamp)
        flight = self._flights.get(flight_id)
        if flight is not None:
            try:
                payload, etag, result = await asyncio.shield(flight)
            except _LeaderGone:
                CACHE_OPERATIONS.labels(fam, "miss").inc()
                return await self._load(fam, loader), None
            CACHE_OPERATIONS.labels(fam, result).inc()
            shared = self._decode(payload, type_)
            if shared is not None:
                return shared[0], etag
            return await self._load(fam, loader), None

        flight = asyncio.get_running_loop().create_future()
        self._flights[flight_id] = flight
        try:
            value, payload, etag, result = await self._fill(key, loader, type_, ttl, group, snap)
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # mark retrieved: no warning when nobody was waiting
            raise
        except BaseException:
            flight.set_exception(_LeaderGone())
            flight.exception()
            raise
        else:
            flight.set_result((payload, etag, result))
        finally:
            if self._flights.get(flight_id) is flight:
                del self._flights[flight_id]
        CACHE_OPERATIONS.labels(fam, result).inc()
        return value, etag

    async def _fill(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        type_: type[T],
        ttl: int,
        group: str | None,
        snap: Snapshot,
    ) -> tuple[T, bytes, str, str]:
        """Leader of a flight: lock across processes, load, compare-and-set the result."""
        fam = family(key)
        token: str | None = None
        stamp = snap.stamp
        result = "miss"
        try:
            if self.backend.distributed:
                token = await self._guard("lock", lambda: self._lock(key, stamp))
                if token is None:
                    if snap.payload is not None:  # valid but expired: a peer is refreshing it
                        stale = self._decode(snap.payload, type_)
                        if stale is not None and snap.etag is not None:
                            return stale[0], snap.payload, snap.etag, "stale"
                    found, token, stamp = await self._wait_for_peer(key, group, type_)
                    if found is not None:
                        return found
        except CacheUnavailable:
            result = "error"
        try:
            value = await self._load(fam, loader)
            payload = self._encoder.encode(value)
            etag = self._etag(payload)
            if result != "error":
                ttl_s = float(min(max(ttl, 1), MAX_TTL))
                grace = min(ttl_s, self.stale_grace)
                write_stamp = stamp
                with contextlib.suppress(CacheUnavailable):
                    await self._guard(
                        "write",
                        lambda: self.backend.write(
                            key, group, write_stamp, payload, etag, ttl=ttl_s, grace=grace
                        ),
                    )
        finally:
            if token is not None:
                await self._unlock(key, stamp, token)
        return value, payload, etag, result

    def _lock(self, key: str, stamp: tuple[str, str]) -> Awaitable[str | None]:
        """The refresh lock is per (key, stamp): loads of an invalidated version never block."""
        return self.backend.try_lock(f"{key}~{stamp[0]}~{stamp[1]}", self.lock_ttl)

    async def _unlock(self, key: str, stamp: tuple[str, str], token: str) -> None:
        with contextlib.suppress(CacheUnavailable):
            await self._guard(
                "unlock", lambda: self.backend.unlock(f"{key}~{stamp[0]}~{stamp[1]}", token)
            )

    async def _wait_for_peer(
        self, key: str, group: str | None, type_: type[T]
    ) -> tuple[tuple[T, bytes, str, str] | None, str | None, tuple[str, str]]:
        """Poll for a peer's fresh value; take the lock if it frees up. Raises CacheUnavailable."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.005
        stamp: tuple[str, str] = ("", "")
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            snap = await self._guard("poll", lambda: self.backend.read(key, group))
            stamp = snap.stamp
            if snap.fresh and snap.payload is not None and snap.etag is not None:
                value = self._decode(snap.payload, type_)
                if value is not None:
                    return (value[0], snap.payload, snap.etag, "hit"), None, stamp
            token = await self._guard("lock", functools.partial(self._lock, key, stamp))
            if token is not None or time.monotonic() >= deadline:
                return None, token, stamp

    async def _load(self, fam: str, loader: Callable[[], Awaitable[T]]) -> T:
        CACHE_LOADS.labels(fam).inc()
        started = time.perf_counter()
        try:
            return await loader()
        finally:
            CACHE_LOAD_DURATION.labels(fam).observe(time.perf_counter() - started)

    # ---- invalidation ----------------------------------------------------------------

    async def invalidate(self, *keys: str) -> None:
        """Forget exactly these keys; loads already in flight for them will not be stored."""
        if not keys or not self.enabled:
            return
        try:
            await self._flush_pending()
            await self._guard("invalidate", lambda: self.backend.invalidate(keys))
        except CacheUnavailable:
            self._remember(self._pending_keys, keys)

    async def invalidate_group(self, *groups: str) -> None:
        """Forget every entry stored with one of these groups (e.g. all list pages)."""
        if not groups or not self.enabled:
            return
        try:
            await self._flush_pending()
            await self._guard("invalidate_group", lambda: self.backend.invalidate_groups(groups))
        except CacheUnavailable:
            self._remember(self._pending_groups, groups)

    def _remember(self, pending: set[str], names: tuple[str, ...]) -> None:
        if len(pending) + len(names) > MAX_PENDING:
            log.error("cache.pending_invalidations_dropped", count=len(pending))
            pending.clear()
        pending.update(names)
        log.warning("cache.invalidation_deferred", names=list(names)[:10])

    async def _flush_pending(self) -> None:
        """Replay invalidations that failed earlier; raises CacheUnavailable if Redis still is."""
        if self._pending_keys:
            keys = tuple(self._pending_keys)
            await self._guard("invalidate", lambda: self.backend.invalidate(keys))
            self._pending_keys.difference_update(keys)
        if self._pending_groups:
            groups = tuple(self._pending_groups)
            await self._guard("invalidate_group", lambda: self.backend.invalidate_groups(groups))
            self._pending_groups.difference_update(groups)

    # ---- plumbing --------------------------------------------------------------------

    async def _guard(self, op: str, call: Callable[[], Awaitable[R]]) -> R:
        """Run one backend call within the timeout and the breaker's rules."""
        if not self.backend.distributed:
            return await call()
        if not self.breaker.allow():
            raise CacheUnavailable(op)
        try:
            # Redis gets its timeout on top of however late our own loop is running, and one
            # more slice if the timer itself ran late (the reply may be waiting in the socket).
            async with Deadline(self.timeout + self.loop_lag.lag, grace=self.timeout / 5):
                result = await call()
        except Exception as exc:
            self.breaker.failure(op, exc)
            raise CacheUnavailable(op) from exc
        self.breaker.success()
        return result

    def _hit(self, snap: Snapshot, type_: type[T], fam: str) -> tuple[T] | None:
        """The entry's value if the snapshot holds a fresh, decodable one (counted as a hit)."""
        if not snap.fresh or snap.payload is None:
            return None
        cached = self._decode(snap.payload, type_)
        if cached is not None:
            CACHE_OPERATIONS.labels(fam, "hit").inc()
        return cached

    def _decode(self, payload: bytes, type_: type[T]) -> tuple[T] | None:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        try:
            return (cast(T, decoder.decode(payload)),)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            log.warning("cache.undecodable_entry", type=repr(type_))
            return None

    @staticmethod
    def _etag(payload: bytes) -> str:
        return hashlib.blake2b(payload, digest_size=8).hexdigest()
