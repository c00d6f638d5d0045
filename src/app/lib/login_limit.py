"""Brute-force limit on password checks, and nothing else.

Litestar's ``RateLimitMiddleware`` builds a ``Request`` and awaits its throttle check on
every request; this subclass decides from the raw scope first, so the other 99.9 % of
traffic (cached reads included) pays one dict lookup instead."""

from __future__ import annotations

from litestar.middleware.rate_limit import RateLimitMiddleware
from litestar.types import Receive, Scope, Send

LOGIN_PATHS = frozenset({"/login", "/api/v1/auth/token"})


def is_login_attempt(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope["path"] in LOGIN_PATHS


class LoginRateLimitMiddleware(RateLimitMiddleware):
    """Counts only POSTs to the login paths (per client, shared by both paths)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_login_attempt(scope):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)
