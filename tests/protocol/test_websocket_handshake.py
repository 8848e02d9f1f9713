"""The opening handshake over the HTTP/1.1 engine, and permessage-deflate negotiation."""

from __future__ import annotations

import pytest

from sansnet.errors import HandshakeError, InvalidArgument
from sansnet.protocol import (
    SWITCHED_PROTOCOL,
    ClientConnection,
    Headers,
    RequestHead,
    ResponseHead,
    ServerConnection,
)
from sansnet.protocol.websocket import (
    BinaryMessage,
    ClientHandshake,
    DeflateParameters,
    TextMessage,
    WebSocketConnection,
    accept,
    accept_key,
    is_upgrade_request,
)
from sansnet.protocol.websocket.deflate import (
    DeflateExtension,
    client_accept,
    client_offer,
    server_accept,
)

from .helpers import feed

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def test_rfc_accept_key_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade_request(**overrides: str | None) -> RequestHead:
    fields = {
        "Host": "a",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return RequestHead("GET", "/ws", Headers(fields))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, False),  # no Upgrade field at all: the common case
        ({"Upgrade": "h2c", "Connection": "Upgrade"}, False),
        ({"Upgrade": "foo, WebSocket", "Connection": "Upgrade"}, True),
    ],
)
def test_is_upgrade_request(fields: dict[str, str], expected: bool) -> None:
    assert is_upgrade_request(RequestHead("GET", "/", Headers(fields))) is expected


def test_full_handshake_through_both_http_connections_then_messages() -> None:
    handshake = ClientHandshake(
        subprotocols=["chat", "superchat"], extra_headers=[("X-Token", "t")]
    )
    http_client = ClientConnection("example.com", 8080)
    http_client.send_request("GET", "/ws?room=1", handshake.request_headers())
    http_server = ServerConnection()
    [request, _] = feed(http_server, http_client.data_to_send())
    assert isinstance(request, RequestHead)
    assert is_upgrade_request(request)
    assert request.headers["x-token"] == "t"
    agreed = accept(request, subprotocols=["superchat"])
    http_server.send_response(101, agreed.headers)
    server = WebSocketConnection("server", deflate=agreed.deflate, subprotocol=agreed.subprotocol)
    server.send_text("welcome")  # sent right behind the 101
    [response] = feed(http_client, http_server.data_to_send() + server.data_to_send())
    assert isinstance(response, ResponseHead)
    assert http_client.our_state is SWITCHED_PROTOCOL
    result = handshake.check(response)
    assert result.subprotocol == "superchat"
    assert result.deflate == DeflateParameters()
    client = WebSocketConnection("client", deflate=result.deflate)
    data, eof = http_client.trailing_data
    assert not eof
    client.receive_data(data)
    assert client.events_received() == [TextMessage("welcome")]
    client.send_binary(b"\x00" * 1000)
    server.receive_data(client.data_to_send())
    assert server.events_received() == [BinaryMessage(b"\x00" * 1000)]


def test_request_headers() -> None:
    handshake = ClientHandshake(compression=False, random=lambda n: bytes(n))
    assert handshake.key == "AAAAAAAAAAAAAAAAAAAAAA=="
    assert handshake.request_headers() == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    assert ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits") in (
        ClientHandshake().request_headers()
    )


def test_tokens_are_case_insensitive_and_may_be_in_lists() -> None:
    request = upgrade_request(Upgrade="h2c, WebSocket", Connection="keep-alive, UPGRADE")
    assert accept(request).headers[:3] == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(KEY)),
    ]


@pytest.mark.parametrize(
    ("request_", "status", "fragment"),
    [
        (RequestHead("POST", "/", upgrade_request().headers), 400, "not GET"),
        (RequestHead("GET", "/", upgrade_request().headers, "1.0"), 400, "not HTTP/1.1"),
        (upgrade_request(Upgrade=None), 400, "Upgrade header"),
        (upgrade_request(Upgrade="h2c"), 400, "Upgrade header"),
        (upgrade_request(Connection="keep-alive"), 400, "Connection header"),
        (upgrade_request(Sec_WebSocket_Version="8"), 426, "only 13"),
        (upgrade_request(Sec_WebSocket_Version=None), 400, "missing"),
        (upgrade_request(Sec_WebSocket_Key=None), 400, "exactly one"),
        (upgrade_request(Sec_WebSocket_Key="not base64!"), 400, "16 bytes"),
        (upgrade_request(Sec_WebSocket_Key="AAAA"), 400, "16 bytes"),
    ],
)
def test_bad_handshakes_are_refused(request_: RequestHead, status: int, fragment: str) -> None:
    with pytest.raises(HandshakeError, match=fragment) as info:
        accept(request_)
    assert info.value.status == status
    assert b"Invalid WebSocket handshake" in info.value.body
    if status == 426:
        assert ("Sec-WebSocket-Version", "13") in list(info.value.headers)  # type: ignore[arg-type]


def test_a_key_that_is_not_ascii_is_refused_with_400_like_any_bad_key() -> None:
    # The HTTP engine passes an obs-text byte in a field value (as Latin-1 text), and
    # b64decode(validate=True) raised a bare ValueError for it, not binascii.Error.
    request, *_ = feed(
        ServerConnection(),
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: \xe9dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert type(request) is RequestHead
    for head in (request, upgrade_request(Sec_WebSocket_Key="d\u2603GhlIHNhbXBsZSBub25jZQ==")):
        with pytest.raises(HandshakeError, match="Sec-WebSocket-Key is not 16 bytes") as info:
            accept(head)
        assert info.value.status == 400
        assert b"Invalid WebSocket handshake" in info.value.body


def test_two_keys_are_refused() -> None:
    request = upgrade_request()
    request.headers.add("Sec-WebSocket-Key", KEY)
    with pytest.raises(HandshakeError, match="exactly one"):
        accept(request)


def test_subprotocol_choice() -> None:
    request = upgrade_request(Sec_WebSocket_Protocol="a, b")
    request.headers.add("Sec-WebSocket-Protocol", "c")
    assert accept(request, subprotocols=["c", "b"]).subprotocol == "c"
    assert accept(request, subprotocols=["z"]).subprotocol is None
    assert accept(request).subprotocol is None
    assert accept(request, subprotocols=lambda offered: offered[-1]).subprotocol == "c"
    assert accept(request, subprotocols=lambda offered: None).subprotocol is None
    with pytest.raises(ValueError, match="did not offer"):
        accept(request, subprotocols=lambda offered: "z")
    assert accept(upgrade_request(), subprotocols=["a"]).subprotocol is None


@pytest.mark.parametrize("request_", [None, {"method": "GET"}, "GET / HTTP/1.1"])
def test_accept_refuses_what_is_not_a_request_head(request_: object) -> None:
    # It raised AttributeError ('NoneType' object has no attribute 'headers').
    with pytest.raises(InvalidArgument, match=r"^accept\(\) takes the RequestHead"):
        accept(request_)  # type: ignore[arg-type]


def test_subprotocols_given_as_one_str_are_refused() -> None:
    # A str is a sequence of one-letter names: subprotocols="chat" offered "c, h, a, t"
    # (client), and a server speaking "chat" agreed to "c" with a client offering it.
    request = upgrade_request(Sec_WebSocket_Protocol="c")
    with pytest.raises(InvalidArgument, match=r"a list of names \(\['chat'\]\)"):
        accept(request, subprotocols="chat")
    with pytest.raises(InvalidArgument, match=r"a list of names \(\['chat'\]\)"):
        ClientHandshake(subprotocols="chat")
    assert accept(request, subprotocols=("c",)).subprotocol == "c"
    assert ClientHandshake(subprotocols=("chat",)).subprotocols == ["chat"]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"key": "\u00e9"}, "key"),
        ({"key": b"dGhlIHNhbXBsZSBub25jZQ=="}, "key"),
        ({"key": 5}, "key"),
        ({"key": "AAAA"}, "key"),
        ({"key": "not base64 at all!"}, "key"),
        ({"subprotocols": None}, "subprotocols"),
        ({"subprotocols": 5}, "subprotocols"),
        ({"subprotocols": ["chat", 5]}, "subprotocols"),
        ({"extra_headers": 5}, "extra_headers"),
        ({"extra_headers": "ab"}, "extra_headers"),
        ({"extra_headers": [("X", "1", "2")]}, "extra_headers"),
    ],
)
def test_client_handshake_refuses_wrong_arguments_by_name(
    arguments: dict[str, object], named: str
) -> None:
    # key="\u00e9" raised a bare UnicodeEncodeError from check(), subprotocols=None a
    # TypeError ('NoneType' object is not iterable).
    with pytest.raises(InvalidArgument, match=f"^{named} "):
        ClientHandshake(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("response_", [None, {"status_code": 101}, upgrade_request()])
def test_client_check_refuses_what_is_not_a_response_head(response_: object) -> None:
    # check(None) raised AttributeError ('NoneType' object has no attribute 'headers').
    with pytest.raises(InvalidArgument, match=r"^check\(\) takes the ResponseHead"):
        ClientHandshake(key=KEY).check(response_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"subprotocols": 5}, "subprotocols"),
        ({"subprotocols": [b"chat"]}, "subprotocols"),
        ({"extra_headers": 5}, "extra_headers"),
        ({"extra_headers": [("X",)]}, "extra_headers"),
    ],
)
def test_accept_refuses_wrong_arguments_by_name(arguments: dict[str, object], named: str) -> None:
    # subprotocols=5 and extra_headers=5 raised a bare TypeError ('int' object is not
    # iterable).
    request = upgrade_request(Sec_WebSocket_Protocol="chat")
    with pytest.raises(InvalidArgument, match=f"^{named} must be"):
        accept(request, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["\u00e9", None, b"AAAA"])
def test_accept_key_refuses_what_is_not_an_ascii_key(key: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^accept_key\(\) takes a Sec-WebSocket-Key"):
        accept_key(key)  # type: ignore[arg-type]


def test_compression_can_be_declined_and_extra_headers_added() -> None:
    request = upgrade_request(Sec_WebSocket_Extensions="permessage-deflate")
    agreed = accept(request, compression=False, extra_headers=[("X-Server", "s")])
    assert agreed.deflate is None
    assert agreed.headers[-1] == ("X-Server", "s")
    assert accept(request).deflate == DeflateParameters()


def response(status: int = 101, **fields: str) -> ResponseHead:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(KEY),
    }
    for name, value in fields.items():
        headers[name.replace("_", "-")] = value
    return ResponseHead(status, Headers({k: v for k, v in headers.items() if v}))


def test_client_check_success_and_failures() -> None:
    handshake = ClientHandshake(key=KEY, subprotocols=["chat"])
    assert handshake.check(response()).subprotocol is None
    assert handshake.check(response(Sec_WebSocket_Protocol="chat")).subprotocol == "chat"
    with pytest.raises(HandshakeError, match="403 Forbidden") as info:
        handshake.check(ResponseHead(403, Headers({"X": "y"}), "Forbidden"), b"go away")
    assert (info.value.status, info.value.body) == (403, b"go away")
    assert dict(info.value.headers) == {"x": "y"}  # type: ignore[arg-type]
    for bad, fragment in [
        (response(Upgrade=""), "Upgrade: websocket"),
        (response(Connection=""), "Connection: upgrade"),
        (response(Sec_WebSocket_Accept="wrong"), "does not match"),
        (response(Sec_WebSocket_Protocol="other"), "did not offer"),
        (response(Sec_WebSocket_Extensions="x-unknown"), "did not offer"),
        (response(Sec_WebSocket_Extensions="permessage-deflate; bogus"), "unknown parameters"),
    ]:
        with pytest.raises(HandshakeError, match=fragment) as info:
            handshake.check(bad)
        assert info.value.status == 101
    plain = ClientHandshake(key=KEY, compression=False)
    with pytest.raises(HandshakeError, match="did not offer"):
        plain.check(response(Sec_WebSocket_Extensions="permessage-deflate"))


# ----------------------------------------------------------------- permessage-deflate


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Items split on commas across fields, empty ones dropped; parameters trimmed,
        # lower-cased and unquoted.
        (["x, ,", 'permessage-deflate ;  Server_Max_Window_Bits="10"'], 10),
        # An offer with an empty or repeated parameter is unusable; the next one is taken.
        (["permessage-deflate; ;", "permessage-deflate; server_max_window_bits=11"], 11),
        (
            [
                "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9, "
                "permessage-deflate; server_max_window_bits=12"
            ],
            12,
        ),
        # The first offer we can honour wins (wsproto lets a later accept overwrite).
        (
            [
                "permessage-deflate; server_max_window_bits=10",
                "permessage-deflate; server_max_window_bits=12",
            ],
            10,
        ),
        # Names are matched as wsproto matches them: exactly.
        (["PerMessage-Deflate"], None),
    ],
)
def test_server_reads_offers_item_by_item(fields: list[str], expected: int | None) -> None:
    agreed = server_accept(fields)
    if expected is None:
        assert agreed is None
    else:
        assert agreed == (
            f"permessage-deflate; server_max_window_bits={expected}",
            DeflateParameters(our_window_bits=expected),
        )


def test_server_limits_the_client_window_only_when_offered() -> None:
    offered = server_accept(
        ["permessage-deflate; client_max_window_bits"], client_max_window_bits=10
    )
    assert offered == (
        "permessage-deflate; client_max_window_bits=10",
        DeflateParameters(their_window_bits=10),
    )
    assert server_accept(
        ["permessage-deflate; client_max_window_bits=9"], client_max_window_bits=12
    ) == ("permessage-deflate; client_max_window_bits=9", DeflateParameters(their_window_bits=9))
    # zlib-based clients refuse to be asked for 8 bits: 9 is the least a server asks,
    # and a client's own hint of 8 is left as it is (it binds the client already).
    assert server_accept(
        ["permessage-deflate; client_max_window_bits"], client_max_window_bits=8
    ) == ("permessage-deflate; client_max_window_bits=9", DeflateParameters(their_window_bits=9))
    assert server_accept(
        ["permessage-deflate; client_max_window_bits=8"], client_max_window_bits=10
    ) == ("permessage-deflate", DeflateParameters(their_window_bits=8))
    # A client that did not offer the parameter cannot be limited: it may use 15 bits.
    assert server_accept(["permessage-deflate"], client_max_window_bits=10) == (
        "permessage-deflate",
        DeflateParameters(),
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_max_window_bits": 16},
        {"server_max_window_bits": 7},
        {"server_max_window_bits": True},
        {"client_max_window_bits": "10"},
    ],
)
def test_window_wishes_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="8 to 15"):
        DeflateExtension(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="8 to 15"):
        client_offer(**kwargs)  # type: ignore[arg-type]


def test_extension_params_must_be_agreed_parameters() -> None:
    with pytest.raises(InvalidArgument, match="DeflateParameters"):
        DeflateExtension({"our_window_bits": 10})  # type: ignore[arg-type]
    assert DeflateExtension(DeflateParameters()).enabled()
    assert not DeflateExtension().enabled()


@pytest.mark.parametrize(
    ("offer", "response", "params"),
    [
        ("permessage-deflate", "permessage-deflate", DeflateParameters()),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            DeflateParameters(),
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate",
            DeflateParameters(their_window_bits=10),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            DeflateParameters(our_window_bits=9, our_no_context_takeover=True),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate",
            DeflateParameters(their_no_context_takeover=False),
        ),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            "permessage-deflate",
            DeflateParameters(),
        ),
        (
            "x-webkit-deflate-frame, permessage-deflate; unknown, permessage-deflate; server_max_window_bits=16, permessage-deflate; server_no_context_takeover=1, permessage-deflate",
            "permessage-deflate",
            DeflateParameters(),
        ),
    ],
)
def test_server_accept(offer: str, response: str, params: DeflateParameters) -> None:
    assert server_accept([offer]) == (response, params)


def test_server_accept_declines() -> None:
    assert server_accept(["permessage-deflate; server_max_window_bits=8"]) is None
    assert server_accept(["x-other"]) is None
    assert server_accept(["; broken"]) is None
    assert server_accept([]) is None


def test_server_side_preferences() -> None:
    value, params = server_accept(  # type: ignore[misc]
        ["permessage-deflate"],
        server_max_window_bits=10,
        server_no_context_takeover=True,
        client_no_context_takeover=True,
    )
    assert value == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10"
    )
    assert params == DeflateParameters(10, True, 15, True)


def test_client_offer_variants() -> None:
    assert client_offer() == "permessage-deflate; client_max_window_bits"
    assert client_offer(
        client_max_window_bits=12,
        server_max_window_bits=10,
        client_no_context_takeover=True,
        server_no_context_takeover=True,
    ) == (
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
        "client_max_window_bits=12; server_max_window_bits=10"
    )


@pytest.mark.parametrize(
    ("answer", "params"),
    [
        ("", None),
        ("permessage-deflate", DeflateParameters()),
        (
            "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
            DeflateParameters(our_window_bits=9, our_no_context_takeover=True),
        ),
        (
            "permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
            DeflateParameters(their_window_bits=10, their_no_context_takeover=True),
        ),
    ],
)
def test_client_accept(answer: str, params: DeflateParameters | None) -> None:
    assert client_accept([answer] if answer else []) == params


@pytest.mark.parametrize(
    ("answer", "kwargs", "fragment"),
    [
        ("permessage-deflate, x", {}, "did not offer: x[.]"),
        ("x, permessage-deflate, x, y", {}, "did not offer: x, y[.]"),
        ("permessage-deflate, permessage-deflate", {}, "twice"),
        ("permessage-deflate; ;", {}, "an empty parameter"),
        ("permessage-deflate; a", {}, "unknown parameters"),
        ("permessage-deflate; a; a", {}, "repeated"),
        ("permessage-deflate; client_no_context_takeover=1", {}, "takes no value"),
        ("permessage-deflate; server_max_window_bits", {}, "needs a value"),
        ("permessage-deflate; client_max_window_bits", {}, "needs a value"),
        ("permessage-deflate; server_max_window_bits=7", {}, "not 8 to 15"),
        ("permessage-deflate; server_max_window_bits=09", {}, "not 8 to 15"),
        ("permessage-deflate; server_max_window_bits=1\u00b2", {}, "not 8 to 15"),  # "1²"
        ("permessage-deflate; client_max_window_bits=8", {}, "zlib cannot produce"),
        (
            "permessage-deflate",
            {"server_max_window_bits": 10},
            "did not honour server_max_window_bits",
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            {"server_max_window_bits": 10},
            "did not honour",
        ),
        ("permessage-deflate", {"server_no_context_takeover": True}, "server_no_context_takeover"),
        (
            "permessage-deflate; client_max_window_bits=12",
            {"client_max_window_bits": 10},
            "larger client window",
        ),
    ],
)
def test_client_accept_refuses(answer: str, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(HandshakeError, match=fragment):
        client_accept([answer], **kwargs)  # type: ignore[arg-type]


def test_client_accept_with_our_own_limits() -> None:
    params = client_accept(
        ["permessage-deflate; server_max_window_bits=9; server_no_context_takeover"],
        client_max_window_bits=11,
        server_max_window_bits=10,
        client_no_context_takeover=True,
        server_no_context_takeover=True,
    )
    assert params == DeflateParameters(11, True, 9, True)


def test_our_hint_of_an_8_bit_window_compresses_with_9() -> None:
    # Offered as a hint and not bound by the answer, 8 became our window, and every
    # compressed send raised zlib's bare ValueError ("Invalid initialization option").
    offer = client_offer(client_max_window_bits=8)
    answer, server_params = server_accept([offer])  # type: ignore[misc]
    params = client_accept([answer], client_max_window_bits=8)
    assert params == DeflateParameters(our_window_bits=9)
    client = WebSocketConnection("client", deflate=params)
    server = WebSocketConnection("server", deflate=server_params)
    data = bytes(range(256)) * 50
    client.send_binary(data)
    server.receive_data(client.data_to_send())
    assert server.events_received() == [BinaryMessage(data)]


def test_deflate_round_trip_with_small_window() -> None:
    sender = WebSocketConnection("client", deflate=DeflateParameters(our_window_bits=9))
    receiver = WebSocketConnection("server", deflate=DeflateParameters(their_window_bits=9))
    data = bytes(range(256)) * 50
    sender.send_binary(data)
    receiver.receive_data(sender.data_to_send())
    assert receiver.events_received() == [BinaryMessage(data)]
