"""Every failure becomes a clear response: JSON for the API, a page (or partial) for HTML."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.db.errors import is_unavailable
from app.lib.htmx import safe_next
from app.services.errors import DomainError, RateLimitedError

log = structlog.get_logger("app.errors")
RETRY_AFTER_SECONDS = "2"


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(("/api/", "/schema")) or (
        "html" not in request.headers.get("accept", "") and not request.headers.get("hx-request")
    )


def _error(
    request: Request[Any, Any, Any], status: int, detail: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    if _wants_json(request):
        return Response(
            {"status_code": status, "detail": detail},
            status_code=status,
            media_type=MediaType.JSON,
            headers=headers,
        )
    template = "partials/error.html" if request.headers.get("hx-request") else "pages/error.html"
    return Template(
        template,
        context={"status_code": status, "detail": detail},
        status_code=status,
        headers=headers,
    )


def domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else None
    return _error(request, exc.status_code, exc.message, headers)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException) and not _wants_json(request):
        target = f"/login?next={quote(_come_back_to(request))}"
        if request.headers.get("hx-request"):
            return Response(b"", status_code=401, headers={"HX-Redirect": target})
        return Redirect(target)
    detail = exc.detail
    extra = getattr(exc, "extra", None)
    if exc.status_code == 400 and isinstance(extra, list) and extra:
        problems = [_problem(e) for e in extra if isinstance(e, dict)]
        if problems:
            detail = f"Your request is not valid: {'; '.join(problems)}."
    headers = dict(exc.headers or {})
    if exc.status_code == 429 and "Retry-After" not in headers:
        # Litestar's rate limiter sends only RateLimit-Reset; clients and browsers read this.
        reset = headers.get("RateLimit-Reset", "")
        headers["Retry-After"] = str(max(1, int(reset))) if reset.lstrip("-").isdigit() else "60"
    return _error(request, exc.status_code, detail, headers)


def _problem(error: dict[str, Any]) -> str:
    """One of Litestar's validation errors in words: the field and what is wrong with it;
    for the body as a whole (key "data"), what is wrong with it ("'data'": there was none)."""
    key, message = str(error.get("key") or "data"), str(error.get("message"))
    if key != "data":
        return f"{key}: {message}"
    return "send a JSON object as the body" if message == "'data'" else message


def _come_back_to(request: Request[Any, Any, Any]) -> str:
    """Where to return after signing in: the page asked for; for an htmx request (a fragment)
    or a form (a POST the login cannot replay), the page it came from, when on this site."""
    page = request.headers.get("hx-current-url") or ""
    if not page and request.method in ("GET", "HEAD"):
        return _path_and_query(request.url.path, request.url.query)
    parts = urlsplit(page or request.headers.get("referer") or "")
    if parts.netloc and parts.netloc != request.url.netloc:
        return "/"
    return safe_next(_path_and_query(parts.path, parts.query))


def _path_and_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Pool exhausted or database unreachable: a clean 503 the client may retry."""
    log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
    return _error(
        request,
        HTTP_503_SERVICE_UNAVAILABLE,
        "The service is busy right now. Please try again in a moment.",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


def undecodable_body(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    """Invalid UTF-8 inside a JSON string: msgspec raises UnicodeDecodeError, which Litestar's
    decode_json lets through (it maps only msgspec's DecodeError to a 400). Raised anywhere
    else, it is our failure: a 500."""
    if not _raised_decoding_the_body(exc):
        return internal_error(request, exc)
    log.warning("undecodable_body", error=str(exc)[:200], path=request.url.path)
    return _error(request, 400, "The request body is not valid UTF-8 text.")


def _raised_decoding_the_body(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_name in _BODY_DECODERS and "litestar" in code.co_filename:
            return True
        frame = frame.tb_next
    return False


_BODY_DECODERS = frozenset({"decode_json", "decode_msgpack"})  # litestar.serialization


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_unavailable(exc):
        return database_unavailable(request, exc)
    if _is_unstorable_value(exc):
        # The database refused a value the client sent (an id beyond 64 bits, a NUL byte):
        # bad input, not our failure.
        log.warning("unstorable_value", error=str(exc).splitlines()[0][:200], path=request.url.path)
        return _error(request, 400, "A value in your request is out of range or not allowed.")
    log.exception("unhandled_error", path=request.url.path)
    return _error(request, HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong on our side.")


def _is_unstorable_value(exc: Exception) -> bool:
    """SQLite's driver raises OverflowError for ints beyond 64 bits; PostgreSQL answers with
    SQLSTATE class 22 (data exception: out of range, invalid byte sequence...)."""
    if isinstance(exc, OverflowError | DataError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    cause = orig.__cause__ if orig is not None else None
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    HTTPException: http_error,
    PoolTimeoutError: database_unavailable,
    UnicodeDecodeError: undecodable_body,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}
