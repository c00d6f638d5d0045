"""Request ids: echoed in X-Request-ID and on every log line logged while serving."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from app.lib.logging import configure_logging
from app.lib.observability import REQUEST_ID, RequestObserver, add_request_id
from app.settings import get_settings


@get("/whoami", sync_to_thread=False)
def _log_line() -> dict[str, Any]:
    """What a log line emitted here would carry."""
    return add_request_id(None, "info", {"event": "inside"})


async def test_every_line_logged_in_a_request_carries_its_id() -> None:
    app = Litestar(route_handlers=[_log_line])
    app.asgi_handler = RequestObserver(app.asgi_handler)
    async with AsyncTestClient(app=app) as client:
        given = await client.get("/whoami", headers={"x-request-id": "trace-42"})
        made = await client.get("/whoami")
        unsafe = await client.get("/whoami", headers={"x-request-id": "no spaces <here>"})
    assert given.json()["request_id"] == given.headers["x-request-id"] == "trace-42"
    for res in (made, unsafe):  # made up when absent or unsafe
        assert res.json()["request_id"] == res.headers["x-request-id"]
        assert len(res.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != unsafe.headers["x-request-id"]
    assert REQUEST_ID.get() is None  # nothing leaks out of a request
    assert add_request_id(None, "info", {"event": "outside"}) == {"event": "outside"}


def test_the_app_logs_through_it() -> None:
    configure_logging(get_settings())
    assert add_request_id in structlog.get_config()["processors"]
