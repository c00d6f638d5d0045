"""Shared fixtures: one migrated + seeded database per backend (SQLite and the real
PostgreSQL on 127.0.0.1:5432), an app per backend, and clients for visitors and members."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("APP_ENV", "test")

from app.asgi import create_app
from app.db.engine import make_engine, make_sessionmaker
from app.db.migrate import upgrade
from app.db.seed import DEMO_EMAIL, DEMO_PASSWORD, seed
from app.settings import Settings, get_settings

pytest_plugins = ["tests.conftest_redis"]

T = TypeVar("T")
PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
_counter = itertools.count()


def run_isolated(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own loop in a thread (Alembic and the seeder use asyncio.run)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def migrate_and_seed(settings: Settings) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, "head", settings.migration_url).result()
    run_isolated(lambda: seed("demo", settings))


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path: Path = tmp_path_factory.mktemp("db") / "momentum.db"
    settings = replace(
        get_settings(),
        app_env="test",
        database_url=f"sqlite+aiosqlite:///{path}",
        login_rate_limit=100_000,
    )
    migrate_and_seed(settings)
    return settings


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[Settings]:
    """A fresh PostgreSQL database, migrated and seeded, dropped afterwards; yields test
    settings that reach it directly."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    run_isolated(lambda: _pg_admin(f'CREATE DATABASE "{name}"'))
    settings = replace(
        get_settings(),
        app_env="test",
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
        login_rate_limit=100_000,  # the brute-force limit has its own test
    )
    try:
        migrate_and_seed(settings)
        yield settings
    finally:
        run_isolated(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_settings() -> Iterator[Settings]:
    with scratch_postgres("momentum_test") as settings:
        yield settings


@pytest.fixture(scope="session")
def pgbouncer_settings() -> Iterator[Settings]:
    """A PostgreSQL test database of its own, reached through a private pgbouncer in
    transaction mode (migrations and the seed go direct, as in production)."""
    from tests.pgbouncer import PGBOUNCER, start_pgbouncer, stop

    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer not installed (Debian `pgbouncer`; `make test` installs it)")
    with scratch_postgres("momentum_test_pgb") as direct:
        name = direct.database_url.rsplit("/", 1)[-1]
        proc, port, tmp = start_pgbouncer()
        try:
            yield replace(
                direct,
                database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}",
                database_direct_url=direct.database_url,
                database_pooler=True,
            )
        finally:
            stop(proc, tmp)


@pytest.fixture(scope="session", params=["sqlite", "postgres", "pgbouncer"])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Every test that uses the app runs on SQLite, PostgreSQL, and PostgreSQL through
    pgbouncer (transaction pooling, as in production)."""
    value: Settings = request.getfixturevalue(f"{request.param}_settings")
    return value


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as c:
        yield c


async def csrf_token(client: AsyncTestClient[Litestar]) -> str:
    """Load a page so the CSRF cookie is set, and return the token to send back."""
    await client.get("/healthz")
    token = client.cookies.get("momentum_csrf")
    if token is None:
        await client.get("/login")
        token = client.cookies.get("momentum_csrf")
    assert token, "the CSRF cookie should be set by a safe request"
    return token


def unique_email(prefix: str = "member") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}-{next(_counter)}@example.test"


async def sign_up_api(
    client: AsyncTestClient[Litestar], name: str = "Test Member"
) -> dict[str, Any]:
    """Create an account through the API and return {"email", "password", "token", "id"}."""
    email, password = unique_email(), "correct horse battery"
    res = await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": password, "display_name": name}
    )
    assert res.status_code == 201, res.text
    token = (
        await client.post("/api/v1/auth/token", json={"email": email, "password": password})
    ).json()["token"]
    return {"email": email, "password": password, "token": token, "id": res.json()["id"]}


@pytest.fixture
async def member(client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    """A fresh member with a bearer token (no cookies involved)."""
    return await sign_up_api(client)


@pytest.fixture
def auth(member: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {member['token']}"}


@pytest.fixture
async def member_client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A browser-like client signed in with the demo account through the login form."""
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as c:
        token = await csrf_token(c)
        res = await c.post(
            "/login",
            data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "_csrf_token": token},
            follow_redirects=False,
        )
        assert res.status_code in (302, 303), res.text
        yield c


async def update_row(app: Litestar, model: Any, row_id: int, **values: Any) -> None:
    """Write a row behind the app's back (an engine of its own: the app's pool lives on
    another loop); nothing is invalidated."""
    engine = make_engine(app.state.settings)
    try:
        async with make_sessionmaker(engine)() as s:
            await s.execute(update(model).where(model.id == row_id).values(**values))
            await s.commit()
    finally:
        await engine.dispose()
