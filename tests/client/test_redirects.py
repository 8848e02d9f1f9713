"""Redirects: method rules per status, relative and absolute Location, chains and their
limit, headers dropped on a change of origin, https -> http, streamed bodies."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

import sansnet

from .conftest import Servers

pytestmark = pytest.mark.anyio


def to(url: str, status: int) -> str:
    """The path of the app's redirect to ``url`` with ``status``."""
    return f"/redirect-to?status={status}&url={quote(url, safe='')}"


def headers_of(echo: dict[str, object]) -> dict[str, str]:
    return dict(echo["headers"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "method", "expected_method", "keeps_body"),
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (303, "DELETE", "GET", False),
        (303, "HEAD", "HEAD", False),
        (307, "POST", "POST", True),
        (308, "POST", "POST", True),
        (307, "PUT", "PUT", True),
        (301, "PUT", "PUT", True),
        (302, "PATCH", "PATCH", True),
        (301, "GET", "GET", False),
    ],
)
async def test_method_rules(
    base_url: str, status: int, method: str, expected_method: str, keeps_body: bool
) -> None:
    body = None if method in ("GET", "HEAD") else "the payload"
    response = await sansnet.request(f"{base_url}{to('/echo', status)}", method=method, body=body)
    assert response.status_code == 200, f"The {status} redirect is followed."
    if expected_method == "HEAD":
        assert response.body == b"", "HEAD stays HEAD after a 303, and has no body."
        return
    echo = response.json()
    assert echo["method"] == expected_method, f"{method} after {status} becomes {expected_method}."
    if keeps_body:
        assert echo["body"] == "the payload", f"{status} keeps the body."
        assert headers_of(echo)["content-type"] == "text/plain; charset=utf-8"
    else:
        assert echo["body_length"] == 0, f"{status} drops the body."
        assert "content-type" not in headers_of(echo), "A dropped body takes its Content-Type."
        assert "content-length" not in headers_of(echo) or headers_of(echo)["content-length"] == "0"


async def test_relative_redirects(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/redirect/4")
    assert response.body == b"done"
    assert response.url == f"{base_url}/redirect/0"
    dotted = await sansnet.request(f"{base_url}/a/b{to('../echo?x=1', 302)}")
    # "/a/b/redirect-to" + "../echo" -> "/a/echo": 404 from the app, proving the join.
    assert dotted.url == f"{base_url}/a/echo?x=1", "Location is resolved against the current URL."


async def test_too_many_redirects(base_url: str) -> None:
    with pytest.raises(sansnet.TooManyRedirects, match="max_redirects"):
        await sansnet.request(f"{base_url}/redirect/4", max_redirects=3)
    response = await sansnet.request(f"{base_url}/redirect/3", max_redirects=3)
    assert response.body == b"done", "Exactly max_redirects hops are allowed."


async def test_follow_redirects_off(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/redirect/2", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/redirect/1"
    assert response.ok is False


async def test_redirect_without_location_is_the_response(raw_server: object) -> None:
    from .rawserver import RawServer, response

    def handler(conn, server: RawServer) -> None:  # type: ignore[no-untyped-def]
        while server.read_request(conn) is not None:
            conn.sendall(response(b"moved, but where?", status="302 Found"))

    server = raw_server(handler)  # type: ignore[operator]
    result = await sansnet.request(server.url)
    assert result.status_code == 302, "A 3xx without Location is returned as it is."
    assert result.body == b"moved, but where?"


@pytest.mark.parametrize(
    "location", ["http://[::1", "http://[x]/", "http://exa mple.org/", "ftp://example.org/"]
)
async def test_invalid_location_is_a_protocol_error(raw_server: object, location: str) -> None:
    from .rawserver import RawServer, response

    def handler(conn, server: RawServer) -> None:  # type: ignore[no-untyped-def]
        while server.read_request(conn) is not None:
            extra = b"Location: " + location.encode() + b"\r\n"
            conn.sendall(response(b"", status="302 Found", extra=extra))

    server = raw_server(handler)  # type: ignore[operator]
    with pytest.raises(sansnet.RemoteProtocolError, match="follow_redirects=False") as info:
        await sansnet.request(server.url)
    assert repr(location) in str(info.value), "The message names the Location."
    result = await sansnet.request(server.url, follow_redirects=False)
    assert (result.status_code, result.headers["location"]) == (302, location)


async def test_a_location_in_utf_8_is_followed_as_its_characters(raw_server: object) -> None:
    from .rawserver import RawServer, response

    def handler(conn, server: RawServer) -> None:  # type: ignore[no-untyped-def]
        while (head := server.read_request(conn)) is not None:
            if head.startswith(b"GET / "):
                extra = "Location: /caf\u00e9?q=\u00fc\r\n".encode()  # raw UTF-8 bytes
                conn.sendall(response(b"", status="302 Found", extra=extra))
            else:
                conn.sendall(response(b"here"))

    server = raw_server(handler)  # type: ignore[operator]
    result = await sansnet.request(server.url + "/")
    assert result.body == b"here"
    assert result.url == server.url + "/caf%C3%A9?q=%C3%BC", "Not the Latin-1 mojibake."
    assert server.requests[1].startswith(b"GET /caf%C3%A9?q=%C3%BC HTTP/1.1")


async def test_credentials_dropped_on_origin_change(servers: Servers) -> None:
    secret = {"Authorization": "Bearer secret", "Cookie": "session=1", "X-Keep": "yes"}
    same = await sansnet.request(f"{servers.uvicorn}{to('/echo', 302)}", headers=secret)
    kept = headers_of(same.json())
    assert kept["authorization"] == "Bearer secret", "The same origin keeps Authorization."
    assert kept["cookie"] == "session=1", "The same origin keeps Cookie."
    other = await sansnet.request(
        f"{servers.uvicorn}{to(servers.hypercorn + '/echo', 302)}", headers=secret
    )
    dropped = headers_of(other.json())
    assert "authorization" not in dropped, "Authorization is dropped on a change of origin."
    assert "cookie" not in dropped, "Cookie is dropped on a change of origin."
    assert dropped["x-keep"] == "yes", "Other headers are kept."
    assert dropped["host"] == servers.hypercorn.removeprefix("http://"), "Host is the new one."


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode("ascii")


async def test_url_credentials_on_redirects(servers: Servers) -> None:
    base = servers.uvicorn.replace("http://", "http://alice:s3cret@", 1)
    same = headers_of((await sansnet.request(f"{base}{to('/echo', 302)}")).json())
    assert same["authorization"] == basic(b"alice:s3cret"), "The same origin keeps them."
    away = await sansnet.request(f"{base}{to(servers.hypercorn + '/echo', 302)}")
    assert "authorization" not in headers_of(away.json()), "Another origin does not get them."
    target = servers.hypercorn.replace("http://", "http://bob:pw@", 1) + "/echo"
    own = await sansnet.request(f"{base}{to(target, 302)}")
    assert headers_of(own.json())["authorization"] == basic(b"bob:pw"), "The Location's own."
    assert own.url == servers.hypercorn + "/echo", "And they are not in the URL."
    here = servers.uvicorn.replace("http://", "http://bob:pw@", 1) + "/echo"
    replaced = await sansnet.request(f"{base}{to(here, 302)}")
    assert headers_of(replaced.json())["authorization"] == basic(b"bob:pw"), (
        "The Location's own replace the previous URL's, on the same origin too."
    )
    given = await sansnet.request(
        f"{base}{to(here, 302)}", headers={"Authorization": "Bearer mine"}
    )
    assert headers_of(given.json())["authorization"] == "Bearer mine", "A field set wins."
    with pytest.raises(sansnet.UnsafeRedirect) as info:
        await sansnet.request(f"{servers.https}{to(base + '/echo', 302)}", verify=False)
    assert f" to {servers.uvicorn}/echo: " in str(info.value), "Nor in error messages."


async def test_https_to_http_refused_unless_allowed(servers: Servers) -> None:
    target = f"{servers.https}{to(servers.uvicorn + '/echo', 302)}"
    with pytest.raises(sansnet.UnsafeRedirect, match="allow_insecure_redirects"):
        await sansnet.request(target, verify=servers.certs.ca_file)
    response = await sansnet.request(
        target, verify=servers.certs.ca_file, allow_insecure_redirects=True
    )
    assert response.json()["scheme"] == "http", "The caller may opt in to the downgrade."


async def test_http_to_https_is_followed(servers: Servers) -> None:
    response = await sansnet.request(
        f"{servers.uvicorn}{to(servers.https + '/echo', 301)}", verify=servers.certs.ca_file
    )
    assert response.json()["scheme"] == "https"


@pytest.mark.parametrize("status", [307, 308])
async def test_streamed_body_cannot_be_replayed(base_url: str, status: int) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    with pytest.raises(sansnet.UnsafeRedirect, match="streamed"):
        await sansnet.request(f"{base_url}{to('/echo', status)}", method="POST", body=body())


async def test_streamed_body_dropped_by_303(base_url: str) -> None:
    response = await sansnet.request(
        f"{base_url}{to('/echo', 303)}", method="POST", body=iter([b"a", b"b"])
    )
    assert response.json()["method"] == "GET", "303 needs no replay: the body is dropped."
