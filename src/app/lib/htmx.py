"""Small HTMX helpers for the HTML routes: safe redirects and the headers we send.

Convention (see templates/partials/_lazy.html): every swappable section is one partial
with a stable root id; pages include it without data (a skeleton that fetches itself
from /fragments/...) and the fragment endpoint renders it with data.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from litestar.plugins.htmx import HTMXRequest

VARY_HX = "HX-Request"
"""Sent by responses whose body or headers depend on HTMX request headers."""


def is_htmx(request: HTMXRequest) -> bool:
    """True for requests htmx made (not history-restore requests, which want a full page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def hx_trigger_id(request: HTMXRequest) -> str:
    """The id of the element that issued the htmx request ('' when none)."""
    return (request.htmx.trigger or "") if is_htmx(request) else ""


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a local path on this site, else `default` (no open redirects)."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return default
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def url_with(path: str, **params: str | int) -> str:
    """`path?query` keeping only non-empty params (page 1 is the default and dropped)."""
    query = {
        k: v for k, v in params.items() if v not in ("", None) and not (k == "page" and v == 1)
    }
    return f"{path}?{urlencode(query)}" if query else path
