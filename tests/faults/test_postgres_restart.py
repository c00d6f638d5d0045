"""PostgreSQL restarted behind pgbouncer under steady traffic.

The test runs a PostgreSQL cluster of its own (initdb on a free port, so it can be
restarted without touching the machine's server), the ops pgbouncer config in front of it,
and `python -m app serve` with the cache off so every read reaches the database. While
four clients read steadily, PostgreSQL is restarted. Errors may only appear during the
restart window, each a clean 503 with Retry-After, and the same server process recovers."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from app.settings import get_settings
from tests.conftest import migrate_and_seed
from tests.faults.live import free_port, live_server
from tests.pgbouncer import PGBOUNCER, start_pgbouncer, stop

PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), "")
DB = "momentum_restart"
RECOVERY_GRACE = 6.0  # pgbouncer retries the server every second; the app's pool then heals

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(PGBOUNCER).exists() and PG_BIN),
        reason="needs pgbouncer and PostgreSQL server binaries (Debian)",
    ),
]


def as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL and pgbouncer refuse to run as root: drop to the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Cluster:
    data: Path
    port: int
    log: Path

    def ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        subprocess.run(
            as_postgres(
                [
                    f"{PG_BIN}/pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    *args,
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="momentum-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data = root / "data"
    subprocess.run(
        as_postgres([f"{PG_BIN}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pg = Cluster(data, free_port(), root / "postgres.log")
    pg.ctl("start")
    try:
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", DB], check=True
        )
        yield pg
    finally:
        subprocess.run(
            as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def bouncer(cluster: Cluster) -> Iterator[int]:
    proc, port, tmp = start_pgbouncer({DB: f"host=127.0.0.1 port={cluster.port} dbname={DB}"})
    try:
        yield port
    finally:
        stop(proc, tmp)


@dataclass
class Reply:
    at: float
    status: int
    retry_after: str | None


async def read_steadily(base: str, stop: asyncio.Event, replies: list[Reply]) -> None:
    paths = ["/api/v1/challenges/1", "/api/v1/leaderboard?limit=10", "/api/v1/challenges"]
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:

        async def reader(offset: int) -> None:
            i = offset
            while not stop.is_set():
                res = await client.get(paths[i % len(paths)])
                replies.append(
                    Reply(time.monotonic(), res.status_code, res.headers.get("retry-after"))
                )
                i += 1
                await asyncio.sleep(0.02)

        await asyncio.gather(*(reader(n) for n in range(4)))


async def test_postgres_restart_behind_pgbouncer(
    cluster: Cluster, bouncer: int, tmp_path: Path
) -> None:
    direct = replace(
        get_settings(), database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{DB}"
    )
    migrate_and_seed(direct)
    env = {
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{bouncer}/{DB}",
        "DATABASE_POOLER": "true",
        "CACHE_ENABLED": "false",  # every read goes to the database
        "REDIS_URL": "",
    }
    with live_server(env, tmp_path / "server.log") as base:
        replies: list[Reply] = []
        stop = asyncio.Event()
        traffic = asyncio.create_task(read_steadily(base, stop, replies))
        await asyncio.sleep(3)
        down = time.monotonic()
        await asyncio.to_thread(cluster.ctl, "-m", "fast", "restart")
        up = time.monotonic()
        await asyncio.sleep(RECOVERY_GRACE + 4)
        stop.set()
        await traffic
        health = httpx.get(f"{base}/readyz", timeout=5)

    before = [r for r in replies if r.at < down]
    window = [r for r in replies if down <= r.at <= up + RECOVERY_GRACE]
    after = [r for r in replies if r.at > up + RECOVERY_GRACE]
    errors = [r for r in replies if r.status != 200]
    back = next((r.at - up for r in replies if r.at > up and r.status == 200), -1.0)
    summary = (
        f"{len(replies)} reads; restart took {up - down:.1f}s; "
        f"errors {len(errors)} ({sorted({r.status for r in errors})}), "
        f"first 200 after the restart at +{back:.2f}s"
    )
    print(summary)
    assert before and all(r.status == 200 for r in before), summary
    assert after and all(r.status == 200 for r in after), summary  # recovered, same process
    assert {r.status for r in window} <= {200, 503}, summary
    assert all(r.retry_after for r in errors), summary
    assert all(down <= r.at <= up + RECOVERY_GRACE for r in errors), summary
    assert health.status_code == 200
