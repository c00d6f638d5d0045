"""Conditional GET for dynamic reads: a strong ETag on every 200 and a 304 when it matches.

No Litestar handler answers 304 by itself, so this middleware (mounted on the API and
fragment routers) buffers small GET bodies, tags them with a hash of their bytes, and
answers `If-None-Match` with an empty 304. Streams and anything already tagged pass by."""

from __future__ import annotations

from typing import cast

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from app.lib.asgi_headers import has_credentials, header
from app.lib.http_cache import PRIVATE_REVALIDATE, REVALIDATE, etag_matches, make_etag

_DROP_ON_304 = ("content-length", "content-type", "content-encoding")


class ConditionalGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if_none_match = header(scope, b"if-none-match")
        cache_control = PRIVATE_REVALIDATE if has_credentials(scope) else REVALIDATE
        start: HTTPResponseStartEvent | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def conditional_send(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                streaming = (headers.get("content-type") or "").startswith("text/event-stream")
                if message["status"] != 200 or streaming or headers.get("etag"):
                    passthrough = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            etag = make_etag(body)
            headers = MutableScopeHeaders.from_message(cast("Message", start))
            headers["etag"] = etag
            if "cache-control" not in headers:
                headers["cache-control"] = cache_control
            # What a signed-in member sees differs from what a visitor sees at the same URL.
            vary = [v.strip() for v in (headers.get("vary") or "").split(",") if v.strip()]
            headers["vary"] = ", ".join(dict.fromkeys([*vary, "Cookie", "Authorization"]))
            if etag_matches(if_none_match, etag):
                for name in _DROP_ON_304:
                    if name in headers:
                        del headers[name]
                start["status"] = 304
                body = b""
            else:
                headers["content-length"] = str(len(body))
            await send(cast("Message", start))
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, conditional_send)
