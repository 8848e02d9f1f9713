"""The layer over h11: which build runs, what we send and refuse that h11 alone would not,
and that misuse leaves the connection as it was (h11 would have gone to ERROR)."""

from __future__ import annotations

import os
import sys

import h11
import pytest

from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from sansnet.protocol import (
    H11_BUILD,
    IDLE,
    MIGHT_SWITCH_PROTOCOL,
    SEND_BODY,
    ClientConnection,
    Data,
    EndOfMessage,
    Headers,
    Limits,
    RequestHead,
    ResponseHead,
    ServerConnection,
    _h11,
    check_fields,
)

from .helpers import feed

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


# ------------------------------------------------------------------ which h11


def test_the_build_in_use_is_the_compiled_one_when_installed() -> None:
    module, name = _h11.load({})
    try:
        import h11_mypyc  # noqa: F401
    except ImportError:  # pragma: no cover - the dev extra installs it
        assert (module, name) == (h11, "h11")
    else:
        assert name == "h11_mypyc"
        assert module is sys.modules["h11_mypyc"]
    assert H11_BUILD in ("h11", "h11_mypyc")


def test_the_build_follows_the_environment() -> None:
    # CI runs the suites twice: with h11_mypyc (the dev extra), and with SANSNET_PURE_H11=1.
    pure = os.environ.get("SANSNET_PURE_H11", "") not in ("", "0")
    expected = "h11" if pure else "h11_mypyc"
    assert expected == H11_BUILD


@pytest.mark.parametrize("value", ["1", "yes"])
def test_sansnet_pure_h11_forces_pure_h11(value: str) -> None:
    assert _h11.load({"SANSNET_PURE_H11": value}) == (h11, "h11")


def test_without_the_compiled_build_pure_h11_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h11_mypyc", None)  # import fails
    assert _h11.load({"SANSNET_PURE_H11": "0"}) == (h11, "h11")


# ------------------------------------------------------------------ fields we send


def test_check_fields_says_what_h11_would_refuse() -> None:
    check_fields([("X-Ok", "a b"), ("Empty", "")])
    with pytest.raises(LocalProtocolError, match="Illegal header name"):
        check_fields([("X Y", "1")])
    with pytest.raises(LocalProtocolError, match="whitespace at either end"):
        check_fields([("X", " padded ")])


def test_check_fields_takes_a_host_field_of_our_own() -> None:
    # A request may name its own Host (virtual hosting to an address, as curl -H):
    # send_request sends it instead of the connection's. check_fields built its probe
    # request with a Host of its own beside it and refused: "multiple Host: headers".
    check_fields([("Host", "example.com")])
    check_fields([("host", "")])
    with pytest.raises(LocalProtocolError, match="multiple Host"):
        check_fields([("Host", "a.example"), ("HOST", "b.example")])


def test_check_fields_takes_bytes_names_and_values_as_its_docstring_says() -> None:
    # A bytes name or value was refused with "must be str or bytes, not bytes".
    check_fields([("X", b"caf\xe9"), (b"X-B", b"y"), (b"X-C", "z")])
    with pytest.raises(LocalProtocolError, match="control character"):
        check_fields([("X", b"a\x01")])
    with pytest.raises(LocalProtocolError, match="Illegal header name"):
        check_fields([(b"X Y", b"1")])
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        check_fields([("X", "caf\xe9")])


@pytest.mark.parametrize(
    "wrong",
    ["abc", 5, None, {"X": "1"}, ["ab"], [("X", "1", "2")], [("X",)], [("X", 5)], [("X", ["1"])]],
)
def test_check_fields_refuses_what_is_not_name_value_pairs_as_a_bad_argument(
    wrong: object,
) -> None:
    # "abc" leaked a bare ValueError (not enough values to unpack), and ["ab"] passed
    # as the field a: b.
    with pytest.raises(InvalidArgument, match=r"^check_fields\(\) takes a list of \(name, value\)"):
        check_fields(wrong)  # type: ignore[arg-type]


BAD_DEFAULTS: list[object] = [
    1,
    "ab",
    {"X-A": "1"},
    [("Server", "s", "extra")],
    [("X-A",)],
    ["ab"],
    [()],
    [5],
    [(5, "x")],
    [("X-Number", 5)],
    [("X", ["1"])],
    [(b"X", b"y")],
]


@pytest.mark.parametrize("wrong", BAD_DEFAULTS)
def test_default_headers_are_checked_when_the_connection_is_made(wrong: object) -> None:
    # ClientConnection(default_headers=1) leaked a bare TypeError; a dict or a 3-tuple
    # leaked a ValueError later, from send_request / send_response.
    for make in (
        lambda: ServerConnection(default_headers=wrong),  # type: ignore[arg-type]
        lambda: ClientConnection("a", default_headers=wrong),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidArgument, match=r"^default_headers must be a list of \(name"):
            make()
    # What they take: lists or tuples of pairs (a pair may be a list) of str; bytes go
    # as Headers.raw_items() gives them (Latin-1 text).
    ServerConnection(default_headers=(("Server", "s"), ["X", "1"]))  # type: ignore[arg-type]
    client = ClientConnection("a", default_headers=Headers({"X": b"h\xe9"}).raw_items())
    client.send_request("GET", "/")
    assert b"X: h\xe9\r\n" in client.data_to_send()


@pytest.mark.parametrize(
    "wrong",
    [["X-A: 1"], [("Server", "s", "extra")], [("X-A",)], [()], [5], [(5, "x")], [("X", ["1"])]],
)
def test_default_headers_broken_later_in_place_give_a_typed_error_at_use(
    wrong: list[object],
) -> None:
    # A driver may change the list in place: a bad field added later raised a bare
    # ValueError / TypeError / AttributeError from send_response and co. (Checked where
    # a bad field breaks the send, at no cost to the others: a str of exactly two
    # characters still passes as a name and a value.)
    for send in (
        lambda conn: conn.send_response(200),
        lambda conn: conn.send_response(200, [("X-Own", "1")], b"x"),
        lambda conn: conn.start_response(200),
        lambda conn: conn.send_informational(103),
        lambda conn: conn.send_error_response(500),
        lambda conn: conn.send_error_response(500, [("X-Own", "1")]),
    ):
        defaults = [("Server", "s")]
        server = ServerConnection(default_headers=defaults)
        feed(server, GET)
        defaults.extend(wrong)
        with pytest.raises((LocalProtocolError, InvalidArgument)) as info:
            send(server)
        assert type(info.value) is LocalProtocolError
        assert server.data_to_send() == b""
        defaults[1:] = []  # fixed: the connection was left as it was
        send(server)
        assert server.data_to_send().startswith(b"HTTP/1.1 ")
    for send in (
        lambda conn: conn.send_request("GET", "/"),
        lambda conn: conn.send_request("POST", "/", [("X-Own", "1")], b"x"),
        lambda conn: conn.start_request("POST", "/"),
    ):
        client = ClientConnection("a", default_headers=[("User-Agent", "u")])
        client.default_headers.extend(wrong)  # type: ignore[arg-type]
        with pytest.raises((LocalProtocolError, InvalidArgument)) as info:
            send(client)
        assert type(info.value) is LocalProtocolError
        assert client.data_to_send() == b""
        assert client.our_state is IDLE
    # A replaced list is checked too, and the message says what to do.
    server = ServerConnection()
    feed(server, GET)
    for replaced in (wrong, {"X-A": "1"}, 5):
        server.default_headers = replaced  # type: ignore[assignment]
        with pytest.raises(LocalProtocolError, match="changed after the connection was made"):
            server.send_response(200)


def test_with_good_default_headers_a_send_keeps_its_own_error() -> None:
    server = ServerConnection(default_headers=[("Server", "s")])
    feed(server, GET)
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        server.send_informational(103, [("Link", "caf\xe9")])
    with pytest.raises(LocalProtocolError, match="pairs, not 'a'"):
        server.send_error_response(500, "ab")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="does not match the body"):
        server.send_response(200, [("Content-Length", "5")], b"x")
    client = ClientConnection("a")
    with pytest.raises(LocalProtocolError, match="Invalid method"):
        client.send_request("G T", "/")
    assert server.data_to_send() == client.data_to_send() == b""


def test_receive_data_takes_bytes_only() -> None:
    # A str raised a bare TypeError ("can't concat str to bytearray"), and None (the
    # end of the stream for wsproto) was taken as no data at all: a driver waiting
    # for the end of a close-delimited body waited forever. The WebSocket engine
    # already refused both so.
    for conn in (ServerConnection(), ClientConnection("a", 80)):
        for wrong in (None, "text", 7):
            with pytest.raises(LocalProtocolError, match="receive_data\\(\\) takes bytes"):
                conn.receive_data(wrong)  # type: ignore[arg-type]
    server = ServerConnection()
    server.receive_data(bytearray(GET[:5]))
    server.receive_data(memoryview(GET[5:]))
    assert type(server.next_event()) is RequestHead
    client = ClientConnection("a", 80)
    client.send_request("GET", "/")
    client.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    assert type(client.next_event()) is ResponseHead
    with pytest.raises(LocalProtocolError, match="receive_data\\(\\) takes bytes"):
        client.receive_data("body")  # type: ignore[arg-type]
    # h11_mypyc (the speedups build) takes bytes only: a bytearray or memoryview in
    # the body raised its bare TypeError ("bytes object expected").
    client.receive_data(memoryview(b"bo"))
    client.receive_data(bytearray(b"dy"))
    assert b"".join(e.data for e in client.events_received() if type(e) is Data) == b"body"


def test_values_that_are_not_text_are_a_typed_error() -> None:
    with pytest.raises(InvalidArgument, match=r"not \('X-Number', 5\)"):
        ServerConnection(default_headers=[("X-Number", 5)])  # type: ignore[list-item]
    conn = ServerConnection(default_headers=[])
    conn.default_headers.append(("X-Number", 5))  # type: ignore[arg-type]
    feed(conn, GET)
    with pytest.raises(LocalProtocolError, match=r"not \('X-Number', 5\)"):
        conn.send_response(200)
    with pytest.raises(LocalProtocolError, match="must be str, bytes or int, not float"):
        ClientConnection("a").send_request("GET", "/", {"X": 1.5})  # type: ignore[dict-item]


def test_the_memo_of_sent_fields_is_bounded_and_keeps_every_rule() -> None:
    from sansnet.protocol import http11

    conn = ClientConnection("a")
    for n in range(http11._SENT_SIZE + 10):  # fills the memo, which then starts over
        conn.send_request("GET", "/", [("X-N", str(n))])
        assert f"x-n: {n}\r\n".encode() in conn.data_to_send().lower()
        feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
        assert len(http11._SENT) <= http11._SENT_SIZE
    # Latin-1 text from received bytes passes; the same text as a plain str never
    # does, whatever passed before (the memo holds only ASCII str fields).
    conn.send_request("GET", "/", Headers({"X": b"h\xe9"}))
    assert b"X: h\xe9\r\n" in conn.data_to_send()
    feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    for _ in range(2):
        with pytest.raises(LocalProtocolError, match="not ASCII"):
            conn.send_request("GET", "/", [("X", "h\xe9")])
    conn.send_request("GET", "/", [["X-List", "1"]])  # type: ignore[list-item]
    assert b"X-List: 1\r\n" in conn.data_to_send()


def test_the_memo_of_request_fields_is_bounded_and_keeps_every_rule() -> None:
    from sansnet.protocol import http11

    conn = ClientConnection("a")
    fields = [("X-A", "1"), ("X-B", "2")]
    for _ in range(2):  # the second request takes the fields h11 made for the first
        conn.send_request("GET", "/p", fields)
        assert conn.data_to_send() == (
            b"GET /p HTTP/1.1\r\nHost: a\r\nUser-Agent: "
            + http11.USER_AGENT.encode()
            + b"\r\nAccept: */*\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
        )
        feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
    key = (("Host", "a"), ("User-Agent", http11.USER_AGENT), ("Accept", "*/*"), *fields)
    assert key in http11._REQUEST_FIELDS
    # The method and target are still checked when the fields are remembered.
    with pytest.raises(LocalProtocolError, match="Invalid request target"):
        conn.send_request("GET", "/\x7f", fields)
    assert conn.data_to_send() == b""
    # Not remembered: Latin-1 text, long values.
    for given in (Headers({"X": b"h\xe9"}), [("X-Long", "v" * 300)]):
        conn.send_request("GET", "/", given)
        conn.data_to_send()
        feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
        assert not any(k[3:] == tuple(http11._as_items(given)) for k in http11._REQUEST_FIELDS)
    odd = ClientConnection("a", default_headers=[["X-List", "1"]])  # type: ignore[list-item]
    for _ in range(2):
        odd.send_request("GET", "/")
        assert b"X-List: 1\r\n" in odd.data_to_send()
        feed(odd, b"HTTP/1.1 204 No Content\r\n\r\n")
    # A second Host is refused every time (ours), an illegal name too (h11's).
    for _ in range(2):
        with pytest.raises(LocalProtocolError, match="one Host"):
            conn.send_request("GET", "/", [("Host", "a"), ("Host", "b")])
        with pytest.raises(LocalProtocolError, match="Illegal header name"):
            conn.send_request("GET", "/", [("X Y", "1")])
    for n in range(http11._REQUEST_FIELDS_SIZE + 10):  # fills the memo, which starts over
        conn.send_request("GET", "/", [("X-N", str(n))])
        assert f"X-N: {n}\r\n".encode() in conn.data_to_send()
        feed(conn, b"HTTP/1.1 204 No Content\r\n\r\n")
        assert len(http11._REQUEST_FIELDS) <= http11._REQUEST_FIELDS_SIZE


def test_bytes_values_with_control_characters_are_refused() -> None:
    conn = ClientConnection("a")
    with pytest.raises(LocalProtocolError, match="control character"):
        conn.send_request("GET", "/", Headers({"X": b"\xe9\x01"}))
    assert conn.data_to_send() == b""
    assert conn.our_state is IDLE


def test_a_refused_trailer_changes_nothing() -> None:
    conn = ServerConnection()
    feed(conn, GET)
    conn.start_response(200)
    with pytest.raises(LocalProtocolError, match="Illegal header name"):
        conn.send_end([("X Y", "1")])
    assert conn.our_state is SEND_BODY
    conn.send_end([("X-Sum", "1")])
    assert conn.data_to_send().endswith(b"0\r\nX-Sum: 1\r\n\r\n")


def test_trailers_to_an_http10_client_are_refused_before_h11_sees_them() -> None:
    conn = ServerConnection()
    feed(conn, b"GET / HTTP/1.0\r\n\r\n")
    conn.start_response(200, [("Transfer-Encoding", "chunked")])  # h11: close-delimited
    with pytest.raises(LocalProtocolError, match="Trailers need a chunked body"):
        conn.send_end([("X-Sum", "1")])
    conn.send_data(b"abc")
    conn.send_end()
    assert conn.data_to_send().endswith(b"\r\n\r\nabc")


def test_a_client_that_disabled_keep_alive_says_connection_close() -> None:
    conn = ClientConnection("a")
    conn.disable_keep_alive()
    conn.send_request("GET", "/")
    assert b"\r\nConnection: close\r\n" in conn.data_to_send()
    assert not conn.keep_alive


# ------------------------------------------------------------------ what we refuse


def test_a_bad_target_on_an_http10_line_is_refused_before_h11() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET nope HTTP/1.0\r\n")
    with pytest.raises(RemoteProtocolError, match="Invalid request target 'nope'"):
        conn.next_event()


def test_too_many_trailer_fields() -> None:
    conn = ServerConnection(Limits(max_header_fields=2))
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    )
    assert [type(e) for e in conn.events_received()] == [RequestHead]  # then the error:
    with pytest.raises(RemoteProtocolError, match="Too many trailer fields") as info:
        conn.events_received()
    assert info.value.status_hint == 431


def test_an_upgrade_needs_the_connection_option() -> None:
    conn = ServerConnection()
    [request, end] = feed(
        conn,
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive\r\nConnection: Upgrade\r\nConnection: upgrade\r\n\r\n",
    )
    assert isinstance(request, RequestHead)
    assert end == EndOfMessage()
    assert conn.their_state is MIGHT_SWITCH_PROTOCOL
    conn.send_response(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert conn.data_to_send().startswith(b"HTTP/1.1 101 ")


def test_chunk_extensions_are_discarded_by_h11() -> None:
    # h11 reads the chunk size and drops the extension unparsed: control characters in
    # an extension cannot reach anyone (docs/limits.md).
    conn = ServerConnection()
    events = feed(
        conn,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;a\x01b\r\nabc\r\n0\r\n\r\n",
    )
    assert [type(event).__name__ for event in events] == ["RequestHead", "Data", "EndOfMessage"]


def test_a_response_does_not_start_with_an_empty_line() -> None:
    conn = ClientConnection("a")
    conn.send_request("GET", "/")
    conn.receive_data(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Invalid status line"):
        conn.next_event()


# ------------------------------------------------------------------ found by the fuzzers


@pytest.mark.parametrize(
    "head",
    [
        b"HEAD % HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HEAD / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_a_refused_head_request_is_answered_without_a_body(head: bytes) -> None:
    # h11 parsed the request, then our checks refused it: the 400 answers a HEAD, so it
    # has no body (it raised LocalProtocolError from inside h11 before).
    conn = ServerConnection()
    conn.receive_data(head)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 400 ")
    assert out.endswith(b"\r\n\r\n")


def test_a_refused_request_after_a_head_request_gets_its_body() -> None:
    conn = ServerConnection()
    feed(conn, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.send_response(200)
    conn.data_to_send()
    conn.receive_data(b"GET x HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Invalid request target") as info:
        conn.next_event()
    assert conn.data_to_send().endswith((str(info.value) + "\n").encode())


def test_a_body_sent_without_waiting_for_100_ends_the_wait() -> None:
    conn = ServerConnection()
    feed(
        conn,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    )
    assert not conn.expect_continue
    conn.send_response(200)
    assert b"connection: close" not in conn.data_to_send().lower()
    assert not conn.must_close


@pytest.mark.parametrize("value", [b"a\x01b", b"a\x7fb", b"a\x1b[31m"])
def test_control_characters_in_trailers_are_refused(value: bytes) -> None:
    conn = ServerConnection()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
        + value
        + b"\r\n\r\n"
    )
    assert [type(e) for e in conn.events_received()] == [RequestHead]  # then the error:
    with pytest.raises(RemoteProtocolError, match="trailer field value contains a control"):
        conn.events_received()
