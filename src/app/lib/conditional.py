"""Conditional GET for dynamic reads: a strong ETag on every 200 and a 304 when it matches.

No Litestar handler answers 304 by itself, so this middleware (mounted on the API and
fragment routers) buffers small GET bodies, tags them with a hash of their bytes, and
answers `If-None-Match` with an empty 304. Streams and anything already tagged pass by."""

from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from app.lib.asgi_headers import has_credentials, header, raw_header
from app.lib.http_cache import PRIVATE_REVALIDATE, REVALIDATE, etag_matches, make_etag

_DROP_ON_304 = frozenset({b"content-length", b"content-type", b"content-encoding"})
_VARY_ALWAYS = ["Cookie", "Authorization"]  # a member sees other bytes than a visitor


def _tagged(
    headers: list[tuple[bytes, bytes]], etag: str, cache_control: str, *, not_modified: bool
) -> list[tuple[bytes, bytes]]:
    """The response headers plus ETag, Cache-Control (unless set) and Vary, in one pass
    over the raw list (Litestar's MutableScopeHeaders rescans it for every get and set)."""
    out: list[tuple[bytes, bytes]] = []
    vary: list[str] = []
    has_cache_control = False
    for key, value in headers:
        name = key.lower()
        if name == b"vary":
            vary.extend(v.strip() for v in value.decode("latin-1").split(",") if v.strip())
        elif name == b"content-length" or (not_modified and name in _DROP_ON_304):
            continue
        else:
            has_cache_control = has_cache_control or name == b"cache-control"
            out.append((key, value))
    out.append((b"etag", etag.encode()))
    if not has_cache_control:
        out.append((b"cache-control", cache_control.encode()))
    out.append((b"vary", ", ".join(dict.fromkeys([*vary, *_VARY_ALWAYS])).encode()))
    return out


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
                headers = list(message.get("headers", ()))
                content_type = raw_header(headers, b"content-type") or b""
                streaming = content_type.startswith(b"text/event-stream")
                if message["status"] != 200 or streaming or raw_header(headers, b"etag"):
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
            not_modified = etag_matches(if_none_match, etag)
            headers = _tagged(
                list(start.get("headers", ())), etag, cache_control, not_modified=not_modified
            )
            if not_modified:
                start["status"] = 304
                body = b""
            else:
                headers.append((b"content-length", str(len(body)).encode()))
            start["headers"] = headers
            await send(cast("Message", start))
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, conditional_send)
