"""HTML pages and HTMX fragments on both databases: shells with their lazy sections, the
partials behind them, sign-up / log-in / log-out, join and check-in with and without htmx,
and the CSP-friendly markup rules (no inline script or style)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from markupsafe import escape

from tests.conftest import csrf_token, unique_email

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html,application/xhtml+xml"}
PASSWORD = "correct horse battery"


def hx(token: str = "", **extra: str) -> dict[str, str]:
    """Headers htmx sends (the CSRF header comes from hx-headers on <body>)."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/", **HTML, **extra}
    if token:
        headers["X-CSRFToken"] = token
    return headers


def assert_csp_friendly(html: str) -> None:
    """Strict CSP (script-src/style-src 'self'): no inline scripts, styles or handlers."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def assert_fragment(html: str) -> None:
    assert "<html" not in html and "<body" not in html and "<main" not in html


async def first_challenge(client: Client) -> dict[str, Any]:
    res = await client.get("/api/v1/challenges")
    item: dict[str, Any] = res.json()["items"][0]
    return item


@pytest.fixture
async def new_member(app: Litestar) -> AsyncIterator[Client]:
    """A browser-like client for a brand-new account made through the sign-up form."""
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as c:
        token = await csrf_token(c)
        res = await c.post(
            "/signup",
            data={
                "email": unique_email("pages"),
                "password": PASSWORD,
                "display_name": "Page Tester",
                "_csrf_token": token,
            },
            headers=HTML,
            follow_redirects=False,
        )
        assert res.status_code == 303, res.text
        yield c


# ---- page shells --------------------------------------------------------------------------
SHELLS = [
    ("/", ['hx-get="/fragments/trending"', 'hx-get="/fragments/leaderboard?limit=5"']),
    ("/challenges", ['hx-get="/fragments/challenges"', 'id="challenge-search"', 'name="q"']),
    # The board is the leaderboard page's only content: rendered in place, not lazily.
    ("/leaderboard", ['id="leaderboard-50"', 'class="rank"']),
    ("/login", ['name="email"', 'name="password"', 'name="_csrf_token"']),
    ("/signup", ['name="email"', 'name="password"', 'name="display_name"']),
]


@pytest.mark.parametrize(("path", "expected"), SHELLS)
async def test_page_shells(client: Client, path: str, expected: list[str]) -> None:
    res = await client.get(path, headers=HTML)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    html = res.text
    for landmark in ("<header", "<nav", '<main id="main"', "<footer", "<h1"):
        assert landmark in html
    for snippet in expected:
        assert snippet in html, snippet
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert 'name="htmx-config"' in html and '"allowEval":false' in html
    htmx = re.search(r'<script defer src="/static/vendor/htmx\.min\.[0-9a-f]+\.js">', html)
    # Log in and sign up are plain forms: they skip htmx entirely.
    assert bool(htmx) is (path not in ("/login", "/signup"))
    assert "htmx-ext-sse" not in html, "the SSE extension loads on /coach only"
    assert_csp_friendly(html)


async def test_lazy_sections_use_load_above_and_revealed_below(client: Client) -> None:
    html = (await client.get("/", headers=HTML)).text
    trending = re.search(r'<div id="trending"[^>]*>', html)
    board = re.search(r'<div id="leaderboard-5"[^>]*>', html)
    assert trending and 'hx-trigger="load"' in trending[0] and 'aria-busy="true"' in trending[0]
    assert board and 'hx-trigger="revealed"' in board[0] and 'hx-swap="outerHTML"' in board[0]
    assert html.count('class="card skel"') == 6, "fixed-size skeleton cards"


async def test_challenge_page(client: Client) -> None:
    challenge = await first_challenge(client)
    cid = challenge["id"]
    res = await client.get(f"/challenges/{cid}", headers=HTML)
    assert res.status_code == 200
    html = res.text
    assert f'<h1 id="challenge-title">{escape(challenge["title"])}' in html
    assert f'hx-get="/fragments/challenges/{cid}/check-ins"' in html
    assert 'hx-trigger="revealed, checked-in from:body"' in html
    # the count is already known: rendered inline, refreshed when someone joins
    assert f"{challenge['participants']} participant" in html
    assert 'hx-trigger="joined from:body"' in html
    # visitors get a sign-in link instead of the join form (no extra request)
    assert f"/login?next=/challenges/{cid}" in html and "/join" not in html
    assert_csp_friendly(html)


async def test_profile_page_renders_reputation_inline(client: Client) -> None:
    entry = (await client.get("/api/v1/leaderboard?limit=1")).json()["items"][0]
    res = await client.get(f"/users/{entry['user_id']}", headers=HTML)
    assert res.status_code == 200
    assert escape(entry["display_name"]) in res.text and f"<dd>{entry['points']}</dd>" in res.text
    assert 'id="reputation"' in res.text and 'aria-busy="true"' not in res.text


async def test_unknown_ids_are_404_pages(client: Client) -> None:
    for path in ("/challenges/999999", "/users/999999"):
        res = await client.get(path, headers=HTML)
        assert res.status_code == 404
        assert "<html" in res.text and "does not exist" in res.text


# ---- fragments ----------------------------------------------------------------------------
async def test_fragments_return_partials(client: Client) -> None:
    challenge = await first_challenge(client)
    cid = challenge["id"]
    user_id = (await client.get("/api/v1/leaderboard?limit=1")).json()["items"][0]["user_id"]
    expected = {
        "/fragments/trending": ['id="trending"', f'href="/challenges/{cid}"'],
        "/fragments/challenges": ['id="challenge-results"', 'class="card"'],
        "/fragments/leaderboard?limit=5": ['id="leaderboard-5"', 'class="row"'],
        f"/fragments/users/{user_id}/reputation?history=3": ['id="reputation"', "Rank"],
        f"/fragments/challenges/{cid}/participants": [f"{challenge['participants']} partic"],
        f"/fragments/challenges/{cid}/check-ins": ['id="check-ins"'],
        f"/fragments/challenges/{cid}/actions": ['id="challenge-actions"', "Log in to join"],
    }
    for url, snippets in expected.items():
        res = await client.get(url, headers=hx())
        assert res.status_code == 200, url
        assert_fragment(res.text)
        assert 'aria-busy="true"' not in res.text, f"{url} should render content"
        for snippet in snippets:
            assert snippet in res.text, (url, snippet)
        assert_csp_friendly(res.text)
    board = (await client.get("/fragments/leaderboard?limit=5", headers=hx())).text
    assert board.count('class="row"') == 5


async def test_search_fragment_filters_and_paginates(client: Client) -> None:
    res = await client.get("/fragments/challenges?q=YOGA", headers=hx())
    titles = re.findall(r'class="card-title" href="/challenges/\d+">([^<]+)<', res.text)
    assert titles and all("yoga" in t.lower() for t in titles)
    assert "matching “YOGA”" in res.text

    page2 = (await client.get("/fragments/challenges?page=2", headers=hx())).text
    assert "page 2 of" in page2
    # pagination works without JS (href to the page) and with htmx (fragment + pushed page URL)
    assert 'href="/challenges" rel="prev"' in page2 and 'hx-push-url="/challenges"' in page2
    assert 'href="/challenges?page=3" rel="next"' in page2
    assert 'hx-get="/fragments/challenges?page=3"' in page2

    fitness = (await client.get("/fragments/challenges?category=fitness", headers=hx())).text
    assert "in Fitness" in fitness
    empty = await client.get("/fragments/challenges?q=%25_zzz", headers=hx())
    assert "0 challenges" in empty.text and "No challenges match" in empty.text
    bad = await client.get("/fragments/challenges?page=0", headers=hx())
    assert bad.status_code == 400


async def test_search_pushes_page_url_only_for_the_search_form(client: Client) -> None:
    typed = await client.get(
        "/fragments/challenges?q=run&category=fitness",
        headers=hx(**{"HX-Trigger": "challenge-search"}),
    )
    assert typed.headers["hx-push-url"] == "/challenges?q=run&category=fitness"
    assert "HX-Request" in typed.headers["vary"]
    assert 'hx-swap-oob="innerHTML"' in typed.text, "result count announced in #status"

    lazy = await client.get("/fragments/challenges?q=run", headers=hx())
    assert "hx-push-url" not in lazy.headers
    assert "HX-Request" in lazy.headers["vary"]
    assert "hx-swap-oob" not in lazy.text


async def test_challenges_page_keeps_query_in_form_and_skeleton(client: Client) -> None:
    res = await client.get("/challenges?q=run&category=fitness&page=2", headers=HTML)
    assert res.status_code == 200
    assert 'value="run"' in res.text and '<option value="fitness" selected>' in res.text
    assert 'hx-get="/fragments/challenges?q=run&amp;category=fitness&amp;page=2"' in res.text


async def test_a_page_past_the_last_links_to_the_last(client: Client) -> None:
    res = await client.get("/fragments/challenges?page=99", headers=hx())
    assert res.status_code == 200
    assert "There is no page 99." in res.text and "page 99 of" not in res.text
    last = re.search(r'href="/challenges\?page=(\d+)" rel="prev"', res.text)
    assert last and int(last[1]) < 99
    assert "No challenges match" not in res.text


async def test_user_input_is_escaped(client: Client) -> None:
    res = await client.get("/challenges?q=%3Cscript%3Ex%3C/script%3E", headers=HTML)
    assert res.status_code == 200
    assert "<script>x" not in res.text and "&lt;script&gt;x" in res.text


# ---- access control -----------------------------------------------------------------------
async def test_private_pages_redirect_to_login(client: Client) -> None:
    res = await client.get("/coach", headers=HTML, follow_redirects=False)
    assert res.status_code in (302, 303)
    assert res.headers["location"] == "/login?next=/coach"
    frag = await client.get("/fragments/my-challenges", headers=hx())
    assert frag.status_code == 401 and frag.headers["hx-redirect"].startswith("/login?next=")


async def test_signing_in_again_returns_to_the_page_not_to_a_post_url(client: Client) -> None:
    """A session that expired while a page was open: the join button's POST sends the member
    to log in and back to that page (the POST itself cannot be replayed as a GET)."""
    token = await csrf_token(client)
    page = "http://127.0.0.1/challenges/1?tab=x"
    res = await client.post("/challenges/1/join", headers=hx(token, **{"HX-Current-URL": page}))
    assert res.status_code == 401
    assert res.headers["hx-redirect"] == "/login?next=/challenges/1%3Ftab%3Dx"
    form = {**HTML, "x-csrftoken": token, "referer": "http://127.0.0.1/coach"}
    res = await client.post("/coach/messages", headers=form, follow_redirects=False)
    assert res.headers["location"] == "/login?next=/coach"
    elsewhere = {**form, "referer": "https://evil.example/coach"}
    res = await client.post("/coach/messages", headers=elsewhere, follow_redirects=False)
    assert res.headers["location"] == "/login?next=/"
    frag = await client.get("/fragments/my-challenges", headers=hx(**{"HX-Current-URL": page}))
    assert frag.headers["hx-redirect"] == "/login?next=/challenges/1%3Ftab%3Dx"


async def test_a_member_is_never_shown_as_signed_out_on_an_error_page(
    member_client: Client, client: Client
) -> None:
    """Unmatched URLs and wrong methods are answered before the session is read."""
    for method, url in (("GET", "/nope/bad"), ("GET", "/challenges/abc"), ("PUT", "/coach")):
        res = await member_client.request(method, url, headers=HTML)
        assert res.status_code in (404, 405), (url, res.status_code)
        assert "Log in</a>" not in res.text and "Sign up</a>" not in res.text, url
    known = await member_client.get("/challenges/999999", headers=HTML)
    assert known.status_code == 404 and 'action="/logout"' in known.text
    visitor = await client.get("/challenges/999999", headers=HTML)
    assert visitor.status_code == 404 and "Log in</a>" in visitor.text


async def test_member_pages(member_client: Client) -> None:
    home = (await member_client.get("/", headers=HTML)).text
    assert "Welcome back" in home and 'hx-get="/fragments/my-challenges"' in home
    assert re.search(r'hx-get="/fragments/users/\d+/reputation\?history=3"', home)
    assert 'action="/logout"' in home and "Log in</a>" not in home
    mine = await member_client.get("/fragments/my-challenges", headers=hx())
    assert mine.status_code == 200 and 'id="my-challenges"' in mine.text
    assert_fragment(mine.text)
    coach = await member_client.get("/coach", headers=HTML)
    assert coach.status_code == 200 and 'id="coach-form"' in coach.text
    assert "htmx-ext-sse" in coach.text
    # signed-in members are sent on from the login page
    again = await member_client.get("/login?next=/leaderboard", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/leaderboard"


# ---- log in / sign up / log out -----------------------------------------------------------
async def test_login_errors_and_success(client: Client) -> None:
    from app.db.seed import DEMO_EMAIL, DEMO_PASSWORD

    page = await client.get("/login?next=/leaderboard", headers=HTML)
    assert 'name="next" value="/leaderboard"' in page.text
    token = await csrf_token(client)
    wrong = await client.post(
        "/login",
        data={"email": DEMO_EMAIL, "password": "nope", "next": "/x", "_csrf_token": token},
        headers=HTML,
    )
    assert wrong.status_code == 401
    assert "Wrong email or password." in wrong.text and f'value="{DEMO_EMAIL}"' in wrong.text
    assert 'value="nope"' not in wrong.text, "passwords are never echoed"

    ok = await client.post(
        "/login",
        data={
            "email": DEMO_EMAIL,
            "password": DEMO_PASSWORD,
            "next": "/leaderboard",
            "_csrf_token": token,
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/leaderboard"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil", "x"])
async def test_login_next_must_be_a_local_path(client: Client, target: str) -> None:
    from app.db.seed import DEMO_EMAIL, DEMO_PASSWORD

    token = await csrf_token(client)
    res = await client.post(
        "/login",
        data={
            "email": DEMO_EMAIL,
            "password": DEMO_PASSWORD,
            "next": target,
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert res.status_code == 303 and res.headers["location"] == "/"


async def test_forms_need_the_csrf_token(client: Client) -> None:
    res = await client.post("/login", data={"email": "a@b.cd", "password": "x"}, headers=HTML)
    assert res.status_code == 403


async def test_signup_errors_per_field(client: Client) -> None:
    token = await csrf_token(client)
    res = await client.post(
        "/signup",
        data={"email": "nope", "password": "short", "display_name": "x", "_csrf_token": token},
        headers=HTML,
    )
    assert res.status_code == 422
    for name in ("email", "password", "display_name"):
        assert f'id="{name}-error"' in res.text, name
        assert re.search(rf'<input id="{name}"[^>]*aria-invalid="true"', res.text), name
    assert 'value="nope"' in res.text and 'value="short"' not in res.text


async def test_signup_taken_email_then_success_and_logout(client: Client) -> None:
    from app.db.seed import DEMO_EMAIL

    token = await csrf_token(client)
    form = {"password": PASSWORD, "display_name": "New Person", "_csrf_token": token}
    taken = await client.post("/signup", data={**form, "email": DEMO_EMAIL}, headers=HTML)
    assert taken.status_code == 409 and 'id="email-error"' in taken.text

    made = await client.post(
        "/signup",
        data={**form, "email": unique_email("signup"), "next": "/challenges"},
        headers=HTML,
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == "/challenges"
    home = await client.get("/", headers=HTML)
    assert "Welcome back, New Person" in home.text

    out = await client.post(
        "/logout",
        data={"_csrf_token": client.cookies.get("momentum_csrf") or token},
        follow_redirects=False,
    )
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert "Welcome back" not in (await client.get("/", headers=HTML)).text


# ---- join and check in --------------------------------------------------------------------
async def test_join_and_check_in_with_plain_forms(new_member: Client) -> None:
    cid = (await first_challenge(new_member))["id"]
    token = new_member.cookies.get("momentum_csrf") or ""
    actions = await new_member.get(f"/fragments/challenges/{cid}/actions", headers=hx())
    assert f'action="/challenges/{cid}/join"' in actions.text

    joined = await new_member.post(
        f"/challenges/{cid}/join", data={"_csrf_token": token}, follow_redirects=False
    )
    assert joined.status_code == 303 and joined.headers["location"] == f"/challenges/{cid}"
    actions = await new_member.get(f"/fragments/challenges/{cid}/actions", headers=hx())
    assert f'action="/challenges/{cid}/check-in"' in actions.text and 'name="note"' in actions.text

    note = "<b>day one</b> done"
    checked = await new_member.post(
        f"/challenges/{cid}/check-in",
        data={"note": note, "_csrf_token": token},
        follow_redirects=False,
    )
    assert checked.status_code == 303
    actions = await new_member.get(f"/fragments/challenges/{cid}/actions", headers=hx())
    assert "Checked in today" in actions.text
    recent = (await new_member.get(f"/fragments/challenges/{cid}/check-ins", headers=hx())).text
    assert "&lt;b&gt;day one&lt;/b&gt; done" in recent and "<b>day one" not in recent

    again = await new_member.post(
        f"/challenges/{cid}/check-in", data={"_csrf_token": token}, headers=HTML
    )
    assert again.status_code == 409
    assert "<html" in again.text and "already checked in" in again.text


async def test_join_and_check_in_with_htmx(new_member: Client) -> None:
    challenge = (await new_member.get("/api/v1/challenges?page=2")).json()["items"][0]
    cid = challenge["id"]
    token = new_member.cookies.get("momentum_csrf") or ""

    joined = await new_member.post(f"/challenges/{cid}/join", headers=hx(token))
    assert joined.status_code == 200
    assert_fragment(joined.text)
    assert joined.text.lstrip().startswith('<div id="challenge-actions"')
    assert "joined" in joined.headers["hx-trigger"]
    assert "You joined" in joined.text and 'id="status" hx-swap-oob="innerHTML"' in joined.text
    count = await new_member.get(f"/fragments/challenges/{cid}/participants", headers=hx())
    assert f"{challenge['participants'] + 1} participants" in count.text

    # A stale tab (joined elsewhere): the actions as they are now replace the old ones.
    twice = await new_member.post(f"/challenges/{cid}/join", headers=hx(token))
    assert twice.status_code == 200
    assert_fragment(twice.text)
    assert twice.text.lstrip().startswith('<div id="challenge-actions"')
    assert "already joined" in twice.text and 'name="note"' in twice.text

    checked = await new_member.post(
        f"/challenges/{cid}/check-in", data={"note": "felt good"}, headers=hx(token)
    )
    assert checked.status_code == 200
    assert "checked-in" in checked.headers["hx-trigger"]
    assert "Checked in today" in checked.text and "Streak: 1 day" in checked.text
    recent = (await new_member.get(f"/fragments/challenges/{cid}/check-ins", headers=hx())).text
    assert "felt good" in recent
    stale = await new_member.post(f"/challenges/{cid}/check-in", headers=hx(token))
    assert stale.status_code == 200 and "checked-in" in stale.headers["hx-trigger"]
    assert "already checked in" in stale.text and "Streak: 1 day" in stale.text
    assert "Check in for today" not in stale.text

    mine = (await new_member.get("/fragments/my-challenges", headers=hx())).text
    assert escape(challenge["title"]) in mine and "Checked in today" in mine
    me = (await new_member.get("/api/v1/me")).json()
    rep = await new_member.get(f"/fragments/users/{me['id']}/reputation?history=3", headers=hx())
    assert "<dd>10</dd>" in rep.text and "Check-in" in rep.text
