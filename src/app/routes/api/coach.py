"""Coach API: post a message (saved first), stream the answer over SSE, read the history."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent

from app.lib.auth import member, requires_member
from app.routes.coach_stream import sse_response
from app.services.coach.service import CoachService
from app.services.coach.views import ConversationView, MessageList, PostedMessage


class CoachMessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    # The service checks the real limit, to answer with a sentence (422), not a schema error.
    text: Annotated[str, msgspec.Meta(max_length=100_000)]
    conversation_id: int | None = None


class CoachController(Controller):
    path = "/coach"
    tags = ["coach"]
    guards = [requires_member]

    @post("/messages", summary="Send a message to the coach; stream the answer from stream_url")
    async def post_message(
        self, request: Request[Any, Any, Any], coach: CoachService, data: CoachMessageRequest
    ) -> PostedMessage:
        return await coach.post(member(request).id, data.text, data.conversation_id)

    @get("/messages", summary="A conversation's messages, oldest first")
    async def messages(
        self,
        request: Request[Any, Any, Any],
        coach: CoachService,
        conversation_id: Annotated[int, Parameter(ge=1)],
    ) -> MessageList:
        items = await coach.store.messages(member(request).id, conversation_id)
        return MessageList(items=items)

    @get("/conversations", summary="Your conversations, most recent first")
    async def conversations(
        self, request: Request[Any, Any, Any], coach: CoachService
    ) -> list[ConversationView]:
        return await coach.store.conversations(member(request).id)

    @get(
        "/messages/{message_id:int}/stream",
        summary="The answer as server-sent events: token, done, error",
    )
    async def stream(
        self, request: Request[Any, Any, Any], coach: CoachService, message_id: int
    ) -> ServerSentEvent:
        events = await coach.open_stream(member(request).id, message_id)
        return sse_response(request, events, html=False)
