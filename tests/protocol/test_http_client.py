"""ClientConnection: request serialization and response parsing, byte for byte."""

from __future__ import annotations

import pytest

from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from sansnet.protocol import (
    CLOSED,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    SEND_BODY,
    SWITCHED_PROTOCOL,
    USER_AGENT,
    ClientConnection,
    Data,
    EndOfMessage,
    Headers,
    InformationalResponse,
    Limits,
    PeerClosed,
    ResponseHead,
)

from .helpers import feed

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def sent(conn: ClientConnection) -> bytes:
    return conn.data_to_send()


# --------------------------------------------------------------------------- requests


def test_default_headers() -> None:
    conn = ClientConnection("example.com")
    conn.send_request("GET", "/")
    assert sent(conn) == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: "
        + USER_AGENT.encode()
        + b"\r\nAccept: */*\r\n\r\n"
    )
    assert USER_AGENT.startswith("sansnet/")


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        ("example.com", 80, "http", "example.com"),
        ("example.com", 8080, "http", "example.com:8080"),
        ("example.com", 443, "https", "example.com"),
        ("example.com", 80, "https", "example.com:80"),
        ("example.com", 443, "wss", "example.com"),
        ("::1", 8000, "http", "[::1]:8000"),
        ("[::1]", None, "http", "[::1]"),
        ("fe80::1%eth0", 8000, "http", "[fe80::1]:8000"),  # the zone is ours, not sent
        ("127.0.0.1", 9000, "ws", "127.0.0.1:9000"),
    ],
)
def test_host_header_has_the_port_only_when_not_default(
    host: str, port: int | None, scheme: str, expected: str
) -> None:
    conn = ClientConnection(host, port, scheme=scheme)  # type: ignore[arg-type]
    conn.send_request("GET", "/")
    assert f"\r\nHost: {expected}\r\n".encode() in sent(conn)


@pytest.mark.parametrize(
    ("arguments", "options", "named"),
    [
        ((None, 80), {}, "host"),
        ((b"example.com", 80), {}, "host"),
        (("example.com", "80"), {}, "port"),
        (("example.com", True), {}, "port"),
        (("example.com", 65536), {}, "port"),
        (("example.com", -1), {}, "port"),
        (("example.com", 80), {"limits": 123}, "limits"),
        (("example.com", 80), {"limits": {"max_header_bytes": 10}}, "limits"),
    ],
)
def test_wrong_arguments_are_refused_by_name(
    arguments: tuple[object, object], options: dict[str, object], named: str
) -> None:
    # ClientConnection(None, 80) raised TypeError ("argument of type 'NoneType' is not
    # iterable"); ("h", "80") was taken and sent "Host: h:80" whatever the scheme.
    with pytest.raises(InvalidArgument, match=f"^{named} must be"):
        ClientConnection(*arguments, **options)  # type: ignore[arg-type]


def test_user_headers_override_defaults_and_lists_repeat() -> None:
    conn = ClientConnection("a")
    conn.send_request(
        "GET",
        "/",
        {"host": "b", "user-agent": "mine", "ACCEPT": "text/html", "X": ["1", "2"]},
    )
    assert sent(conn) == (
        b"GET / HTTP/1.1\r\nhost: b\r\nuser-agent: mine\r\nACCEPT: text/html\r\nX: 1\r\nX: 2\r\n\r\n"
    )


def test_custom_default_headers() -> None:
    conn = ClientConnection("a", default_headers=[("User-Agent", "x")])
    conn.send_request("GET", "/")
    assert sent(conn) == b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n"


def test_content_length_rules() -> None:
    conn = ClientConnection("a")
    conn.send_request("POST", "/", None, b"")
    assert b"Content-Length: 0\r\n" in sent(conn)
    feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    conn.send_request("DELETE", "/x", None, b"")
    assert b"Content-Length" not in sent(conn)
    feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    conn.send_request("PUT", "/x", [("Content-Length", "3")], b"abc")
    assert sent(conn).endswith(b"Content-Length: 3\r\n\r\nabc")
    feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="does not match"):
        conn.send_request("PUT", "/x", [("Content-Length", "4")], b"abc")
    assert conn.our_state is IDLE


def test_streamed_request_is_chunked() -> None:
    conn = ClientConnection("a")
    conn.start_request("POST", "/up", [("Content-Type", "application/octet-stream")])
    conn.send_data(b"abc")
    conn.send_end()
    assert sent(conn) == (
        b"POST /up HTTP/1.1\r\nHost: a\r\nUser-Agent: "
        + USER_AGENT.encode()
        + b"\r\nAccept: */*\r\nContent-Type: application/octet-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )


def test_streamed_request_with_content_length_or_user_chunked() -> None:
    conn = ClientConnection("a")
    conn.start_request("POST", "/", [("Content-Length", "2")])
    conn.send_data(b"ok")
    conn.send_end()
    assert sent(conn).endswith(b"Content-Length: 2\r\n\r\nok")
    feed(conn, OK)
    conn.send_request("POST", "/", [("Transfer-Encoding", "chunked")], b"ok")
    assert sent(conn).endswith(b"\r\n\r\n2\r\nok\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ([("Content-Length", "1"), ("Transfer-Encoding", "chunked")], "not both"),
        ([("Content-Length", "x")], "Invalid Content-Length"),
    ],
)
def test_bad_streaming_framing(headers: list[tuple[str, str]], fragment: str) -> None:
    conn = ClientConnection("a")
    with pytest.raises(LocalProtocolError, match=fragment):
        conn.start_request("POST", "/", headers)


@pytest.mark.parametrize(
    ("method", "target", "headers", "fragment"),
    [
        ("GET", "/", {"X": "a\r\nEvil: 1"}, "value of header 'X'"),
        ("GET", "/", {"X": "a\nb"}, "value of header 'X' .* control character"),
        ("GET", "/", {"X": "a\rb"}, "value of header 'X' .* control character"),
        ("GET", "/", {"X": "a\x00b"}, "value of header 'X' .* control character"),
        ("GET", "/", {"X\r\nEvil": "1"}, "header name 'X"),
        ("GET", "/", {"X Y": "1"}, "Illegal header name"),
        ("GE T", "/", {}, "Invalid method"),
        ("", "/", {}, "Invalid method"),
        ("GET", "/a b", {}, "Invalid request target"),
        ("GET", "", {}, "Invalid request target"),
        ("GET", "/\x00", {}, "Invalid request target"),
    ],
)
def test_request_injection_and_bad_tokens_are_refused(
    method: str, target: str, headers: dict[str, str], fragment: str
) -> None:
    conn = ClientConnection("a")
    with pytest.raises(LocalProtocolError, match=fragment):
        conn.send_request(method, target, headers)
    assert conn.our_state is IDLE
    assert sent(conn) == b""


def test_custom_methods_pass() -> None:
    conn = ClientConnection("a")
    conn.send_request("PROPFIND", "/")
    assert sent(conn).startswith(b"PROPFIND / HTTP/1.1\r\n")


def test_one_request_at_a_time() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(LocalProtocolError, match="finish the previous cycle"):
        conn.send_request("GET", "/")


# -------------------------------------------------------------------------- responses


def test_content_length_response_and_reuse() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(conn, OK)
    assert events == [
        ResponseHead(200, Headers([("Content-Length", "5")]), "OK", "1.1"),
        Data(b"hello"),
        EndOfMessage(),
    ]
    assert conn.reusable
    assert conn.next_event() is NEED_DATA


def test_response_split_at_every_byte() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    body = b""
    for byte in OK:
        for event in feed(conn, bytes([byte])):
            if isinstance(event, Data):
                body += event.data
    assert body == b"hello"
    assert conn.reusable


def test_chunked_response_with_trailers() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(
        conn,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n",
    )
    assert events[1:] == [Data(b"abc"), EndOfMessage(Headers([("X-Sum", "9")]))]
    assert conn.reusable


@pytest.mark.parametrize(
    ("method", "response", "keep_alive"),
    [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", True),
        ("HEAD", b"HTTP/1.1 200 OK\r\n\r\n", True),  # no body follows a HEAD
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", True),
        ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n", True),
        ("GET", b"HTTP/1.1 200 OK\r\n\r\n", False),  # close-delimited
    ],
)
def test_keep_alive_is_known_from_the_head(method: str, response: bytes, keep_alive: bool) -> None:
    conn = ClientConnection("a")
    conn.send_request(method, "/")
    conn.data_to_send()
    feed(conn, response)
    assert conn.keep_alive is keep_alive


def test_close_delimited_response() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(conn, b"HTTP/1.1 200 OK\r\n\r\nall of it")
    assert events[1:] == [Data(b"all of it")]
    # Known from the head on: the end of this body is the end of the connection.
    assert (conn.keep_alive, conn.must_close) == (False, True)
    assert feed(conn, b"", eof=True) == [EndOfMessage(), PeerClosed()]
    assert not conn.reusable
    assert conn.their_state is CLOSED


def test_transfer_encoding_without_chunked_is_refused() -> None:
    # h11 frames bodies by Content-Length, chunked or the close; any other coding is an
    # error (RFC 9112 section 6.3 would read until close): docs/limits.md.
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="chunked"):
        feed(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", eof=True)


def test_both_framings_trust_chunked_and_refuse_reuse() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(
        conn,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\n\r\n",
    )
    assert events[1:] == [Data(b"x"), EndOfMessage()]
    assert not conn.reusable
    assert conn.must_close


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(conn, b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    assert len(events) == 2
    assert conn.reusable


def test_head_response_has_no_body() -> None:
    conn = ClientConnection("a")
    conn.send_request("HEAD", "/")
    events = feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert [type(e) for e in events] == [ResponseHead, EndOfMessage]
    assert conn.reusable


def test_interim_responses_come_before_the_final_one() -> None:
    """Issue #22: 100 and 103 were swallowed, so a driver could not wait for 100."""
    conn = ClientConnection("a")
    conn.start_request("POST", "/", {"Expect": "100-continue", "Content-Length": "1"})
    conn.data_to_send()
    assert feed(conn, b"HTTP/1.1 100 Continue\r\n\r\n") == [
        InformationalResponse(100, Headers(), "Continue")
    ]
    conn.send_data(b"x")
    conn.send_end()
    events = feed(conn, b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n" + OK)
    assert [type(e) for e in events] == [InformationalResponse, ResponseHead, Data, EndOfMessage]
    assert (events[0].status_code, events[0].headers["link"]) == (103, "<a>")
    assert not isinstance(events[0], ResponseHead)
    assert events[1].status_code == 200
    assert conn.reusable


def test_upgrade_101_is_surfaced_and_switches() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/ws", {"Upgrade": "websocket", "Connection": "Upgrade"})
    events = feed(conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00")
    assert len(events) == 1
    assert isinstance(events[0], ResponseHead)
    assert events[0].status_code == 101
    assert conn.our_state is SWITCHED_PROTOCOL
    assert conn.their_state is SWITCHED_PROTOCOL
    assert conn.trailing_data == (b"\x81\x00", False)
    assert conn.next_event() is PAUSED


def test_upgrade_refused_continues_as_http() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/ws", {"Upgrade": "websocket", "Connection": "Upgrade"})
    events = feed(conn, OK)
    assert events[-1] == EndOfMessage()
    assert conn.reusable


def test_unasked_101_is_an_error() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="unasked"):
        feed(conn, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


def test_http10_responses() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    feed(conn, b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert not conn.reusable
    assert conn.our_state is MUST_CLOSE
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    feed(conn, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx")
    assert not conn.reusable  # h11 does not keep HTTP/1.0 connections alive


def test_connection_close_either_way() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/", {"Connection": "close"})
    feed(conn, OK)
    assert not conn.reusable
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    feed(conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not conn.reusable
    assert conn.must_close


def test_server_answering_before_our_body_is_done() -> None:
    conn = ClientConnection("a")
    conn.start_request("PUT", "/", [("Content-Length", "100")])
    events = feed(conn, b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
    assert events[-1] == EndOfMessage()
    assert conn.our_state is SEND_BODY
    assert conn.their_state is MUST_CLOSE or not conn.keep_alive
    conn.send_data(b"x" * 100)
    conn.send_end()
    assert conn.must_close


def test_early_2xx_response_while_sending_keeps_state_consistent() -> None:
    conn = ClientConnection("a")
    conn.start_request("PUT", "/", [("Content-Length", "3")])
    feed(conn, OK)
    assert not conn.keep_alive  # it answered before reading all we send
    assert feed(conn, b"GARBAGE") == []  # waits: our request is not finished
    conn.send_data(b"abc")
    conn.send_end()
    assert conn.must_close


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"HTTP/2.0 200 OK\r\n\r\n", "does not speak HTTP/1.1"),
        (b"ICY 200 OK\r\n\r\n", "does not speak HTTP/1.1"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "Invalid status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "Invalid status line"),
        (b"HTTP/1.1 099 OK\r\n\r\n", "status_code"),
        (b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", "whitespace"),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting"),
        (b"<html>not http</html>\r\n\r\n", "does not speak HTTP/1.1"),
    ],
)
def test_garbage_responses(data: bytes, fragment: str) -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    sent(conn)
    with pytest.raises(RemoteProtocolError, match=fragment):
        feed(conn, data)
    assert conn.must_close
    assert conn.data_to_send() == b""  # a client sends no error response


def test_status_line_too_long() -> None:
    conn = ClientConnection("a", limits=Limits(max_request_line=50))
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="status line") as info:
        feed(conn, b"HTTP/1.1 200 " + b"O" * 100)
    assert info.value.status_hint == 414


def test_response_body_limit() -> None:
    conn = ClientConnection("a", limits=Limits(max_body_bytes=4))
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="larger than 4 bytes"):
        feed(conn, OK)


def test_server_disconnects() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="Server disconnected without sending a response"):
        feed(conn, b"", eof=True)
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="middle of the response head"):
        feed(conn, b"HTTP/1.1 200 OK\r\n", eof=True)
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="received 3 bytes, expected 5"):
        feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", eof=True)
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="incomplete chunked read"):
        feed(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", eof=True)


def test_idle_connection_closed_by_the_server() -> None:
    conn = ClientConnection("a")
    assert conn.next_event() is NEED_DATA
    assert feed(conn, b"", eof=True) == [PeerClosed()]
    assert not conn.reusable
    assert conn.their_state is CLOSED


def test_data_on_an_idle_connection_is_an_error() -> None:
    conn = ClientConnection("a")
    with pytest.raises(RemoteProtocolError, match="before any request"):
        feed(conn, b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    feed(conn, OK)
    with pytest.raises(RemoteProtocolError, match="before any request"):
        feed(conn, b"junk")


def test_extra_bytes_after_a_closing_response_are_an_error() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    with pytest.raises(RemoteProtocolError, match="after a message that ends"):
        feed(conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nxEXTRA")


def test_eof_after_a_complete_closing_response() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    events = feed(
        conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", eof=True
    )
    assert events[-1] == PeerClosed()
    assert feed(conn, b"") == [PeerClosed()]


def test_a_request_body_that_is_not_bytes_is_refused_before_anything_is_sent() -> None:
    # h11 failed half-way through writing it: a bare TypeError with the head queued.
    conn = ClientConnection("a")
    with pytest.raises(LocalProtocolError, match="A body is bytes, not str"):
        conn.send_request("POST", "/", body="text")  # type: ignore[arg-type]
    assert conn.our_state is IDLE
    assert conn.data_to_send() == b""
    conn.start_request("POST", "/")
    with pytest.raises(LocalProtocolError, match="A body is bytes, not str"):
        conn.send_data("text")  # type: ignore[arg-type]
    assert conn.our_state is SEND_BODY
    conn.send_data(b"ok")
    conn.send_end()
    assert conn.data_to_send().endswith(b"\r\n\r\n2\r\nok\r\n0\r\n\r\n")


def test_an_accepted_connect_tunnel_stays_open_without_a_length() -> None:
    for answer in (
        b"HTTP/1.1 200 Connection established\r\n\r\nTLS",  # before: must_close True
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nTLS",
    ):
        conn = ClientConnection("proxy", 3128)
        conn.send_request("CONNECT", "example.com:443")
        conn.data_to_send()
        conn.receive_data(answer)
        assert [type(e) for e in conn.events_received()] == [ResponseHead]
        assert conn.their_state is SWITCHED_PROTOCOL
        assert not conn.must_close
        assert conn.trailing_data == (b"TLS", False)


def test_events_received_returns_a_response_before_the_bytes_that_break_it() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellojunk")
    events = conn.events_received()  # before: the error, and the response lost
    assert [type(e) for e in events] == [ResponseHead, Data, EndOfMessage]
    with pytest.raises(RemoteProtocolError, match="before any request"):
        conn.events_received()
