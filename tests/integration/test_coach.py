"""The coach end to end on the real local model: streaming, persistence, limits, privacy,
fallback and disconnects (in-process for most cases, a real server for disconnects)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from tests.conftest import migrate_and_seed, sign_up_api
from tests.faults.live import free_port

Client = AsyncTestClient[Litestar]
pytestmark = pytest.mark.slow


def coach_settings(base: Settings, **overrides: Any) -> Settings:
    return replace(base, coach_max_tokens=12, coach_warmup=False, **overrides)


@pytest.fixture(scope="module")
def coach_app(settings: Settings) -> Litestar:
    return create_app(coach_settings(settings))


@pytest.fixture
async def coach_client(coach_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=coach_app, base_url="http://127.0.0.1") as c:
        yield c


async def read_events(
    client: Client | httpx.AsyncClient, url: str, headers: dict[str, str]
) -> list[tuple[str, str]]:
    """Every (event, data) pair of one SSE stream, data lines re-joined with newlines."""
    events: list[tuple[str, str]] = []
    async with client.stream("GET", url, headers=headers) as res:
        assert res.status_code == 200, await res.aread()
        assert res.headers["content-type"].startswith("text/event-stream")
        event, data = "message", []
        async for line in res.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") or line == "data:":
                data.append(line[6:])
            elif line == "" and data:
                events.append((event, "\n".join(data)))
                event, data = "message", []
    return events


async def ask(
    client: Client, auth: dict[str, str], text: str, conversation_id: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    res = await client.post("/api/v1/coach/messages", json=body, headers=auth)
    assert res.status_code == 201, res.text
    return res.json()


async def test_answer_streams_and_is_saved(coach_client: Client) -> None:
    member = await sign_up_api(coach_client)
    auth = {"Authorization": f"Bearer {member['token']}"}
    posted = await ask(coach_client, auth, "How do I keep a reading streak going?")
    # The member's message is saved before any model call.
    history = (
        await coach_client.get(
            f"/api/v1/coach/messages?conversation_id={posted['conversation_id']}", headers=auth
        )
    ).json()
    assert [m["role"] for m in history["items"]] == ["user", "assistant"]
    assert history["items"][1]["status"] == "pending"

    events = await read_events(coach_client, posted["stream_url"], auth)
    tokens = [d for e, d in events if e == "token"]
    assert len(tokens) >= 2, events
    done = json.loads(next(d for e, d in events if e == "done"))
    assert done["message_id"] == posted["reply_id"]
    assert done["model"] == "local/smollm2" and done["route"] in ("coaching", "small_talk")
    assert done["prompt_tokens"] > 0 and 0 < done["completion_tokens"] <= 12
    assert done["cost_usd"] == 0

    items = (
        await coach_client.get(
            f"/api/v1/coach/messages?conversation_id={posted['conversation_id']}", headers=auth
        )
    ).json()["items"]
    answer = items[1]
    assert answer["status"] == "complete" and answer["content"] == "".join(tokens)
    assert (
        answer["model"] == "local/smollm2"
        and answer["completion_tokens"] == done["completion_tokens"]
    )

    # A reconnect after the end replays the saved answer instead of generating again.
    again = await read_events(coach_client, posted["stream_url"], auth)
    assert "".join(d for e, d in again if e == "token") == answer["content"]

    follow_up = await ask(coach_client, auth, "Thanks!", posted["conversation_id"])
    assert follow_up["conversation_id"] == posted["conversation_id"]
    convs = (await coach_client.get("/api/v1/coach/conversations", headers=auth)).json()
    assert [c["id"] for c in convs] == [posted["conversation_id"]]


async def test_conversations_are_private(coach_client: Client) -> None:
    owner = await sign_up_api(coach_client, "Owner")
    other = await sign_up_api(coach_client, "Other")
    owner_auth = {"Authorization": f"Bearer {owner['token']}"}
    other_auth = {"Authorization": f"Bearer {other['token']}"}
    posted = await ask(coach_client, owner_auth, "Plan my week of running")
    cid = posted["conversation_id"]
    assert (
        await coach_client.get(f"/api/v1/coach/messages?conversation_id={cid}", headers=other_auth)
    ).status_code == 404
    assert (await coach_client.get(posted["stream_url"], headers=other_auth)).status_code == 404
    res = await coach_client.post(
        "/api/v1/coach/messages", json={"text": "hi", "conversation_id": cid}, headers=other_auth
    )
    assert res.status_code == 404
    assert (await coach_client.get(posted["stream_url"])).status_code == 401


async def test_bad_messages_get_readable_4xx(coach_client: Client, settings: Settings) -> None:
    member = await sign_up_api(coach_client)
    auth = {"Authorization": f"Bearer {member['token']}"}
    too_long = await coach_client.post(
        "/api/v1/coach/messages", json={"text": "x" * 4001}, headers=auth
    )
    assert too_long.status_code == 422 and "4,000" in too_long.json()["detail"]
    empty = await coach_client.post("/api/v1/coach/messages", json={"text": "   "}, headers=auth)
    assert empty.status_code == 422
    wrong = await coach_client.post("/api/v1/coach/messages", json={"text": 5}, headers=auth)
    assert wrong.status_code == 400
    assert (
        await coach_client.get("/api/v1/coach/messages/999999/stream", headers=auth)
    ).status_code == 404


async def test_a_concurrent_burst_of_posts_meets_the_rate_limit(settings: Settings) -> None:
    """Posts sent at once, each in its own request (as a browser or script would): exactly
    the limit gets through. (The test client runs requests one at a time, so the burst goes
    through httpx's ASGI transport while the app is up; on the test's own event loop, which
    asyncpg's connections, made on the app's loop, refuse: the limiter is the same on SQLite.)"""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the burst runs on another event loop than the app's database connections")
    app = create_app(coach_settings(settings, coach_rate_limit_per_minute=3))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        member = await sign_up_api(client)
        auth = {"Authorization": f"Bearer {member['token']}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as burst:
            codes = [
                r.status_code
                for r in await asyncio.gather(
                    *(
                        burst.post("/api/v1/coach/messages", json={"text": f"hi {n}"}, headers=auth)
                        for n in range(10)
                    )
                )
            ]
    assert sorted(codes) == [201] * 3 + [429] * 7, codes


async def test_rate_limit_and_daily_budget(settings: Settings) -> None:
    app = create_app(
        coach_settings(settings, coach_rate_limit_per_minute=2, coach_daily_token_budget=10)
    )
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        member = await sign_up_api(client)
        auth = {"Authorization": f"Bearer {member['token']}"}
        first = await ask(client, auth, "What should I focus on today?")
        await read_events(client, first["stream_url"], auth)  # spends more than 10 tokens
        over_budget = await client.post(
            "/api/v1/coach/messages", json={"text": "And tomorrow?"}, headers=auth
        )
        assert over_budget.status_code == 429 and "budget" in over_budget.json()["detail"]
        assert int(over_budget.headers["retry-after"]) > 0

        other = await sign_up_api(client)
        other_auth = {"Authorization": f"Bearer {other['token']}"}
        await ask(client, other_auth, "one")
        await ask(client, other_auth, "two")
        limited = await client.post(
            "/api/v1/coach/messages", json={"text": "three"}, headers=other_auth
        )
        assert limited.status_code == 429 and "too fast" in limited.json()["detail"]
        assert 0 < int(limited.headers["retry-after"]) <= 60


def provider_down_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, fallback_model: str
) -> Litestar:
    """An app whose coach model is an OpenAI-style provider on a port nobody listens on."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{free_port()}/v1")
    return create_app(
        coach_settings(
            settings, coach_model="openai/gpt-4o-mini", coach_fallback_model=fallback_model
        )
    )


async def test_unreachable_provider_falls_back_to_local(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = provider_down_app(settings, monkeypatch, fallback_model="local/smollm2")
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        member = await sign_up_api(client)
        auth = {"Authorization": f"Bearer {member['token']}"}
        posted = await ask(client, auth, "Give me a plan for my 5k challenge")
        started = time.monotonic()
        events = await read_events(client, posted["stream_url"], auth)
        assert time.monotonic() - started < 15
        done = json.loads(next(d for e, d in events if e == "done"))
        assert done["model"] == "local/smollm2"


async def test_every_provider_down_gives_an_error_event(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = provider_down_app(settings, monkeypatch, fallback_model="openai/gpt-4o-mini")
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        member = await sign_up_api(client)
        auth = {"Authorization": f"Bearer {member['token']}"}
        posted = await ask(client, auth, "Help me plan my reading")
        events = await read_events(client, posted["stream_url"], auth)
        assert [e for e, _ in events] == ["error"]
        assert "could not answer" in json.loads(events[0][1])["message"]
        items = (
            await client.get(
                f"/api/v1/coach/messages?conversation_id={posted['conversation_id']}", headers=auth
            )
        ).json()["items"]
        assert items[1]["status"] == "failed"


# ---- a real server, for what only a real socket shows: the client going away ----------


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_settings: Settings
) -> Iterator[str]:
    db = tmp_path_factory.mktemp("live") / "live.db"
    live = replace(sqlite_settings, database_url=f"sqlite+aiosqlite:///{db}")
    migrate_and_seed(live)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": live.database_url,
        "APP_ENV": "test",
        "COACH_MAX_TOKENS": "200",
        "COACH_WARMUP": "true",
        "LOGIN_RATE_LIMIT": "1000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    _first_answer(base)
    yield base
    proc.terminate()
    proc.wait(timeout=15)


def _first_answer(base: str) -> None:
    """One whole exchange first: the cold start (litellm import, model load) is not under
    test here, and on a loaded machine it can take longer than the first-token budget."""
    with httpx.Client(base_url=base, timeout=60) as client:
        token = client.post(
            "/api/v1/auth/token", json={"email": "demo@momentum.local", "password": "momentum-demo"}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            posted = client.post(
                "/api/v1/coach/messages", json={"text": "hello"}, headers=auth
            ).json()
            with client.stream("GET", posted["stream_url"], headers=auth) as stream:
                if any(line == "event: done" for line in stream.iter_lines()):
                    return


async def test_disconnect_saves_partial_answer_as_interrupted(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as client:
        res = await client.post(
            "/api/v1/auth/token", json={"email": "demo@momentum.local", "password": "momentum-demo"}
        )
        auth = {"Authorization": f"Bearer {res.json()['token']}"}
        posted = (
            await client.post(
                "/api/v1/coach/messages",
                json={"text": "Write me a long detailed plan for a marathon"},
                headers=auth,
            )
        ).json()
        received = 0
        async with client.stream("GET", posted["stream_url"], headers=auth) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: token"):
                    received += 1
                if received >= 3:
                    break  # leave mid-answer: the connection closes here
        closed_at = time.monotonic()
        url = f"/api/v1/coach/messages?conversation_id={posted['conversation_id']}"
        while True:
            answer = (await client.get(url, headers=auth)).json()["items"][1]
            if answer["status"] != "streaming" or time.monotonic() - closed_at > 5:
                break
            await asyncio.sleep(0.1)
        assert answer["status"] == "interrupted", answer
        assert answer["content"] and answer["completion_tokens"] < 200
        stopped_within = time.monotonic() - closed_at
        assert stopped_within < 2, stopped_within
