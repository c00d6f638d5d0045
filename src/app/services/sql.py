"""The database session a service uses, opened on first use.

Routes hand services a session *source*: either a session (tests, CLI, background jobs)
or a callable that opens the request's session. A read the cache answers then never
creates (and closes) a SQLAlchemy session, which was ~10 % of a cache hit's CPU."""

from __future__ import annotations

from collections.abc import Callable

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

    def session_source(self) -> SessionSource:
        """Share this service's session (opened or not) with a collaborating service."""
        return self._session if self._session is not None else (lambda: self.session)
