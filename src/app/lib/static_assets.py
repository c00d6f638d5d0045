"""Fingerprinted static files: ``asset_url("css/app.css") -> "/static/css/app.1a2b3c4d.css"``.

At startup every file under ``src/app/static`` is read, hashed (sha256) and, when it is
text-like, precompressed with brotli and gzip (brotli quality 11 up to 64 KiB, lower for big
vendor bundles so startup stays well under a second). The route serves:
- hashed names with ``Cache-Control: public, max-age=31536000, immutable``;
- unhashed names (``/static/css/app.css``) with ``no-cache``, so they always revalidate;
- a strong ETag per representation and 304 on a matching ``If-None-Match``;
- unknown names: 404.
The handler carries ``opt={"skip_compression": True}``: give ``CompressionConfig`` an
``exclude_opt_key="skip_compression"`` so Litestar does not compress these bodies twice.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import mimetypes
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from app.lib.http_cache import IMMUTABLE, REVALIDATE, etag_matches

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
URL_PREFIX = "/static"
SKIP_COMPRESSION_OPT = "skip_compression"

_MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain",
    ".html": "text/html",
}
_COMPRESSIBLE = {
    "application/json",
    "application/manifest+json",
    "application/xml",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
}
_MIN_COMPRESS_BYTES = 256

try:
    _brotli: Any = importlib.import_module("brotli")
except ImportError:  # pragma: no cover - litestar[brotli] installs it
    _brotli = None


def _brotli_quality(size: int) -> int:
    """11 is ~10x slower than 9 for ~5% smaller output: worth it only for small files."""
    if size <= 64 * 1024:
        return 11
    return 9 if size <= 256 * 1024 else 5


def media_type_for(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _MEDIA_TYPES:
        return _MEDIA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def hashed_name(path: str, digest8: str) -> str:
    """``css/app.css`` -> ``css/app.<digest8>.css``; ``LICENSE`` -> ``LICENSE.<digest8>``."""
    pure = PurePosixPath(path)
    if pure.suffix:
        return str(pure.with_name(f"{pure.stem}.{digest8}{pure.suffix}"))
    return f"{path}.{digest8}"


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, its fingerprinted name and its representations (encoding -> body)."""

    path: str
    hashed: str
    media_type: str
    digest: str
    bodies: dict[str, bytes] = field(default_factory=dict)

    def etag(self, encoding: str) -> str:
        return f'"{self.digest}"' if encoding == "identity" else f'"{self.digest}-{encoding}"'


def _accepted(accept_encoding: str | None) -> set[str]:
    accepted: set[str] = set()
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if name and quality > 0:
            accepted.add(name.strip().lower())
    return accepted


class StaticAssets:
    """Every file under ``root``, fingerprinted, in memory (the static tree is small)."""

    def __init__(
        self, root: Path = STATIC_DIR, *, url_prefix: str = URL_PREFIX, compress: bool = True
    ) -> None:
        self.root = root
        self.url_prefix = url_prefix.rstrip("/")
        self.by_path: dict[str, Asset] = {}
        self.by_hashed: dict[str, Asset] = {}
        if root.is_dir():
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                self._add(file.relative_to(root).as_posix(), file.read_bytes(), compress)

    def _add(self, path: str, data: bytes, compress: bool) -> None:
        digest = hashlib.sha256(data).hexdigest()
        media_type = media_type_for(path)
        bodies = {"identity": data}
        if (
            compress
            and len(data) >= _MIN_COMPRESS_BYTES
            and (media_type.startswith("text/") or media_type in _COMPRESSIBLE)
        ):
            candidates = {"gzip": gzip.compress(data, compresslevel=9, mtime=0)}
            if _brotli is not None:
                candidates["br"] = _brotli.compress(data, quality=_brotli_quality(len(data)))
            for encoding, body in candidates.items():
                if len(body) < len(data) * 0.95:
                    bodies[encoding] = body
        asset = Asset(path, hashed_name(path, digest[:8]), media_type, digest[:16], bodies)
        self.by_path[path] = asset
        self.by_hashed[asset.hashed] = asset

    def url(self, path: str) -> str:
        """The fingerprinted URL of ``path`` (relative to the static root); KeyError if unknown."""
        asset = self.by_path.get(path.lstrip("/"))
        if asset is None:
            raise KeyError(f"no static asset {path!r} under {self.root}")
        return f"{self.url_prefix}/{asset.hashed}"

    def response(
        self, name: str, *, accept_encoding: str | None = None, if_none_match: str | None = None
    ) -> Response[bytes]:
        """The response for ``/static/<name>``: 200, 304, or NotFoundException."""
        name = name.lstrip("/")
        asset = self.by_hashed.get(name)
        cache_control = IMMUTABLE
        if asset is None:
            asset = self.by_path.get(name)
            cache_control = REVALIDATE
        if asset is None:
            raise NotFoundException()
        accepted = _accepted(accept_encoding)
        encoding = next(
            (e for e in ("br", "gzip") if e in asset.bodies and e in accepted), "identity"
        )
        etag = asset.etag(encoding)
        headers = {"Cache-Control": cache_control, "ETag": etag}
        if len(asset.bodies) > 1:
            headers["Vary"] = "Accept-Encoding"
        if etag_matches(if_none_match, etag):
            return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
        if encoding != "identity":
            headers["Content-Encoding"] = encoding
        return Response(
            content=asset.bodies[encoding], media_type=asset.media_type, headers=headers
        )

    def route_handler(self) -> HTTPRouteHandler:
        """A GET handler for ``<url_prefix>/{name:path}`` serving these assets."""
        assets = self

        @get(
            f"{self.url_prefix}/{{name:path}}",
            name="static_assets",
            include_in_schema=False,
            sync_to_thread=False,
            opt={SKIP_COMPRESSION_OPT: True},
        )
        def serve_static(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
            return assets.response(
                name,
                accept_encoding=request.headers.get("accept-encoding"),
                if_none_match=request.headers.get("if-none-match"),
            )

        return serve_static


@lru_cache(maxsize=1)
def get_assets() -> StaticAssets:
    """The app's assets, hashed once per process on first use."""
    return StaticAssets()


def asset_url(path: str) -> str:
    """Jinja global: ``{{ asset_url('css/app.css') }}`` -> ``/static/css/app.<hash8>.css``."""
    return get_assets().url(path)


def static_route() -> HTTPRouteHandler:
    """The ``/static/{name:path}`` handler for the app's assets (hashes them on first call)."""
    return get_assets().route_handler()
