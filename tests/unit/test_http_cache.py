"""ETags, If-None-Match and 304s; fingerprinted static assets."""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, Response, get
from litestar.config.compression import CompressionConfig
from litestar.testing import TestClient

from app.lib.http_cache import (
    IMMUTABLE,
    cache_headers,
    conditional_response,
    etag_matches,
    make_etag,
    not_modified,
)
from app.lib.static_assets import SKIP_COMPRESSION_OPT, StaticAssets, get_assets, hashed_name

brotli: Any = importlib.import_module("brotli")

CSS = ("body { color: #123456; margin: 0 auto; }\n" * 40).encode()
JS = ("document.body.dataset.ready = 'yes';\n" * 30).encode()
PNG = bytes(range(256)) * 4


# ---- ETag helpers ---------------------------------------------------------------------


def test_make_etag_is_strong_quoted_and_stable() -> None:
    tag = make_etag("abc", "fragment")
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert tag == make_etag("abc", "fragment")
    assert tag != make_etag("abc", "page")
    assert make_etag("ab", "c") != make_etag("a", "bc")
    assert make_etag(b"body") == make_etag("body")


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc" ', True),
        ('"x", "y"', False),
        ("*", True),
        ('"ab"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"abc"') is matches


def test_weak_etag_of_ours_matches_strong_header() -> None:
    assert etag_matches('"abc"', 'W/"abc"')


def test_cache_headers_and_not_modified() -> None:
    headers = cache_headers('"t"', vary=("HX-Request", "HX-Request", "Accept"))
    assert headers == {"Cache-Control": "no-cache", "ETag": '"t"', "Vary": "HX-Request, Accept"}
    response = not_modified('"t"', vary=("HX-Request",))
    assert response.status_code == 304
    assert response.headers["ETag"] == '"t"'
    assert response.headers["Vary"] == "HX-Request"


def test_conditional_response_in_a_handler() -> None:
    tag = make_etag("v1", "fragment")

    @get("/thing", sync_to_thread=False)
    def thing(request: Request[Any, Any, Any]) -> Response[str]:
        if (cached := conditional_response(request, tag, vary=("HX-Request",))) is not None:
            return cached  # type: ignore[return-value]
        return Response(
            "hello", media_type="text/html", headers=cache_headers(tag, vary=("HX-Request",))
        )

    with TestClient(Litestar([thing])) as client:
        first = client.get("/thing")
        assert first.status_code == 200
        assert first.headers["etag"] == tag
        assert first.headers["vary"] == "HX-Request"
        again = client.get("/thing", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"] == "no-cache"
        assert client.get("/thing", headers={"If-None-Match": '"old"'}).status_code == 200


# ---- static assets -------------------------------------------------------------------


@pytest.fixture
def assets(tmp_path: Path) -> StaticAssets:
    (tmp_path / "css").mkdir()
    (tmp_path / "js" / "vendor").mkdir(parents=True)
    (tmp_path / "css" / "app.css").write_bytes(CSS)
    (tmp_path / "js" / "vendor" / "htmx.min.js").write_bytes(JS)
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "LICENSE").write_bytes(b"MIT")
    return StaticAssets(tmp_path)


@pytest.fixture
def client(assets: StaticAssets) -> Any:
    app = Litestar(
        [assets.route_handler()],
        compression_config=CompressionConfig(
            backend="brotli", gzip_fallback=True, exclude_opt_key=SKIP_COMPRESSION_OPT
        ),
    )
    with TestClient(app) as test_client:
        yield test_client


def test_hashed_names() -> None:
    assert hashed_name("css/app.css", "1a2b3c4d") == "css/app.1a2b3c4d.css"
    assert hashed_name("js/htmx.min.js", "1a2b3c4d") == "js/htmx.min.1a2b3c4d.js"
    assert hashed_name("LICENSE", "1a2b3c4d") == "LICENSE.1a2b3c4d"


def test_asset_url_is_fingerprinted(assets: StaticAssets) -> None:
    url = assets.url("css/app.css")
    assert url.startswith("/static/css/app.") and url.endswith(".css")
    assert len(url.split(".")[-2]) == 8
    assert assets.url("/css/app.css") == url
    with pytest.raises(KeyError):
        assets.url("css/missing.css")


def test_hashed_asset_is_immutable_with_etag_and_304(client: Any, assets: StaticAssets) -> None:
    url = assets.url("css/app.css")
    res = client.get(url, headers={"Accept-Encoding": "identity"})
    assert res.status_code == 200
    assert res.content == CSS
    assert res.headers["cache-control"] == IMMUTABLE
    assert res.headers["content-type"] == "text/css; charset=utf-8"
    assert "content-encoding" not in res.headers
    etag = res.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == IMMUTABLE


@pytest.mark.parametrize(("accept", "encoding"), [("gzip, deflate, br", "br"), ("gzip", "gzip")])
def test_text_assets_are_precompressed_once(
    client: Any, assets: StaticAssets, accept: str, encoding: str
) -> None:
    url = assets.url("js/vendor/htmx.min.js")
    # ask httpx not to decode, so we see the bytes on the wire
    with client.stream("GET", url, headers={"Accept-Encoding": accept}) as res:
        raw = b"".join(res.iter_raw())
        headers = res.headers
    assert res.status_code == 200
    assert headers["content-encoding"] == encoding
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert "Accept-Encoding" in headers["vary"]
    body = brotli.decompress(raw) if encoding == "br" else gzip.decompress(raw)
    assert body == JS  # compressed exactly once
    assert headers["etag"].endswith(f'-{encoding}"')
    res304 = client.get(url, headers={"Accept-Encoding": accept, "If-None-Match": headers["etag"]})
    assert res304.status_code == 304


def test_binary_assets_are_not_compressed(client: Any, assets: StaticAssets) -> None:
    res = client.get(assets.url("logo.png"), headers={"Accept-Encoding": "br, gzip"})
    assert res.status_code == 200
    assert res.content == PNG
    assert res.headers["content-type"] == "image/png"
    assert "content-encoding" not in res.headers


def test_unhashed_name_revalidates_and_unknown_is_404(client: Any, assets: StaticAssets) -> None:
    res = client.get("/static/css/app.css")
    assert res.status_code == 200
    assert res.headers["cache-control"] == "no-cache"
    assert client.get("/static/LICENSE").content == b"MIT"
    assert client.get("/static/css/app.00000000.css").status_code == 404
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/nope.js").status_code == 404


def test_app_static_dir_is_hashed() -> None:
    assets = get_assets()
    for path in assets.by_path:
        assert assets.url(path).startswith("/static/")
