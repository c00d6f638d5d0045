"""Authentication and CSRF, table-driven over the app's own route list.

Every route the app registers is private unless it is listed in PUBLIC below, so a route
added tomorrow is checked without editing this file (and one meant to be public fails
until someone decides, here, that it is). Unsafe methods always need the CSRF token when a
session cookie is what authenticates the request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.lib.auth import SKIP_SESSION
from tests.conftest import csrf_token

Client = AsyncTestClient[Litestar]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# (method, path template) that visitors may use. Everything else needs a member.
PUBLIC: set[tuple[str, str]] = {
    ("GET", "/"),
    ("GET", "/challenges"),
    ("GET", "/challenges/{challenge_id:int}"),
    ("GET", "/leaderboard"),
    ("GET", "/users/{user_id:int}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/signup"),
    ("POST", "/signup"),
    ("POST", "/logout"),  # signing out nobody is harmless (and still needs CSRF)
    ("GET", "/fragments/trending"),
    ("GET", "/fragments/challenges"),
    ("GET", "/fragments/challenges/{challenge_id:int}/participants"),
    ("GET", "/fragments/challenges/{challenge_id:int}/check-ins"),
    ("GET", "/fragments/challenges/{challenge_id:int}/actions"),  # visitors get a sign-in link
    ("GET", "/fragments/leaderboard"),
    ("GET", "/fragments/users/{user_id:int}/reputation"),
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/token"),
    ("GET", "/api/v1/challenges"),
    ("GET", "/api/v1/challenges/{challenge_id:int}"),
    ("GET", "/api/v1/challenges/{challenge_id:int}/check-ins"),
    ("GET", "/api/v1/leaderboard"),
    ("GET", "/api/v1/users/{user_id:int}/reputation"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # scraped by Prometheus; the app binds 127.0.0.1 (see README)
    ("GET", "/static/{name:path}"),
    ("GET", "/schema"),
    ("GET", "/schema/swagger"),
    ("GET", "/schema/openapi.json"),
    ("GET", "/schema/{path:str}"),
    ("GET", "/schema/oauth2-redirect.html"),
}


def app_routes(app: Litestar) -> Iterator[tuple[str, str]]:
    """(method, path template) for every handler the app registered, OPTIONS aside."""
    for route in app.routes:
        for handler in route.route_handlers:
            for method in sorted(getattr(handler, "http_methods", ())):
                if method not in ("OPTIONS", "HEAD"):
                    yield method, route.path


def concrete(template: str) -> str:
    """A real URL for a path template: ids of things that exist in the seed (1)."""
    return re.sub(r"\{(\w+):(\w+)\}", lambda m: "app.css" if m[2] == "path" else "1", template)


def _all(app: Litestar) -> list[tuple[str, str]]:
    return sorted(set(app_routes(app)))


def test_route_table_is_not_empty_and_public_list_is_current(app: Litestar) -> None:
    routes = set(app_routes(app))
    assert len(routes) > 30
    stale = PUBLIC - routes
    assert not stale, f"PUBLIC lists routes the app no longer has: {stale}"


async def test_every_private_route_requires_a_member(app: Litestar, client: Client) -> None:
    token = await csrf_token(client)
    checked = 0
    for method, template in _all(app):
        if (method, template) in PUBLIC:
            continue
        url = concrete(template)
        kwargs: dict[str, Any] = {"headers": {"x-csrftoken": token}}
        if method in UNSAFE:
            kwargs["json" if url.startswith("/api/") else "data"] = {"text": "hi"}
        # An API client (JSON) gets 401 ...
        res = await client.request(method, url, **kwargs)
        assert res.status_code == 401, (method, url, res.status_code, res.text[:200])
        # ... a browser is sent to the login page, htmx gets HX-Redirect.
        browser = {**kwargs, "headers": {**kwargs["headers"], "accept": "text/html"}}
        res = await client.request(method, url, follow_redirects=False, **browser)
        if url.startswith("/api/"):
            assert res.status_code == 401, (method, url, res.status_code)
        else:
            assert res.status_code in (302, 303), (method, url, res.status_code)
            assert res.headers["location"].startswith("/login?next=")
        htmx = {**kwargs, "headers": {**kwargs["headers"], "hx-request": "true"}}
        res = await client.request(method, url, follow_redirects=False, **htmx)
        assert res.status_code == 401, (method, url, res.status_code)
        checked += 1
    assert checked >= 15


async def test_a_forged_or_expired_bearer_token_is_401_everywhere(
    app: Litestar, client: Client, member: dict[str, Any]
) -> None:
    forged = member["token"][:-4] + ("AAAA" if not member["token"].endswith("AAAA") else "BBBB")
    for method, template in _all(app):
        if (method, template) in PUBLIC or not template.startswith("/api/"):
            continue
        res = await client.request(
            method, concrete(template), headers={"Authorization": f"Bearer {forged}"}
        )
        assert res.status_code == 401, (method, template, res.status_code)
        res = await client.request(
            method, concrete(template), headers={"Authorization": "Basic ZGVtbzpkZW1v"}
        )
        assert res.status_code == 401, (method, template, res.status_code)


async def test_every_unsafe_cookie_request_needs_the_csrf_token(
    app: Litestar, member_client: Client
) -> None:
    """Signed in by cookie: no token, a wrong token, or the token only in the cookie is a
    403, on every POST/PATCH/PUT/DELETE the app has, API included."""
    good = member_client.cookies.get("momentum_csrf")
    assert good and member_client.cookies.get("momentum_session")
    checked = 0
    for method, template in _all(app):
        if method not in UNSAFE:
            continue
        url = concrete(template)
        body_kw = "json" if url.startswith("/api/") else "data"
        for headers, body in (
            ({}, {"text": "hi", "note": "x"}),
            ({"x-csrftoken": "not-the-token"}, {"text": "hi"}),
            ({}, {"text": "hi", "_csrf_token": good[::-1]}),
        ):
            res = await member_client.request(
                method, url, headers=headers, follow_redirects=False, **{body_kw: body}
            )
            assert res.status_code == 403, (method, url, headers, res.status_code, res.text[:200])
        checked += 1
    assert checked >= 10
    # The member is still signed in: nothing above changed the session.
    assert (await member_client.get("/api/v1/me")).status_code == 200


async def test_cross_site_form_post_with_session_is_rejected(member_client: Client) -> None:
    """What a hostile page can send: a form post with the victim's cookies, no token."""
    res = await member_client.post(
        "/coach/conversations",
        headers={
            "origin": "https://evil.example",
            "content-type": "application/x-www-form-urlencoded",
        },
        content=b"",
        follow_redirects=False,
    )
    assert res.status_code == 403


def test_only_unguarded_public_reads_skip_the_session(app: Litestar) -> None:
    """PUBLIC_READ handlers never see who is asking, so each must be a GET anyone may use."""
    skipping = set()
    for route in app.routes:
        for handler in route.route_handlers:
            if handler.opt.get(SKIP_SESSION):
                assert not handler.guards, (route.path, handler.guards)
                skipping.update((m, route.path) for m in handler.http_methods - {"HEAD"})
    assert skipping, "the hot API reads should skip the session"
    assert {m for m, _ in skipping} == {"GET"}
    assert skipping <= PUBLIC, skipping - PUBLIC


async def test_a_public_read_leaves_a_browser_session_alone(member_client: Client) -> None:
    for url in ("/api/v1/leaderboard", "/api/v1/challenges/1", "/api/v1/users/1/reputation"):
        res = await member_client.get(url)
        assert res.status_code == 200, url
        assert "set-cookie" not in res.headers, url
    assert (await member_client.get("/api/v1/me")).status_code == 200
