"""Protocol rules seen from both ends at once: a client and a server joined in memory
(h11's ``ConnectionPair`` habit), each step checked by what the other end reads and by
where both ends stand after it."""

from __future__ import annotations

from sansnet.protocol import (
    CLIENT,
    CLOSED,
    DONE,
    IDLE,
    MIGHT_SWITCH_PROTOCOL,
    MUST_CLOSE,
    SEND_BODY,
    SEND_RESPONSE,
    SERVER,
    SWITCHED_PROTOCOL,
    Data,
    EndOfMessage,
    Headers,
    InformationalResponse,
    PeerClosed,
    RequestHead,
    ResponseHead,
)

from .helpers import ConnectionPair

HOST = ("Host", "example.com")


def get(*fields: tuple[str, str], method: str = "GET") -> RequestHead:
    return RequestHead(method, "/", Headers([HOST, ("Content-Length", "0"), *fields]))


def test_a_keep_alive_cycle_brings_both_ends_back_to_idle() -> None:
    p = ConnectionPair(client_headers=())
    for _ in range(2):  # the second request proves the connection was reusable
        p.send(CLIENT, [get(), EndOfMessage()])
        assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: DONE, SERVER: SEND_RESPONSE}
        p.send(
            SERVER,
            [ResponseHead(200, Headers([("Content-Length", "2")])), Data(b"hi")],
            expect=[
                ResponseHead(200, Headers([("Content-Length", "2")]), "OK"),
                Data(b"hi"),
                EndOfMessage(),  # the client knows the end from the length
            ],
        )
        # The client starts its next cycle on its own; the server once it says so.
        assert p.states(CLIENT) == {CLIENT: IDLE, SERVER: IDLE}
        assert p.states(SERVER) == {CLIENT: DONE, SERVER: SEND_BODY}
        assert p.send(SERVER, EndOfMessage(), expect=[]) == b""
        assert p.states(SERVER) == {CLIENT: IDLE, SERVER: IDLE}


def test_connection_close_binds_both_ends_to_close_after_the_exchange() -> None:
    p = ConnectionPair(client_headers=())
    p.send(CLIENT, [get(("Connection", "close")), EndOfMessage()])
    assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: MUST_CLOSE, SERVER: SEND_RESPONSE}
    p.send(
        SERVER,
        [ResponseHead(204, Headers()), EndOfMessage()],
        # The server's answer says so too (RFC 9112 section 9.6).
        expect=[
            ResponseHead(204, Headers([("Connection", "close")]), "No Content"),
            EndOfMessage(),
        ],
    )
    assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: MUST_CLOSE, SERVER: MUST_CLOSE}
    assert p.client.must_close
    assert p.server.must_close
    p.send(SERVER, PeerClosed())
    assert p.states(CLIENT) == {CLIENT: MUST_CLOSE, SERVER: CLOSED}
    assert p.states(SERVER) == {CLIENT: MUST_CLOSE, SERVER: CLOSED}


def test_a_response_to_head_has_no_body_whatever_its_content_length() -> None:
    p = ConnectionPair(client_headers=())
    p.send(CLIENT, [get(method="HEAD"), EndOfMessage()])
    p.send(
        SERVER,
        ResponseHead(200, Headers([("Content-Length", "10")])),
        expect=[ResponseHead(200, Headers([("Content-Length", "10")]), "OK"), EndOfMessage()],
    )
    assert p.states(CLIENT) == {CLIENT: IDLE, SERVER: IDLE}
    assert p.states(SERVER) == {CLIENT: DONE, SERVER: SEND_BODY}
    p.send(SERVER, EndOfMessage(), expect=[])
    assert p.states(SERVER) == {CLIENT: IDLE, SERVER: IDLE}


def test_expect_100_continue_holds_the_body_until_the_server_says_go() -> None:
    p = ConnectionPair(client_headers=())
    head = RequestHead(
        "POST", "/", Headers([HOST, ("Content-Length", "2"), ("Expect", "100-continue")])
    )
    p.send(CLIENT, head)
    assert p.server.expect_continue
    assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: SEND_BODY, SERVER: SEND_RESPONSE}
    p.send(
        SERVER, InformationalResponse(100), expect=InformationalResponse(100, Headers(), "Continue")
    )
    assert not p.server.expect_continue  # answered: a second go-ahead would be wrong
    assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: SEND_BODY, SERVER: SEND_RESPONSE}
    p.send(CLIENT, Data(b"ok"), expect=[Data(b"ok"), EndOfMessage()])
    assert p.states(SERVER) == {CLIENT: DONE, SERVER: SEND_RESPONSE}


def test_an_accepted_upgrade_switches_both_ends() -> None:
    p = ConnectionPair(client_headers=())
    p.send(CLIENT, [get(("Upgrade", "chat"), ("Connection", "Upgrade")), EndOfMessage()])
    assert (
        p.states(CLIENT)
        == p.states(SERVER)
        == {
            CLIENT: MIGHT_SWITCH_PROTOCOL,
            SERVER: SEND_RESPONSE,
        }
    )
    upgrade = Headers([("Upgrade", "chat"), ("Connection", "Upgrade")])
    p.send(
        SERVER, ResponseHead(101, upgrade), expect=ResponseHead(101, upgrade, "Switching Protocols")
    )
    assert (
        p.states(CLIENT)
        == p.states(SERVER)
        == {
            CLIENT: SWITCHED_PROTOCOL,
            SERVER: SWITCHED_PROTOCOL,
        }
    )
    assert p.client.trailing_data == p.server.trailing_data == (b"", False)


def test_trailers_end_a_chunked_request() -> None:
    p = ConnectionPair(client_headers=())
    chunked = RequestHead("POST", "/", Headers([HOST, ("Transfer-Encoding", "chunked")]))
    assert p.send(CLIENT, [chunked, Data(b"abc")]).endswith(b"\r\n\r\n3\r\nabc\r\n")
    assert p.states(SERVER) == {CLIENT: SEND_BODY, SERVER: SEND_RESPONSE}
    assert p.send(CLIENT, EndOfMessage(Headers([("X-Sum", "9")]))) == b"0\r\nX-Sum: 9\r\n\r\n"
    assert p.states(CLIENT) == p.states(SERVER) == {CLIENT: DONE, SERVER: SEND_RESPONSE}
