"""Every crash the fuzz harnesses in fuzz/ found, kept as a regression test.

Each row holds the input the harness failed on (``fuzz_input``, the bytes libFuzzer
saved, which ``python fuzz/HARNESS.py FILE`` replays; tests/test_fuzz.py does so) and
the engine-level reproduction with its expected outcome, which runs here without
atheris. See fuzz/README.md for what each harness checks.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

import pytest

from sansnet import url_decode
from sansnet.errors import LocalProtocolError, RemoteProtocolError, URLDecodeError
from sansnet.protocol import (
    IDLE,
    ClientConnection,
    ContentDecoder,
    Data,
    EndOfMessage,
    RequestHead,
    ServerConnection,
)
from sansnet.protocol.websocket import (
    Closed,
    DeflateParameters,
    TextMessage,
    WebSocketConnection,
)

from .ws_frames import encode_frame


@dataclass(frozen=True)
class Crash:
    """One input a harness failed on: which harness, the bytes, what was wrong."""

    harness: str
    fuzz_input: bytes
    finding: str


# ------------------------------------------------------------------ content_decoders


@dataclass(frozen=True)
class DecoderCase:
    crash: Crash
    coding: str
    chunks: list[bytes]
    expected: bytes
    piece_size: int = 65536
    max_size: int | None = None
    drain: list[bool] = field(default_factory=lambda: [True, False])


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


DECODER_CASES = [
    DecoderCase(
        Crash(
            "content_decoders",
            b"\x05\x00\x06\x03\nhello world, hello world",
            "identity yielded a piece longer than piece_size",
        ),
        "identity",
        [b"hello world, hello world"],
        b"hello world, hello world",
        piece_size=1,
        max_size=65536,
    ),
    DecoderCase(
        Crash(
            "content_decoders",
            b"\x02rld, helh\no",
            "a valid raw deflate body was refused: zlib held back the rest of a match "
            "(output limit reached, no input left) and has_pending said no",
        ),
        "deflate",
        [b"S\xc8H", b"\xcd\xc9\xe0\xcaW", b"\x18\xa5H\xa6\x00"],
        b" helh\no" * 45,
        piece_size=1,
        max_size=1000,
    ),
    DecoderCase(
        Crash("content_decoders", b"(found while reducing the one above)", "same, real size"),
        "deflate",
        [_raw_deflate(b"a" * 65793)],  # the last match crosses the 64 KiB piece boundary
        b"a" * 65793,
    ),
    DecoderCase(
        Crash(
            "content_decoders",
            b"\x02el r\xffd\xff\xfd\xffd\xff\xfd\xff",
            "endless loop (timeout): after the end of the stream zlib still reports the "
            "last input as unconsumed_tail, so has_pending stayed true forever",
        ),
        "deflate",
        [zlib.compress(b"\xffd\xff\xfd\xffd\xff\xfd\xff") * 2],  # junk after the end
        b"\xffd\xff\xfd\xffd\xff\xfd\xff",
        piece_size=7,
        max_size=1000,
    ),
    DecoderCase(
        Crash(
            "content_decoders",
            b"~mlo aa\x03\x00\x06o",
            "a second gzip member was lost when its two-byte magic came split across two calls",
        ),
        "gzip",
        [
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03KLd",
            b"f",
            b"`\xcb\x07\x00\x00W\xda",
            b"O\x06\x00\x00\x00",
            b"\x1f",
            b"\x8b\x08\x00\x00\x00",
            b"\x00\x00\x02\x03KLdf",
            b"`\xcb\x07\x00\x00W\xdaO\x06\x00\x00\x00",
        ],
        b"aa\x03\x00\x06o" * 2,
        max_size=1000,
    ),
    DecoderCase(
        Crash(
            "content_decoders",
            b"(the same run, drain bit off)",
            "a second gzip member in the same call was dropped when finish() came "
            "without a decode(b'') first, as the client and decode_all() do",
        ),
        "gzip",
        [gzip.compress(b"first ", mtime=0) + gzip.compress(b"second", mtime=0)],
        b"first second",
    ),
    DecoderCase(
        Crash("content_decoders", b"(reduction of the above)", "junk after a gzip member"),
        "gzip",
        [gzip.compress(b"body", mtime=0), b"\x1f", b"\x00junk", b"\x1f\x8b"],
        b"body",
    ),
]


@pytest.mark.parametrize("case", DECODER_CASES, ids=lambda case: case.crash.finding[:40])
@pytest.mark.parametrize("drain", [True, False], ids=["drain", "no-drain"])
def test_content_decoder_regressions(case: DecoderCase, drain: bool) -> None:
    decoder = ContentDecoder(case.coding, max_size=case.max_size, piece_size=case.piece_size)
    pieces: list[bytes] = []
    for chunk in [*case.chunks, *([b""] if drain else [])]:
        pieces.extend(decoder.decode(chunk))
    decoder.finish()
    assert b"".join(pieces) == case.expected
    assert all(0 < len(piece) <= case.piece_size for piece in pieces)


def test_decode_all_of_a_64k_raw_deflate_body() -> None:
    """The real-world face of the held-back output: decode_all (the server) and the
    client's read loop call finish() right after the last piece."""
    for size in range(65536 - 40, 65536 + 300, 7):
        body = _raw_deflate(b"a" * size)
        assert ContentDecoder("deflate").decode_all(body) == b"a" * size


# ---------------------------------------------------------------------------- codecs

URL_DECODE_CRASH = Crash(
    "codecs",
    b"\xf0" * 14 + b"\x00\x05}",
    "url_decode(str with lone surrogates) raised UnicodeEncodeError",
)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("text", ["\udcf0" * 14 + "\x00\x05}", "a%20\ud800", "\udfff"])
def test_url_decode_of_lone_surrogates_raises_url_decode_error(text: str, binary: bool) -> None:
    with pytest.raises(URLDecodeError, match="lone surrogate"):
        url_decode(text, binary=binary)


# --------------------------------------------------------- differential: our writers
# The differential harness found these in the responses ServerConnection wrote (and
# the first two in requests); the same rules hold in ClientConnection, checked below.

CHUNSSS = Crash(
    "differential",
    b"-type: text/plain\r\ntransfer-encoding: chunssssssssssssssssssssssssssssssssssss"
    b"ssssssssssssssssssssssssssked\r\n\r\n5\r\x921",
    "a response framed as chunked said another Transfer-Encoding; h11 refused it",
)
TWO_TRANSFER_ENCODINGS = Crash(
    "differential",
    b"\xbf\xbf\xe7\xe7\xe7\xe7\xe7\xe7\xe7\xbf\xbf\xbf\x9f\xbf\xbf\xbf\xbf\xbf\xbf\xbf"
    b"\xbf\xbf\x11\xbf\xbf\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4"
    b"\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4"
    b"\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4"
    b"\xa4\xa4\xa4\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\nTransfer-Encoding: chunked\r\nn-h\n\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x1b\x1b\x1b)\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b"
    b"\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\xa4\xa4\xa4\xa4\xa4\xa4\xa4"
    b"\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4O\xffPT\xff\xff$\xff0 M\ncPOSTho"
    b"stnt=9\r\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\nTransfer-Encoding: chunked\r\nn-h"
    b"\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x1b\x1b\x1b)\x1b\x1b\x1b\x1b\x1b\x1b\x1b"
    b"\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b"
    b"\x1b\x1b\x1bh\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4"
    b"\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xa4\xf7\x00tent-Lengtue}",
    "two Transfer-Encoding fields (chunked applied twice); h11 refused them",
)
CHUNKED_HTAB = Crash(
    "differential",
    b"O\xff\xb8\xab\xfftn\nTransfer-Encoding: chunked\t\nh22\r\n\r\n",
    "'chunked<HTAB>': h11 read a chunked body, llhttp a body delimited by the close",
)
TWO_LENGTHS = Crash(
    "differential",
    b"\x17B\x17B\ncontent-length:\ncontent-length:0",
    "two Content-Length fields went out, the first one unchecked; h11 refused them",
)

CONTROL_IN_LENGTH = Crash(
    "differential",
    b"F\x02P /HOK\ncontent-length:\x1c1",
    "Content-Length '\\x1c1' passed the check (str.strip() drops U+001C) and int() then "
    "raised ValueError",
)


def _client_side(crash: Crash) -> Crash:
    return Crash(crash.harness, b"(the same rule, client side)", crash.finding)


@dataclass(frozen=True)
class RequestCase:
    crash: Crash
    method: str
    target: str
    headers: list[tuple[str, str]]
    streamed: bool
    fragment: str


REQUEST_CASES = [
    RequestCase(
        Crash(
            "differential",
            b"\x02\x03POS\x03A /upl\x02\x03``lhost\rploPOS\nHost: loca```\xb1\xb1\xb1d"
            b" HTTP/1.1\r\nHost: loca```lhost\rpload HTTP/2.1\r\n\nCo",
            "the client sent two Host fields; h11 refused the request "
            "(RFC 9112 section 3.2: a server must answer 400)",
        ),
        "POSA",
        "/upl",
        [("Host", "a"), ("Host", "b")],
        False,
        "one Host field",
    ),
    RequestCase(
        Crash(
            "differential",
            b"^^^^V^^^^1.1 \x91\xd04 /i\xdf^\xda",
            "the client sent a non-ASCII request-target; h11 refused it",
        ),
        "GET",
        "\x91\xd04",
        [],
        True,
        "Invalid request target",
    ),
    RequestCase(
        Crash("differential", b"(reduction of the above)", "a target in no valid form"),
        "GET",
        "index.html",
        [],
        False,
        "Invalid request target",
    ),
    RequestCase(
        Crash("differential", b"(reduction of the above)", "a tab in the target"),
        "GET",
        "/a\tb",
        [],
        False,
        "Invalid request target",
    ),
    RequestCase(_client_side(CHUNSSS), "POST", "/", [("Transfer-Encoding", "gzip")], True, "only"),
    RequestCase(
        _client_side(TWO_TRANSFER_ENCODINGS),
        "POST",
        "/",
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
        True,
        "only 'chunked'",
    ),
    RequestCase(
        _client_side(CHUNKED_HTAB),
        "POST",
        "/",
        [("Transfer-Encoding", "chunked\t")],
        True,
        "only 'chunked'",
    ),
    RequestCase(
        CONTROL_IN_LENGTH, "POST", "/", [("content-length", "\x1c1")], True, "ASCII digits"
    ),
    RequestCase(
        _client_side(CONTROL_IN_LENGTH),
        "POST",
        "/",
        [("content-length", "\x1c3")],
        False,
        "ASCII digits",
    ),
    RequestCase(
        _client_side(TWO_LENGTHS),
        "POST",
        "/",
        [("Content-Length", "3"), ("Content-Length", "3")],
        False,
        "Two Content-Length fields",
    ),
]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda case: case.crash.finding[:40])
def test_client_refuses_what_parsers_would_read_differently(case: RequestCase) -> None:
    conn = ClientConnection("example.com")
    with pytest.raises(LocalProtocolError, match=case.fragment):
        if case.streamed:
            conn.start_request(case.method, case.target, case.headers)
        else:
            conn.send_request(case.method, case.target, case.headers, b"abc")
    assert conn.our_state is IDLE
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("target", "method"),
    [
        ("/a/b?c=d%20e", "GET"),
        ("http://example.com/x", "GET"),
        ("example.com:443", "CONNECT"),
        ("*", "OPTIONS"),
    ],
)
def test_client_still_sends_every_valid_target_form(target: str, method: str) -> None:
    conn = ClientConnection("example.com")
    conn.send_request(method, target, [("Transfer-Encoding", "Chunked")])
    assert conn.data_to_send().startswith(f"{method} {target} HTTP/1.1\r\n".encode())


@dataclass(frozen=True)
class ResponseCase:
    crash: Crash
    request: bytes
    status: int
    headers: list[tuple[str, str]]
    streamed: bool
    fragment: str


HEAD = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"

RESPONSE_CASES = [
    ResponseCase(
        Crash(
            "differential",
            b"\xffB\ncontent-length:",
            "an empty Content-Length went out in a response to HEAD (unchecked there)",
        ),
        HEAD,
        200,
        [("content-length", "")],
        False,
        "Invalid Content-Length",
    ),
    ResponseCase(
        Crash("differential", b"(reduction of the above)", "a bad Content-Length on a 304"),
        GET,
        304,
        [("content-length", "1, 1")],
        False,
        "Invalid Content-Length",
    ),
    ResponseCase(TWO_LENGTHS, GET, 200, [("content-length", "0")] * 2, False, "Two Content"),
    ResponseCase(
        Crash("differential", b"(the same rule, server side)", CONTROL_IN_LENGTH.finding),
        GET,
        200,
        [("content-length", "\x1c1")],
        True,
        "ASCII digits",
    ),
    ResponseCase(CHUNSSS, GET, 200, [("transfer-encoding", "chunssssked")], True, "only"),
    ResponseCase(
        TWO_TRANSFER_ENCODINGS,
        HEAD,
        200,
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
        True,
        "only 'chunked'",
    ),
    ResponseCase(CHUNKED_HTAB, GET, 200, [("Transfer-Encoding", "chunked\t")], True, "only"),
    ResponseCase(
        Crash("differential", b"(found with the above)", "Content-Length and Transfer-Encoding"),
        GET,
        200,
        [("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
        True,
        "not both",
    ),
]


@pytest.mark.parametrize("case", RESPONSE_CASES, ids=lambda case: case.crash.finding[:40])
def test_server_refuses_what_parsers_would_read_differently(case: ResponseCase) -> None:
    conn = ServerConnection()
    conn.receive_data(case.request)
    assert isinstance(conn.next_event(), RequestHead)
    with pytest.raises(LocalProtocolError, match=case.fragment):
        if case.streamed:
            conn.start_response(case.status, case.headers)
        else:
            conn.send_response(case.status, case.headers)
    assert conn.data_to_send() == b""
    conn.send_response(200, [("Transfer-Encoding", "CHUNKED")], b"ok")  # still answerable
    expected = b"" if case.request == HEAD else b"2\r\nok\r\n0\r\n\r\n"
    assert conn.data_to_send().lower().endswith(b"chunked\r\n\r\n" + expected)  # h11 lowercases it


# ---------------------------------------------------------------------- http_server

ERROR_RESPONSE_CRASH = Crash(
    "http_server",
    b"\x00\x00\x00HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "the error response to a HEAD request carried a body, which a client reads as the "
    "start of the next response (RFC 9110 section 9.3.2: no content in answer to HEAD)",
)


HARNESS_CONNECT_CRASH = Crash(
    "http_server",
    (
        b"\x19\xff\xffGET /json?q=a+b%26c%3Dd&emoji=%F0%9F%9A%80 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:40143\r\nAccept: *tion: keep-aliv\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcdg"
        b"ent: python-httpx/ .28.1\r\n\r\nPOSTlink /echo HTTP/1.1\r\nHos"
        b"t: 127.0.0.1:4/0.28.1\r\nContent-Length: 70\r\nContent-Type:"
        b'ion/json\r\n\r\n{"name":"sansnet","tags":["http","web\r\n sock'
        b'et"],"version":2.5,"ok":trCONNECT /echo HTTP/1.0\r\nHost: '
        b" br, zstd\r\nConnection: keep-alive\r\nUser-Agent: python-ht"
        b"tpx/0.28.1\r\nX-Repeat`d: 1\r\nX-Repeated: 2\r\n\r\n"
    ),
    "a harness bug, not the engine's: the harness's h11 oracle answered a CONNECT with "
    "200, which makes h11 switch protocols, and its EndOfMessage was then refused; the "
    "oracle now answers CONNECT with the session's 405",
)


HARNESS_HEAD_AFTER_BODY_CRASH = Crash(
    "http_server",
    (
        b"8.1\r\n\r\nPOST /echo HTTP/1.1\r\nHost: 127.0.0.1:4*1\r\nContent"
        b'-Length: 70\r\nContent-Type: application/json\r\n\r\n{"name":"'
        b'sansnet","tags":\xd4"http\xa2,"websocket"r, zstd\r\nC":2.5,"ok":'
        b"true}HEAD /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\nH."
        b'0.0.1:40ceppe: application/json\r\n\r\n{"name"\x1a"san\xdene\r\n,PT,'
        b"\xaf\xd8\x81.1\n"
    ),
    "a harness bug, not the engine's: a refused HEAD request (Transfer-Encoding on "
    "HTTP/1.0) right after the previous body's last byte was answered without a body, "
    "correctly; the harness looked for HEAD request lines only after a line end",
)


@pytest.mark.parametrize(("method", "has_body"), [("HEAD", False), ("GET", True)])
def test_error_response_to_head_has_no_body(method: str, has_body: bool) -> None:
    conn = ServerConnection()
    conn.receive_data(
        method.encode() + b" / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert isinstance(conn.next_event(), RequestHead)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    message = f"{info.value}\n".encode()
    head = (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(message)
    )
    assert conn.data_to_send() == head + (message if has_body else b"")


def test_error_response_before_any_request_keeps_its_body_after_a_head() -> None:
    """The method of an earlier request does not matter once it was answered."""
    conn = ServerConnection()
    conn.receive_data(HEAD)
    assert isinstance(conn.next_event(), RequestHead)
    conn.next_event()
    conn.send_response(200)
    conn.data_to_send()
    conn.receive_data(b"BAD\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert conn.data_to_send().endswith(f"{info.value}\n".encode())


# ------------------------------------------------------------------------- websocket

WEBSOCKET_BFINAL_CRASH = Crash(
    "websocket",
    b"\x12\nA\x918$\xd0/s\x0f\x9ac\xf6i\x1d\x04pi\x81/\x10\xd2(\xf4\xb5\x89\x85]\x07\xb8.-n\xd6I|\x80\x85N\x01\x00\x00\x00\x00\x00\x01T\xda6\x89",
    "a compressed message went on after its DEFLATE stream had ended (a BFINAL block): "
    "we inflated the start and dropped the rest silently, and would have inflated every "
    "later message to nothing",
)


def test_data_after_a_bfinal_block_fails_the_connection_with_1007() -> None:
    """The fuzz input, decoded: a compressed text fragment whose DEFLATE stream ends
    (BFINAL) with bytes after it, a ping, then the last fragment."""
    compressed = bytes.fromhex("4b2b4a4cce4dcd2b484d510028f6f8db8d")
    server = WebSocketConnection("server", deflate=DeflateParameters())
    first = encode_frame(0x1, compressed, fin=False, mask=b"abcd")
    server.receive_data(bytes([first[0] | 0x40]) + first[1:])
    server.receive_data(encode_frame(0x9, b"ping!", fin=True, mask=b"abcd"))
    server.receive_data(encode_frame(0x0, bytes.fromhex("4e0100011a"), fin=True, mask=b"abcd"))
    events = server.events_received()
    assert not any(isinstance(event, TextMessage) for event in events)
    assert isinstance(server.error, RemoteProtocolError)
    assert "end of the compressed stream" in str(server.error)
    assert server.close_code == 1007


WEBSOCKET_COUNT_PAST_LIMIT_CRASH = Crash(
    "websocket",
    # options 0x80 (server, tiny limits: 300-byte frames), one piece, a 301-byte frame;
    # reduced by hand from a 1570-byte input of the first fuzz run on the wsproto engine
    b"\x80\x00" + encode_frame(0x2, b"x" * 301, mask=b"abcd"),
    "after a frame passed max_frame_size the connection closed with 1009 as it should but "
    "kept the over-limit byte count as the size of the frame in progress",
)


def test_a_frame_past_its_limit_fails_and_leaves_no_count_behind() -> None:
    server = WebSocketConnection("server", max_message_size=1000, max_frame_size=300)
    server.receive_data(encode_frame(0x2, b"x" * 301, mask=b"abcd"))
    assert server.events_received() == [Closed(1009, "A frame exceeds the 300-byte limit.")]
    assert isinstance(server.error, RemoteProtocolError)
    assert server.next_event() is None


HARNESS_RESPONSE_BOTH_FRAMINGS_CRASH = Crash(
    "differential",
    b"\x01\x03HTTP/1.1 100 \r\ndate: Thu, 26 Nov 2026 13:02:05 GMT\r\nserver: hypercorn-h11\r\n\r\nHTTP/1.1 200 \r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 300\r\ndate: Thu, 26 Nov 2026 13:02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/plain; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\nd\r\nfirst piece, \r\ne\r\nsecond piece, \r\nb\r\nlast piece\n\r\n0\r\n\r\n\xda\xda\xda\xda\xda\xda\xdaxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "a harness gap, not the engine's: a response with both Content-Length and "
    "Transfer-Encoding is read chunked and its connection closed (RFC 9112 section 6.3), "
    "which llhttp refuses; the harness now knows this difference (found on 2026-12-07)",
)


HARNESS_REPEATED_LENGTH_WITH_ZEROS_CRASH = Crash(
    "differential",
    b"\x01\x03HTTP/1.1 200 \r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 04\r\ndate: Thu, 26 Nov 20 text/plain; charset=utf-8\r\ncontent-length: 04\r\ndate: Thu, 26 No26 13:01:45 GMT\r\nserver: hypercorn-h11\r\n\r\n27.0.0.1:40143\r\nUser-Ag0.1:40143\r\nUser-Ag\x00\x00\x00\x00\x00\x00\x00\x00enXXXXxxxxxxxxxxxxxxxxxxxxxxXXXXX",
    "a harness gap, not the engine's: Content-Length 04 repeated is the one length 4 (RFC "
    "9110 section 8.6, as h11 reads it); the harness compared the text with '4' "
    "(found on 2026-12-07)",
)


HARNESS_CONNECTION_IN_TRAILERS_CRASH = Crash(
    "differential",
    b'\x00\x03POST /echo HTTP/1.1\r\nHost: 127.0.0.1:40143\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-wwcontecontent-type\r\n\r\n11\r\n{"chunked": true}\r\n0\r\nConnection: close\r\n\r\n',
    "a harness gap, not the engine's: a Connection: close in a request's trailers is not "
    "honoured (RFC 9110 section 6.5.1 keeps it out of trailers; the engine drops it), "
    "llhttp closes on it (found on 2026-12-07)",
)


HARNESS_NO_CONTENT_BOTH_FRAMINGS_CRASH = Crash(
    "differential",
    b"\x01\x03HTTP/1.1 204 \r\nconjent-type:HHHHHHHHHHHHHHHHpt: */*\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form`-urlontent-\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\type: teOST;name=v9712734aluet-encoding: br\r\ncontent-length: 29\r\ndate: Thu, 26 Nov 20-h11\r\n\r\n\t\x00\x00\x00\x00\x00\x00\x00\xd0\x95]\x97\x10\xbb\x17+\xa9\xca\xd0\x92\xcc\x8c\xadA\\\xe6\xf25\xc8\x19\x9e\x9e\n{\x83\r8pH o$\xbbA\xa7\x14\xce/\x1e'\xaa)8\n\t\xf6i0",
    "the same harness gap with the fields the other way round (llhttp says it so) on a "
    "204 (found on 2026-12-07)",
)


def test_a_response_with_both_framings_is_read_chunked_and_not_reused() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    conn.receive_data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    events = conn.events_received()
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"hello"
    assert isinstance(events[-1], EndOfMessage)
    assert conn.must_close


# ----------------------------------------------------------------- the whole table

CRASHES: list[Crash] = [
    *(case.crash for case in DECODER_CASES),
    URL_DECODE_CRASH,
    *(case.crash for case in REQUEST_CASES),
    *(case.crash for case in RESPONSE_CASES),
    ERROR_RESPONSE_CRASH,
    HARNESS_CONNECT_CRASH,
    HARNESS_HEAD_AFTER_BODY_CRASH,
    WEBSOCKET_BFINAL_CRASH,
    WEBSOCKET_COUNT_PAST_LIMIT_CRASH,
    HARNESS_RESPONSE_BOTH_FRAMINGS_CRASH,
    HARNESS_REPEATED_LENGTH_WITH_ZEROS_CRASH,
    HARNESS_CONNECTION_IN_TRAILERS_CRASH,
    HARNESS_NO_CONTENT_BOTH_FRAMINGS_CRASH,
]
"""Every crash, for tests/test_fuzz.py to replay through its harness. Rows whose input
starts with ``(`` or holds ``...`` are reductions written by hand, not saved inputs."""


def replayable() -> list[Crash]:
    return [
        crash
        for crash in CRASHES
        if not crash.fuzz_input.startswith(b"(") and b"..." not in crash.fuzz_input
    ]


def test_every_harness_named_exists() -> None:
    harnesses = {"content_decoders", "codecs", "differential", "http_server", "websocket"}
    assert {crash.harness for crash in CRASHES} == harnesses
    assert len(replayable()) >= 10
