"""Server-side sessions that write only when they change.

Litestar's backend stores the session and sets a cookie on every response; ours skips
unchanged sessions (so anonymous and read-only responses stay cacheable and cost no store
write) and issues a fresh session id whenever the signed-in user changes (no fixation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

_LOADED = "_momentum_session_loaded"


class ChangeOnlySessionBackend(ServerSideSessionBackend):
    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        cast("dict[str, Any]", connection.scope)[_LOADED] = dict(data)
        return data

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        loaded: dict[str, Any] = cast("dict[str, Any]", connection.scope).get(_LOADED, {})
        had_cookie = self.config.key in connection.cookies
        if scope_session is not Empty and scope_session == loaded:
            return
        if scope_session is Empty or not scope_session:
            if had_cookie:
                await super().store_in_message(Empty, message, connection)
            return
        session = cast("dict[str, Any]", scope_session)
        store = self.config.get_store_from_app(connection.scope["app"])
        session_id = self.get_session_id(connection)
        if had_cookie and loaded.get("uid") != session.get("uid"):
            await self.delete(session_id, store=store)
            session_id = self.generate_session_id()
        await self.set(session_id, self.serialize_data(session, connection.scope), store)
        params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        cookie = Cookie(value=session_id, key=self.config.key, **params)
        MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))


@dataclass
class ChangeOnlySessionConfig(ServerSideSessionConfig):
    _backend_class = ChangeOnlySessionBackend
