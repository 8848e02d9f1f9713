"""Lune's own ``net.request`` cases, with local servers standing in for the public
services Lune's tests used: each runs against uvicorn and hypercorn, on asyncio,
uvloop and trio."""

from __future__ import annotations

import pytest

import sansnet
from sansnet import __version__

from .app import TEXT

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("code", "ok"), [(200, True), (400, False), (500, False)])
async def test_status_codes_give_ok_without_raising(base_url: str, code: int, ok: bool) -> None:
    response = await sansnet.request(f"{base_url}/status/{code}")
    assert response.status_code == code, "The status code is the server's."
    assert response.ok is ok, "ok is true exactly for 2xx."
    assert response.body == f"status {code}".encode()
    assert (
        response.status_message
        == {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}[code]
    )


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "PUT", "DELETE", "get", "Post"])
async def test_methods_reach_the_server(base_url: str, method: str) -> None:
    body = None if method.upper() in ("GET", "DELETE") else f"body of {method}"
    response = await sansnet.request({"url": f"{base_url}/echo", "method": method, "body": body})
    echo = response.json()
    assert echo["method"] == method.upper(), "Methods are sent in uppercase."
    assert echo["body"] == (body or ""), "The body arrives as sent."


async def test_query_round_trip(base_url: str) -> None:
    query = {"Key": "Value", "Hello": "World", "SpaceEmoji": " 🚀 "}
    response = await sansnet.request({"url": f"{base_url}/echo", "query": query})
    echo = response.json()
    assert dict(echo["query"]) == query, "The query comes back as it was given."
    assert "SpaceEmoji=+%F0%9F%9A%80+" in echo["query_string"], "Form encoding: space is '+'."


async def test_three_chained_absolute_redirects(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/redirect/3?absolute=1")
    assert response.status_code == 200
    assert response.body == b"done"
    assert response.url == f"{base_url}/redirect/0?absolute=1", "url is the final URL."


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br", "zstd"])
async def test_compression_decompress_on_and_off(base_url: str, coding: str) -> None:
    decoded = await sansnet.request(f"{base_url}/encoded/{coding}")
    assert decoded.body == TEXT, f"{coding} is decoded by default."
    assert "content-encoding" not in decoded.headers, "Content-Encoding goes with decoding."
    assert "content-length" not in decoded.headers, "Content-Length goes with decoding."
    raw = await sansnet.request(f"{base_url}/encoded/{coding}", decompress=False)
    assert raw.body != TEXT, "decompress=False gives the body as sent."
    assert raw.headers["content-encoding"] == ("deflate" if coding == "deflate-raw" else coding)
    assert int(raw.headers["content-length"]) == len(raw.body)


async def test_user_agent(base_url: str) -> None:
    echo = (await sansnet.request(f"{base_url}/echo")).json()
    headers = dict(echo["headers"])
    assert headers["user-agent"] == f"sansnet/{__version__}"
    assert headers["accept"] == "*/*"
    custom = await sansnet.request(f"{base_url}/echo", headers={"User-Agent": "mine/1.0"})
    sent = [value for name, value in custom.json()["headers"] if name == "user-agent"]
    assert sent == ["mine/1.0"], "A caller's User-Agent replaces the default, once."
