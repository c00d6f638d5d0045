"""The database session a service uses, opened on first use.

Routes hand services a session *source*: either a session (tests, CLI, background jobs)
or a callable that opens the request's session. A read the cache answers then never
creates (and closes) a SQLAlchemy session, which was ~10 % of a cache hit's CPU."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

SessionSource = AsyncSession | Callable[[], AsyncSession]


class UsesSession:
    """Base for services that talk SQL through ``self.session``."""

    def __init__(self, source: SessionSource) -> None:
        if isinstance(source, AsyncSession):
            self._session: AsyncSession | None = source
            self._open: Callable[[], AsyncSession] | None = None
        else:
            self._session, self._open = None, source

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            assert self._open is not None
            self._session = self._open()
        return self._session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """The session, for a read that should not keep its pooled connection afterwards.

        Behind pgbouncer (transaction pooling) an open transaction pins a server connection;
        left open until the response is sent, one cache miss held it through every later
        await. A read that began the transaction ends it (commit: nothing to write, objects
        stay loaded); inside a caller's transaction (a write) nothing changes."""
        session = self.session
        outer = session.in_transaction()
        yield session
        if not outer and session.in_transaction() and not (session.new or session.dirty):
            await session.commit()

    def session_source(self) -> SessionSource:
        """Share this service's session (opened or not) with a collaborating service."""
        return self._session if self._session is not None else (lambda: self.session)
