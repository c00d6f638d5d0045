"""The coach page: members only, history rendered escaped, the form with and without JS,
privacy (another member's conversation is a 404) and the HTML stream escaping model output."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.db.models import Conversation, Message
from app.routes.coach_pages import _ending_with_done
from app.routes.coach_stream import sse_response
from app.services.coach.events import Failed, Token
from app.settings import Settings
from tests.conftest import csrf_token, unique_email, update_row

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html,application/xhtml+xml"}
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'
PASSWORD = "correct horse battery"


def hx(token: str) -> dict[str, str]:
    return {
        "HX-Request": "true",
        "HX-Current-URL": "http://127.0.0.1/coach",
        "X-CSRFToken": token,
        **HTML,
    }


@pytest.fixture(scope="module")
def coach_app(settings: Settings) -> Litestar:
    return create_app(replace(settings, coach_max_tokens=8, coach_warmup=False))


async def _signed_up(app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as c:
        token = await csrf_token(c)
        res = await c.post(
            "/signup",
            data={
                "email": unique_email("coachpage"),
                "password": PASSWORD,
                "display_name": "Coach Page Tester",
                "_csrf_token": token,
            },
            headers=HTML,
            follow_redirects=False,
        )
        assert res.status_code == 303, res.text
        yield c


@pytest.fixture
async def alice(coach_app: Litestar) -> AsyncIterator[Client]:
    async for c in _signed_up(coach_app):
        yield c


async def _post_api(c: Client, text: str, conversation_id: int | None = None) -> dict[str, Any]:
    token = await csrf_token(c)
    body: dict[str, Any] = {"text": text}
    if conversation_id:
        body["conversation_id"] = conversation_id
    res = await c.post("/api/v1/coach/messages", json=body, headers={"X-CSRFToken": token})
    assert res.status_code == 201, res.text
    data: dict[str, Any] = res.json()
    return data


async def _bearer_for_new_member(c: Client) -> str:
    """Another member's token, made through the API on a client that has a session (so the
    CSRF header goes along)."""
    csrf = {"X-CSRFToken": await csrf_token(c)}
    email, password = unique_email("bob"), PASSWORD
    body = {"email": email, "password": password, "display_name": "Bob"}
    res = await c.post("/api/v1/auth/signup", json=body, headers=csrf)
    assert res.status_code == 201, res.text
    res = await c.post(
        "/api/v1/auth/token", json={"email": email, "password": password}, headers=csrf
    )
    assert res.status_code in (200, 201), res.text
    token: str = res.json()["token"]
    return token


def _sse_events(body: str) -> list[tuple[str, str]]:
    events = []
    for block in body.split("\r\n\r\n" if "\r\n" in body else "\n\n"):
        event, data = "message", []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
        if data:
            events.append((event, "\n".join(data)))
    return events


# ---- access ------------------------------------------------------------------------------
async def test_coach_requires_login(client: Client) -> None:
    res = await client.get("/coach", headers=HTML, follow_redirects=False)
    assert res.status_code in (302, 303) and res.headers["location"] == "/login?next=/coach"
    res = await client.get("/coach/messages/1/stream", headers=HTML, follow_redirects=False)
    assert res.status_code in (302, 303)


async def test_empty_coach_page(alice: Client) -> None:
    res = await alice.get("/coach", headers=HTML)
    assert res.status_code == 200
    html = res.text
    assert re.search(
        r'<script defer src="/static/vendor/htmx-ext-sse\.[0-9a-f]+\.min\.js">', html
    ) or (re.search(r'<script defer src="/static/vendor/htmx-ext-sse\.min\.[0-9a-f]+\.js">', html))
    assert 'id="coach-form"' in html and 'name="text"' in html and 'name="_csrf_token"' in html
    assert 'hx-post="/coach/messages"' in html and 'action="/coach/messages"' in html
    assert 'action="/coach/conversations"' in html
    assert '<label for="coach-text">' in html
    assert "<script>" not in html and " style=" not in html


# ---- history escaped ---------------------------------------------------------------------
async def test_history_renders_escaped(alice: Client, coach_app: Litestar) -> None:
    posted = await _post_api(alice, XSS)
    await update_row(
        coach_app, Message, posted["reply_id"], status="complete", content="Sure " + XSS
    )
    html = (await alice.get(f"/coach?c={posted['conversation_id']}", headers=HTML)).text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    )
    assert f'id="m-{posted["reply_id"]}"' in html and "Sure &lt;script&gt;" in html
    # the latest conversation is the default
    assert f'id="m-{posted["id"]}"' in (await alice.get("/coach", headers=HTML)).text


async def test_pending_reply_renders_the_streaming_bubble(alice: Client) -> None:
    posted = await _post_api(alice, "hello")
    html = (await alice.get(f"/coach?c={posted['conversation_id']}", headers=HTML)).text
    bubble = re.search(rf'<li id="m-{posted["reply_id"]}"[^>]*>.*?</li>', html, re.S)
    assert bubble, html
    b = bubble[0]
    assert 'hx-ext="sse"' in b and f'sse-connect="/coach/messages/{posted["reply_id"]}/stream"' in b
    assert 'sse-close="done"' in b and 'sse-swap="token"' in b and 'hx-swap="beforeend"' in b
    assert 'aria-live="polite"' in b


async def test_summary_shown_when_present(alice: Client, coach_app: Litestar) -> None:
    posted = await _post_api(alice, "remember me")
    cid = posted["conversation_id"]
    page = (await alice.get(f"/coach?c={cid}", headers=HTML)).text
    assert "What your coach remembers" not in page
    await update_row(coach_app, Conversation, cid, summary="Runs <b>daily</b>")
    page = (await alice.get(f"/coach?c={cid}", headers=HTML)).text
    assert "What your coach remembers" in page and "Runs &lt;b&gt;daily&lt;/b&gt;" in page


# ---- privacy -----------------------------------------------------------------------------
async def test_other_members_conversation_is_404(alice: Client) -> None:
    posted = await _post_api(alice, "private thoughts")
    cid, reply = posted["conversation_id"], posted["reply_id"]
    # Bob: another member (a bearer token is judged alone, whatever cookies ride along)
    bob = {"Authorization": f"Bearer {await _bearer_for_new_member(alice)}", **HTML}
    assert (await alice.get("/coach", headers=bob)).status_code == 200
    res = await alice.get(f"/coach?c={cid}", headers=bob)
    assert res.status_code == 404 and "private thoughts" not in res.text
    res = await alice.post(
        "/coach/messages",
        data={"text": "hijack", "conversation_id": str(cid)},
        headers=bob,
        follow_redirects=False,
    )
    assert res.status_code == 404
    res = await alice.get(f"/coach/messages/{reply}/stream", headers=bob)
    assert res.status_code == 404
    assert (await alice.get("/coach?c=999999999", headers=HTML)).status_code == 404


# ---- the form ----------------------------------------------------------------------------
@pytest.mark.slow  # the real local model writes the answer
async def test_form_without_js_answers_then_redirects(alice: Client) -> None:
    token = await csrf_token(alice)
    res = await alice.post(
        "/coach/messages",
        data={
            "text": "How do I keep a streak? <b>bold</b>",
            "conversation_id": "",
            "_csrf_token": token,
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    location = res.headers["location"]
    m = re.fullmatch(r"/coach\?c=(\d+)#m-(\d+)", location)
    assert m, location
    page = await alice.get(location.split("#")[0], headers=HTML)
    html = page.text
    assert "How do I keep a streak? &lt;b&gt;bold&lt;/b&gt;" in html
    reply = re.search(rf'<li id="m-{m[2]}" class="msg msg-coach">.*?</li>', html, re.S)
    assert reply and "sse-connect" not in reply[0], "the answer was written before the redirect"
    text = re.search(r'<div class="msg-text">(.*?)</div>', reply[0], re.S)
    assert text and text[1].strip(), reply[0]
    # a second message goes to the same conversation
    res = await alice.post(
        "/coach/messages",
        data={"text": "thanks", "conversation_id": m[1], "_csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert res.status_code == 303 and res.headers["location"].startswith(f"/coach?c={m[1]}#")


async def test_form_without_js_keeps_text_on_error(alice: Client) -> None:
    token = await csrf_token(alice)
    res = await alice.post(
        "/coach/messages",
        data={"text": "   ", "conversation_id": "", "_csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert res.status_code == 422
    assert 'id="coach-text-error"' in res.text and 'aria-invalid="true"' in res.text


@pytest.mark.slow  # the real local model writes the answer
async def test_form_with_htmx_returns_bubbles_and_fresh_form(alice: Client) -> None:
    token = await csrf_token(alice)
    res = await alice.post(
        "/coach/messages",
        data={"text": "<i>first</i> message", "conversation_id": "", "_csrf_token": token},
        headers=hx(token),
    )
    assert res.status_code == 200, res.text
    html = res.text
    assert "<html" not in html and "<main" not in html
    assert 'class="msg msg-user"' in html and "&lt;i&gt;first&lt;/i&gt; message" in html
    bubble = re.search(r'<li id="m-(\d+)" class="msg msg-coach"[^>]*>', html)
    assert bubble and f'sse-connect="/coach/messages/{bubble[1]}/stream"' in bubble[0]
    assert 'sse-close="done"' in bubble[0]
    form = re.search(r'<form id="coach-form"[^>]*>', html)
    assert form and 'hx-swap-oob="true"' in form[0]
    cid = re.search(r'name="conversation_id" value="(\d+)"', html)
    assert cid, "the fresh form carries the new conversation"
    assert 'id="coach-conversations" hx-swap-oob="true"' in html
    assert res.headers.get("hx-push-url") == f"/coach?c={cid[1]}"
    assert "HX-Request" in res.headers.get("vary", "")
    # the stream for that bubble is HTML-escaped SSE that ends with done
    stream = await alice.get(f"/coach/messages/{bubble[1]}/stream", headers=HTML)
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in stream.headers
    events = _sse_events(stream.text)
    assert [e for e, _ in events].count("token") >= 1 and events[-1][0] == "done", events
    # a second htmx message in the same conversation: no new list, no URL push
    res = await alice.post(
        "/coach/messages",
        data={"text": "again", "conversation_id": cid[1], "_csrf_token": token},
        headers=hx(token),
    )
    assert res.status_code == 200
    assert (
        "coach-conversations" not in res.text and res.headers.get("hx-push-url", "false") == "false"
    )


async def test_form_with_htmx_error_goes_to_flash(alice: Client) -> None:
    token = await csrf_token(alice)
    res = await alice.post(
        "/coach/messages",
        data={"text": "x" * 5000, "conversation_id": "", "_csrf_token": token},
        headers=hx(token),
    )
    assert res.status_code == 422
    assert res.headers["hx-retarget"] == "#flash" and res.headers["hx-reswap"] == "innerHTML"
    assert '<p class="alert">' in res.text and "4,000" in res.text


async def test_new_conversation(alice: Client) -> None:
    token = await csrf_token(alice)
    res = await alice.post(
        "/coach/conversations", data={"_csrf_token": token}, headers=HTML, follow_redirects=False
    )
    assert res.status_code == 303
    m = re.fullmatch(r"/coach\?c=(\d+)", res.headers["location"])
    assert m
    page = (await alice.get(res.headers["location"], headers=HTML)).text
    assert f'name="conversation_id" value="{m[1]}"' in page
    assert f'href="/coach?c={m[1]}" aria-current="page"' in page
    assert 'name="first" value="1"' in page  # no message yet: the first one names it
    # The first message names the conversation: heading and list change without a reload.
    res = await alice.post(
        "/coach/messages",
        data={"text": "Plan my reading week", "conversation_id": m[1], "first": "1"},
        headers=hx(token),
    )
    assert res.status_code == 200
    assert '<h2 id="chat-h" hx-swap-oob="true">Plan my reading week</h2>' in res.text
    assert f'href="/coach?c={m[1]}" aria-current="page">Plan my reading week</a>' in res.text
    assert 'name="first"' not in res.text  # the fresh form: the next message is not the first
    page = await alice.get(res.headers.get("hx-push-url") or f"/coach?c={m[1]}", headers=HTML)
    assert 'name="first"' not in page.text


# ---- the HTML stream escapes model output ------------------------------------------------
async def test_html_stream_escapes_tokens_and_ends_failures_with_done(
    alice: Client, coach_app: Litestar
) -> None:
    posted = await _post_api(alice, "show me html")
    await update_row(coach_app, Message, posted["reply_id"], status="complete", content=XSS)
    res = await alice.get(f"/coach/messages/{posted['reply_id']}/stream", headers=HTML)
    events = _sse_events(res.text)
    tokens = "".join(d for e, d in events if e == "token")
    assert "<script>" not in res.text and "<img" not in res.text
    assert (
        tokens
        == "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;"
    )
    assert events[-1][0] == "done"
    # a failed answer: its message as text, then done (no `error` event: see _ending_with_done)
    failed = await _post_api(alice, "will fail")
    await update_row(coach_app, Message, failed["reply_id"], status="failed", error="boom <b>")
    res = await alice.get(f"/coach/messages/{failed['reply_id']}/stream", headers=HTML)
    events = _sse_events(res.text)
    assert [e for e, _ in events] == ["token", "done"] and "&lt;b&gt;" in events[0][1]


async def test_formatter_escapes_every_token() -> None:
    async def events() -> AsyncIterator[Any]:
        yield Token("<script>alert(1)</script>")
        yield Token('<img src=x onerror="alert(2)">')
        yield Failed("<b>nope</b>")

    class FakeRequest:
        scope: dict[str, Any] = {}

    response = sse_response(FakeRequest(), _ending_with_done(events(), 7), html=True)  # type: ignore[arg-type]
    chunks = []
    async for chunk in response.iterator:  # type: ignore[union-attr]
        chunks.append(chunk if isinstance(chunk, str) else chunk.decode())
    body = "".join(chunks)
    assert "<script>" not in body and "<img" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "&lt;b&gt;nope&lt;/b&gt;" in body
    assert _sse_events(body)[-1][0] == "done"
