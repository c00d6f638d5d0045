"""Turn coach events into SSE: raw text for API clients, escaped HTML for the page."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from litestar import Request
from litestar.response import ServerSentEvent, ServerSentEventMessage
from markupsafe import escape

from app.lib.observability import add_log_fields
from app.lib.sse import with_keepalive
from app.services.coach.events import CoachEvent, Done, Failed, Token

KEEPALIVE_SECONDS = 15.0


def sse_response(
    request: Request[Any, Any, Any], events: AsyncIterator[CoachEvent], *, html: bool
) -> ServerSentEvent:
    return ServerSentEvent(
        _messages(request, events, html=html),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _messages(
    request: Request[Any, Any, Any], events: AsyncIterator[CoachEvent], *, html: bool
) -> AsyncGenerator[ServerSentEventMessage, None]:
    started = time.perf_counter()
    tokens = 0
    outcome = "disconnected"
    try:
        async for event in with_keepalive(events, KEEPALIVE_SECONDS):
            if event is None:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
            elif isinstance(event, Token):
                tokens += 1
                yield ServerSentEventMessage(
                    event="token", data=str(escape(event.text)) if html else event.text
                )
            elif isinstance(event, Done):
                outcome = "done"
                yield ServerSentEventMessage(
                    event="done", data=msgspec.json.encode(event.record).decode()
                )
            elif isinstance(event, Failed):
                outcome = "error"
                payload = msgspec.json.encode({"message": event.message}).decode()
                yield ServerSentEventMessage(
                    event="error", data=str(escape(event.message)) if html else payload
                )
    finally:
        # One log line per stream (the request observer writes it when the stream ends).
        add_log_fields(
            request.scope,
            stream_outcome=outcome,
            stream_tokens=tokens,
            stream_ms=round((time.perf_counter() - started) * 1000, 1),
        )
