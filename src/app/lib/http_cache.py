"""Conditional GET helpers: strong ETags, ``If-None-Match`` matching and 304 responses.

Litestar never answers 304 by itself, so a cacheable handler does::

    value, version = await cache.get_or_load_versioned(...)
    tag = make_etag(version, "fragment" if request.htmx else "page")
    if (not_modified := conditional_response(request, tag, vary=("HX-Request",))) is not None:
        return not_modified
    return HTMXTemplate(..., headers=cache_headers(tag, vary=("HX-Request",)))

The ETag must identify the *representation*, so add every input that changes the bytes
besides the cached value (template variant, user, build id) to ``make_etag``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from litestar import Request, Response
from litestar.status_codes import HTTP_304_NOT_MODIFIED

REVALIDATE = "no-cache"
"""Default Cache-Control for dynamic reads: browsers may store but must revalidate (304)."""
PRIVATE_REVALIDATE = "private, no-cache"
"""For responses that depend on the signed-in user."""
IMMUTABLE = "public, max-age=31536000, immutable"


def make_etag(*parts: str | bytes) -> str:
    """A strong, quoted ETag from content bytes or version tokens (order matters).

    A single ``str`` part that is already a short token is still hashed, so the ETag
    never leaks key structure and is always 18 characters.
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return f'"{digest.hexdigest()}"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    if tag[:2] in ("W/", "w/"):
        tag = tag[2:]
    return tag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 ``If-None-Match``: weak comparison over a list of tags, ``*`` matches any."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in if_none_match.split(",") if tag.strip())


def cache_headers(
    etag: str | None = None,
    *,
    cache_control: str = REVALIDATE,
    vary: Iterable[str] = (),
) -> dict[str, str]:
    """Headers for a cacheable 200 (and the matching 304)."""
    headers = {"Cache-Control": cache_control}
    if etag is not None:
        headers["ETag"] = etag
    vary_value = ", ".join(dict.fromkeys(vary))
    if vary_value:
        headers["Vary"] = vary_value
    return headers


def not_modified(
    etag: str,
    *,
    cache_control: str = REVALIDATE,
    vary: Iterable[str] = (),
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """An empty 304 carrying the same ETag, Cache-Control and Vary a 200 would have."""
    all_headers = cache_headers(etag, cache_control=cache_control, vary=vary)
    if headers:
        all_headers.update(headers)
    return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=all_headers)


def conditional_response(
    request: Request[Any, Any, Any],
    etag: str,
    *,
    cache_control: str = REVALIDATE,
    vary: Iterable[str] = (),
) -> Response[bytes] | None:
    """A 304 when the request's ``If-None-Match`` matches ``etag`` (GET/HEAD only), else None."""
    if request.method not in ("GET", "HEAD"):
        return None
    if etag_matches(request.headers.get("if-none-match"), etag):
        return not_modified(etag, cache_control=cache_control, vary=vary)
    return None
