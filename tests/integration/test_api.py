"""The JSON API on both databases: reads, writes, reputation rules and every 4xx."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import sign_up_api

Client = AsyncTestClient[Litestar]


async def new_challenge(client: Client, auth: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {
        "title": "Test challenge",
        "category": "testing",
        "description": "d",
        "duration_days": 30,
    }
    body.update(overrides)
    res = await client.post("/api/v1/challenges", json=body, headers=auth)
    assert res.status_code == 201, res.text
    return res.json()


async def test_search_paginates_and_filters(client: Client) -> None:
    res = await client.get("/api/v1/challenges")
    assert res.status_code == 200
    body = res.json()
    assert body["page"] == 1 and body["total"] >= 50 and body["pages"] >= 5
    assert {"id", "title", "category", "participants"} <= set(body["items"][0])
    counts = [i["participants"] for i in body["items"]]
    assert counts == sorted(counts, reverse=True)

    page2 = (await client.get("/api/v1/challenges?page=2")).json()
    assert not {i["id"] for i in page2["items"]} & {i["id"] for i in body["items"]}

    fitness = (await client.get("/api/v1/challenges?category=fitness")).json()
    assert fitness["total"] > 0 and all(i["category"] == "fitness" for i in fitness["items"])

    found = (await client.get("/api/v1/challenges?q=YOGA")).json()
    assert found["total"] >= 1 and all("yoga" in i["title"].lower() for i in found["items"])

    nothing = (await client.get("/api/v1/challenges?q=%25_zzz")).json()
    assert nothing == {"items": [], "total": 0, "page": 1, "pages": 1, "per_page": 12}


async def test_detail_and_unknown_ids(client: Client) -> None:
    first = (await client.get("/api/v1/challenges")).json()["items"][0]
    detail = (await client.get(f"/api/v1/challenges/{first['id']}")).json()
    assert detail["participants"] == first["participants"] and detail["title"] == first["title"]
    missing = await client.get("/api/v1/challenges/999999")
    assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
    assert (await client.get("/api/v1/users/999999/reputation")).status_code == 404
    assert (await client.get("/api/v1/challenges/abc")).status_code in (400, 404)


async def test_every_timestamp_carries_its_offset(client: Client, auth: dict[str, str]) -> None:
    """SQLite keeps no offset: read back naive, a time would be taken for the client's local
    time. Created, read and edited, on every database, times say they are UTC."""
    made = await client.post(
        "/api/v1/challenges", json={"title": "Offsets", "category": "Fit"}, headers=auth
    )
    url = f"/api/v1/challenges/{made.json()['id']}"
    edited = await client.patch(url, json={"title": "Offsets, edited"}, headers=auth)
    stamps = [made.json()["created_at"], (await client.get(url)).json()["created_at"]]
    stamps += [edited.json()["created_at"], edited.json()["updated_at"]]
    await client.post(f"{url}/join", headers=auth)
    check_in = await client.post(f"{url}/check-ins", json={}, headers=auth)
    assert check_in.status_code == 201, check_in.text
    me = (await client.get("/api/v1/me", headers=auth)).json()
    history = await client.get(f"/api/v1/users/{me['id']}/reputation", headers=auth)
    stamps += re.findall(r'"(\d{4}-\d\d-\d\dT[^"]+)"', history.text)
    assert len(stamps) > 4
    for stamp in stamps:
        assert stamp.endswith("Z") or stamp.endswith("+00:00"), stamp


async def test_join_check_in_and_reputation(
    client: Client, member: dict[str, Any], auth: dict[str, str]
) -> None:
    challenge = await new_challenge(client, auth)
    cid = challenge["id"]
    before = (await client.get(f"/api/v1/users/{member['id']}/reputation")).json()
    assert before["points"] == 0

    early = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"note": "x"}, headers=auth
    )
    assert early.status_code == 409 and "Join" in early.json()["detail"]

    joined = await client.post(f"/api/v1/challenges/{cid}/join", headers=auth)
    assert joined.status_code == 201 and joined.json()["check_ins"] == 0
    again = await client.post(f"/api/v1/challenges/{cid}/join", headers=auth)
    assert again.status_code == 409
    assert (await client.get(f"/api/v1/challenges/{cid}")).json()["participants"] == 1

    done = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"note": "first run"}, headers=auth
    )
    assert done.status_code == 201, done.text
    assert done.json()["streak"] == 1 and done.json()["checked_in_today"] is True
    twice = await client.post(f"/api/v1/challenges/{cid}/check-ins", json={}, headers=auth)
    assert twice.status_code == 409 and "today" in twice.json()["detail"]

    rep = (await client.get(f"/api/v1/users/{member['id']}/reputation")).json()
    assert rep["points"] == 10 and rep["history"][0]["reason"] == "check_in"
    me = (await client.get("/api/v1/me", headers=auth)).json()
    assert me["reputation"] == 10 and me["email"] == member["email"]
    recent = (await client.get(f"/api/v1/challenges/{cid}/check-ins")).json()
    assert recent[0]["note"] == "first run"


async def test_completion_awards_bonus(
    client: Client, member: dict[str, Any], auth: dict[str, str]
) -> None:
    challenge = await new_challenge(client, auth, duration_days=1, title="One day wonder")
    await client.post(f"/api/v1/challenges/{challenge['id']}/join", headers=auth)
    res = await client.post(f"/api/v1/challenges/{challenge['id']}/check-ins", headers=auth)
    assert res.status_code == 201 and res.json()["completed"] is True
    rep = (await client.get(f"/api/v1/users/{member['id']}/reputation")).json()
    assert rep["points"] == 110
    assert sorted(h["reason"] for h in rep["history"]) == ["check_in", "completion"]
    after = await client.post(f"/api/v1/challenges/{challenge['id']}/check-ins", headers=auth)
    assert after.status_code == 409


async def test_leaderboard_ranks_follow_points(client: Client) -> None:
    res = await client.get("/api/v1/leaderboard?limit=20")
    items = res.json()["items"]
    assert len(items) == 20 and items[0]["rank"] == 1
    points = [i["points"] for i in items]
    assert points == sorted(points, reverse=True)
    for a, b in itertools.pairwise(items):
        assert b["rank"] == (a["rank"] if a["points"] == b["points"] else items.index(b) + 1)
    top = items[0]
    rep = (await client.get(f"/api/v1/users/{top['user_id']}/reputation")).json()
    assert rep["rank"] == 1 and rep["points"] == top["points"]
    assert (await client.get("/api/v1/leaderboard?limit=0")).status_code == 400
    assert (await client.get("/api/v1/leaderboard?limit=101")).status_code == 400


async def test_seeded_totals_match_the_ledger(client: Client) -> None:
    items = (await client.get("/api/v1/leaderboard?limit=5")).json()["items"]
    for item in items:
        rep = (await client.get(f"/api/v1/users/{item['user_id']}/reputation")).json()
        if len(rep["history"]) < 50:  # history is capped; totals are checked where it is whole
            assert sum(h["points"] for h in rep["history"]) == rep["points"]


async def test_edit_only_by_creator(client: Client, auth: dict[str, str]) -> None:
    challenge = await new_challenge(client, auth, title="Editable")
    res = await client.patch(
        f"/api/v1/challenges/{challenge['id']}", json={"title": "Edited title"}, headers=auth
    )
    assert res.status_code == 200 and res.json()["title"] == "Edited title"
    other = await sign_up_api(client, "Other")
    res = await client.patch(
        f"/api/v1/challenges/{challenge['id']}",
        json={"title": "Hijacked"},
        headers={"Authorization": f"Bearer {other['token']}"},
    )
    assert res.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/me"),
        ("post", "/api/v1/challenges/1/join"),
        ("post", "/api/v1/challenges/1/check-ins"),
        ("post", "/api/v1/challenges"),
        ("get", "/api/v1/me/challenges"),
    ],
)
async def test_private_api_needs_auth(client: Client, method: str, path: str) -> None:
    res = await client.request(method, path, json={})
    assert res.status_code == 401
    bad = await client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "token" in bad.json()["detail"]


async def test_token_errors(client: Client, member: dict[str, Any]) -> None:
    wrong = await client.post(
        "/api/v1/auth/token", json={"email": member["email"], "password": "wrong-password"}
    )
    assert wrong.status_code == 401
    malformed = await client.post(
        "/api/v1/auth/token", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    missing = await client.post("/api/v1/auth/token", json={"email": member["email"]})
    assert missing.status_code == 400 and "password" in missing.text


async def test_signup_validation(client: Client) -> None:
    res = await client.post(
        "/api/v1/auth/signup",
        json={"email": "not-an-email", "password": "short", "display_name": "x"},
    )
    assert res.status_code == 422
    assert "email" in res.json()["detail"] and "characters" in res.json()["detail"]
    member = await sign_up_api(client)
    dup = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": member["email"].upper(),
            "password": "another password",
            "display_name": "Dup",
        },
    )
    assert dup.status_code == 409


async def test_bad_bodies_are_4xx(client: Client, auth: dict[str, str]) -> None:
    cid = (await client.get("/api/v1/challenges")).json()["items"][0]["id"]
    wrong_type = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"note": 5}, headers=auth
    )
    assert wrong_type.status_code == 400
    too_long = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"note": "x" * 281}, headers=auth
    )
    assert too_long.status_code == 400
    unknown = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"mood": "ok"}, headers=auth
    )
    assert unknown.status_code == 400
    huge = await client.post(
        "/api/v1/challenges",
        content=b'{"title":"' + b"x" * 200_000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    bad_page = await client.get("/api/v1/challenges?page=0")
    assert bad_page.status_code == 400


async def test_openapi_and_probes(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/challenges" in schema["paths"] and "/api/v1/leaderboard" in schema["paths"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
