"""The client's API surface: Request, custom transports, headers changed after the
client was made, URL edge cases, deadlines, body pieces, redirects with big bodies."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable

import anyio
import pytest

import sansnet
from sansnet import Request, StreamingResponse, Timeout
from sansnet._urls import URL_CACHE, parse_url, with_query
from sansnet.client import Deadlines, ResponseBody, Transport
from sansnet.protocol import Headers, ResponseHead

from .app import TEXT
from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio


def test_request_model() -> None:
    request = Request("GET", "http://example.org/", Headers(), b"data")
    assert request.content == b"data"
    assert request.replayable
    assert repr(request) == "<Request GET http://example.org/>"
    streamed = Request("POST", "http://example.org/", Headers(), iter([b"a"]))
    assert not streamed.replayable
    with pytest.raises(sansnet.UsageError, match="streamed"):  # as httpx's RequestNotRead
        _ = streamed.content


async def test_deadlines() -> None:
    unlimited = Deadlines(Timeout(total=None))
    assert unlimited.bound(5.0) == 5.0, "Without a total, a phase keeps its own timeout."
    assert not unlimited.capped
    spent = Deadlines(Timeout(total=0.001))
    await anyio.sleep(0.01)
    with pytest.raises(sansnet.TimeoutError, match="total timeout"):
        spent.bound(None)


class _FixedBody(ResponseBody):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.released: list[bool] = []

    async def read(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    async def release(self, *, complete: bool) -> None:
        self.released.append(complete)


class _Canned(Transport):
    """A transport that answers every request with the same canned response."""

    def __init__(self) -> None:
        self.sent: list[Request] = []
        self.bodies: list[_FixedBody] = []
        self.closed = False

    async def send(self, request: Request, timeout: Deadlines) -> StreamingResponse:
        self.sent.append(request)
        body = _FixedBody([b"canned ", b"answer"])
        self.bodies.append(body)
        head = ResponseHead(299, Headers({"X-Canned": "yes"}), "Canned", "1.1")
        return StreamingResponse(head, request.url, body)

    async def aclose(self) -> None:
        self.closed = True


async def test_custom_transport() -> None:
    transport = _Canned()
    async with sansnet.Client(transport=transport, headers={"X-Client": "1"}) as client:
        result = await client.request("http://example.org/x", method="PATCH", body=b"b")
        assert result.status_code == 299
        assert result.status_message == "Canned", "An unknown code keeps the server's text."
        assert result.body == b"canned answer"
        assert result.ok
        sent = transport.sent[0]
        assert (sent.method, sent.url, sent.content) == ("PATCH", "http://example.org/x", b"b")
        assert sent.headers["x-client"] == "1"
        assert transport.bodies[0].released == [True]
        async with client.stream("http://example.org/y") as streamed:
            assert streamed.headers["x-canned"] == "yes"
            await streamed.aclose()  # closing early is allowed, and only counts once
        assert transport.bodies[1].released == [True]
    assert transport.closed, "The client closes its transport."


async def test_client_headers_changed_later(base_url: str) -> None:
    async with sansnet.Client() as client:
        await client.request(f"{base_url}/status/200")
        client.headers["X-Later"] = "added"
        echo = (await client.request(f"{base_url}/echo", body="b")).json()
        assert ["x-later", "added"] in echo["headers"], "Later changes to client.headers apply."
        assert ["content-type", "text/plain; charset=utf-8"] in echo["headers"]
        client.headers["X-Evil"] = "a\r\nb"
        with pytest.raises(ValueError, match="X-Evil"):
            await client.request(f"{base_url}/status/200")


async def test_own_headers_with_a_body_and_accept(base_url: str) -> None:
    echo = (
        await sansnet.request(
            f"{base_url}/echo", method="POST", body="text", headers={"Accept": "text/html"}
        )
    ).json()
    assert ["accept", "text/html"] in echo["headers"]
    assert ["accept", "*/*"] not in echo["headers"], "The caller's Accept replaces the default."
    assert ["content-type", "text/plain; charset=utf-8"] in echo["headers"]


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode("ascii")


async def test_credentials_in_the_url_are_sent_as_basic_auth(base_url: str) -> None:
    url = base_url.replace("http://", "http://al%40ice:s3cr%C3%A9t:x@", 1) + "/echo?q=1"
    heads: list[bytes] = []
    async with sansnet.Client(trace=lambda kind, head: heads.append(head)) as client:
        response = await client.request(url)
        echo = response.json()
        expected = basic("al@ice:s3crét:x".encode())  # percent-decoded, then UTF-8
        assert ["authorization", expected] in echo["headers"]
        assert (echo["raw_path"], echo["query_string"]) == ("/echo", "q=1")
        assert response.url == f"{base_url}/echo?q=1", "No credentials in the response's URL."
        assert heads[0].startswith(b"GET /echo?q=1 HTTP/1.1\r\n"), "None in the request line."
        assert b"Authorization: Basic ***\r\n" in heads[0], "The trace masks them."
        assert expected.encode() not in heads[0]
        own = (await client.request(url, headers={"Authorization": "Bearer t"})).json()
        assert ["authorization", "Bearer t"] in own["headers"], "The request's own field wins."
        assert len([name for name, _ in own["headers"] if name == "authorization"]) == 1
    async with sansnet.Client(headers={"Authorization": "Bearer c"}) as client:
        echo = (await client.request(url)).json()
        assert ["authorization", "Bearer c"] in echo["headers"], "So does the client's."
    only_user = (await sansnet.request(base_url.replace("//", "//bob@", 1) + "/echo")).json()
    assert ["authorization", basic(b"bob:")] in only_user["headers"]
    with pytest.raises(ValueError, match="Invalid host") as info:
        await sansnet.request("http://alice:s3cret@exa mple.org/")
    assert "s3cret" not in str(info.value), "Error messages mask the password."
    assert "alice:***@" in str(info.value)


async def test_idna_hosts(raw_server: Callable[..., RawServer]) -> None:
    with pytest.raises(sansnet.ConnectError, match=r"xn--bcher-kva\.invalid"):
        await sansnet.request("http://bücher.invalid/")
    with pytest.raises(ValueError, match="Invalid host name"):
        await sansnet.request("http://" + "ü" * 70 + ".example/")


async def test_idna_hosts_through_a_forward_proxy(raw_server: Callable[..., RawServer]) -> None:
    def proxy(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(b"proxied"))

    server = raw_server(proxy)
    async with sansnet.Client(proxy=server.url) as client:
        result = await client.request("http://Bücher.example:8080/a?b=1")
    assert result.body == b"proxied"
    assert result.url == "http://xn--bcher-kva.example:8080/a?b=1"
    assert server.requests[0].startswith(b"GET http://xn--bcher-kva.example:8080/a?b=1 HTTP/1.1")
    assert b"\r\nHost: xn--bcher-kva.example:8080\r\n" in server.requests[0]


async def test_a_host_field_of_our_own_is_sent(raw_server: Callable[..., RawServer]) -> None:
    """headers={"Host": ...} (curl -H 'Host: ...'): virtual hosting to an address."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(b"ok"))

    server = raw_server(handler)
    result = await sansnet.request(f"{server.url}/", headers={"Host": "shop.example"})
    assert result.body == b"ok"
    head = server.requests[0].lower()
    assert head.count(b"\r\nhost:") == 1
    assert b"\r\nhost: shop.example\r\n" in head


def test_url_cache_is_bounded() -> None:
    for i in range(600):
        parse_url(f"http://example.org/{i}")
    assert len(URL_CACHE) <= 512


async def test_response_without_content_type(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(b"bare"))

    server = raw_server(handler)
    result = await sansnet.request(server.url)
    assert result.charset is None
    assert result.text == "bare"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
async def test_encoded_body_in_tiny_chunks(base_url: str, coding: str) -> None:
    response = await sansnet.request(f"{base_url}/encoded-pieces/{coding}")
    assert response.body == TEXT, "A body decodes however its bytes are split."
    async with sansnet.stream(f"{base_url}/encoded-pieces/{coding}") as streamed:
        assert "content-encoding" not in streamed.headers
        pieces = [piece async for piece in streamed.aiter_bytes()]
    assert b"".join(pieces) == TEXT


async def test_decoded_pieces_are_bounded(base_url: str) -> None:
    async with sansnet.stream(f"{base_url}/zeros.gz?mib=4") as streamed:
        sizes = [len(piece) async for piece in streamed.aiter_bytes()]
    assert sum(sizes) == 4 * 1024 * 1024
    assert max(sizes) <= 64 * 1024, "Decoded pieces are at most 64 KiB."


async def test_redirect_with_a_big_body(raw_server: Callable[..., RawServer]) -> None:
    big = b"r" * (2 * 1024 * 1024)

    def handler(conn: socket.socket, server: RawServer) -> None:
        while (head := server.read_request(conn)) is not None:
            if head.startswith(b"GET /start"):
                conn.sendall(response(big, status="302 Found", extra=b"Location: /end\r\n"))
            else:
                conn.sendall(response(b"end"))

    server = raw_server(handler)
    async with sansnet.Client() as client:
        result = await client.request(f"{server.url}/start")
        assert result.body == b"end"
        assert server.accepted == 2, (
            "A redirect body over 1 MiB is not read: its connection closes."
        )


async def test_identity_coding_and_exhausted_iterator(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(b"as is", extra=b"Content-Encoding: identity\r\n"))

    server = raw_server(handler)
    async with sansnet.stream(server.url) as streamed:
        assert streamed.headers["content-encoding"] == "identity", "identity: nothing decoded."
        pieces = streamed.aiter_bytes()
        assert [piece async for piece in pieces] == [b"as is"]
        with pytest.raises(StopAsyncIteration):
            await pieces.__anext__()  # an exhausted iterator stays exhausted


@pytest.mark.parametrize(
    ("url", "host", "origin_url"),
    [
        ("http://[fe80::1%25eth0]:8080/x", "fe80::1%eth0", "http://[fe80::1%25eth0]:8080/x"),
        ("http://[FE80::1%25Eth0]/", "fe80::1%Eth0", "http://[FE80::1%25Eth0]/"),
        ("http://[fe80::1%eth0]/", "fe80::1%eth0", "http://[fe80::1%eth0]/"),
        ("http://[fe80::1%2525]/", "fe80::1%25", "http://[fe80::1%2525]/"),
        ("http://[::1]/", "::1", "http://[::1]/"),
    ],
)
def test_an_ipv6_zone_is_decoded_and_keeps_its_case(url: str, host: str, origin_url: str) -> None:
    """RFC 6874 writes the zone's "%" as "%25"; the zone names an interface, whose
    name is case-sensitive (urlsplit's hostname lowercases it)."""
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.url == origin_url


@pytest.mark.parametrize(
    ("url", "host"),
    [
        # IDNA 2008 after UTS #46, as browsers and httpx: the "idna" codec (IDNA 2003)
        # gave fass.de and strasse.de, other registrations than the names asked for
        ("http://faß.de/x", "xn--fa-hia.de"),
        ("http://straße.de/", "xn--strae-oqa.de"),
        ("http://ὀδυσσεύς.gr/", "xn--pxac3bcak3d8526a.gr"),
        ("http://例え。テスト/", "xn--r8jz45g.xn--zckzah"),
        ("http://my_host.bücher.example/", "my_host.xn--bcher-kva.example"),
    ],
)
def test_an_internationalized_host_is_written_as_browsers_write_it(url: str, host: str) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.url.startswith(f"http://{host}/")


def test_a_host_name_with_no_idna_2008_form_is_an_invalid_url() -> None:
    """A zero-width joiner was dropped silently: pay\u200dpal.com went to paypal.com."""
    with pytest.raises(sansnet.InvalidURL, match="Invalid host name"):
        parse_url("http://pay\u200dpal.com/")


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:hunter2@example.com\uff1a8080/",  # a full-width colon: NFKC
        "http://alice:hunter2@example.com:99999/",
        "http://alice:hunter2@[::1/",
        "http://alice:hun\tter2@example.com\uff038080/",  # urlsplit drops the tab first
    ],
)
def test_an_invalid_url_is_said_without_its_password(url: str) -> None:
    """urlsplit's own reason quotes the netloc, password and all: it went into the
    message after the masked URL."""
    with pytest.raises(sansnet.InvalidURL) as caught:
        parse_url(url)
    assert "hunter2" not in str(caught.value)
    assert "alice:***" in str(caught.value)


@pytest.mark.parametrize("url", ["http://[::1]evil.example:8080/x", "http://[::1]8080/"])
def test_text_after_an_ipv6_address_is_an_invalid_url(url: str) -> None:
    """urlsplit ignores it: the first went to [::1]:8080, the second (a missing ":")
    to [::1]:80, both as if the URL were valid (httpx: InvalidURL)."""
    with pytest.raises(sansnet.InvalidURL, match="follows the IPv6 address"):
        parse_url(url)


def test_query_merges_into_a_url_with_surrounding_whitespace() -> None:
    """The URL is stripped before the query is added, as it is without one: the path
    was /items%20 with query= and /items without."""
    assert parse_url(with_query(" http://h/items ", {"page": 2})).target == "/items?page=2"


@pytest.mark.parametrize(
    "url", ["http://[::1%25]/", "http://a]@[::1%25eth0/", "http://]x[::1%eth0]/"]
)
def test_an_ipv6_zone_that_is_empty_or_misplaced_is_an_invalid_url(url: str) -> None:
    """An empty zone, or brackets that urlsplit lets through around the userinfo,
    raised a bare ValueError (or gave a host with an empty zone)."""
    with pytest.raises(sansnet.InvalidURL, match="an IPv6 zone is written"):
        parse_url(url)
