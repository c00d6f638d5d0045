"""Storage backends of the cache service: the snapshot contract and the in-process store.

A backend stores opaque payloads under a key together with a *stamp*: the key's version
and its group's generation at the time the loader *started*. ``write`` is a
compare-and-set on that stamp, so a loader that began before an invalidation can never
store its (old) result after it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Stamp = tuple[str, str]
"""(key version, group generation) as seen by a read; ``""`` means "never invalidated"."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a read saw: the stamp to write back with, and the entry if it is still valid.

    ``etag`` is set iff a valid entry (matching the current stamp) exists; ``payload`` is
    set with it when data was requested; ``fresh`` says it is also within its TTL (a
    valid but expired entry may be served as *stale* while a peer refreshes it).
    """

    stamp: Stamp
    payload: bytes | None = None
    etag: str | None = None
    fresh: bool = False


class Backend(Protocol):
    """What the cache service needs from a store."""

    @property
    def distributed(self) -> bool:
        """True when several processes share the store (locks and timeouts matter)."""
        ...

    async def read(self, key: str, group: str | None, *, with_data: bool = True) -> Snapshot: ...

    async def read_many(self, reads: Sequence[tuple[str, str | None]]) -> list[Snapshot]:
        """Several ``read``s (with data) in one round trip, in order."""
        ...

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
    ) -> bool: ...

    async def invalidate(self, keys: Iterable[str]) -> None: ...

    async def invalidate_groups(self, groups: Iterable[str]) -> None: ...

    async def try_lock(self, key: str, ttl: float) -> str | None: ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class _Entry:
    __slots__ = ("etag", "expires_at", "gen", "payload")

    def __init__(self, gen: str, etag: str, payload: bytes, expires_at: float) -> None:
        self.gen = gen
        self.etag = etag
        self.payload = payload
        self.expires_at = expires_at


class MemoryBackend:
    """In-process store (the embedded default): TTL, groups and versions, bounded LRU.

    Key versions are ticks of a counter kept in a bounded LRU map; when a version is
    evicted the *floor* (default version of unrecorded keys) rises to it, so a loader
    whose key was invalidated can never see its original version again (no ABA).
    ``invalidate`` deletes the entry synchronously, so reads only check the generation.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_versions: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._gens: dict[str, int] = {}
        self._max_entries = max_entries
        self._max_versions = max_versions
        self._floor = 0
        self._tick = 0
        self._clock = clock

    @property
    def distributed(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._entries)

    def _stamp(self, key: str, group: str | None) -> Stamp:
        version = str(self._versions.get(key, self._floor))
        gen = str(self._gens.get(group, 0)) if group else ""
        return version, gen

    async def read(self, key: str, group: str | None, *, with_data: bool = True) -> Snapshot:
        stamp = self._stamp(key, group)
        entry = self._entries.get(key)
        if entry is None:
            return Snapshot(stamp)
        if entry.gen != stamp[1] or entry.expires_at <= self._clock():
            del self._entries[key]
            return Snapshot(stamp)
        self._entries.move_to_end(key)
        payload = entry.payload if with_data else None
        return Snapshot(stamp, payload, entry.etag, fresh=True)

    async def read_many(self, reads: Sequence[tuple[str, str | None]]) -> list[Snapshot]:
        return [await self.read(key, group) for key, group in reads]

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
        if self._stamp(key, group) != stamp:
            return False
        self._entries[key] = _Entry(stamp[1], etag, payload, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return True

    async def invalidate(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._tick += 1
            self._versions[key] = self._tick
            self._versions.move_to_end(key)
            self._entries.pop(key, None)
        while len(self._versions) > self._max_versions:
            _, evicted = self._versions.popitem(last=False)
            self._floor = max(self._floor, evicted)

    async def invalidate_groups(self, groups: Iterable[str]) -> None:
        for group in groups:
            self._gens[group] = self._gens.get(group, 0) + 1

    async def try_lock(self, key: str, ttl: float) -> str | None:
        return "local"  # one process: the service's per-key flights already coalesce loads

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()
