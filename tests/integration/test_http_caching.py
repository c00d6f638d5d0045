"""Conditional GET on API reads and fragments, and freshness after every kind of write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.db.models import User
from app.services import reputation
from app.services.reputation import MAX_BOARD
from tests.conftest import sign_up_api, update_row

Client = AsyncTestClient[Litestar]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/challenges?page=2",
        "/api/v1/challenges/3",
        "/api/v1/leaderboard?limit=5",
        "/api/v1/users/3/reputation",
        "/fragments/trending",
        "/fragments/leaderboard?limit=5",
    ],
)
async def test_reads_carry_an_etag_and_answer_304(client: Client, path: str) -> None:
    first = await client.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and "no-cache" in first.headers["cache-control"]
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    listed = await client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    stale = await client.get(path, headers={"If-None-Match": '"not-it"'})
    assert stale.status_code == 200 and stale.content == first.content


async def test_personal_reads_are_private(client: Client, auth: dict[str, str]) -> None:
    res = await client.get("/api/v1/me", headers=auth)
    assert res.headers["cache-control"].startswith("private")
    assert "Authorization" in res.headers["vary"]


async def test_static_assets_are_immutable_with_304(client: Client) -> None:
    page = await client.get("/login")
    href = page.text.split('href="/static/css/', 1)[1].split('"', 1)[0]
    res = await client.get(f"/static/css/{href}", headers={"Accept-Encoding": "br"})
    assert res.status_code == 200
    assert res.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert res.headers["content-encoding"] == "br"
    again = await client.get(f"/static/css/{href}", headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304


Write = Callable[[Client, dict[str, str], int], Awaitable[Any]]


async def _join(client: Client, auth: dict[str, str], cid: int) -> None:
    assert (await client.post(f"/api/v1/challenges/{cid}/join", headers=auth)).status_code == 201


async def _check_in(client: Client, auth: dict[str, str], cid: int) -> None:
    await _join(client, auth, cid)
    res = await client.post(
        f"/api/v1/challenges/{cid}/check-ins", json={"note": "fresh"}, headers=auth
    )
    assert res.status_code == 201


async def _edit(client: Client, auth: dict[str, str], cid: int) -> None:
    res = await client.patch(
        f"/api/v1/challenges/{cid}", json={"title": "Renamed challenge"}, headers=auth
    )
    assert res.status_code == 200


def _participants(body: dict[str, Any], cid: int) -> Any:
    return body["participants"]


# Each write, the reads it changes, and how to see the change: read before, write, read after.
CASES: list[tuple[str, Write, list[str]]] = [
    ("join", _join, ["/api/v1/challenges/{cid}", "/api/v1/challenges?q=freshness"]),
    (
        "check-in",
        _check_in,
        [
            "/api/v1/challenges/{cid}/check-ins",
            "/api/v1/users/{uid}/reputation",
            "/api/v1/me",
        ],
    ),
    ("edit", _edit, ["/api/v1/challenges/{cid}", "/api/v1/challenges?q=freshness"]),
]


@pytest.mark.parametrize(("name", "write", "reads"), CASES, ids=[c[0] for c in CASES])
async def test_no_stale_read_after_a_write(
    client: Client, name: str, write: Write, reads: list[str]
) -> None:
    member = await sign_up_api(client, f"Fresh {name}")
    auth = {"Authorization": f"Bearer {member['token']}"}
    created = await client.post(
        "/api/v1/challenges",
        json={"title": f"Freshness {name}", "category": "testing"},
        headers=auth,
    )
    cid = created.json()["id"]
    urls = [r.format(cid=cid, uid=member["id"]) for r in reads]
    before = [(await client.get(u, headers=auth)).json() for u in urls]  # warm the cache
    before_again = [(await client.get(u, headers=auth)).json() for u in urls]
    assert before == before_again
    await write(client, auth, cid)
    after = [(await client.get(u, headers=auth)).json() for u in urls]
    for url, old, new in zip(urls, before, after, strict=True):
        assert old != new, f"{name}: {url} still shows the data from before the write"


async def test_new_challenge_is_visible_at_once(client: Client, auth: dict[str, str]) -> None:
    missing = await client.get("/api/v1/challenges/987654")
    assert missing.status_code == 404
    listed = (await client.get("/api/v1/challenges?q=brand+new+habit")).json()
    assert listed["total"] == 0
    res = await client.post(
        "/api/v1/challenges", json={"title": "Brand new habit", "category": "testing"}, headers=auth
    )
    assert res.status_code == 201
    assert (await client.get("/api/v1/challenges?q=brand+new+habit")).json()["total"] == 1


async def test_reads_of_an_id_before_it_existed_do_not_hide_it(
    client: Client, auth: dict[str, str]
) -> None:
    """A 404 is cached like any read; creating the challenge must forget it at once."""
    body = {"title": "Next in line", "category": "testing"}
    first = (await client.post("/api/v1/challenges", json=body, headers=auth)).json()["id"]
    reads = [f"/api/v1/challenges/{first + 1}", f"/api/v1/challenges/{first + 1}/check-ins"]
    for url in reads * 2:  # the second round is answered from the cache
        assert (await client.get(url)).status_code == 404
    created = await client.post("/api/v1/challenges", json=body, headers=auth)
    assert created.json()["id"] == first + 1
    for url in reads:
        assert (await client.get(url)).status_code == 200, url


async def _check_in_to_new_challenge(client: Client, auth: dict[str, str]) -> None:
    created = await client.post(
        "/api/v1/challenges", json={"title": "Climbing", "category": "testing"}, headers=auth
    )
    await _check_in(client, auth, created.json()["id"])


def _board_ids(body: dict[str, Any]) -> list[int]:
    return [item["user_id"] for item in body["items"]]


async def test_a_member_who_climbs_onto_a_board_shows_at_once(
    app: Litestar, client: Client
) -> None:
    member = await sign_up_api(client, "Climber")
    auth = {"Authorization": f"Bearer {member['token']}"}
    board = (await client.get("/api/v1/leaderboard?limit=10")).json()  # cached from here on
    assert member["id"] not in _board_ids(board)
    # Just below the tenth place: every board is still right, so the cached one may stay.
    await update_row(app, User, member["id"], reputation=board["items"][-1]["points"] - 5)
    assert (await client.get("/api/v1/leaderboard?limit=10")).json() == board
    await _check_in_to_new_challenge(client, auth)  # +10: onto the board
    after = (await client.get("/api/v1/leaderboard?limit=10")).json()
    assert member["id"] in _board_ids(after)


async def test_an_award_far_below_every_board_keeps_them_cached(
    app: Litestar, client: Client
) -> None:
    """Points only grow, so a member outside the longest board before and after an award
    changes no board: the award bumps ranks (their reputation page) but not the boards."""
    member = await sign_up_api(client, "Low scorer")
    auth = {"Authorization": f"Bearer {member['token']}"}
    longest = (await client.get(f"/api/v1/leaderboard?limit={MAX_BOARD}")).json()
    if len(longest["items"]) < MAX_BOARD:
        pytest.skip("the seeded data has fewer members than the longest board")
    assert member["id"] not in _board_ids(longest)
    reputation = f"/api/v1/users/{member['id']}/reputation"
    before = (await client.get(reputation)).json()
    loads = _leaderboard_loads(app)
    assert loads > 0, "the leaderboard loads counter is not being read"
    await _check_in_to_new_challenge(client, auth)
    assert (await client.get(f"/api/v1/leaderboard?limit={MAX_BOARD}")).json() == longest
    assert _leaderboard_loads(app) == loads, "the board was reloaded after an award below it"
    assert (await client.get(reputation)).json()["points"] == before["points"] + 10


def _leaderboard_loads(app: Litestar) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("momentum_cache_loads_total", {"cache": "leaderboard"})
    return value or 0.0


async def test_a_member_passed_by_an_award_sees_their_rank_drop(client: Client) -> None:
    """Ranks are cached per points value; an award forgets exactly the ranks it passed."""
    passer, passed = await sign_up_api(client, "Passer"), await sign_up_api(client, "Passed")
    passer_auth = {"Authorization": f"Bearer {passer['token']}"}
    await _check_in_to_new_challenge(client, {"Authorization": f"Bearer {passed['token']}"})
    url = f"/api/v1/users/{passed['id']}/reputation"
    before = (await client.get(url)).json()  # cached: 10 points, rank r
    await _check_in_to_new_challenge(client, passer_auth)  # 0 -> 10: a tie, not above
    assert (await client.get(url)).json()["rank"] == before["rank"]
    await _check_in_to_new_challenge(client, passer_auth)  # 10 -> 20: passes them
    after = (await client.get(url)).json()
    assert (after["points"], after["rank"]) == (before["points"], before["rank"] + 1)


async def test_a_wrong_points_guess_never_shows_a_wrong_rank(client: Client) -> None:
    """A reputation read fetches the rank of the points it guessed; a guess from another
    member's points is cached and fresh, and still must not be shown."""
    board = (await client.get("/api/v1/leaderboard?limit=10")).json()["items"]
    first, last = board[0], board[-1]
    assert first["points"] != last["points"]
    url = "/api/v1/users/{}/reputation"
    truth = [(await client.get(url.format(m["user_id"]))).json() for m in (first, last)]
    reputation._POINTS_SEEN[first["user_id"]] = last["points"]  # rank(last points) is cached
    again = (await client.get(url.format(first["user_id"]))).json()
    assert (again["points"], again["rank"]) == (truth[0]["points"], truth[0]["rank"])
    assert truth[0]["rank"] != truth[1]["rank"]
