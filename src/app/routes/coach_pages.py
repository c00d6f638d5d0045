"""The coach page: the conversation rendered server-side (escaped), a form that works with and
without JS, and the answer streamed as escaped HTML over SSE to the htmx SSE extension.

No JS: POST /coach/messages saves the message, generates the answer on the request, then
303s back to /coach?c=<id>. With htmx: the same URL answers with the two new bubbles (the
coach's one connects to GET /coach/messages/{reply_id}/stream) plus a fresh form."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.lib.auth import member, requires_member
from app.lib.htmx import VARY_HX, is_htmx
from app.routes.coach_stream import sse_response
from app.services.coach.events import CoachEvent, Done, Failed, Token
from app.services.coach.service import CoachService
from app.services.coach.views import ConversationView, DoneEvent
from app.services.errors import InvalidInputError

ConversationParam = Annotated[int | None, Parameter(query="c", ge=1, le=2**62)]


class CoachMessageForm(msgspec.Struct, kw_only=True):
    text: str = ""
    conversation_id: str = ""  # "" for a new conversation (a hidden field always sends it)
    first: str = ""  # "1" when the conversation had no message yet: its name comes from this one


def _conversation_id(raw: str) -> int | None:
    return int(raw) if raw.strip().isdigit() else None


def _coach_url(conversation_id: int | None) -> str:
    return f"/coach?c={conversation_id}" if conversation_id else "/coach"


async def _page_context(
    coach: CoachService, user_id: int, conversation_id: int | None
) -> dict[str, Any]:
    conversations = await coach.store.conversations(user_id)
    current: ConversationView | None
    if conversation_id is None:
        current = conversations[0] if conversations else None
    else:  # someone else's conversation is a 404, like one that does not exist
        current = await coach.store.conversation(user_id, conversation_id)
    messages = await coach.store.messages(user_id, current.id) if current else []
    return {
        "conversations": conversations,
        "conversation": current,
        "messages": messages,
        "max_chars": coach.settings.coach_message_max_chars,
        "text": "",
        "error": "",
    }


@get("/coach", name="coach", guards=[requires_member], include_in_schema=False)
async def coach_page(
    request: Request[Any, Any, Any], coach: CoachService, c: ConversationParam = None
) -> Template:
    """The latest conversation (or ?c=<id>), the form, and earlier conversations."""
    return Template("pages/coach.html", context=await _page_context(coach, member(request).id, c))


@post("/coach/messages", guards=[requires_member], include_in_schema=False)
async def post_message(
    request: HTMXRequest,
    coach: CoachService,
    data: Annotated[CoachMessageForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    user_id = member(request).id
    conversation_id = _conversation_id(data.conversation_id)
    try:
        posted = await coach.post(user_id, data.text, conversation_id)
    except InvalidInputError as exc:
        return await _invalid(request, coach, user_id, conversation_id, data.text, exc)
    if not is_htmx(request):
        # No JS, no SSE: write the answer now, then show the conversation with it.
        await _drain(await coach.open_stream(user_id, posted.reply_id))
        return Redirect(
            f"{_coach_url(posted.conversation_id)}#m-{posted.reply_id}",
            status_code=HTTP_303_SEE_OTHER,
        )
    new_conversation = posted.conversation_id != conversation_id
    context: dict[str, Any] = {
        "asked": {"id": posted.id, "role": "user", "content": data.text.strip(), "status": ""},
        "reply": {"id": posted.reply_id, "role": "assistant", "content": "", "status": "pending"},
        "conversation_id": posted.conversation_id,
        "max_chars": coach.settings.coach_message_max_chars,
        "announce": "Message sent. Your coach is answering.",
    }
    if new_conversation or data.first:  # the list and the heading show its name now
        conversations = await coach.store.conversations(user_id)
        context["conversations"] = conversations
        context["current_id"] = posted.conversation_id
        context["title"] = next(
            (c.title for c in conversations if c.id == posted.conversation_id), ""
        )
    return HTMXTemplate(
        template_name="partials/coach_exchange.html",
        context=context,
        push_url=_coach_url(posted.conversation_id) if new_conversation else False,
        headers={"Vary": VARY_HX},
    )


async def _invalid(
    request: HTMXRequest,
    coach: CoachService,
    user_id: int,
    conversation_id: int | None,
    text: str,
    exc: InvalidInputError,
) -> Response[Any]:
    """Empty or too long: htmx shows the sentence in #flash; without JS the page comes back
    with the text kept and the error next to the field."""
    if is_htmx(request):
        return Template(
            "partials/error.html",
            context={"status_code": exc.status_code, "detail": exc.message},
            status_code=exc.status_code,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML", "Vary": VARY_HX},
        )
    context = await _page_context(coach, user_id, conversation_id)
    context.update(text=text[: coach.settings.coach_message_max_chars], error=exc.message)
    return Template("pages/coach.html", context=context, status_code=exc.status_code)


async def _drain(events: AsyncIterator[CoachEvent]) -> None:
    """Run a stream to its end (the service saves the answer as it finishes)."""
    aclose = getattr(events, "aclose", None)
    try:
        async for _ in events:
            pass
    finally:
        if aclose is not None:
            await aclose()


@post("/coach/conversations", guards=[requires_member], include_in_schema=False)
async def new_conversation(request: Request[Any, Any, Any], coach: CoachService) -> Redirect:
    conversation = await coach.store.create_conversation(member(request).id)
    return Redirect(_coach_url(conversation.id), status_code=HTTP_303_SEE_OTHER)


@get("/coach/messages/{reply_id:int}/stream", guards=[requires_member], include_in_schema=False)
async def stream(
    request: Request[Any, Any, Any], coach: CoachService, reply_id: int
) -> ServerSentEvent:
    """The answer as escaped HTML tokens (the path ends in /stream: never compressed)."""
    events = await coach.open_stream(member(request).id, reply_id)
    return sse_response(request, _ending_with_done(events, reply_id), html=True)


async def _ending_with_done(
    events: AsyncIterator[CoachEvent], reply_id: int
) -> AsyncGenerator[CoachEvent, None]:
    """A failure becomes the answer's text followed by `done`: the page's EventSource closes
    on `done` (sse-close). A named `error` event would fire EventSource.onerror (logged as an
    htmx error) and, once the server closes, the browser would reconnect and replay it."""
    try:
        async for event in events:
            if isinstance(event, Failed):
                yield Token(event.message)
                yield Done(
                    DoneEvent(
                        message_id=reply_id,
                        model="",
                        route="failed",
                        prompt_tokens=0,
                        completion_tokens=0,
                        cost_usd=0.0,
                    )
                )
                return
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


coach_page_router = Router(
    path="/",
    route_handlers=[coach_page, post_message, new_conversation, stream],
    include_in_schema=False,
)
