#!/usr/bin/env python3
"""Typical-read latency direct vs through pgbouncer, and server connections at 200 clients.

    python scripts/bench_db.py [--iterations 500] [--clients 200] [--queries 20]

Needs the stack (`make stack-up`): database `momentum` migrated and seeded on 127.0.0.1:5432,
pgbouncer on 127.0.0.1:6432. Creates nothing. asyncpg talks to PostgreSQL and pgbouncer;
pgbouncer's admin console only speaks the simple query protocol, so it is read with psql.

The direct concurrent run opens at most as many connections as PostgreSQL has free
(max_connections minus those in use minus --headroom): 200 direct clients cannot all connect
when max_connections is 100, which is the point of the pooler. --direct-all tries anyway and
counts the refusals (briefly starving everyone else on this PostgreSQL: not by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

QUERY = (
    "SELECT id, title, category, participant_count FROM challenges "
    "ORDER BY participant_count DESC LIMIT 12"
)


@dataclass
class Timings:
    ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        key = type(exc).__name__ + (f": {exc}"[:80] if str(exc) else "")
        self.errors[key] = self.errors.get(key, 0) + 1

    def pct(self, q: float) -> float:
        if not self.ms:
            return float("nan")
        if len(self.ms) == 1:
            return self.ms[0]
        return statistics.quantiles(self.ms, n=100, method="inclusive")[round(q * 100) - 1]

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())


def dsn(port: int, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


# --- pgbouncer admin console and PostgreSQL counters via psql ------------------------------
def psql_rows(port: int, database: str, sql: str) -> list[dict[str, str]]:
    """Run one statement with psql (simple protocol) and return rows as dicts."""
    argv = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database]
    argv += ["-X", "-A", "-F", "\t", "-P", "footer=off", "-c", sql]
    out = subprocess.run(  # noqa: S603 - fixed argv, loopback only
        argv,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.splitlines()
    if not out:
        return []
    header = out[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in out[1:]]


def pool_servers(pgb_port: int, database: str) -> tuple[int, int, int]:
    """(server connections open, active, clients waiting) of pgbouncer's pool for database."""
    opened = active = waiting = 0
    for row in psql_rows(pgb_port, "pgbouncer", "SHOW POOLS"):
        if row.get("database") != database:
            continue
        active += int(row["sv_active"])
        opened += sum(
            int(row.get(k, 0) or 0)
            for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
        )
        waiting += int(row["cl_waiting"])
    return opened, active, waiting


def pg_backends(database: str | None = None) -> int:
    """Client backends on PostgreSQL :5432, for one database or all of them."""
    sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'"
    if database is not None:  # validated by argparse: [A-Za-z0-9_]+
        sql += f" AND datname = '{database}'"
    return int(psql_rows(5432, "postgres", sql)[0]["n"])


async def sample(probe: Callable[[], Any], stop: asyncio.Event, every: float = 0.05) -> list[Any]:
    """Call a blocking probe in a thread until stop is set; return all samples."""
    samples: list[Any] = []
    while not stop.is_set():
        with contextlib.suppress(Exception):
            samples.append(await asyncio.to_thread(probe))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    return samples


# --- phase 1: one connection, sequential --------------------------------------------------
async def timed(fn: Callable[[], Awaitable[Any]], n: int, warmup: int) -> Timings:
    t = Timings()
    for i in range(n + warmup):
        start = time.perf_counter()
        try:
            await fn()
        except (asyncpg.PostgresError, OSError) as exc:
            t.error(exc)
            continue
        if i >= warmup:
            t.ms.append((time.perf_counter() - start) * 1000)
    return t


async def sequential(port: int, database: str, n: int, cache: bool) -> Timings:
    conn = await asyncpg.connect(dsn(port, database), statement_cache_size=100 if cache else 0)
    try:
        return await timed(lambda: conn.fetch(QUERY), n, warmup=max(10, n // 20))
    finally:
        await conn.close()


async def connect_and_query(port: int, database: str, n: int) -> Timings:
    async def once() -> None:
        conn = await asyncpg.connect(dsn(port, database), statement_cache_size=0)
        try:
            await conn.fetch(QUERY)
        finally:
            await conn.close()

    return await timed(once, n, warmup=3)


# --- phase 2: many clients at once ---------------------------------------------------------
@dataclass
class Countdown:
    """Set `done` once `left` reaches zero (every client connected or refused)."""

    left: int
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def tick(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


async def client(
    port: int, database: str, queries: int, t: Timings, go: asyncio.Event, settled: Countdown
) -> None:
    try:
        conn = await asyncpg.connect(dsn(port, database), statement_cache_size=0, timeout=15)
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        t.error(exc)
        settled.tick()
        return
    settled.tick()
    try:
        await go.wait()  # all clients connected first: the burst hits the pool at once
        for _ in range(queries):
            start = time.perf_counter()
            try:
                await conn.fetch(QUERY)
            except (asyncpg.PostgresError, OSError) as exc:
                t.error(exc)
                if conn.is_closed():
                    return
                continue
            t.ms.append((time.perf_counter() - start) * 1000)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


@dataclass
class Burst:
    label: str
    clients: int
    timings: Timings
    seconds: float
    servers_max: int
    active_max: int
    waiting_max: int
    note: str = ""


async def burst(
    label: str, port: int, database: str, clients: int, queries: int, probe: Callable[[], Any]
) -> Burst:
    t = Timings()
    go, stop = asyncio.Event(), asyncio.Event()
    sampler = asyncio.create_task(sample(probe, stop))
    settled = Countdown(clients)
    tasks = [
        asyncio.create_task(client(port, database, queries, t, go, settled)) for _ in range(clients)
    ]
    # All clients connect first, then the reads are released at once: a burst on the pool.
    if clients:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.done.wait(), 20)
    start = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    stop.set()
    samples = await sampler
    if samples and isinstance(samples[0], tuple):
        servers = max(s[0] for s in samples)
        active = max(s[1] for s in samples)
        waiting = max(s[2] for s in samples)
    else:
        servers = max(samples, default=0)
        active, waiting = servers, 0
    return Burst(label, clients, t, seconds, servers, active, waiting)


# --- report --------------------------------------------------------------------------------
def fmt(x: float) -> str:
    return "   -  " if x != x else f"{x:7.2f}"  # NaN check


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", value):
        raise argparse.ArgumentTypeError("letters, digits and _ only")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="momentum", type=_identifier)
    parser.add_argument("--direct-port", type=int, default=5432)
    parser.add_argument("--pgbouncer-port", type=int, default=6432)
    parser.add_argument("--iterations", type=int, default=500, help="sequential reads per path")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--queries", type=int, default=20, help="reads per concurrent client")
    parser.add_argument("--headroom", type=int, default=15, help="direct slots left to others")
    parser.add_argument("--direct-all", action="store_true", help="really open --clients direct")
    args = parser.parse_args()
    return asyncio.run(run(args))


async def preflight(args: argparse.Namespace) -> str | None:
    try:
        conn = await asyncpg.connect(dsn(args.direct_port, args.database))
    except (asyncpg.PostgresError, OSError) as exc:
        return f"cannot connect to PostgreSQL :{args.direct_port}/{args.database}: {exc}"
    try:
        n = await conn.fetchval("SELECT count(*) FROM challenges")
    except asyncpg.UndefinedTableError:
        return "table challenges missing: run `make stack-up` (migrates and seeds) first"
    finally:
        await conn.close()
    if not n:
        return "table challenges is empty: run `make stack-up` (seeds --scale load) first"
    try:
        pool_servers(args.pgbouncer_port, args.database)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"cannot read pgbouncer's console on :{args.pgbouncer_port}: {exc}"
    return None


async def run(args: argparse.Namespace) -> int:
    problem = await preflight(args)
    if problem:
        print(f"bench-db: {problem}", file=sys.stderr)
        return 2
    db, n = args.database, args.iterations
    settings = {r["name"]: r["setting"] for r in psql_rows(
        args.direct_port, "postgres",
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('max_connections', 'superuser_reserved_connections')",
    )}  # fmt: skip
    max_conn = int(settings["max_connections"])

    print(f"typical read: {QUERY}")
    print(f"\n1) one connection, {n} sequential reads (after warm-up)")
    rows = [
        (f"direct :{args.direct_port}, statement cache",
         await sequential(args.direct_port, db, n, cache=True)),
        (f"direct :{args.direct_port}, no statement cache",
         await sequential(args.direct_port, db, n, cache=False)),
        (f"pgbouncer :{args.pgbouncer_port}, no statement cache",
         await sequential(args.pgbouncer_port, db, n, cache=False)),
        ("connect+read, direct", await connect_and_query(args.direct_port, db, max(20, n // 10))),
        ("connect+read, pgbouncer",
         await connect_and_query(args.pgbouncer_port, db, max(20, n // 10))),
    ]  # fmt: skip
    print(f"   {'path':<36} {'n':>5} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>7} {'err':>4}")
    for label, t in rows:
        mean = statistics.fmean(t.ms) if t.ms else float("nan")
        print(
            f"   {label:<36} {len(t.ms):>5} {fmt(t.pct(0.5))} {fmt(t.pct(0.95))} "
            f"{fmt(mean)} {t.n_errors:>4}"
        )

    print(f"\n2) {args.clients} concurrent clients x {args.queries} reads, one connection each")
    pooled = await burst(
        f"pgbouncer :{args.pgbouncer_port}", args.pgbouncer_port, db, args.clients, args.queries,
        lambda: pool_servers(args.pgbouncer_port, db),
    )  # fmt: skip
    pooled.note = "server conns from SHOW POOLS"
    in_use = pg_backends()  # includes pgbouncer's idle server connections
    free = max(0, max_conn - in_use - args.headroom)
    direct_clients = args.clients if args.direct_all else min(args.clients, free)
    before = pg_backends(db)
    direct = await burst(
        f"direct :{args.direct_port}", args.direct_port, db, direct_clients, args.queries,
        lambda: pg_backends(db) - before,
    )  # fmt: skip
    direct.note = "backends from pg_stat_activity"
    if direct_clients < args.clients:
        direct.note += (
            f"; capped at {direct_clients}: max_connections={max_conn}, {in_use} in use,"
            f" {args.headroom} left to others"
        )

    print(
        f"   {'path':<16} {'clients':>7} {'reads ok':>8} {'errors':>6} {'reads/s':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'server conns':>12} {'active':>6} {'waiting':>7}"
    )
    for b in (pooled, direct):
        t = b.timings
        rps = len(t.ms) / b.seconds if b.seconds else 0.0
        print(
            f"   {b.label:<16} {b.clients:>7} {len(t.ms):>8} {t.n_errors:>6} {rps:>8.0f} "
            f"{fmt(t.pct(0.5))} {fmt(t.pct(0.95))} {b.servers_max:>12} {b.active_max:>6} "
            f"{b.waiting_max:>7}"
        )
    for b in (pooled, direct):
        print(f"   {b.label}: {b.note}")
        for err, count in b.timings.errors.items():
            print(f"     {count} x {err}")
    print(
        f"\n   {args.clients} clients through pgbouncer used at most {pooled.servers_max} "
        f"PostgreSQL connections; direct, every client is a backend ({args.clients} needed, "
        f"max_connections={max_conn})."
    )
    return 1 if pooled.timings.n_errors else 0


if __name__ == "__main__":
    sys.exit(main())
