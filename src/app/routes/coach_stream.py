"""Turn coach events into SSE: raw text for API clients, escaped HTML for the page."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from litestar import Request
from litestar.background_tasks import BackgroundTask
from litestar.response import ServerSentEvent, ServerSentEventMessage
from markupsafe import escape

from app.lib.observability import add_log_fields
from app.lib.sse import with_keepalive
from app.services.coach.events import CoachEvent, Done, Failed, Token

KEEPALIVE_SECONDS = 15.0


def sse_response(
    request: Request[Any, Any, Any], events: AsyncIterator[CoachEvent], *, html: bool
) -> ServerSentEvent:
    messages = _messages(request, events, html=html)
    return ServerSentEvent(
        messages,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Litestar runs this once the response is over, disconnects included. It does not
        # close the iterator itself: cancelled while sending a chunk, our generator stayed
        # suspended until the garbage collector found it (seconds, sometimes never), so the
        # model kept generating and the partial answer was not saved.
        background=BackgroundTask(messages.aclose),
    )


async def _messages(
    request: Request[Any, Any, Any], events: AsyncIterator[CoachEvent], *, html: bool
) -> AsyncGenerator[ServerSentEventMessage, None]:
    started = time.perf_counter()
    tokens = 0
    # The request's single log line carries the stream's outcome (updated as it goes,
    # since a disconnected stream never reaches the end of this function).
    add_log_fields(request.scope, stream_outcome="disconnected", stream_tokens=0)
    async with contextlib.aclosing(with_keepalive(events, KEEPALIVE_SECONDS)) as stream:
        async for event in stream:
            if event is None:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if isinstance(event, Token):
                tokens += 1
                add_log_fields(request.scope, stream_tokens=tokens)
                data = str(escape(event.text)) if html else event.text
                yield ServerSentEventMessage(event="token", data=data)
                continue
            outcome = "done" if isinstance(event, Done) else "error"
            add_log_fields(
                request.scope,
                stream_outcome=outcome,
                stream_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            if isinstance(event, Done):
                yield ServerSentEventMessage(
                    event="done", data=msgspec.json.encode(event.record).decode()
                )
            elif isinstance(event, Failed):
                data = (
                    str(escape(event.message))
                    if html
                    else msgspec.json.encode({"message": event.message}).decode()
                )
                yield ServerSentEventMessage(event="error", data=data)
