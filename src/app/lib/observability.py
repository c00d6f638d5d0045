"""One timing layer for every request: a structlog line and Prometheus metrics.

Litestar's Prometheus middleware runs after routing, so it misses 404s and cannot see the
route template from outside it; this observer wraps the whole ASGI handler instead, and
labels by route template (never the raw path). Streams are logged once, when they end."""

from __future__ import annotations

import random
import re
import time
from contextvars import ContextVar
from typing import Any, cast

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from app.lib.asgi_headers import header

log = structlog.get_logger("app.request")
REQUEST_ID: ContextVar[str | None] = ContextVar("momentum_request_id", default=None)
"""The current request's id; each request runs in its own task, so it never leaks."""
UNMATCHED = "<unmatched>"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Milliseconds matter here: cached reads answer in a few ms, the API target is 300 ms.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
LABELS = ("method", "path", "status_code", "app_name")

REQUESTS = Counter("momentum_requests_total", "HTTP requests", LABELS)
ERRORS = Counter("momentum_requests_error_total", "HTTP requests answered 5xx", LABELS)
DURATION = Histogram(
    "momentum_request_duration_seconds",
    "Time to the last body byte",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge(
    "momentum_requests_in_progress",
    "Requests being served",
    ("method", "app_name"),
    multiprocess_mode="livesum",
)


class RequestObserver:
    """Times each HTTP request from the first byte in to the last byte out."""

    def __init__(
        self, app: ASGIApp, *, app_name: str = "momentum", skip: tuple[str, ...] = ("/metrics",)
    ) -> None:
        self.app = app
        self.app_name = app_name
        self.skip = skip
        # prometheus_client's .labels() hashes and locks on every call; resolve each child once.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._in_progress: dict[str, Gauge] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        incoming = header(scope, b"x-request-id")
        valid = incoming is not None and SAFE_REQUEST_ID.match(incoming)
        # An id, not a secret: getrandbits spares a getrandom() syscall per request.
        request_id = incoming if valid and incoming else f"{random.getrandbits(128):032x}"
        request_token = REQUEST_ID.set(request_id)
        state: dict[str, Any] = {"status": 500, "bytes": 0}
        started = time.perf_counter()
        method = cast("str", scope.get("method", "GET"))

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        in_progress = self._in_progress.get(method)
        if in_progress is None:
            in_progress = self._in_progress[method] = IN_PROGRESS.labels(method, self.app_name)
        in_progress.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            in_progress.dec()
            self._record(scope, method, state, time.perf_counter() - started)
            REQUEST_ID.reset(request_token)

    def _record(self, scope: Scope, method: str, state: dict[str, Any], seconds: float) -> None:
        route = scope.get("path_template") or UNMATCHED
        status = int(state["status"])
        children = self._children.get((method, route, str(status)))
        if children is None:
            labels = (method, route, str(status), self.app_name)
            children = REQUESTS.labels(*labels), DURATION.labels(*labels)
            self._children[(method, route, str(status))] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 500:
            ERRORS.labels(method, route, str(status), self.app_name).inc()
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": state["bytes"],
        }
        fields.update(scope.get("state", {}).get("log_fields", {}))
        level = "error" if status >= 500 else "info"
        getattr(log, level)("request", **fields)


def add_request_id(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    """structlog processor: every line logged while serving a request carries its id (a
    ContextVar of our own costs less than binding and unbinding structlog's per request)."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def add_log_fields(scope: Scope, **fields: Any) -> None:
    """Let a handler (e.g. an SSE stream) add fields to its request's single log line."""
    scope.setdefault("state", {}).setdefault("log_fields", {}).update(fields)
