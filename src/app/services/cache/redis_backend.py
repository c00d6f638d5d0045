"""Redis backend: one client and pool per process, Lua scripts so each step is one round trip.

Layout (``K`` is the full cache key, e.g. ``momentum:v1:challenge:42``):
- ``K``          hash {v: key version, g: group generation, e: etag, f: fresh-until ms, d: data}
- ``K~ver``      the key's version token, replaced by ``invalidate`` (7 day TTL)
- ``K~lock``     the refresh lock: ``SET NX PX`` with a random token
- ``momentum:v1:~gen:<group>``  the group's generation token, replaced by ``invalidate_group``
Tokens are unique (time + random), never counters, so an expired token cannot come back.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from app.services.cache.backends import Snapshot, Stamp
from app.services.cache.keys import PREFIX, new_token

TOKEN_TTL_MS = 7 * 24 * 3600 * 1000

_READ = """
local v = redis.call('GET', KEYS[2]) or ''
local g = ''
if KEYS[3] then g = redis.call('GET', KEYS[3]) or '' end
local h
if ARGV[1] == '1' then
  h = redis.call('HMGET', KEYS[1], 'v', 'g', 'e', 'f', 'd')
else
  h = redis.call('HMGET', KEYS[1], 'v', 'g', 'e', 'f')
end
if h[1] == v and h[2] == g and h[3] then
  return {v, g, h[3], h[4], h[5]}
end
return {v, g}
"""

_WRITE = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
if KEYS[3] and (redis.call('GET', KEYS[3]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'g', ARGV[2], 'e', ARGV[3], 'f', ARGV[4], 'd', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

_INVALIDATE = """
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[i])
end
return #KEYS / 2
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def create_client(url: str, *, timeout: float, max_connections: int = 64) -> Redis:
    """The process's Redis client: no retries, periodic health checks, a small blocking pool.

    Fail-open needs failures to surface fast, so there is no retry/backoff here; the cache
    service bounds each of its calls by ``timeout`` itself (``asyncio.timeout``) and decides
    what to do (call the loader, open its circuit breaker). Socket timeouts are a backstop
    at 4x that (min 250 ms), which also bounds the session and rate-limit stores sharing
    the pool, so a busy event loop does not turn a session read into a 500.
    The pool is *blocking*: a burst queues for a free connection instead of opening
    sockets without bound. It is sized for a saturated loop, not an idle one: a command
    holds its connection until the loop gets round to the reply (one loop turn, 10-30 ms
    at full CPU), so 16 connections made 100 concurrent reads wait in line past the cache
    timeout (the mixed load run saw ~25 % of reads time out that way, with Redis idle).
    """
    backstop = max(timeout * 4, 0.25)
    pool = BlockingConnectionPool.from_url(
        url,
        socket_timeout=backstop,
        socket_connect_timeout=backstop,
        health_check_interval=15,
        max_connections=max_connections,
        timeout=backstop,  # waiting for a free connection
        retry=Retry(NoBackoff(), 0),
        client_name="momentum",
    )
    return Redis.from_pool(pool)


class _Script:
    """EVALSHA, loading the script on NOSCRIPT. redis-py's ``AsyncScript.__call__`` does the
    same plus an ``isinstance`` against a typing Protocol on every call, which cost ~10% of a
    worker's CPU on cache hits under load."""

    def __init__(self, client: Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self.client.script_load(self.source)
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)


class RedisBackend:
    """Cache backend on a shared ``redis.asyncio`` client (owned: ``close`` closes it)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._read = _Script(client, _READ)
        self._write = _Script(client, _WRITE)
        self._invalidate = _Script(client, _INVALIDATE)
        self._unlock = _Script(client, _UNLOCK)

    @property
    def distributed(self) -> bool:
        return True

    @staticmethod
    def _keys(key: str, group: str | None) -> list[str]:
        keys = [key, f"{key}~ver"]
        if group:
            keys.append(f"{PREFIX}~gen:{group}")
        return keys

    async def read(self, key: str, group: str | None, *, with_data: bool = True) -> Snapshot:
        reply = await self._read(keys=self._keys(key, group), args=["1" if with_data else "0"])
        return self._snapshot(reply, with_data)

    async def read_many(self, reads: Sequence[tuple[str, str | None]]) -> list[Snapshot]:
        """One pipeline of read scripts (each atomic on its own): one round trip."""
        try:
            replies = await self._pipelined_reads(reads)
        except NoScriptError:
            self._read.sha = await self.client.script_load(_READ)
            replies = await self._pipelined_reads(reads)
        return [self._snapshot(reply, True) for reply in replies]

    async def _pipelined_reads(self, reads: Sequence[tuple[str, str | None]]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key, group in reads:
                keys = self._keys(key, group)
                pipe.evalsha(self._read.sha, len(keys), *keys, "1")
            return list(await pipe.execute())

    @staticmethod
    def _snapshot(reply: Any, with_data: bool) -> Snapshot:
        stamp: Stamp = (_str(reply[0]), _str(reply[1]))
        if len(reply) < 4:
            return Snapshot(stamp)
        fresh = int(reply[3]) > time.time() * 1000
        payload = bytes(reply[4]) if with_data and len(reply) > 4 else None
        return Snapshot(stamp, payload, _str(reply[2]), fresh=fresh)

    async def write(
        self,
        key: str,
        group: str | None,
        stamp: Stamp,
        payload: bytes,
        etag: str,
        *,
        ttl: float,
        grace: float,
    ) -> bool:
        fresh_until = int((time.time() + ttl) * 1000)
        expire_ms = max(1, int((ttl + grace) * 1000))
        args: list[Any] = [stamp[0], stamp[1], etag, fresh_until, expire_ms, payload]
        return bool(await self._write(keys=self._keys(key, group), args=args))

    async def invalidate(self, keys: Iterable[str]) -> None:
        pairs = [name for key in keys for name in (key, f"{key}~ver")]
        if pairs:
            await self._invalidate(keys=pairs, args=[new_token(), TOKEN_TTL_MS])

    async def invalidate_groups(self, groups: Iterable[str]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.set(f"{PREFIX}~gen:{group}", new_token(), px=TOKEN_TTL_MS)
            await pipe.execute()

    async def try_lock(self, key: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        acquired = await self.client.set(f"{key}~lock", token, nx=True, px=max(1, int(ttl * 1000)))
        return token if acquired else None

    async def unlock(self, key: str, token: str) -> None:
        await self._unlock(keys=[f"{key}~lock"], args=[token])

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def warm_up(self, connections: int | None = None) -> None:
        """Fill the pool and load the scripts now, not during the first burst of requests.

        A cold burst of 50 reads otherwise spends 50-90 ms opening sockets and answering
        NOSCRIPT, which is more than the cache timeout; warm, the same burst takes ~15 ms.
        """
        count = connections or int(getattr(self.client.connection_pool, "max_connections", 4))
        await asyncio.gather(*(self.client.ping() for _ in range(min(count, 32))))
        for script in (_READ, _WRITE, _INVALIDATE, _UNLOCK):
            await self.client.script_load(script)

    async def close(self) -> None:
        await self.client.aclose()
