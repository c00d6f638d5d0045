"""Hostile and broken requests get a clear 4xx, never a 500: oversized bodies, malformed
JSON, wrong types, unknown or absurd ids, and other members' data."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import csrf_token, sign_up_api
from tests.security.test_route_table import UNSAFE, app_routes, concrete

Client = AsyncTestClient[Litestar]


def body_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of the JSON API handlers that read a request body (`data`)."""
    found = set()
    for route in app.routes:
        for handler in route.route_handlers:
            params = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
            if "data" in params and route.path.startswith("/api/"):
                found |= {
                    (m, route.path) for m in getattr(handler, "http_methods", ()) if m in UNSAFE
                }
    return sorted(found)


ABSURD_IDS = ["0", "-1", "999999999", "9223372036854775807", "99999999999999999999999"]


async def test_oversized_bodies_are_413(
    app: Litestar, client: Client, auth: dict[str, str]
) -> None:
    limit = app.state.settings.max_body_bytes
    big = b'{"text": "' + b"x" * (limit + 10) + b'"}'
    routes = body_routes(app)
    assert len(routes) >= 5, routes
    for method, template in routes:
        res = await client.request(
            method,
            concrete(template),
            content=big,
            headers={**auth, "content-type": "application/json"},
        )
        assert res.status_code == 413, (method, template, res.status_code, res.text[:200])
    # Forms too. (Not covered yet: a chunked body without Content-Length on a real
    # socket; the in-process client cannot send one.)
    token = await csrf_token(client)
    res = await client.post(
        "/login",
        content=b"email=a&password=" + b"x" * (limit + 10),
        headers={"content-type": "application/x-www-form-urlencoded", "x-csrftoken": token},
    )
    assert res.status_code == 413


MALFORMED = [
    b"{",
    b'{"text": "unterminated',
    b"[1,2",
    b"\xff\xfe\x00",
    b'{"text": "\xff", "title": "\xc3", "email": "\xff@x.com", "password": "x"}',
    b"null",
    b'"str"',
    b"[]",
    b"1e999",
]


async def test_malformed_json_is_400_on_every_json_endpoint(
    app: Litestar, client: Client, auth: dict[str, str]
) -> None:
    for method, template in body_routes(app):
        for body in MALFORMED:
            res = await client.request(
                method,
                concrete(template),
                content=body,
                headers={**auth, "content-type": "application/json"},
            )
            # `null` is a valid "no body" for the optional check-in note: 201/409 are fine.
            assert res.status_code < 500, (method, template, body, res.status_code, res.text[:200])
            if body not in (b"null",):
                assert res.status_code in (400, 404, 409, 422), (
                    method,
                    template,
                    body,
                    res.status_code,
                )


async def test_invalid_utf8_inside_a_json_string_is_explained(client: Client) -> None:
    body = '{"email": "\xff@x.com", "password": "password123", "display_name": "ab"}'
    res = await client.post(
        "/api/v1/auth/signup",
        content=body.encode("latin-1"),
        headers={"content-type": "application/json"},
    )
    assert res.status_code == 400
    assert res.json()["detail"] == "The request body is not valid UTF-8 text."


def test_invalid_utf8_raised_elsewhere_is_not_blamed_on_the_request() -> None:
    from app.routes.errors import _raised_decoding_the_body

    with pytest.raises(UnicodeDecodeError) as raised:
        b"\xff".decode()
    assert not _raised_decoding_the_body(raised.value)


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/auth/token", {"email": 5, "password": ["x"]}),
    ("POST", "/api/v1/auth/token", {"email": "a@b.c"}),
    ("POST", "/api/v1/auth/token", {"email": "a@b.c", "password": "x", "admin": True}),
    (
        "POST",
        "/api/v1/auth/signup",
        {"email": {"$ne": 1}, "password": "x" * 8, "display_name": "n"},
    ),
    ("POST", "/api/v1/auth/signup", {"email": "a@b", "password": 12345678, "display_name": None}),
    ("POST", "/api/v1/challenges", {"title": 5, "category": "Fit"}),
    (
        "POST",
        "/api/v1/challenges",
        {"title": "Good title", "category": "Fit", "duration_days": "x"},
    ),
    (
        "POST",
        "/api/v1/challenges",
        {"title": "Good title", "category": "Fit", "duration_days": 1e300},
    ),
    ("POST", "/api/v1/challenges", {"title": "Good title", "category": "Fit", "duration_days": -5}),
    ("POST", "/api/v1/challenges", {"title": "Good title", "category": "<b>", "description": 1}),
    ("PATCH", "/api/v1/challenges/1", {"title": ["a"]}),
    ("PATCH", "/api/v1/challenges/1", {"duration_days": 3}),
    ("POST", "/api/v1/challenges/1/check-ins", {"note": {"a": 1}}),
    ("POST", "/api/v1/challenges/1/check-ins", {"note": "x" * 281}),
    ("POST", "/api/v1/coach/messages", {"text": None}),
    ("POST", "/api/v1/coach/messages", {"text": "hi", "conversation_id": "abc"}),
    ("POST", "/api/v1/coach/messages", {"text": "hi", "conversation_id": 2**70}),
    ("POST", "/api/v1/coach/messages", {"text": "hi", "conversation_id": -1}),
    ("POST", "/api/v1/coach/messages", {"text": "hi", "conversation_id": 9223372036854775807}),
]


@pytest.mark.parametrize(("method", "url", "body"), WRONG_TYPES, ids=range(len(WRONG_TYPES)))
async def test_wrong_types_are_4xx(
    client: Client, auth: dict[str, str], method: str, url: str, body: Any
) -> None:
    res = await client.request(method, url, json=body, headers=auth)
    assert 400 <= res.status_code < 500, (res.status_code, res.text[:300])


BAD_QUERIES = [
    "/api/v1/challenges?page=abc",
    "/api/v1/challenges?page=0",
    "/api/v1/challenges?page=99999999999999999999",
    "/api/v1/challenges?q=" + "x" * 500,
    "/api/v1/challenges?q=%00%27%22--",
    "/api/v1/challenges?q=%25%5F%5C",
    "/api/v1/leaderboard?limit=-1",
    "/api/v1/leaderboard?limit=1000000",
    "/api/v1/coach/messages?conversation_id=abc",
    "/api/v1/coach/messages",
    "/fragments/challenges?page=-3",
    "/fragments/challenges?q=%00",
    "/fragments/users/1/reputation?history=-1",
    "/challenges?page=x",
    "/coach?c=abc",
    "/coach?c=0",
    "/coach?c=99999999999999999999",
    "/login?next=" + "/" * 3000,
]


async def test_bad_query_strings_are_4xx_or_fine(client: Client, auth: dict[str, str]) -> None:
    for url in BAD_QUERIES:
        res = await client.get(url, headers=auth)
        assert res.status_code < 500, (url, res.status_code, res.text[:300])
        if url.startswith("/api/"):
            assert res.status_code in (200, 400), (url, res.status_code)


async def test_unknown_and_absurd_ids_are_404(
    app: Litestar, client: Client, auth: dict[str, str]
) -> None:
    """Every route with an id in its path, GET or not, with ids that do not exist, are
    zero/negative, or overflow a 64-bit column: 404 (or 4xx), never 500."""
    seen = 0
    for method, template in sorted(set(app_routes(app))):
        if ":int}" not in template:
            continue
        for bad in ABSURD_IDS:
            url = template.replace("{challenge_id:int}", bad).replace("{user_id:int}", bad)
            url = url.replace("{reply_id:int}", bad).replace("{message_id:int}", bad)
            kw: dict[str, Any] = {}
            if method in UNSAFE:
                body = {"note": "n"} if "check-in" in url else {"title": "Some title"}
                kw = {"json": body} if url.startswith("/api/") else {"data": {"note": "n"}}
            res = await client.request(method, url, headers=auth, **kw)
            assert res.status_code < 500, (method, url, res.status_code, res.text[:300])
            # The actions fragment renders controls without loading the challenge (the page
            # that embeds it already 404s for a missing challenge).
            if bad in ("999999999", "9223372036854775807") and not url.endswith("/actions"):
                assert res.status_code == 404, (method, url, res.status_code, res.text[:200])
            seen += 1
    assert seen > 50
    for cid in ABSURD_IDS:
        res = await client.get(f"/api/v1/coach/messages?conversation_id={cid}", headers=auth)
        assert res.status_code in (400, 404), (cid, res.status_code)


async def test_no_reading_or_changing_another_members_data(client: Client) -> None:
    owner = await sign_up_api(client, "Owner")
    other = await sign_up_api(client, "Other")
    oa = {"Authorization": f"Bearer {owner['token']}"}
    xa = {"Authorization": f"Bearer {other['token']}"}
    posted = (
        await client.post("/api/v1/coach/messages", json={"text": "my private plan"}, headers=oa)
    ).json()
    cid, rid = posted["conversation_id"], posted["reply_id"]
    created = await client.post(
        "/api/v1/challenges", json={"title": "Owner's", "category": "Fit"}, headers=oa
    )
    chal = created.json()["id"]

    checks = [
        ("GET", f"/api/v1/coach/messages?conversation_id={cid}", None),
        ("GET", f"/api/v1/coach/messages/{rid}/stream", None),
        ("GET", f"/api/v1/coach/messages/{posted['id']}/stream", None),  # the user message
        ("POST", "/api/v1/coach/messages", {"text": "hijack", "conversation_id": cid}),
        ("GET", f"/coach?c={cid}", None),
        ("GET", f"/coach/messages/{rid}/stream", None),
    ]
    for method, url, body in checks:
        res = await client.request(method, url, json=body, headers=xa)
        assert res.status_code == 404, (method, url, res.status_code)
        assert "my private plan" not in res.text
    listed = (await client.get("/api/v1/coach/conversations", headers=xa)).json()
    assert cid not in [c["id"] for c in listed]
    # The page form with someone else's conversation id must not post into it either.
    res = await client.post(
        "/coach/messages", data={"text": "hijack", "conversation_id": str(cid)}, headers=xa
    )
    assert res.status_code == 404, res.status_code
    # Editing someone else's challenge is refused and changes nothing.
    res = await client.patch(
        f"/api/v1/challenges/{chal}", json={"title": "Pwned title"}, headers=xa
    )
    assert res.status_code in (403, 404), res.status_code
    assert (await client.get(f"/api/v1/challenges/{chal}")).json()["title"] == "Owner's"
    # The owner still sees exactly their two messages.
    items = (await client.get(f"/api/v1/coach/messages?conversation_id={cid}", headers=oa)).json()[
        "items"
    ]
    assert [m["content"] for m in items if m["role"] == "user"] == ["my private plan"]
    # /me is the caller, whatever id games are played.
    me = (await client.get("/api/v1/me?user_id=" + str(owner["id"]), headers=xa)).json()
    assert me["id"] == other["id"] and "password" not in str(me).lower()


async def test_nul_bytes_never_500(client: Client, auth: dict[str, str]) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): either way, never a 500."""
    for method, url, body in [
        ("POST", "/api/v1/challenges", {"title": "\x00\x00\x00", "category": "Fit"}),
        ("POST", "/api/v1/coach/messages", {"text": "\x00 nul byte"}),
        ("POST", "/api/v1/auth/token", {"email": "a\x00@b.c", "password": "x\x00"}),
        ("GET", "/api/v1/challenges?q=%00", None),
        ("GET", "/fragments/challenges?q=a%00b", None),
    ]:
        res = await client.request(method, url, json=body, headers=auth)
        assert res.status_code in (200, 201, 400, 401, 422), (url, res.status_code, res.text[:200])


INVISIBLE_OR_CONTROL = ["   ", "\u200b\u200b\u200b", "ab\x00cd", "ab\u202ecd", "a\nb"]


@pytest.mark.parametrize("title", INVISIBLE_OR_CONTROL)
async def test_titles_of_spaces_or_control_characters_are_422(
    client: Client, auth: dict[str, str], title: str
) -> None:
    res = await client.post(
        "/api/v1/challenges", json={"title": title, "category": "Fit"}, headers=auth
    )
    assert res.status_code == 422, res.text
    assert "title" in res.json()["detail"].lower()
    made = await client.post(
        "/api/v1/challenges", json={"title": "  Kept title  ", "category": "Fit"}, headers=auth
    )
    assert made.status_code == 201 and made.json()["title"] == "Kept title"
    url = f"/api/v1/challenges/{made.json()['id']}"
    res = await client.patch(url, json={"title": title}, headers=auth)
    assert res.status_code == 422, res.text
    assert (await client.get(url)).json()["title"] == "Kept title"


@pytest.mark.parametrize("name", INVISIBLE_OR_CONTROL)
async def test_display_names_must_show_and_hold_no_control_characters(
    client: Client, name: str
) -> None:
    body = {"email": "names@example.test", "password": "password123", "display_name": name}
    res = await client.post("/api/v1/auth/signup", json=body)
    assert res.status_code == 422, res.text
    assert "display name" in res.json()["detail"]


async def test_emoji_names_and_multiline_notes_are_fine(client: Client) -> None:
    """Zero-width joiners build emoji; notes and descriptions may break lines."""
    member = await sign_up_api(client, name="Ana 👩\u200d👩\u200d👧")
    headers = {"Authorization": f"Bearer {member['token']}"}
    made = await client.post(
        "/api/v1/challenges",
        json={"title": "Lines", "category": "Fit", "description": "one\ntwo", "duration_days": 2},
        headers=headers,
    )
    assert made.status_code == 201 and made.json()["description"] == "one\ntwo"
    url = f"/api/v1/challenges/{made.json()['id']}"
    assert (await client.post(f"{url}/join", headers=headers)).status_code == 201
    bad = await client.post(f"{url}/check-ins", json={"note": "x\x07"}, headers=headers)
    assert bad.status_code == 422 and "note" in bad.json()["detail"].lower()
    good = await client.post(f"{url}/check-ins", json={"note": "ran\n5k"}, headers=headers)
    assert good.status_code == 201, good.text


async def test_a_password_of_spaces_is_refused(client: Client) -> None:
    body = {"email": "spaces@example.test", "password": " " * 10, "display_name": "Spacey"}
    res = await client.post("/api/v1/auth/signup", json=body)
    assert res.status_code == 422 and "spaces" in res.json()["detail"]


async def test_validation_errors_read_as_sentences(client: Client) -> None:
    empty = await client.post("/api/v1/auth/token", headers={"content-type": "application/json"})
    assert empty.json()["detail"] == "Your request is not valid: send a JSON object as the body."
    page = await client.get("/api/v1/challenges?page=0")
    assert page.json()["detail"] == "Your request is not valid: page: Expected `int` >= 1."
    missing = await client.post("/api/v1/auth/token", json={"email": "a@b.c"})
    assert "missing required field `password`" in missing.json()["detail"]
