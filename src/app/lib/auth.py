"""Who is asking: a bearer token (API clients) or the server-side session (browsers).

A request that sends `Authorization` is judged by the token alone, so the session cookie
never authenticates it; that is also why such requests skip CSRF."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.lib.asgi_headers import has_credentials, header
from app.lib.tokens import verify_token
from app.services.views import Viewer

CSRF_COOKIE = "momentum_csrf"
CSRF_HEADER = "x-csrftoken"


SKIP_SESSION = "skip_session"
PUBLIC_READ: dict[str, Any] = {SKIP_SESSION: True}
"""Handler opt for reads that are the same for every viewer: Litestar's session middleware
skips them (no cookie parsing, session id or store read on the hottest paths)."""


class ViewerMiddleware:
    """Puts the `Viewer` (or None) on `scope["user"]`; guards decide what needs one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.secret: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            if self.secret is None:
                self.secret = scope["app"].state.settings.secret_key
            scope["user"] = self._viewer(scope)
        await self.app(scope, receive, send)

    def _viewer(self, scope: Scope) -> Viewer | None:
        authorization = header(scope, b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            bearer = scheme.lower() == "bearer" and self.secret is not None
            viewer = verify_token(self.secret, token.strip()) if bearer else None  # type: ignore[arg-type]
            if viewer is None:
                raise NotAuthorizedException("Your token is invalid or has expired: get a new one.")
            return viewer
        session: dict[str, Any] = scope.get("session") or {}  # type: ignore[assignment]
        uid, name = session.get("uid"), session.get("name")
        if isinstance(uid, int) and isinstance(name, str):
            return Viewer(id=uid, display_name=name)
        return None


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    """Litestar's CSRF check, skipped when no cookie can authenticate the request: bearer
    requests, and API calls that carry no session cookie at all."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and self._no_ambient_credentials(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @staticmethod
    def _no_ambient_credentials(scope: Scope) -> bool:
        if header(scope, b"authorization") is not None:
            return True
        return scope["path"].startswith("/api/") and not has_credentials(scope)


def requires_member(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a signed-in member (session or token) is required."""
    if connection.scope.get("user") is None:
        raise NotAuthorizedException("Sign in to do that.")


def current_viewer(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer | None:
    viewer = connection.scope.get("user")
    return viewer if isinstance(viewer, Viewer) else None


def member(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer:
    """The signed-in member; use only behind `requires_member`."""
    viewer = current_viewer(connection)
    if viewer is None:
        raise NotAuthorizedException("Sign in to do that.")
    return viewer


def sign_in(connection: ASGIConnection[Any, Any, Any, Any], viewer: Viewer) -> None:
    connection.set_session({"uid": viewer.id, "name": viewer.display_name})


def sign_out(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    connection.clear_session()
