"""Request and response bodies: uploads of every accepted shape, chunked and
close-delimited responses, content decoding, streaming with flat memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

import sansnet
from sansnet._transport_api import FILE_CHUNK, StreamedBody

from .app import TEXT
from .conftest import Servers
from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def header_values(echo: dict[str, object], name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key == name]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- uploads


async def test_upload_shapes(base_url: str) -> None:
    async def agen() -> AsyncIterator[bytes]:
        yield b"async "
        yield bytearray(b"iterable")

    cases: list[tuple[dict[str, object], bytes, str | None]] = [
        ({"body": b"raw bytes"}, b"raw bytes", None),
        ({"body": bytearray(b"a bytearray")}, b"a bytearray", None),
        ({"body": memoryview(b"a memoryview")}, b"a memoryview", None),
        ({"body": "text é"}, "text é".encode(), "text/plain; charset=utf-8"),
        ({"json": {"b": [1, 2], "a": None}}, b'{"a":null,"b":[1,2]}', "application/json"),
        ({"body": [b"a ", b"list ", "of str"]}, b"a list of str", None),
        ({"body": agen()}, b"async iterable", None),
        (
            {"body": iter([b"", b"empty pieces are skipped", b""])},
            b"empty pieces are skipped",
            None,
        ),
    ]
    for params, expected, content_type in cases:
        echo = (await sansnet.request(f"{base_url}/echo", method="POST", **params)).json()
        assert echo["body"].encode() == expected, f"{params} arrives as {expected!r}."
        assert header_values(echo, "content-type") == ([content_type] if content_type else [])
        streamed = not isinstance(
            params.get("body"), (bytes, bytearray, memoryview, str, type(None))
        )
        if streamed:
            assert header_values(echo, "transfer-encoding") == ["chunked"], "Iterables go chunked."
        else:
            assert header_values(echo, "content-length") == [str(len(expected))]


async def test_caller_content_type_is_kept(base_url: str) -> None:
    echo = (
        await sansnet.request(
            f"{base_url}/echo",
            method="PUT",
            json=[1],
            headers={"content-type": "application/x+json"},
        )
    ).json()
    assert header_values(echo, "content-type") == ["application/x+json"]


async def test_big_upload(base_url: str) -> None:
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB
    echo = (await sansnet.request(f"{base_url}/echo", method="POST", body=data)).json()
    assert echo["body_length"] == len(data)
    assert echo["body_sha256"] == hashlib.sha256(data).hexdigest()


async def test_bad_bodies_are_refused_before_io() -> None:
    with pytest.raises(TypeError, match="body must be"):
        await sansnet.request("http://127.0.0.1:9/", method="POST", body=12)
    with pytest.raises(TypeError, match="body must be"):
        await sansnet.request("http://127.0.0.1:9/", method="POST", body={"a": 1})
    with pytest.raises(ValueError, match="body or json"):
        await sansnet.request("http://127.0.0.1:9/", method="POST", body=b"x", json=1)


async def test_streamed_chunks_must_be_bytes(base_url: str) -> None:
    with pytest.raises(TypeError, match="must yield bytes"):
        await sansnet.request(f"{base_url}/echo", method="POST", body=[b"ok", 3])
    response = await sansnet.request(f"{base_url}/status/200")
    assert response.ok, "The client still works after a bad streamed body."


# ---------------------------------------------------------------------- query, headers


async def test_query_lists_and_merging(base_url: str) -> None:
    echo = (
        await sansnet.request(
            f"{base_url}/echo?fixed=1#fragment",
            query={"a": ["1", "2"], "n": 3, "none": None, "t": ("x", "y")},
        )
    ).json()
    assert echo["query"] == [
        ["fixed", "1"],
        ["a", "1"],
        ["a", "2"],
        ["n", "3"],
        ["none", ""],
        ["t", "x"],
        ["t", "y"],
    ], "The query is appended to the URL's own, lists repeat the key, the fragment goes."
    echo = (await sansnet.request(f"{base_url}/echo?", query={"q": "a b&c"})).json()
    assert echo["query_string"] == "q=a+b%26c"
    echo = (await sansnet.request(f"{base_url}/echo", query={})).json()
    assert echo["query_string"] == ""
    with pytest.raises(TypeError, match="query must be a mapping"):
        await sansnet.request(f"{base_url}/echo", query=[("a", "b")])


async def test_repeated_headers_and_client_defaults(base_url: str) -> None:
    async with sansnet.Client(headers={"X-Client": "c", "X-Both": "client"}) as client:
        echo = (
            await client.request(
                f"{base_url}/echo", headers={"X-Multi": ["a", "b"], "x-both": "request"}
            )
        ).json()
    assert header_values(echo, "x-multi") == ["a", "b"], "List values send repeated lines."
    assert header_values(echo, "x-client") == ["c"], "The client's headers are sent."
    assert header_values(echo, "x-both") == ["request"], "The request's own replace the client's."


async def test_host_header_has_the_port(base_url: str) -> None:
    echo = (await sansnet.request(f"{base_url}/echo")).json()
    assert header_values(echo, "host") == [base_url.removeprefix("http://")]


async def test_path_and_query_are_quoted(base_url: str) -> None:
    echo = (await sansnet.request(f"{base_url}/echo?q=a b")).json()
    assert echo["query_string"] == "q=a%20b", "Spaces in a URL's own query are percent-encoded."


# ------------------------------------------------------------------------- responses


async def test_chunked_response(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/chunks?n=50")
    assert response.body == b"".join(b"piece %d;" % i for i in range(50))


async def test_head_and_no_content(base_url: str) -> None:
    head = await sansnet.request(f"{base_url}/encoded/gzip", method="HEAD")
    assert head.body == b"", "A HEAD response has no body."
    empty = await sansnet.request(f"{base_url}/status/204")
    assert empty.status_code == 204
    assert empty.body == b""
    after = await sansnet.request(f"{base_url}/status/200")
    assert after.body == b"status 200", "The connection is still in step after both."


async def test_text_and_json(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/echo", method="POST", body="é")
    assert response.json()["body"] == "é"
    assert response.charset is None
    assert response.text.startswith("{")
    assert "FetchResponse 200 OK" in repr(response)


async def test_json_none_is_no_json_body(base_url: str) -> None:
    """As in httpx and requests: ``json=None`` sent a JSON ``null`` (and refused a
    ``body`` beside it)."""
    echo = (await sansnet.request(f"{base_url}/echo", method="POST", json=None)).json()
    assert echo["body"] == ""
    assert ["content-type", "application/json"] not in echo["headers"]
    echo = (await sansnet.request(f"{base_url}/echo", method="POST", body=b"raw", json=None)).json()
    assert echo["body"] == "raw"


@pytest.mark.parametrize(
    ("content_type", "body", "text", "charset"),
    [
        (b"text/plain; charset=latin-1", "é".encode("latin-1"), "é", "latin-1"),
        (b'text/plain; format=flowed; charset="utf-8"', "é".encode(), "é", "utf-8"),
        (b"text/plain; charset=no-such-codec", "é".encode(), "é", "no-such-codec"),
        # codecs that cannot replace, or refuse every byte: UTF-8 too, not UnicodeError
        (b"text/plain; charset=idna", "é".encode(), "é", "idna"),
        (b"text/plain; charset=undefined", "é".encode(), "é", "undefined"),
        (b"text/plain; charset=", b"\xff", "\ufffd", None),
        (b"text/plain", b"ok \xff", "ok \ufffd", None),
        # a quoted parameter before it may hold ";" and "charset=" (RFC 9110 5.6.6)
        (
            b'text/plain; title="a;charset=utf-16"; charset=latin-1',
            "café".encode("latin-1"),
            "café",
            "latin-1",
        ),
    ],
)
async def test_charset(
    raw_server: Callable[..., RawServer],
    content_type: bytes,
    body: bytes,
    text: str,
    charset: str | None,
) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(body, extra=b"Content-Type: " + content_type + b"\r\n"))

    server = raw_server(handler)
    result = await sansnet.request(server.url)
    assert result.text == text
    assert result.charset == charset


async def test_close_delimited_and_http10(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        head = server.read_request(conn)
        assert head is not None
        version = b"HTTP/1.0" if b"/http10" in head else b"HTTP/1.1"
        conn.sendall(version + b" 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(20):
            conn.sendall(b"line %d\n" % i)
        conn.close()  # the end of the body is the end of the connection

    server = raw_server(handler)
    expected = b"".join(b"line %d\n" % i for i in range(20))
    async with sansnet.Client() as client:
        for path in ("/", "/http10", "/"):
            result = await client.request(server.url + path)
            assert result.body == expected, f"A close-delimited body is read to the end ({path})."
            assert result.http_version == ("1.0" if path == "/http10" else "1.1")
        assert client.pool.idle == 0, "A close-delimited connection is never pooled."
    assert server.accepted == 3


async def test_unknown_coding_is_left_alone(base_url: str) -> None:
    response = await sansnet.request(f"{base_url}/encoded/unknown")
    assert response.body == b"not really compressed"
    assert response.headers["content-encoding"] == "compress"


async def test_accept_encoding(base_url: str) -> None:
    echo = (await sansnet.request(f"{base_url}/echo")).json()
    assert header_values(echo, "accept-encoding") == ["zstd, br, gzip, deflate"]
    off = (await sansnet.request(f"{base_url}/echo", decompress=False)).json()
    assert header_values(off, "accept-encoding") == [], "No Accept-Encoding when not decoding."
    own = (await sansnet.request(f"{base_url}/echo", headers={"Accept-Encoding": "gzip"})).json()
    assert header_values(own, "accept-encoding") == ["gzip"], "The caller's own wins."


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"this is not gzip at all", "gzip"),
        (gzip.compress(b"x" * 10000)[:40], "cut short|truncated|incomplete|end"),
    ],
)
async def test_corrupt_bodies_raise_decoding_error(
    raw_server: Callable[..., RawServer], payload: bytes, error: str
) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response(payload, extra=b"Content-Encoding: gzip\r\n"))

    server = raw_server(handler)
    async with sansnet.Client() as client:
        with pytest.raises(sansnet.DecodingError):
            await client.request(server.url)
        raw = await client.request(server.url, decompress=False)
        assert raw.body == payload, "decompress=False hands over the bytes as they came."
        assert client.pool.in_use == 0, "The failed response gave its connection back."


async def test_decoded_size_cap(base_url: str) -> None:
    with pytest.raises(sansnet.DecodingError, match="larger than 100 bytes"):
        await sansnet.request(f"{base_url}/encoded/gzip", max_decoded_size=100)
    async with sansnet.Client(max_decoded_size=len(TEXT)) as client:
        assert (await client.request(f"{base_url}/encoded/br")).body == TEXT


# ------------------------------------------------------------------------- streaming


async def test_stream_yields_before_the_body(base_url: str) -> None:
    async with sansnet.stream(f"{base_url}/slow-body?pieces=3&delay=0.01") as response:
        assert response.status_code == 200
        assert "StreamingResponse 200 OK" in repr(response)
        pieces = [chunk async for chunk in response.aiter_bytes()]
        with pytest.raises(RuntimeError, match="already read"):
            await response.aread()
    assert b"".join(pieces) == b"p0p1p2"


async def test_reading_a_closed_stream_is_a_usage_error(base_url: str) -> None:
    url = f"{base_url}/slow-body?pieces=3&delay=0.01"
    async with sansnet.Client() as client:
        async with client.stream(url) as ended:
            pass
        with pytest.raises(RuntimeError, match="response is closed"):
            await ended.aread()
        async with client.stream(url) as closed:
            await closed.aclose()
            with pytest.raises(RuntimeError, match="response is closed"):
                closed.aiter_raw()
        async with client.stream(url) as started:
            pieces = started.aiter_bytes()
            assert await pieces.__anext__() == b"p0"
        with pytest.raises(RuntimeError, match="response is closed"):
            await pieces.__anext__()
        assert client.pool.total == 0, "The unread connections were closed."


async def test_stream_decodes_and_raw(base_url: str) -> None:
    async with sansnet.Client() as client:
        async with client.stream(f"{base_url}/encoded/zstd") as response:
            assert await response.aread() == TEXT
            assert "content-encoding" not in response.headers
            assert response.raw_headers["content-encoding"] == "zstd"
        async with client.stream(f"{base_url}/encoded/zstd") as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert raw != TEXT
        assert len(raw) == int(response.raw_headers["content-length"])
        assert client.pool.idle == 1, "Both streams gave the connection back for reuse."


@pytest.mark.parametrize(("method", "status"), [("HEAD", "200 OK"), ("GET", "304 Not Modified")])
async def test_a_response_without_a_body_keeps_its_encoding_and_length(
    raw_server: Callable[..., RawServer], method: str, status: str
) -> None:
    # Nothing is decoded, so nothing is taken out: a HEAD tells a download's size.
    head = f"HTTP/1.1 {status}\r\nContent-Encoding: gzip\r\nContent-Length: 12345\r\n\r\n"

    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(head.encode())

    server = raw_server(handler)
    result = await sansnet.request(server.url, method=method)
    assert result.body == b""
    assert result.headers["content-encoding"] == "gzip"
    assert result.headers["content-length"] == "12345"


async def test_stream_left_early_closes_the_connection(base_url: str) -> None:
    async with sansnet.Client() as client:
        async with client.stream(f"{base_url}/stream?mib=4") as response:
            async for _ in response.aiter_bytes():
                break
        assert client.pool.total == 0, "A body not read to the end cannot be reused: closed."
        async with client.stream(f"{base_url}/chunks") as response:
            pass  # not read at all
        assert client.pool.total == 0
        assert (await client.request(f"{base_url}/status/200")).ok


async def test_stream_error_in_block_releases(base_url: str) -> None:
    async with sansnet.Client() as client:
        with pytest.raises(KeyError):
            async with client.stream(f"{base_url}/status/200"):
                raise KeyError("user code failed")
        assert client.pool.in_use == 0


async def test_streaming_memory_stays_flat(servers: Servers) -> None:
    """200 MiB pass through ``stream()`` while tracemalloc's peak stays a few MiB."""
    size = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async with sansnet.stream(f"{servers.uvicorn}/stream?mib=200") as response:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 200 * MiB, "Every byte arrives."
    assert peak < 8 * MiB, f"Memory stays flat while streaming (peak {peak / MiB:.1f} MiB)."


async def test_a_file_body_is_read_in_pieces_not_lines(tmp_path: Path) -> None:
    """Issue: a file given as ``body=`` was iterated, which gives lines: a binary file
    without a newline went as one chunk, read whole into memory."""
    path = tmp_path / "upload.bin"
    data = os.urandom(300_000).replace(b"\n", b"\0")  # no line ends
    path.write_bytes(data)
    with path.open("rb") as file:
        chunks = [chunk async for chunk in StreamedBody(file)]
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) == FILE_CHUNK  # before: one chunk of 300,000 bytes
    chunks = [chunk async for chunk in StreamedBody(io.BytesIO(data))]
    assert max(map(len, chunks)) == FILE_CHUNK
    async with await anyio.open_file(path, "rb") as async_file:
        chunks = [chunk async for chunk in StreamedBody(async_file)]
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) == FILE_CHUNK


async def test_a_file_body_is_uploaded_whole(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "upload.txt"
    path.write_bytes(b"line one\nline two\n" * 10_000)
    with path.open("rb") as file:
        echo = (await sansnet.request(f"{base_url}/echo", method="POST", body=file)).json()
    assert echo["body"] == path.read_text()
