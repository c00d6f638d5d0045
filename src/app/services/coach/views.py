"""What the coach API and pages show (msgspec structs)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class MessageView(msgspec.Struct, kw_only=True):
    id: int
    conversation_id: int
    role: str
    content: str
    status: str
    model: str | None
    route: str | None
    created_at: datetime
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class MessageList(msgspec.Struct, kw_only=True):
    items: list[MessageView]


class ConversationView(msgspec.Struct, kw_only=True):
    id: int
    title: str
    summary: str
    created_at: datetime
    updated_at: datetime


class PostedMessage(msgspec.Struct, kw_only=True):
    """What POST /api/v1/coach/messages answers: the saved message and where to stream."""

    id: int
    conversation_id: int
    reply_id: int
    stream_url: str


class DoneEvent(msgspec.Struct, kw_only=True):
    message_id: int
    model: str
    route: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
