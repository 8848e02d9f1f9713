"""ServerConnection: every rule of issue #3's server role, byte for byte, no sockets.

Each rejected input must raise RemoteProtocolError with the right status hint, queue a
well-formed error response that says ``Connection: close`` (checked by parsing it with
h11, an independent parser), and never hand on anything after the bad bytes.
"""

from __future__ import annotations

import h11
import pytest

from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from sansnet.protocol import (
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    SEND_BODY,
    SEND_RESPONSE,
    SWITCHED_PROTOCOL,
    Data,
    EndOfMessage,
    Headers,
    Limits,
    PeerClosed,
    RequestHead,
    ServerConnection,
)

from .helpers import events_until_blocked, feed

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def parse_response(data: bytes) -> tuple[h11.Response, bytes]:
    """Parse bytes we sent with h11, as a client would; return head and body."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    head = client.next_event()
    assert isinstance(head, h11.Response), head
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage), event
            return head, body


def assert_rejected(data: bytes, status: int, fragment: str = "", **kwargs: object) -> None:
    conn = ServerConnection(**kwargs)  # type: ignore[arg-type]
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(10):
            event = conn.next_event()
            assert not isinstance(event, RequestHead) or event.method == "POST", event
            if event is NEED_DATA:
                conn.receive_eof()
    assert info.value.status_hint == status, str(info.value)
    assert fragment.lower() in str(info.value).lower()
    head, body = parse_response(conn.data_to_send())
    assert head.status_code == status
    assert (b"connection", b"close") in head.headers
    assert body.decode().strip() == str(info.value)
    assert conn.their_state is ERROR
    assert conn.our_state is MUST_CLOSE
    assert conn.must_close
    with pytest.raises(LocalProtocolError, match="broken"):
        conn.next_event()


# ------------------------------------------------------------------------ accepted inputs


@pytest.mark.parametrize("limits", [123, "x", {"max_body_bytes": 10}])
def test_limits_of_the_wrong_type_are_refused_by_name(limits: object) -> None:
    # ServerConnection(limits=123) raised AttributeError ('int' object has no attribute
    # 'max_header_bytes') from inside h11's set-up.
    with pytest.raises(InvalidArgument, match=r"^limits must be a sansnet\.Limits or None"):
        ServerConnection(limits=limits)  # type: ignore[arg-type]


def test_simple_get() -> None:
    conn = ServerConnection()
    events = feed(conn, GET)
    assert events == [RequestHead("GET", "/", Headers([("Host", "a")]), "1.1"), EndOfMessage()]
    assert conn.their_state is DONE
    assert conn.our_state is SEND_RESPONSE
    assert conn.next_event() is NEED_DATA


def test_http10_without_host_is_accepted_and_closes() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET /x HTTP/1.0\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.http_version == "1.0"
    assert not conn.keep_alive
    conn.send_response(200, [], b"ok")
    data = conn.data_to_send()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in data.lower()
    assert conn.our_state is MUST_CLOSE


def test_http10_keep_alive_is_not_offered() -> None:
    # h11 closes every HTTP/1.0 connection after one response, Keep-Alive or not (as
    # uvicorn and hypercorn do): docs/limits.md.
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    conn.send_response(200, [], b"ok")
    assert b"connection: close" in conn.data_to_send().lower()
    assert conn.our_state is MUST_CLOSE
    assert conn.must_close


def test_leading_empty_lines_are_ignored() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"\r\n\r\n" + GET)
    assert isinstance(request, RequestHead)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_an_empty_line_split_between_its_cr_and_its_lf_is_ignored_too(split: int) -> None:
    # Issue: the CR of an empty line arriving alone was taken for the start of a request
    # line (400): how TCP splits the bytes decided whether the request was served.
    conn = ServerConnection()
    data = b"\r\n\r\n" + GET
    assert feed(conn, data[:split]) == []
    assert conn.next_event() is NEED_DATA
    [request, _] = feed(conn, data[split:])
    assert isinstance(request, RequestHead)


def test_a_cr_alone_then_the_end_of_the_stream_is_a_quiet_close() -> None:
    conn = ServerConnection()
    assert feed(conn, b"\r", eof=True) == [PeerClosed()]


@pytest.mark.parametrize(
    "host",
    [
        b"",
        b"a",
        b"a:",
        b"a:65535",
        b"a:000080",  # port = *DIGIT
        b"127.0.0.1:80",
        b"[::1]:8080",
        b"[fe80::1%25eth0]:80",  # RFC 6874
        b"[v1.fe]",  # IPvFuture
        b"ex%41mple.com",
    ],
)
def test_every_form_of_host_is_taken(host: bytes) -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.headers["host"] == host.decode()


def test_good_hosts_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from sansnet.protocol import http11

    monkeypatch.setattr(http11, "_GOOD_HOSTS", set())
    monkeypatch.setattr(http11, "_GOOD_HOSTS_SIZE", 1)
    for host in (b"a", b"b", b"a", b"b"):
        [request, _] = feed(ServerConnection(), b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert isinstance(request, RequestHead)
    assert {"a"} == http11._GOOD_HOSTS


def test_absolute_form_target_maps_to_path_and_query() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: z\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.path == "/a/b"
    assert request.query_string == "x=1"
    assert request.authority == "example.com:8080"


@pytest.mark.parametrize(
    ("target", "path", "query", "authority"),
    [
        ("/", "/", "", "h"),
        ("/p?", "/p", "", "h"),
        ("/?a=1&b", "/", "a=1&b", "h"),
        ("HTTP://Example.com", "/", "", "Example.com"),
        ("https://e.com?q=1", "/", "q=1", "e.com"),
        ("*", "*", "", "h"),
        ("e.com:443", "e.com:443", "", "h"),
        ("http://e.com/a@b?c@d", "/a@b", "c@d", "e.com"),  # an "@" past the authority
        ("http://e.com?c@d", "/", "c@d", "e.com"),
    ],
)
def test_request_head_path_query_authority(
    target: str, path: str, query: str, authority: str
) -> None:
    request = RequestHead("GET", target, Headers({"host": "h"}))
    assert (request.path, request.query_string, request.authority) == (path, query, authority)


def test_options_asterisk_and_connect_authority_forms() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.target == "*"
    conn = ServerConnection()
    [request, _] = feed(conn, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.method == "CONNECT"
    # RFC 9112 section 3.3: the target URI's authority is CONNECT's target, not Host
    assert request.authority == "example.com:443"
    assert RequestHead("CONNECT", "/", Headers({"host": "h"})).authority == "h"


def test_unknown_token_methods_are_accepted() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.method == "PROPFIND"


def test_field_values_are_trimmed_and_may_hold_htab_and_obs_text() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nX: \t a\tb \xe9 \t\r\nY:\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.headers["x"] == "a\tb \xe9"
    assert request.headers["y"] == ""


def test_content_length_body() -> None:
    conn = ServerConnection()
    events = feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel")
    assert events[1:] == [Data(b"hel")]
    assert conn.their_state is SEND_BODY
    assert feed(conn, b"lo") == [Data(b"lo"), EndOfMessage()]


@pytest.mark.parametrize("lengths", [[b"5, 5"], [b"5", b"5"], [b" 5 ,5"]])
def test_identical_content_length_values_are_accepted(lengths: list[bytes]) -> None:
    fields = b"".join(b"Content-Length: " + value + b"\r\n" for value in lengths)
    conn = ServerConnection()
    events = feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\nhello")
    assert events[1:] == [Data(b"hello"), EndOfMessage()]


def test_chunked_body_with_extensions_and_trailers() -> None:
    conn = ServerConnection()
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5;name=value ; x\r\nhello\r\n"
        b"A;ext\r\n0123456789\r\n"
        b"0\r\nX-Checksum: abc\r\nContent-Length: 99\r\n\r\n"
    )
    events = feed(conn, data)
    assert events[1:] == [
        Data(b"hello"),
        Data(b"0123456789"),
        EndOfMessage(Headers([("X-Checksum", "abc")])),
    ]


def test_chunked_body_split_everywhere() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    conn = ServerConnection()
    body = b""
    ended = False
    for byte in data:
        for event in feed(conn, bytes([byte])):
            if isinstance(event, Data):
                body += event.data
            ended = ended or isinstance(event, EndOfMessage)
    assert body == b"hello"
    assert ended


class CountingH11:
    """An h11 connection that counts the bytes it is given (wraps either build)."""

    given = 0

    def __init__(self, conn: object) -> None:
        self._conn = conn

    def receive_data(self, data: bytes) -> None:
        CountingH11.given += len(data)
        self._conn.receive_data(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_pipelined_requests_each_reach_h11_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The body hand-over invariant (module docstring of protocol/http11.py): bytes past
    # a keep-alive body of known length stay with us, so a backlog of pipelined
    # requests is handed to h11 once in all, not once per request answered.
    new_h11 = ServerConnection._new_h11
    monkeypatch.setattr(ServerConnection, "_new_h11", lambda self: CountingH11(new_h11(self)))
    CountingH11.given = 0
    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    data = (GET + post) * 100
    conn = ServerConnection()
    conn.receive_data(data)
    targets, bodies = [], b""
    while len(targets) < 200:
        events, blocked = events_until_blocked(conn)
        assert events, blocked
        for event in events:
            if isinstance(event, RequestHead):
                targets.append(event.target)
            elif isinstance(event, Data):
                bodies += event.data
            elif isinstance(event, EndOfMessage):
                conn.send_response(200, [], b"ok")
    assert targets == ["/", "/p"] * 100
    assert bodies == b"hello" * 100
    assert CountingH11.given == len(data)  # (before: the backlog again per request)
    assert conn.next_event() is NEED_DATA
    assert conn.idle


def test_a_body_split_before_a_pipelined_request_and_the_end_of_the_stream() -> None:
    conn = ServerConnection()
    head = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe"
    assert [type(e) for e in feed(conn, head)] == [RequestHead, Data]
    assert feed(conn, b"") == []
    events = feed(conn, b"llo" + GET + b"GET /3", eof=True)
    assert [type(e) for e in events] == [Data, EndOfMessage]
    assert conn.next_event() is PAUSED  # the next request waits for our response
    conn.send_response(200, [], b"one")
    assert [(type(e), getattr(e, "target", None)) for e in feed(conn, b"")] == [
        (RequestHead, "/"),
        (EndOfMessage, None),
    ]
    conn.send_response(200, [], b"two")
    with pytest.raises(RemoteProtocolError, match="disconnected in the middle"):
        conn.next_event()  # "GET /3" then the end of the stream


def test_a_body_and_a_pipelined_request_in_one_read_after_the_head() -> None:
    conn = ServerConnection()
    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
    assert [type(e) for e in feed(conn, post)] == [RequestHead]
    events = feed(conn, b"hello" + GET)
    assert [type(e) for e in events] == [Data, EndOfMessage]
    assert events[0].data == b"hello"  # type: ignore[attr-defined]
    conn.send_response(200, [], b"")
    events = feed(conn, b"", eof=True)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage, PeerClosed]


def test_a_request_read_before_the_previous_one_is_answered_waits_for_it() -> None:
    conn = ServerConnection()
    assert [type(e) for e in feed(conn, GET)] == [RequestHead, EndOfMessage]
    assert feed(conn, b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n") == []
    assert conn.next_event() is PAUSED
    conn.send_response(200, [], b"")
    assert [type(e) for e in feed(conn, b"")] == [RequestHead, EndOfMessage]


def test_pipelined_requests_are_answered_in_order() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    events, blocked = events_until_blocked(conn)
    assert [e.target for e in events if isinstance(e, RequestHead)] == ["/1"]
    assert blocked is PAUSED  # the second request waits for our first response
    conn.send_response(200, [], b"one")
    events, blocked = events_until_blocked(conn)
    assert [e.target for e in events if isinstance(e, RequestHead)] == ["/2"]
    assert blocked is NEED_DATA
    conn.send_response(200, [], b"two")
    out = conn.data_to_send()
    assert out.index(b"one") < out.index(b"two")


def test_client_close_between_requests_is_a_clean_connection_closed() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_response(204)
    assert feed(conn, b"", eof=True) == [PeerClosed()]
    assert conn.their_state is CLOSED
    assert conn.our_state is MUST_CLOSE


def test_eof_before_anything() -> None:
    conn = ServerConnection()
    assert feed(conn, b"", eof=True) == [PeerClosed()]
    with pytest.raises(LocalProtocolError, match="after receive_eof"):
        conn.receive_data(b"x")


def test_connection_close_request_closes_after_response() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert not conn.keep_alive
    conn.send_response(200, [("Content-Type", "text/plain")], b"bye")
    assert b"connection: close" in conn.data_to_send().lower()
    assert conn.must_close


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
    ],
)
def test_data_then_the_end_after_a_closing_message_is_refused_after_our_response(
    request_head: bytes,
) -> None:
    conn = ServerConnection()
    assert [type(e) for e in feed(conn, request_head + b"GARBAGE", eof=True)] == [
        RequestHead,
        EndOfMessage,
    ]
    conn.send_response(200, [], b"ok")
    assert conn.must_close
    with pytest.raises(RemoteProtocolError, match="after a message that ends"):
        conn.next_event()


def test_data_after_a_closing_message_is_buffered_until_our_response() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGARBAGE")
    assert conn.next_event() is PAUSED
    conn.send_response(200, [], b"ok")
    with pytest.raises(RemoteProtocolError, match="after a message that ends"):
        conn.next_event()
    assert conn.data_to_send().startswith(b"HTTP/1.1 200 OK")  # no error response added


def test_expect_100_continue() -> None:
    conn = ServerConnection()
    events = feed(
        conn,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    assert len(events) == 1
    assert conn.expect_continue
    conn.send_continue()
    assert conn.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.expect_continue
    conn.send_continue()  # a second call sends nothing
    assert conn.data_to_send() == b""
    assert feed(conn, b"ok") == [Data(b"ok"), EndOfMessage()]
    conn.send_response(200)
    assert conn.our_state is IDLE


def test_answering_without_the_expected_body_closes_the_connection() -> None:
    conn = ServerConnection()
    feed(conn, b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n")
    conn.send_response(417, [], b"no")
    assert b"connection: close" in conn.data_to_send().lower()
    assert conn.must_close


def test_expect_without_body_is_not_waiting() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
    assert not conn.expect_continue


def test_websocket_upgrade_hands_the_remaining_bytes_over() -> None:
    conn = ServerConnection()
    events = feed(
        conn,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"\r\n\x81\x05hello",
    )
    assert len(events) == 2
    assert conn.next_event() is PAUSED
    conn.send_response(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert conn.our_state is SWITCHED_PROTOCOL
    assert conn.their_state is SWITCHED_PROTOCOL
    assert conn.data_to_send() == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert conn.trailing_data == (b"\x81\x05hello", False)
    assert conn.next_event() is PAUSED


def test_refusing_an_upgrade_continues_as_http() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    conn.send_response(200, [], b"plain")
    assert conn.our_state is IDLE
    assert conn.their_state is IDLE


def test_101_without_a_proposal_is_refused() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="did not propose an upgrade"):
        conn.send_response(101)


CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
@pytest.mark.parametrize(
    "request_head", [GET, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"], ids=["GET", "HEAD"]
)
def test_a_205_says_it_is_empty_and_carries_nothing(request_head: bytes, streamed: bool) -> None:
    # RFC 9110 section 15.3.6: no content in a 205. Unlike a 204, a client frames it as
    # any response, so Content-Length: 0 goes out (else chunked framing would follow).
    conn = ServerConnection()
    feed(conn, request_head)
    if streamed:
        conn.start_response(205)
        assert not conn.response_has_body
        conn.send_data(b"dropped, as for a 204")
        conn.send_end()
    else:
        conn.send_response(205, [("Content-Length", "0")], b"")
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 205 Reset Content\r\n")
    assert out.lower().count(b"content-length: 0\r\n") == 1
    assert b"transfer-encoding" not in out.lower()
    assert out.endswith(b"\r\n\r\n")
    feed(conn, GET)  # the connection goes on to the next request
    assert conn.our_state is SEND_RESPONSE


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
def test_a_chunked_205_is_one_empty_chunk(streamed: bool) -> None:
    # RFC 9110 section 15.3.6 allows it: a handler passing an upstream's fields on.
    conn = ServerConnection()
    feed(conn, GET)
    if streamed:
        conn.start_response(205, [("Transfer-Encoding", "chunked")])
        conn.send_data(b"dropped")
        conn.send_end()
    else:
        conn.send_response(205, [("Transfer-Encoding", "chunked")], b"")
    out = conn.data_to_send()
    assert b"content-length" not in out.lower()
    assert out.endswith(b"\r\n\r\n0\r\n\r\n")
    feed(conn, GET)
    assert conn.our_state is SEND_RESPONSE


def test_an_error_response_205_cannot_carry_a_body() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError, match="205 response cannot have a body"):
        conn.send_error_response(205, None, b"x")
    conn.send_error_response(205)
    assert b"\r\ncontent-length: 0\r\n" in conn.data_to_send().lower()


@pytest.mark.parametrize(
    ("request_head", "status", "headers", "body"),
    [
        (GET, 200, [("X-A", "a\r\nSet-Cookie: evil=1")], b"x"),
        (GET, 200, [("X-Name", "caf\xe9")], b"x"),
        (GET, 200, [("Bad Name", "v")], b"x"),
        (GET, 200, [("X", "v ")], b"x"),
        (GET, 200, [("Content-Length", "10")], b"abc"),
        (GET, 200, [("Transfer-Encoding", "gzip")], b"abc"),
        (GET, 204, [], b"abc"),
        (GET, 205, [], b"abc"),
        (GET, 205, [("Content-Length", "3")], b"abc"),
        (GET, 205, [("Content-Length", "3")], None),
        (CONNECT, 200, [], b"tunnel? no"),
        (CONNECT, 204, [], b""),
        (CONNECT, 200, [], None),  # start_response
    ],
    ids=[
        "crlf",
        "non-ascii",
        "bad-name",
        "space",
        "length",
        "gzip",
        "204",
        "205",
        "205-length",
        "205-length-streamed",
        "connect",
        "c204",
        "cs",
    ],
)
def test_a_refused_response_changes_nothing_so_another_can_answer(
    request_head: bytes, status: int, headers: list[tuple[str, str]], body: bytes | None
) -> None:
    """What a server relies on to answer 500 for a response it cannot send."""
    conn = ServerConnection()
    feed(conn, request_head)
    with pytest.raises(LocalProtocolError):
        if body is None:
            conn.start_response(status, headers)
        else:
            conn.send_response(status, headers, body)
    assert conn.our_state is SEND_RESPONSE
    assert conn.data_to_send() == b""
    conn.send_response(500, [("Content-Type", "text/plain")], b"Internal Server Error\n")
    response, content = parse_response(conn.data_to_send())
    assert response.status_code == 500
    assert content == b"Internal Server Error\n"
    assert conn.our_state is IDLE  # and the connection goes on
    [request, _] = feed(conn, GET)
    assert isinstance(request, RequestHead)


def test_connect_is_answered_without_a_tunnel() -> None:
    """A 2xx would make h11 switch to a tunnel; any other answer keeps HTTP going."""
    conn = ServerConnection()
    feed(conn, CONNECT)
    with pytest.raises(LocalProtocolError, match="a 2xx answer opens a tunnel"):
        conn.send_response(200)
    conn.send_response(405, [("Allow", "GET")])
    assert conn.data_to_send().startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert (conn.our_state, conn.their_state) == (IDLE, IDLE)


def test_upgrade_header_without_connection_token_is_not_a_proposal() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send_response(101)


def test_receiving_head_and_idle_report_what_a_driver_times() -> None:
    conn = ServerConnection()
    assert conn.idle
    assert not conn.receiving_head
    feed(conn, b"GET / HT")
    assert conn.receiving_head
    assert not conn.idle
    feed(conn, b"TP/1.1\r\nHost: a\r\n\r\n")
    assert not conn.receiving_head
    conn.send_response(200)
    assert conn.idle


# ------------------------------------------------------------------------ rejected inputs

SMUGGLING_AND_FRAMING = [
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding",
        id="cl-and-te",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        400,
        "both",
        id="te-and-cl",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
        "bad content-length",
        id="cl-negative",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        400,
        "bad content-length",
        id="cl-plus",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
        400,
        "bad content-length",
        id="cl-non-digit",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
        400,
        "bad content-length",
        id="cl-hex",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xb2\r\n\r\n",
        400,
        "",
        id="cl-unicode-digit",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        400,
        "bad content-length",
        id="cl-empty",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
        400,
        "conflicting",
        id="cl-list-differs",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400,
        "conflicting",
        id="cl-lines-differ",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
        400,
        "too large",
        id="cl-2-63",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
        "bad content-length",
        id="cl-huge",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-gzip",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-chunked-not-last",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-identity",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-xchunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-gzip-chunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-chunked-twice",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
        "only transfer-encoding: chunked",
        id="te-two-lines",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0", id="te-in-http10"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        400,
        "incomplete chunked read",
        id="chunk-size-overflow",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n",
        400,
        "incomplete chunked read",
        id="chunk-size-2-63",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        "illegal chunk header",
        id="chunk-size-not-hex",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        400,
        "illegal chunk header",
        id="chunk-size-negative",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\n",
        400,
        "illegal chunk header",
        id="chunk-size-space",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
        400,
        "illegal chunk header",
        id="chunk-size-0x",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        400,
        "illegal chunk header",
        id="chunk-size-empty",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
        400,
        "malformed chunk footer",
        id="chunk-no-crlf",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello",
        400,
        "closed",
        id="chunk-line-bare-lf",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + b"x" * 20000,
        431,
        "chunk line",
        id="chunk-line-too-long",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \x00\r\n\r\n",
        400,
        "illegal header line",
        id="trailer-nul",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X: 1\r\n" * 20000,
        431,
        "trailer section",
        id="trailers-too-large",
    ),
]

HEAD_SYNTAX = [
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n continued\r\n\r\n",
        400,
        "obsolete line folding",
        id="obs-fold-space",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tcontinued\r\n\r\n",
        400,
        "obsolete line folding",
        id="obs-fold-tab",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        400,
        "whitespace between a field name",
        id="space-before-colon",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "whitespace between", id="tab-before-colon"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, "NUL", id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "bare CR", id="cr-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400, "bare LF", id="lf-in-value"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
        400,
        "control character 0x01",
        id="control-in-value",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, "0x7F", id="del-in-value"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF", id="bare-lf-lines"),
    pytest.param(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF", id="bare-lf-first"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\n\r\n\r\n", 400, "bare LF", id="bare-lf-mixed"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n",
        400,
        "illegal header line",
        id="bad-name",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400, "illegal header line", id="empty-name"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, "illegal header line", id="no-colon"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost\r\n\r\n",
        400,
        "illegal header line",
        id="cached-name-no-colon",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nX: 1\r\n\r\n", 400, "missing mandatory host", id="no-host"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "multiple host", id="two-hosts"
    ),
    pytest.param(
        b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
        400,
        "multiple host",
        id="two-hosts-http10",
    ),
    # RFC 9112 section 3.2: a Host that is no host[:port] is refused; it would make a
    # request URL whose host is something else.
    *(
        pytest.param(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400, "invalid host", id=name)
        for name, host in [
            ("host-with-path", b"evil.example/login?x="),
            ("host-with-userinfo", b"good.example@evil.example"),
            ("host-with-space", b"a b"),
            ("host-port-too-large", b"a:65536"),
            ("host-port-not-digits", b"a:8o"),
            ("host-half-escape", b"ex%4"),
            ("host-bad-ipv6", b"[1:2:3]"),
            ("host-ipv6-not-hex", b"[::zz]"),
            ("host-ipv6-unclosed", b"[::1"),
            ("host-non-ascii", b"\xe9.example"),
            ("host-port-of-5000-digits", b"a:" + b"9" * 5000),
            ("host-zone-with-a-bare-percent", b"[fe80::1%eth0]"),
            ("host-empty-zone", b"[fe80::1%25]"),
        ]
    ),
]

REQUEST_LINE = [
    pytest.param(
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/2.0 is not supported", id="http2"
    ),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "not supported", id="h2-preface"),
    pytest.param(b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, "not supported", id="http3"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "not supported", id="http12"),
    pytest.param(b"GET / HTTP/0.9\r\n\r\n", 505, "not supported", id="http09-version"),
    pytest.param(b"GET /\r\n", 505, "HTTP/0.9", id="http09-line"),
    pytest.param(
        b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, "invalid http version", id="lowercase-version"
    ),
    pytest.param(
        b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400, "invalid http version", id="version-junk"
    ),
    pytest.param(
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request line", id="double-space"
    ),
    pytest.param(
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "invalid request line", id="trailing-space"
    ),
    pytest.param(b"GET\r\n\r\n", 400, "invalid request line", id="one-word"),
    pytest.param(b"G(ET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method", id="bad-method"),
    pytest.param(b" / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method", id="empty-method"),
    pytest.param(
        b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target", id="bad-target"
    ),
    pytest.param(
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request target",
        id="asterisk-not-options",
    ),
    pytest.param(
        b"GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request target",
        id="ftp-absolute",
    ),
    pytest.param(
        b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request target",
        id="absolute-no-host",
    ),
    pytest.param(
        b"CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request target",
        id="connect-no-port",
    ),
    # RFC 9110 section 4.2.4: userinfo in a target is an error (it named the host
    # "user@host"); the message does not repeat the credentials.
    pytest.param(
        b"GET http://user@host/ HTTP/1.1\r\nHost: host\r\n\r\n",
        400,
        "userinfo",
        id="absolute-userinfo",
    ),
    pytest.param(
        b"GET http://user:secret@host?q HTTP/1.0\r\n\r\n",
        400,
        "userinfo",
        id="absolute-userinfo-http10",
    ),
    pytest.param(
        b"CONNECT user@host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n",
        400,
        "userinfo",
        id="connect-userinfo",
    ),
    pytest.param(b"GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "ascii", id="non-ascii-target"),
    pytest.param(
        b"GET /\ta HTTP/1.1\r\nHost: a\r\n\r\n", 400, "ascii without tabs", id="tab-in-target"
    ),
    pytest.param(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "", id="tls-client-hello"
    ),
]


@pytest.mark.parametrize(("data", "status", "fragment"), SMUGGLING_AND_FRAMING)
def test_framing_and_smuggling_vectors_are_refused(data: bytes, status: int, fragment: str) -> None:
    assert_rejected(data, status, fragment)


@pytest.mark.parametrize(("data", "status", "fragment"), HEAD_SYNTAX)
def test_head_syntax_violations_are_refused(data: bytes, status: int, fragment: str) -> None:
    assert_rejected(data, status, fragment)


@pytest.mark.parametrize(("data", "status", "fragment"), REQUEST_LINE)
def test_request_line_violations_are_refused(data: bytes, status: int, fragment: str) -> None:
    assert_rejected(data, status, fragment)


def test_smuggled_second_request_is_never_answered() -> None:
    """The CL.TE vector that uvicorn-h11 and hypercorn answer twice: we answer once."""
    smuggled = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
    attack = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + smuggled
    )
    conn = ServerConnection()
    conn.receive_data(attack)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    out = conn.data_to_send()
    assert out.count(b"HTTP/1.1 ") == 1
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(LocalProtocolError):
        conn.next_event()


# ------------------------------------------------------------------------ limits


def test_request_line_too_long_complete_and_incomplete() -> None:
    limits = Limits(max_request_line=100)
    assert_rejected(
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request line", limits=limits
    )
    assert_rejected(b"GET /" + b"a" * 200, 414, "request line", limits=limits)
    assert_rejected(
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 100 + b"\r\n",
        414,
        "request line",
        limits=Limits(max_request_line=100, max_header_bytes=400),
    )


def test_a_request_line_at_the_limit_passes_however_its_bytes_arrive() -> None:
    # Cut between its CR and LF, a line of exactly max_request_line bytes was refused
    # with 414 (the CR counted as part of the line); whole, it passed.
    limits = Limits(max_request_line=20)
    line = b"GET /aaaaaa HTTP/1.1"
    assert len(line) == 20
    data = line + b"\r\nHost: a\r\n\r\n"
    for cut in range(1, len(data)):
        conn = ServerConnection(limits)
        assert feed(conn, data[:cut]) == []
        assert [type(e) for e in feed(conn, data[cut:])] == [RequestHead, EndOfMessage]
    assert_rejected(b"GET /aaaaaaa HTTP/1.1\r", 414, "request line", limits=limits)
    assert_rejected(b"GET /aaaaaa HTTP/1.1\r\r", 414, "request line", limits=limits)


def test_header_section_too_large_complete_and_incomplete() -> None:
    limits = Limits(max_header_bytes=1000)
    big = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Padding: " + b"y" * 2000 + b"\r\n"
    assert_rejected(big + b"\r\n", 431, "header section", limits=limits)
    assert_rejected(big, 431, "header section", limits=limits)


def test_too_many_header_fields() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 100 + b"\r\n"
    assert_rejected(data, 431, "too many header fields")
    conn = ServerConnection(Limits(max_header_fields=101))
    assert len(feed(conn, data)) == 2


def test_default_limits() -> None:
    limits = Limits()
    assert limits.max_header_bytes <= 64 * 1024
    assert limits.max_header_fields == 100
    assert limits.max_body_bytes == 16 * 1024 * 1024
    assert Limits.client().max_body_bytes is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_request_line": 0},
        {"max_header_bytes": -1},
        {"max_header_fields": "5"},
        {"max_body_bytes": -1},
        {"max_body_bytes": 1.5},
    ],
)
def test_invalid_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Limits"):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_body_too_large_by_content_length_is_refused_before_reading_it() -> None:
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
        413,
        "larger than 10 bytes",
        limits=Limits(max_body_bytes=10),
    )


def test_chunked_body_too_large_is_refused_while_reading() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n"
    assert_rejected(data, 413, "larger than 10 bytes", limits=Limits(max_body_bytes=10))


def test_body_limit_none_disables_it() -> None:
    conn = ServerConnection(Limits(max_body_bytes=None))
    events = feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n" + b"x" * 20)
    assert events[-1] == EndOfMessage()


def test_disconnects_mid_head_and_mid_body() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHo")
    conn.receive_eof()
    with pytest.raises(RemoteProtocolError, match="middle of the request head"):
        conn.next_event()
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn.receive_eof()
    assert [type(e) for e in conn.events_received()] == [RequestHead, Data]  # then:
    with pytest.raises(RemoteProtocolError, match="received 3 bytes, expected 10"):
        conn.events_received()
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
    conn.receive_eof()
    assert [type(e) for e in conn.events_received()] == [RequestHead, Data]  # then:
    with pytest.raises(RemoteProtocolError, match="incomplete chunked read"):
        conn.events_received()
    with pytest.raises(LocalProtocolError, match="broken by an earlier protocol error"):
        conn.next_event()  # the error is raised once


def test_error_response_not_sent_when_our_response_started() -> None:
    conn = ServerConnection()
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn.start_response(200, [("Content-Length", "2")])
    conn.data_to_send()
    conn.receive_eof()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.data_to_send() == b""


# ------------------------------------------------------------------------ responses


def test_response_framing_content_length_added() -> None:
    conn = ServerConnection(default_headers=[("date", "D"), ("server", "S")])
    feed(conn, GET)
    conn.send_response(201, {"Content-Type": "text/plain"}, b"made")
    assert conn.data_to_send() == (
        b"HTTP/1.1 201 Created\r\ndate: D\r\nserver: S\r\nContent-Type: text/plain\r\n"
        b"content-length: 4\r\n\r\nmade"
    )


def test_a_response_field_replaces_the_default_of_the_same_name() -> None:
    # Date and Server are singletons (RFC 9110 section 5.3): the response's own wins.
    conn = ServerConnection(default_headers=[("date", "D"), ("server", "S")])
    feed(conn, GET + GET + GET)
    conn.send_response(200, [("Server", "app"), ("DATE", "mine")], b"")
    assert conn.data_to_send() == (
        b"HTTP/1.1 200 OK\r\nServer: app\r\nDATE: mine\r\ncontent-length: 0\r\n\r\n"
    )
    assert conn.default_headers == [("date", "D"), ("server", "S")]  # unchanged
    conn.next_event(), conn.next_event()
    conn.start_response(200, {"server": "app"})
    assert conn.data_to_send() == (
        b"HTTP/1.1 200 OK\r\ndate: D\r\nserver: app\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    conn.send_end()
    conn.data_to_send()
    conn.next_event(), conn.next_event()
    conn.send_informational(103, [("Server", "app"), ("Link", "</a>")])
    conn.send_error_response(503, [("Date", "mine")])
    assert conn.data_to_send() == (
        b"HTTP/1.1 103 Early Hints\r\ndate: D\r\nServer: app\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 503 Service Unavailable\r\nserver: S\r\nDate: mine\r\n"
        b"content-length: 0\r\nconnection: close\r\n\r\n"
    )


def test_response_with_matching_and_mismatching_content_length() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="does not match"):
        conn.send_response(200, [("Content-Length", "3")], b"four")
    conn.send_response(200, [("Content-Length", "4")], b"four")
    assert conn.data_to_send().endswith(b"Content-Length: 4\r\n\r\nfour")


def test_head_request_gets_length_but_no_body() -> None:
    conn = ServerConnection()
    feed(conn, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.send_response(200, [], b"hello")
    assert conn.data_to_send() == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert conn.our_state is IDLE
    feed(conn, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.start_response(200, [("Content-Length", "100")])
    conn.send_data(b"dropped")
    conn.send_end()
    assert conn.data_to_send() == b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"


@pytest.mark.parametrize(
    ("request_head", "status", "has_body"),
    [
        (GET, 200, True),
        (GET, 204, False),
        (GET, 304, False),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 200, False),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 404, True),
    ],
)
def test_response_has_body(request_head: bytes, status: int, has_body: bool) -> None:
    """What a driver streaming a body reads to skip producing one nobody gets."""
    conn = ServerConnection()
    feed(conn, request_head)
    conn.start_response(status)
    assert conn.response_has_body is has_body
    conn.send_end()
    assert conn.our_state is IDLE
    feed(conn, GET)  # the next request starts with a clean slate
    assert conn.response_has_body


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="cannot have a body"):
        conn.send_response(status, [], b"x")
    conn.send_response(status)
    data = conn.data_to_send()
    assert b"content-length" not in data.lower()
    assert data.endswith(b"\r\n\r\n")


def test_streamed_response_is_chunked_for_http11_with_trailers() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.start_response(200, [("Trailer", "X-Sum")])
    conn.send_data(b"hello")
    conn.send_data(b"")
    conn.send_end([("X-Sum", "1")])
    assert conn.data_to_send() == (
        b"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"
    )


def test_streamed_response_with_user_transfer_encoding_and_complete_body() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_response(200, [("Transfer-Encoding", "chunked")], b"abc")
    assert conn.data_to_send().endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


def test_streamed_response_for_http10_is_close_delimited() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    conn.start_response(200)
    conn.send_data(b"abc")
    conn.send_end()
    assert conn.data_to_send() == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"
    assert conn.must_close


def test_streamed_response_with_content_length() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.start_response(200, [("Content-Length", "3")])
    with pytest.raises(LocalProtocolError, match="Too much data"):
        conn.send_data(b"abcd")
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError, match="1 bytes short"):
        conn.send_end()
    conn.send_data(b"c")
    with pytest.raises(LocalProtocolError, match="Trailers need a chunked body"):
        conn.send_end({"x": "1"})
    conn.send_end()
    assert conn.data_to_send().endswith(b"Content-Length: 3\r\n\r\nabc")
    assert conn.our_state is IDLE


def test_streamed_response_with_invalid_content_length() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="Invalid Content-Length"):
        conn.start_response(200, [("Content-Length", "x")])


def test_response_connection_close_from_the_handler() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_response(200, [("Connection", "close")], b"")
    assert conn.data_to_send().lower().count(b"connection: close") == 1
    assert conn.must_close


def test_custom_reason_and_unknown_status() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_response(299, [], b"", reason="Fine Thanks")
    assert conn.data_to_send().startswith(b"HTTP/1.1 299 Fine Thanks\r\n")
    feed(conn, GET)
    conn.send_response(599)
    assert conn.data_to_send().startswith(b"HTTP/1.1 599 \r\n")


@pytest.mark.parametrize("status", [99, 1000, "200", 100, 103])
def test_invalid_statuses(status: object) -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError):
        conn.send_response(status)  # type: ignore[arg-type]


def test_informational_responses() -> None:
    conn = ServerConnection()
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    conn.send_informational(103, [("Link", "</s.css>; rel=preload")])
    conn.send_informational(100)
    assert not conn.expect_continue
    assert conn.data_to_send() == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
    )
    with pytest.raises(LocalProtocolError, match="1xx status other than 101"):
        conn.send_informational(200)
    with pytest.raises(LocalProtocolError, match="1xx status other than 101"):
        conn.send_informational(101)
    feed(conn, b"x")
    conn.send_response(200)
    with pytest.raises(LocalProtocolError, match="Can't send a 103"):
        conn.send_informational(103)


def test_a_body_that_is_not_bytes_is_refused_before_anything_is_sent() -> None:
    # h11 failed half-way through writing it: a bare TypeError, the head queued and the
    # connection broken (ERROR, or SEND_BODY with half a message).
    conn = ServerConnection()
    feed(conn, GET)
    for send in (
        lambda: conn.send_response(200, [], "text"),  # type: ignore[arg-type]
        lambda: conn.send_error_response(500, [], "text"),  # type: ignore[arg-type]
    ):
        with pytest.raises(LocalProtocolError, match="A body is bytes, not str"):
            send()
        assert conn.our_state is SEND_RESPONSE
        assert conn.data_to_send() == b""
    conn.start_response(200)
    for piece in ("text", 7, None):
        with pytest.raises(LocalProtocolError, match="A body is bytes, not"):
            conn.send_data(piece)  # type: ignore[arg-type]
    assert conn.our_state is SEND_BODY
    conn.send_data(bytearray(b"ab"))  # bytes-like pieces are fine
    conn.send_data(memoryview(b"c"))
    conn.send_data(_Bytes(b"d"))  # a subclass of bytes is bytes
    conn.send_end()
    assert conn.data_to_send().endswith(b"\r\n\r\n2\r\nab\r\n1\r\nc\r\n1\r\nd\r\n0\r\n\r\n")
    assert conn.our_state is IDLE
    feed(conn, GET)
    conn.send_response(200, [], _Bytes(b"ok"))
    assert conn.data_to_send().endswith(b"\r\n\r\nok")


class _Bytes(bytes):
    """A subclass of bytes, as some libraries return (refused as "not bytes" once)."""


def test_one_response_per_request() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError, match="one response per request"):
        conn.send_response(200)
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    conn.send_response(200)
    with pytest.raises(LocalProtocolError, match="one response per request"):
        conn.send_response(200)
    with pytest.raises(LocalProtocolError, match="Can't send body data"):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError, match="Can't end a message"):
        conn.send_end()


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ([("X", "a\r\nInjected: 1")], "value of header 'X'"),
        ([("X", "a\nb")], "value of header 'X' .* control character"),
        ([("X", "a\x00b")], "value of header 'X' .* control character"),
        ([("X", "a\x7fb")], "value of header 'X' .* control character"),
        ([("X", b"a\x7fb")], "value of header 'X' .* control character"),
        ([("Bad Name", "1")], "Illegal header name"),
        ([("Bad:Name", "1")], "Illegal header name"),
        ([("", "1")], "Illegal header name"),
    ],
)
def test_response_header_injection_is_refused(
    headers: list[tuple[str, str]], fragment: str
) -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match=fragment):
        conn.send_response(200, headers, b"")
    conn.send_response(200, [], b"still usable")
    assert conn.our_state is IDLE


def test_reason_injection_is_refused() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="start line"):
        conn.send_response(200, reason="OK\r\nX: 1")


def test_non_ascii_text_values_are_refused_and_bytes_pass_through() -> None:
    # HTTP/1.1 fields are bytes: h11 and httpx refuse non-ASCII text (it used to go out
    # as UTF-8 and come back as Latin-1, "héllo" -> "hÃ©llo").
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        conn.send_response(200, [("X-Name", "Zoë 🚀")], b"")
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        conn.send_response(200, Headers({"X-Name": "héllo→"}), b"")
    assert conn.data_to_send() == b""
    conn.send_response(200, Headers({"X-Name": "Zoë 🚀".encode()}), b"")
    assert "\r\nX-Name: Zoë 🚀\r\n".encode() in conn.data_to_send()


def test_received_obs_text_goes_back_out_as_the_same_bytes() -> None:
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: Zo\xc3\xab\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.headers["x-name"] == "Zo\xc3\xab"  # Latin-1, as RFC 9110 reads obs-text
    conn.send_response(200, [("X-Echo", request.headers["x-name"])], b"")
    assert b"\r\nX-Echo: Zo\xc3\xab\r\n" in conn.data_to_send()


def test_unread_request_body_forces_close() -> None:
    conn = ServerConnection()
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn.send_response(413, [], b"too big")
    assert conn.must_close
    assert conn.their_state is SEND_BODY


def test_send_eof_records_our_close() -> None:
    conn = ServerConnection()
    conn.send_eof()
    assert conn.our_state is CLOSED
    conn.send_eof()
    assert conn.our_state is CLOSED
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_eof()  # closing mid-cycle is an error on our side
    assert conn.our_state is ERROR
    conn.send_eof()
    assert conn.our_state is ERROR


def test_only_empty_lines_then_eof_is_a_clean_close() -> None:
    conn = ServerConnection()
    assert feed(conn, b"\r\n\r\n", eof=True) == [PeerClosed()]


def test_send_error_response_before_any_request() -> None:
    conn = ServerConnection(default_headers=[("server", "s")])
    conn.send_error_response(503, [("content-type", "text/plain")], b"busy")
    assert conn.data_to_send() == (
        b"HTTP/1.1 503 Service Unavailable\r\nserver: s\r\ncontent-type: text/plain\r\n"
        b"content-length: 4\r\nconnection: close\r\n\r\nbusy"
    )
    assert conn.must_close
    with pytest.raises(LocalProtocolError, match="Can't send an error response now"):
        conn.send_error_response(500)


def test_send_error_response_refuses_misuse_and_changes_nothing() -> None:
    # A status h11 refuses (1xx, 101, not an int) and a field name that is not a token
    # raised h11's own LocalProtocolError; a 204 or 304 with a body queued a head with
    # a Content-Length, then left the connection in ERROR.
    conn = ServerConnection()
    feed(conn, GET)
    for status in (100, 101, 99, 1000, "500", True):
        with pytest.raises(LocalProtocolError, match="for an error response: use 200 to 999"):
            conn.send_error_response(status)  # type: ignore[arg-type]
    for status in (204, 304):
        with pytest.raises(LocalProtocolError, match=f"A {status} response cannot have a body"):
            conn.send_error_response(status, [], b"x")
    with pytest.raises(LocalProtocolError, match="refused by h11"):
        conn.send_error_response(500, [("bad name", "x")])
    assert conn.our_state is SEND_RESPONSE
    assert not conn.must_close
    assert conn.data_to_send() == b""
    conn.send_error_response(204)  # no body, so no Content-Length either
    assert conn.data_to_send() == b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    assert conn.must_close


def test_disable_keep_alive_closes_after_the_response() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.disable_keep_alive()
    conn.send_response(200, [], b"ok")
    assert b"connection: close" in conn.data_to_send().lower()
    assert conn.must_close


# ---------------------------------------------------------------- review 2026-12-07


def test_events_received_returns_the_events_before_a_protocol_error_then_raises_it() -> None:
    conn = ServerConnection()
    conn.receive_data(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    )
    events = conn.events_received()  # before: the error, and the head and body lost
    assert [type(e) for e in events] == [RequestHead, Data]
    assert events[1] == Data(b"hello")
    with pytest.raises(RemoteProtocolError) as info:
        conn.events_received()
    assert info.value.status_hint == 400
    head, _ = parse_response(conn.data_to_send())  # the error response was queued
    assert head.status_code == 400
    with pytest.raises(LocalProtocolError, match="broken by an earlier protocol error"):
        conn.events_received()


def test_events_received_stops_at_the_peer_close() -> None:
    conn = ServerConnection()
    conn.receive_eof()
    assert conn.events_received() == [PeerClosed()]


def test_a_body_of_wide_memoryview_items_is_measured_in_bytes() -> None:
    import array

    body = memoryview(array.array("I", [0x41424344] * 4))  # 4 items, 16 bytes
    conn = ServerConnection()
    feed(conn, GET)
    conn.send_response(200, [], body)
    _, received = parse_response(conn.data_to_send())  # before: content-length: 4
    assert received == body.tobytes()
    conn = ServerConnection()
    feed(conn, GET)
    conn.start_response(200, [("Content-Length", "16")])
    conn.send_data(body[::2])  # not contiguous: 8 bytes
    conn.send_data(body[1::2])
    conn.send_end()
    assert parse_response(conn.data_to_send())[1] == body[::2].tobytes() + body[1::2].tobytes()


def test_a_request_head_after_an_error_response_is_refused_as_our_misuse() -> None:
    # send_error_response(408) while a head is arriving, then the rest of the head:
    # the connection is over (before: an AttributeError from inside h11).
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert conn.next_event() is NEED_DATA
    conn.send_error_response(408)
    assert conn.must_close
    conn.receive_data(b"\r\n")
    with pytest.raises(LocalProtocolError, match="close the transport"):
        conn.next_event()


@pytest.mark.parametrize(
    ("status", "headers"),
    [(204, []), (204, [("Content-Length", "3")]), (304, []), (304, [("Content-Length", "3")])],
)
def test_a_body_on_a_response_that_has_none_is_refused(
    status: int, headers: list[tuple[str, str]]
) -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match=f"A {status} response cannot have a body"):
        conn.send_response(status, headers, b"abc")  # before: the body dropped silently
    assert conn.data_to_send() == b""
    assert conn.our_state is SEND_RESPONSE


def test_a_101_with_a_body_is_refused() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="A 101 response cannot have a body"):
        conn.send_response(101, [("Upgrade", "x"), ("Connection", "upgrade")], b"lost")
    conn.send_response(101, [("Upgrade", "x"), ("Connection", "upgrade")])
    assert conn.our_state is SWITCHED_PROTOCOL


def test_a_204_cannot_declare_content() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match="cannot declare content"):
        conn.start_response(204, [("Content-Length", "3")])
    conn.send_response(304, [("Content-Length", "3")])  # a 304 may (the representation's)
    assert b"content-length: 3" in conn.data_to_send().lower()


def test_a_refused_response_changes_nothing() -> None:
    conn = ServerConnection()
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert conn.expect_continue
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [("X-Bad", "a\r\nb")], b"")
    assert conn.expect_continue  # before: False, and must_close True
    assert not conn.must_close
    conn.send_continue()
    assert conn.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert [type(e) for e in feed(conn, b"abc")] == [Data, EndOfMessage]
    conn.send_response(200, [], b"")
    assert conn.our_state is IDLE


def test_an_error_response_of_2xx_to_connect_is_refused_before_anything_is_queued() -> None:
    conn = ServerConnection()
    feed(conn, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="Can't answer CONNECT with 200"):
        conn.send_error_response(200)
    assert conn.data_to_send() == b""  # before: a head queued, then ERROR
    conn.send_error_response(501)
    assert parse_response(conn.data_to_send())[0].status_code == 501
