"""Accounts and sessions: brute force is throttled, chat is rate limited, passwords are
argon2 hashes, session cookies are HttpOnly/SameSite (and Secure outside development),
the session id rotates at login (no fixation) and dies at logout."""

from __future__ import annotations

from dataclasses import replace
from http.cookies import SimpleCookie

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.asgi import create_app
from app.db.models import User
from app.db.seed import DEMO_EMAIL, DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import csrf_token, sign_up_api

Client = AsyncTestClient[Litestar]
BASE = "http://127.0.0.1"


def set_cookies(res: object) -> dict[str, SimpleCookie]:
    found: dict[str, SimpleCookie] = {}
    for raw in res.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
        for name in jar:
            found[name] = jar
    return found


async def test_login_brute_force_is_throttled(settings: Settings) -> None:
    app = create_app(replace(settings, login_rate_limit=3))
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        token = await csrf_token(client)
        codes = []
        for i in range(6):
            res = await client.post(
                "/login",
                data={"email": DEMO_EMAIL, "password": f"guess-{i}", "_csrf_token": token},
                follow_redirects=False,
            )
            codes.append(res.status_code)
        assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}, codes
        assert int(res.headers["retry-after"]) > 0
        # The right password does not get through the throttle either (no oracle).
        res = await client.post(
            "/login",
            data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "_csrf_token": token},
            follow_redirects=False,
        )
        assert res.status_code == 429
        # The token endpoint shares the budget; ordinary pages are not throttled.
        res = await client.post("/api/v1/auth/token", json={"email": DEMO_EMAIL, "password": "x"})
        assert res.status_code == 429
        assert (await client.get("/challenges")).status_code == 200


async def test_chat_is_rate_limited_per_member(settings: Settings) -> None:
    app = create_app(replace(settings, coach_rate_limit_per_minute=3, coach_warmup=False))
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        a = await sign_up_api(client, "Chatty")
        b = await sign_up_api(client, "Quiet")
        auth = {"Authorization": f"Bearer {a['token']}"}
        codes = [
            (
                await client.post("/api/v1/coach/messages", json={"text": f"hi {i}"}, headers=auth)
            ).status_code
            for i in range(5)
        ]
        assert codes == [201, 201, 201, 429, 429], codes
        # Another member is not affected by the first one's limit.
        res = await client.post(
            "/api/v1/coach/messages",
            json={"text": "hello"},
            headers={"Authorization": f"Bearer {b['token']}"},
        )
        assert res.status_code == 201


async def test_passwords_are_argon2_hashes(client: Client, settings: Settings) -> None:
    who = await sign_up_api(client, "Hashed")
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(User.password_hash).where(User.id == who["id"]))).one()
    finally:
        await engine.dispose()
    stored = row[0]
    assert stored.startswith("$argon2id$"), stored[:20]
    assert who["password"] not in stored
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {who['token']}"})
    assert "argon2" not in me.text and "password" not in me.text


async def _login(client: Client, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> object:
    token = await csrf_token(client)
    return await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )


async def test_cookie_flags_in_development(client: Client) -> None:
    res = await _login(client)
    assert res.status_code == 303  # type: ignore[attr-defined]
    session = set_cookies(res)["momentum_session"]["momentum_session"]
    assert session["httponly"] and session["samesite"].lower() == "lax"
    assert session["path"] == "/"


async def test_cookie_flags_in_production(settings: Settings) -> None:
    prod = replace(settings, app_env="production", secret_key="p" * 48)
    app = create_app(prod)
    async with AsyncTestClient(app=app, base_url="https://127.0.0.1") as client:
        res = await _login(client)
        assert res.status_code == 303  # type: ignore[attr-defined]
        cookies = set_cookies(res)
        session = cookies["momentum_session"]["momentum_session"]
        assert session["httponly"] and session["secure"] and session["samesite"].lower() == "lax"
        page = await client.get("/login")
        csrf = set_cookies(page).get("momentum_csrf")
        if csrf is not None:
            assert csrf["momentum_csrf"]["secure"]
        assert "max-age=31536000" in page.headers["strict-transport-security"]


async def test_session_id_rotates_at_login_and_dies_at_logout(app: Litestar) -> None:
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        # Fixation: the attacker plants a session id of their choosing before the login.
        client.cookies.set("momentum_session", "attacker-chosen-session-id", domain="127.0.0.1")
        res = await _login(client)
        assert res.status_code == 303  # type: ignore[attr-defined]
        issued = set_cookies(res)["momentum_session"]["momentum_session"].value
        assert issued and issued != "attacker-chosen-session-id"
    # A second login from the same browser (as someone else) gets a new id too. (One test
    # client at a time: each runs the app on its own event loop.)
    async with AsyncTestClient(app=app, base_url=BASE) as api:
        other = await sign_up_api(api, "Switcher")
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        await _login(client)
        first = client.cookies.get("momentum_session") or ""
        assert (await client.get("/api/v1/me")).json()["email"] == DEMO_EMAIL
        res = await _login(client, other["email"], other["password"])
        second = set_cookies(res)["momentum_session"]["momentum_session"].value
        assert second and second != first
        client.cookies.set("momentum_session", second, domain="127.0.0.1")
        assert (await client.get("/api/v1/me")).json()["id"] == other["id"]
        # Logout deletes the server-side session.
        token = client.cookies.get("momentum_csrf")
        res = await client.post(
            "/logout", data={"_csrf_token": token or ""}, follow_redirects=False
        )
        assert res.status_code == 303
    # Replaying either old id authenticates no one.
    for old in (first, second):
        async with AsyncTestClient(app=app, base_url=BASE) as replay:
            replay.cookies.set("momentum_session", old, domain="127.0.0.1")
            assert (await replay.get("/api/v1/me")).status_code == 401, old
