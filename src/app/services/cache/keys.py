"""Cache key helpers: every key is namespaced and versioned, and has a family for metrics."""

from __future__ import annotations

import secrets
import time

NAMESPACE = "momentum"
SCHEMA_VERSION = "v1"
PREFIX = f"{NAMESPACE}:{SCHEMA_VERSION}:"


def key(*parts: object) -> str:
    """Build a cache key: ``key("challenge", 42) == "momentum:v1:challenge:42"``.

    Bump ``SCHEMA_VERSION`` when a cached struct changes shape: old entries are then
    simply never read again and expire on their own.
    """
    if not parts:
        raise ValueError("a cache key needs at least one part")
    # Escaped, so that text a visitor sends (a search with ":") never reads as two parts:
    # ("a:", "") and ("a", ":") must not share a key.
    return PREFIX + ":".join(
        part.replace("%", "%25").replace(":", "%3A") if isinstance(part, str) else str(part)
        for part in parts
    )


def family(cache_key: str) -> str:
    """The key family used as the metrics label: ``"momentum:v1:challenge:42" -> "challenge"``."""
    rest = cache_key.removeprefix(PREFIX)
    return rest.split(":", 1)[0] or "unknown"


def new_token() -> str:
    """A version token that is unique across processes (time-ordered + random)."""
    return f"{time.time_ns():x}{secrets.token_hex(3)}"
