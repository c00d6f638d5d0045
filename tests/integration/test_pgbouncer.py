"""The app behind a real pgbouncer in transaction mode (started by the test on a free
port with the ops config): mixed concurrent traffic without errors, and a pool forced to
exhaustion answering 503 within its wait timeout instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings, get_settings
from tests.conftest import scratch_postgres, sign_up_api
from tests.pgbouncer import PGBOUNCER, start_pgbouncer, stop

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(PGBOUNCER).exists(), reason="pgbouncer not installed (Debian `pgbouncer`)"
    ),
]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_postgres("momentum_pgb") as direct:
        yield direct.database_url.rsplit("/", 1)[-1]


def pooled_settings(database: str, port: int, **overrides: Any) -> Settings:
    return replace(
        get_settings(),
        app_env="test",
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}",
        database_pooler=True,
        login_rate_limit=100_000,
        coach_warmup=False,
        **overrides,
    )


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[int]:
    proc, port, tmp = start_pgbouncer()
    yield port
    stop(proc, tmp)


@pytest.fixture
async def pooled_client(database: str, pgbouncer: int) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(pooled_settings(database, pgbouncer, db_pool_size=10, db_max_overflow=5))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        yield client


async def test_100_concurrent_mixed_requests_through_pgbouncer(
    pooled_client: AsyncTestClient[Any],
) -> None:
    members = [await sign_up_api(pooled_client, f"Pooled {i}") for i in range(5)]
    challenges = (await pooled_client.get("/api/v1/challenges")).json()["items"]

    async def one(i: int) -> int:
        member = members[i % len(members)]
        auth = {"Authorization": f"Bearer {member['token']}"}
        cid = challenges[i % len(challenges)]["id"]
        kind = i % 5
        if kind == 0:
            res = await pooled_client.post(f"/api/v1/challenges/{cid}/join", headers=auth)
            assert res.status_code in (201, 409), res.text
        elif kind == 1:
            res = await pooled_client.post(
                f"/api/v1/challenges/{cid}/check-ins", json={"note": "pooled"}, headers=auth
            )
            assert res.status_code in (201, 409), res.text
        elif kind == 2:
            res = await pooled_client.get(f"/api/v1/users/{member['id']}/reputation")
        elif kind == 3:
            res = await pooled_client.get(f"/api/v1/challenges?page={1 + i % 4}")
        else:
            res = await pooled_client.get("/api/v1/me", headers=auth)
        return int(res.status_code)

    statuses = await asyncio.gather(*(one(i) for i in range(100)))
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.count(200) >= 60


async def test_exhausted_pool_answers_503_within_its_wait_timeout(database: str) -> None:
    """One server connection, held by someone else: the app must fail fast and cleanly."""
    import asyncpg

    proc, port, tmp = start_pgbouncer(
        default_pool_size=1, reserve_pool_size=0, max_db_connections=1, query_wait_timeout=2
    )
    try:
        hog = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/{database}", statement_cache_size=0
        )
        holding = asyncio.create_task(hog.execute("SELECT pg_sleep(12)"))
        await asyncio.sleep(0.5)
        app = create_app(pooled_settings(database, port, cache_enabled=False, db_pool_timeout=3.0))
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
            started = time.monotonic()
            res = await client.get("/api/v1/challenges/1")
            took = time.monotonic() - started
        assert res.status_code == 503, res.text
        assert res.headers["retry-after"] and "busy" in res.json()["detail"]
        assert took < 10, f"answered after {took:.1f} s"
        holding.cancel()
        await hog.close(timeout=2)
    finally:
        stop(proc, tmp)
