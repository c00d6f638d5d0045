"""Which database errors mean "unavailable right now, retry" rather than a bug."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


def is_unavailable(exc: BaseException) -> bool:
    """The pool is exhausted (nothing reached the database), the connection broke, or
    pgbouncer had no server connection in time."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        text = str(exc.orig).lower()
        return bool(exc.connection_invalidated) or "connect" in text or "query_wait_timeout" in text
    return False
