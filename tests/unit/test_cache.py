"""Cache service: the same suite on the in-process backend and a private redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import pytest
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from prometheus_client import REGISTRY

from app.services.cache import (
    CacheService,
    MemoryBackend,
    RedisBackend,
    build_cache,
    create_client,
    family,
    key,
)
from app.settings import Settings
from tests.conftest_redis import RedisServer


class Item(msgspec.Struct):
    id: int
    name: str


@dataclass
class FakeDb:
    """A 'database' row and a loader that counts its calls (optionally gated by an event)."""

    value: str = "v1"
    calls: int = 0
    delay: float = 0.0
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def load(self) -> Item:
        self.calls += 1
        seen = self.value  # read "the row" first, like a query would
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return Item(1, seen)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def new_key(*parts: object) -> str:
    """A key in a family of its own, so metric deltas belong to this test only."""
    return key(f"t{uuid.uuid4().hex[:10]}", *parts)


def make_service(url: str | None, *, timeout: float = 0.25, **options: Any) -> CacheService:
    """Functional tests use a roomy timeout (a loaded CI box can stall the loop for 50 ms);
    the failure tests pass the production 50 ms."""
    options.setdefault("cooldown", 0.2)
    if url is None:
        return CacheService(MemoryBackend(), **options)
    client = create_client(url, timeout=timeout)
    return CacheService(RedisBackend(client), timeout=timeout, **options)


@pytest.fixture(params=["memory", "redis"])
async def cache_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def cache(cache_url: str | None) -> AsyncIterator[CacheService]:
    service = make_service(cache_url)
    await service.start()
    yield service
    await service.close()


async def get(cache: CacheService, k: str, db: FakeDb, *, group: str | None = None) -> Item:
    return await cache.get_or_load(k, db.load, type_=Item, ttl=60, group=group)


# ---- the same suite on both backends -------------------------------------------------


def test_key_is_namespaced_and_versioned() -> None:
    assert key("challenge", 42) == "momentum:v1:challenge:42"
    assert family(key("challenge", 42)) == "challenge"
    assert family("other") == "other"


def test_key_parts_from_visitors_never_run_together() -> None:
    """A search for "yoga:" in every category and one for "yoga" in the category ":" are two
    keys, or either could fill the other's page for its TTL."""
    from app.services import cache_keys as ck

    assert ck.challenge_list("yoga:", "", 1, 12) != ck.challenge_list("yoga", ":", 1, 12)
    assert ck.challenge_list("a%3A", "", 1, 12) != ck.challenge_list("a:", "", 1, 12)
    assert family(ck.challenge_list("x:y", "", 1, 12)) == "challenge-list"


async def test_miss_then_hit_and_metrics(cache: CacheService) -> None:
    db, k = FakeDb(), new_key(1)
    fam = family(k)
    assert await get(cache, k, db) == Item(1, "v1")
    assert await get(cache, k, db) == Item(1, "v1")
    assert db.calls == 1
    ops = "momentum_cache_operations_total"
    assert metric(ops, cache=fam, result="miss") == 1
    assert metric(ops, cache=fam, result="hit") == 1
    assert metric("momentum_cache_loads_total", cache=fam) == 1
    assert metric("momentum_cache_load_duration_seconds_count", cache=fam) == 1


async def test_50_concurrent_cold_reads_run_the_loader_once(cache: CacheService) -> None:
    db, k = FakeDb(delay=0.02), new_key(1)
    results = await asyncio.gather(*(get(cache, k, db) for _ in range(50)))
    assert db.calls == 1
    assert all(r == Item(1, "v1") for r in results)
    fam = family(k)
    assert metric("momentum_cache_loads_total", cache=fam) == 1
    total = sum(
        metric("momentum_cache_operations_total", cache=fam, result=r) for r in ("hit", "miss")
    )
    assert total == 50


async def test_invalidate_then_read_is_fresh(cache: CacheService) -> None:
    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)
    db.value = "v2"
    await cache.invalidate(k)
    assert (await get(cache, k, db)).name == "v2"
    assert db.calls == 2


async def test_peek_rides_along_and_never_loads(cache: CacheService) -> None:
    db, other, k, peeked = FakeDb(), FakeDb(value="rank"), new_key(1), new_key(2)

    async def peek() -> tuple[Item, Item | None]:
        return await cache.get_or_load_peek(
            k, db.load, type_=Item, ttl=60, peek=peeked, peek_type=Item
        )

    assert await peek() == (Item(1, "v1"), None)  # main key loaded, peek key not cached
    assert db.calls == 1
    assert await get(cache, peeked, other) == Item(1, "rank")
    assert await peek() == (Item(1, "v1"), Item(1, "rank"))
    assert (db.calls, other.calls) == (1, 1)
    await cache.invalidate(peeked)  # an invalidated peek is never shown
    db.value = "v2"
    await cache.invalidate(k)
    assert await peek() == (Item(1, "v2"), None)
    assert (db.calls, other.calls) == (2, 1)


async def test_peek_is_one_round_trip(redis_server: RedisServer) -> None:
    cache = make_service(redis_server.url)
    db, k, peeked = FakeDb(), new_key(1), new_key(2)
    await get(cache, k, db)
    await get(cache, peeked, db)
    calls: list[str] = []
    backend = cache.backend
    for name in ("read", "read_many"):
        original = getattr(backend, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        setattr(backend, name, spy)
    value, extra = await cache.get_or_load_peek(
        k, db.load, type_=Item, ttl=60, peek=peeked, peek_type=Item
    )
    await cache.close()
    assert (value, extra, calls) == (Item(1, "v1"), Item(1, "v1"), ["read_many"])


async def test_reads_survive_a_script_flush(redis_server: RedisServer) -> None:
    """A restarted or flushed Redis forgets our Lua scripts: both read paths reload them."""
    cache = make_service(redis_server.url)
    assert isinstance(cache.backend, RedisBackend)
    db, k, peeked = FakeDb(), new_key(1), new_key(2)
    await get(cache, k, db)
    await cache.backend.client.script_flush()
    assert await get(cache, k, db) == Item(1, "v1")
    await cache.backend.client.script_flush()
    value, extra = await cache.get_or_load_peek(
        k, db.load, type_=Item, ttl=60, peek=peeked, peek_type=Item
    )
    await cache.close()
    assert (value, extra, db.calls) == (Item(1, "v1"), None, 1)


async def test_read_after_a_write_does_not_join_an_older_load(cache: CacheService) -> None:
    gate = asyncio.Event()
    db, k = FakeDb(gate=gate), new_key(1)
    slow = asyncio.create_task(get(cache, k, db))
    await db.started.wait()  # the loader has read "v1" and is still running
    db.value = "v2"  # the write commits ...
    await cache.invalidate(k)  # ... and invalidates in the same service call
    db.gate = None
    fresh = await asyncio.wait_for(get(cache, k, db), 1.0)  # must not wait for the old load
    assert fresh.name == "v2"
    gate.set()
    assert (await slow).name == "v1"  # allowed: that read started before the write
    assert (await get(cache, k, db)).name == "v2"


async def test_old_loader_finishing_after_invalidation_is_not_stored(cache: CacheService) -> None:
    gate = asyncio.Event()
    db, k = FakeDb(gate=gate), new_key(1)
    slow = asyncio.create_task(get(cache, k, db))
    await db.started.wait()
    db.value = "v2"
    await cache.invalidate(k)
    gate.set()
    assert (await slow).name == "v1"  # its caller raced the write: either answer is fine
    db.gate = None
    assert (await get(cache, k, db)).name == "v2"  # but it was not stored
    assert db.calls == 2


async def test_group_invalidation_reloads_every_member(cache: CacheService) -> None:
    db = FakeDb()
    page1, page2, other = new_key("page", 1), new_key("page", 2), new_key("x")
    for k in (page1, page2):
        await get(cache, k, db, group="lists")
    await get(cache, other, db, group="details")
    assert db.calls == 3
    db.value = "v2"
    await cache.invalidate_group("lists")
    assert (await get(cache, page1, db, group="lists")).name == "v2"
    assert (await get(cache, page2, db, group="lists")).name == "v2"
    assert (await get(cache, other, db, group="details")).name == "v1"
    assert db.calls == 5


async def test_group_invalidation_during_a_load_is_not_lost(cache: CacheService) -> None:
    gate = asyncio.Event()
    db, k = FakeDb(gate=gate), new_key("page", 1)
    slow = asyncio.create_task(get(cache, k, db, group="lists"))
    await db.started.wait()
    db.value = "v2"
    await cache.invalidate_group("lists")
    gate.set()
    await slow
    db.gate = None
    assert (await get(cache, k, db, group="lists")).name == "v2"


async def test_version_changes_with_the_value(cache: CacheService) -> None:
    db, k = FakeDb(), new_key(1)
    assert await cache.version(k) is None
    value, etag = await cache.get_or_load_versioned(k, db.load, type_=Item, ttl=60)
    assert value.name == "v1"
    assert await cache.version(k) == etag
    await cache.invalidate(k)
    assert await cache.version(k) is None
    db.value = "v2"
    _, etag2 = await cache.get_or_load_versioned(k, db.load, type_=Item, ttl=60)
    assert etag2 != etag
    assert await cache.version(k) == etag2
    # the same content gives the same token, loaded or cached
    _, again = await cache.get_or_load_versioned(k, db.load, type_=Item, ttl=60)
    assert again == etag2


async def test_ttl_expiry_reloads(cache: CacheService) -> None:
    db, k = FakeDb(), new_key(1)
    await cache.get_or_load(k, db.load, type_=Item, ttl=1)
    db.value = "v2"
    await asyncio.sleep(1.05)
    assert (await cache.get_or_load(k, db.load, type_=Item, ttl=1)).name == "v2"


async def test_lists_of_structs_round_trip(cache: CacheService) -> None:
    k = new_key("list")

    async def load() -> list[Item]:
        return [Item(1, "a"), Item(2, "b")]

    first = await cache.get_or_load(k, load, type_=list[Item], ttl=60)
    second = await cache.get_or_load(k, load, type_=list[Item], ttl=60)
    assert first == second == [Item(1, "a"), Item(2, "b")]


async def test_none_is_cached_too(cache: CacheService) -> None:
    k, calls = new_key("missing"), 0

    async def load() -> Item | None:
        nonlocal calls
        calls += 1
        return None

    for _ in range(2):
        assert await cache.get_or_load(k, load, type_=Item | None, ttl=60) is None
    assert calls == 1


async def test_undecodable_entry_is_a_miss(cache: CacheService) -> None:
    class Other(msgspec.Struct):
        total: int

    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)

    async def load_other() -> Other:
        return Other(3)

    assert await cache.get_or_load(k, load_other, type_=Other, ttl=60) == Other(3)


def test_an_entry_with_invalid_utf8_is_a_miss(cache: CacheService) -> None:
    """msgpack raises UnicodeDecodeError there, not DecodeError: still a miss, never a 4xx
    or 5xx for the page that read it."""
    corrupt = msgspec.msgpack.encode({"id": 1, "name": "x"}).replace(b"x", b"\xff")
    assert cache._decode(corrupt, Item) is None


async def test_loader_errors_reach_every_waiter_and_are_not_cached(cache: CacheService) -> None:
    k, calls = new_key(1), 0

    async def boom() -> Item:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(cache.get_or_load(k, boom, type_=Item, ttl=60) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert calls == 1
    assert (await get(cache, k, FakeDb())).name == "v1"


async def test_cancelled_leader_does_not_fail_its_waiters(cache: CacheService) -> None:
    db, k = FakeDb(delay=0.05), new_key(1)
    leader = asyncio.create_task(get(cache, k, db))
    await db.started.wait()
    waiter = asyncio.create_task(get(cache, k, db))
    await asyncio.sleep(0.005)
    leader.cancel()
    assert (await waiter).name == "v1"


async def test_disabled_cache_always_loads(cache_url: str | None) -> None:
    settings = replace(Settings(), redis_url=cache_url, cache_enabled=False)
    service = build_cache(settings)
    db, k = FakeDb(), new_key(1)
    await get(service, k, db)
    await get(service, k, db)
    assert db.calls == 2
    assert await service.version(k) is None
    await service.close()


async def test_build_cache_picks_the_backend(cache_url: str | None) -> None:
    service = build_cache(replace(Settings(), redis_url=cache_url))
    expected = MemoryBackend if cache_url is None else RedisBackend
    assert isinstance(service.backend, expected)
    assert await service.ping()
    stores = service.stores()
    assert set(stores) == {"sessions", "rate_limit"}
    store_type = MemoryStore if cache_url is None else RedisStore
    assert all(isinstance(s, store_type) for s in stores.values())
    await stores["sessions"].set("s1", b"data", expires_in=10)
    assert await stores["sessions"].get("s1") == b"data"
    assert await stores["rate_limit"].get("s1") is None
    await service.close()


async def test_memory_backend_is_bounded() -> None:
    service = CacheService(MemoryBackend(max_entries=10))
    db = FakeDb()
    for i in range(25):
        await get(service, new_key(i), db)
    assert isinstance(service.backend, MemoryBackend)
    assert len(service.backend) == 10


async def test_memory_backend_version_eviction_never_revives_an_old_stamp() -> None:
    backend = MemoryBackend(max_versions=2)
    snap = await backend.read("k", None)
    await backend.invalidate(["k"])
    await backend.invalidate(["a", "b"])  # evicts "k"'s version
    assert not await backend.write("k", None, snap.stamp, b"x", "e", ttl=60, grace=0)


# ---- Redis only: several processes, failures -----------------------------------------


async def test_two_processes_load_once_per_ttl_window(redis_server: RedisServer) -> None:
    a, b = make_service(redis_server.url), make_service(redis_server.url)
    await a.start()  # as the app lifespan does: opens a few connections up front
    await b.start()
    db, k = FakeDb(delay=0.05), new_key(1)
    results = await asyncio.gather(*(get(svc, k, db) for svc in (a, b) for _ in range(25)))
    assert db.calls == 1
    assert {r.name for r in results} == {"v1"}
    await a.close()
    await b.close()


async def test_invalidation_by_another_process_is_seen(redis_server: RedisServer) -> None:
    a, b = make_service(redis_server.url), make_service(redis_server.url)
    gate = asyncio.Event()
    db, k = FakeDb(gate=gate), new_key(1)
    slow = asyncio.create_task(get(a, k, db))  # process A loads ...
    await db.started.wait()
    db.value = "v2"
    await b.invalidate(k)  # ... process B writes and invalidates
    gate.set()
    await slow
    db.gate = None
    assert (await get(a, k, db)).name == "v2"
    assert (await get(b, k, db)).name == "v2"
    await a.close()
    await b.close()


async def test_expired_value_is_served_stale_while_a_peer_refreshes(
    redis_server: RedisServer,
) -> None:
    a = make_service(redis_server.url)
    db, k = FakeDb(), new_key(1)
    await a.get_or_load(k, db.load, type_=Item, ttl=1)
    await asyncio.sleep(1.05)
    snap = await a.backend.read(k, None)
    assert await a._lock(k, snap.stamp) is not None  # a peer is refreshing
    db.value = "v2"
    value = await a.get_or_load(k, db.load, type_=Item, ttl=1)
    assert value.name == "v1"
    assert db.calls == 1
    assert metric("momentum_cache_operations_total", cache=family(k), result="stale") == 1
    await a.close()


async def test_invalidated_value_is_never_served_stale(redis_server: RedisServer) -> None:
    a = make_service(redis_server.url)
    db, k = FakeDb(), new_key(1)
    await get(a, k, db)
    db.value = "v2"
    await a.invalidate(k)
    snap = await a.backend.read(k, None)
    assert await a._lock(k, snap.stamp) is not None  # a peer is loading the new version
    started = time.perf_counter()
    assert (await get(a, k, db)).name == "v2"  # waits briefly, then loads itself
    assert time.perf_counter() - started < a.lock_wait + 0.2
    await a.close()


async def timed(call: Callable[[], Awaitable[Item]]) -> tuple[Item, float]:
    started = time.perf_counter()
    value = await call()
    return value, time.perf_counter() - started


async def test_redis_killed_mid_test_fails_open_fast(redis_server: RedisServer) -> None:
    cache = make_service(redis_server.url, cooldown=0.3, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    fam = family(k)
    await get(cache, k, db)
    redis_server.kill()
    for _ in range(20):
        value, elapsed = await timed(lambda: get(cache, k, db))
        assert value.name == "v1"
        assert elapsed < 0.1
    assert cache.breaker.is_open
    assert cache.breaker.opened == 1
    assert metric("momentum_cache_operations_total", cache=fam, result="error") == 20
    assert db.calls == 21
    assert metric("momentum_cache_circuit_open") == 1

    redis_server.start()  # same port, empty
    await asyncio.sleep(0.35)  # the breaker lets one probe through
    assert (await get(cache, k, db)).name == "v1"
    assert not cache.breaker.is_open
    calls = db.calls
    assert (await get(cache, k, db)).name == "v1"
    assert db.calls == calls  # cached again
    assert metric("momentum_cache_circuit_open") == 0
    await cache.close()


async def test_unresponsive_redis_adds_at_most_the_timeout(redis_server: RedisServer) -> None:
    cache = make_service(redis_server.url, cooldown=0.3, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)
    redis_server.pause()
    try:
        for _ in range(cache.breaker.timeout_threshold):  # each times out once, then loads
            value, elapsed = await timed(lambda: get(cache, k, db))
            assert value.name == "v1"
            assert elapsed < cache.timeout + 0.05
        assert cache.breaker.is_open
        value, elapsed = await timed(lambda: get(cache, k, db))  # breaker open: no wait
        assert elapsed < 0.03
        assert await cache.version(k) is None
        assert not await cache.ping()
    finally:
        redis_server.resume()
    await cache.close()


async def test_one_timeout_does_not_open_the_breaker(redis_server: RedisServer) -> None:
    cache = make_service(redis_server.url, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)
    redis_server.pause()
    try:
        assert (await get(cache, k, db)).name == "v1"
    finally:
        redis_server.resume()
    assert not cache.breaker.is_open
    assert (await get(cache, k, db)).name == "v1"
    assert db.calls == 2
    await cache.close()


async def test_invalidation_during_an_outage_is_replayed(redis_server: RedisServer) -> None:
    cache = make_service(redis_server.url, cooldown=0.2, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)
    redis_server.pause()
    try:
        db.value = "v2"
        await cache.invalidate(k)  # cannot reach Redis: kept for later
        assert (await get(cache, k, db)).name == "v2"  # times out: from the loader
        assert (await get(cache, k, db)).name == "v2"
    finally:
        redis_server.resume()
    await asyncio.sleep(0.25)
    assert (await get(cache, k, db)).name == "v2"  # the old entry was invalidated first
    assert not cache.breaker.is_open
    await cache.close()


async def test_start_with_redis_down_opens_the_breaker(redis_server: RedisServer) -> None:
    redis_server.kill()
    cache = make_service(redis_server.url, timeout=0.05)
    await cache.start()
    assert cache.breaker.is_open
    value, elapsed = await timed(lambda: get(cache, new_key(1), FakeDb()))
    assert value.name == "v1"
    assert elapsed < 0.01
    await cache.close()


async def test_a_late_event_loop_is_not_blamed_on_redis(redis_server: RedisServer) -> None:
    """CPU-bound work that stalls the loop must not look like a slow Redis: the cache adds
    the loop's measured lag to its timeout, so no loader runs and the breaker stays shut."""
    cache = make_service(redis_server.url, timeout=0.05)
    await cache.start()
    db, k = FakeDb(), new_key(1)
    try:
        await get(cache, k, db)
        for _ in range(2):  # the loop stalls for 250 ms, twice: the monitor sees it
            time.sleep(0.25)
            await asyncio.sleep(0.06)
        assert cache.loop_lag.lag >= 0.1
        reads = [asyncio.create_task(get(cache, k, db)) for _ in range(10)]
        await asyncio.sleep(0)  # the reads are sent...
        time.sleep(0.08)
        values = await asyncio.gather(*reads)
        assert {v.name for v in values} == {"v1"}
        assert db.calls == 1  # every read was a hit
        assert not cache.breaker.is_open
        assert metric("momentum_event_loop_lag_seconds") > 0
    finally:
        await cache.close()
    assert cache.loop_lag._task is None


async def test_replies_that_arrived_while_the_loop_stalled_are_not_timed_out(
    redis_server: RedisServer,
) -> None:
    """A fresh monitor (no lag seen yet): the loop stalls 80 ms past the 50 ms timeout while
    Redis has already answered. The late timer gives the replies one more turn, so they land:
    no loader runs and nothing counts against the breaker (a plain timeout loaded all three)."""
    cache = make_service(redis_server.url, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    try:
        await get(cache, k, db)
        reads = [asyncio.create_task(get(cache, k, db)) for _ in range(3)]
        await asyncio.sleep(0)
        time.sleep(0.08)
        await asyncio.gather(*reads)
        assert db.calls == 1
        assert cache.breaker._timeouts == 0
    finally:
        await cache.close()


async def test_a_silent_redis_still_times_out_when_the_loop_is_late(
    redis_server: RedisServer,
) -> None:
    """The control: the extra turn is one short slice, not a wait for an answer that is not
    coming. Redis paused, the loop stalled: the read loads within timeout + stall + slice."""
    cache = make_service(redis_server.url, timeout=0.05)
    db, k = FakeDb(), new_key(1)
    await get(cache, k, db)
    redis_server.pause()
    try:
        started = time.perf_counter()
        read = asyncio.create_task(get(cache, k, db))
        await asyncio.sleep(0)
        time.sleep(0.08)
        assert (await read).name == "v1"
        assert db.calls == 2
        assert time.perf_counter() - started < 0.08 + cache.timeout + 0.05
    finally:
        redis_server.resume()
        await cache.close()
