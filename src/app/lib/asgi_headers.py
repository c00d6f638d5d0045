"""Reading request headers straight from an ASGI scope (for middleware that runs before
Litestar builds a Request)."""

from __future__ import annotations

from litestar.types import Scope

SESSION_COOKIE = "momentum_session"


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def has_credentials(scope: Scope) -> bool:
    """Does the request carry a bearer token or a session cookie?"""
    cookies = header(scope, b"cookie") or ""
    return header(scope, b"authorization") is not None or f"{SESSION_COOKIE}=" in cookies
