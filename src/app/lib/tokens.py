"""Stateless bearer tokens: HMAC-signed, so verifying one costs no database or cache call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from app.services.views import Viewer

TOKEN_TTL_SECONDS = 30 * 24 * 3600


class _Claims(msgspec.Struct):
    uid: int
    name: str
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(secret: str, viewer: Viewer, ttl: int = TOKEN_TTL_SECONDS) -> str:
    claims = _Claims(uid=viewer.id, name=viewer.display_name, exp=int(time.time()) + ttl)
    payload = _b64(msgspec.json.encode(claims))
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: str, token: str) -> Viewer | None:
    """The viewer a valid, unexpired token names; None for anything else."""
    payload, _, signature = token.partition(".")
    if not payload or not signature or len(token) > 512:
        return None
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        claims = msgspec.json.decode(_unb64(payload), type=_Claims)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if claims.exp < time.time():
        return None
    return Viewer(id=claims.uid, display_name=claims.name, via_token=True)
