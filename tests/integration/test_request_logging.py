"""One JSON log line per request, carrying the request id the response echoes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings


async def test_each_request_logs_one_line_with_its_id(
    sqlite_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    app = create_app(replace(sqlite_settings, app_env="production", log_level="INFO"))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        given = await client.get("/api/v1/leaderboard", headers={"x-request-id": "trace-42"})
        made = await client.get("/api/v1/challenges/1")
        bogus = await client.get("/healthz", headers={"x-request-id": "no spaces <allowed>"})
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    ids = [line["request_id"] for line in requests]
    assert given.headers["x-request-id"] == "trace-42"
    assert ids == ["trace-42", made.headers["x-request-id"], bogus.headers["x-request-id"]]
    assert len(ids[1]) == 32 and ids[1] != ids[2]  # made up when absent or unsafe
    assert requests[0]["route"] == "/api/v1/leaderboard" and requests[0]["status"] == 200
