"""Reading headers straight from ASGI scopes and messages (for middleware that runs before
Litestar builds a Request, or rewrites a response's raw header list)."""

from __future__ import annotations

from collections.abc import Iterable

from litestar.types import Scope

SESSION_COOKIE = "momentum_session"


def raw_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case bytes) in a raw ASGI header list."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header `name` (lower-case bytes), or None."""
    value = raw_header(scope.get("headers", ()), name)
    return value.decode("latin-1") if value is not None else None


def has_credentials(scope: Scope) -> bool:
    """Does the request carry a bearer token or a session cookie?"""
    cookies = header(scope, b"cookie") or ""
    return header(scope, b"authorization") is not None or f"{SESSION_COOKIE}=" in cookies
