"""Every core page's first response is a light shell: under 14 KB on the wire (what fits in
the first TCP round trips of a new connection), compressed with brotli."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
BUDGET = 14 * 1024
HEADERS = {"Accept": "text/html,application/xhtml+xml", "Accept-Encoding": "br, gzip"}
VISITOR_PAGES = ["/", "/challenges", "/challenges/{id}", "/leaderboard", "/login", "/signup"]
MEMBER_PAGES = ["/", "/challenges/{id}", "/coach"]


async def wire_size(client: Client, path: str) -> tuple[int, str]:
    """Bytes as sent (still compressed) and the content-encoding."""
    async with client.stream("GET", path, headers=HEADERS) as res:
        assert res.status_code == 200, path
        raw = b"".join([chunk async for chunk in res.aiter_raw()])
        return len(raw), res.headers.get("content-encoding", "")


async def challenge_path(client: Client, path: str) -> str:
    if "{id}" not in path:
        return path
    first = (await client.get("/api/v1/challenges")).json()["items"][0]["id"]
    return path.replace("{id}", str(first))


@pytest.mark.parametrize("path", VISITOR_PAGES)
async def test_visitor_shell_fits_the_first_round_trips(client: Client, path: str) -> None:
    size, encoding = await wire_size(client, await challenge_path(client, path))
    assert encoding == "br"
    assert 300 < size < BUDGET, f"{path}: {size} bytes compressed"


@pytest.mark.parametrize("path", MEMBER_PAGES)
async def test_member_shell_fits_the_first_round_trips(member_client: Client, path: str) -> None:
    size, encoding = await wire_size(member_client, await challenge_path(member_client, path))
    assert encoding == "br"
    assert 300 < size < BUDGET, f"{path}: {size} bytes compressed"
