"""WebSocketConnection: a client and a server object joined in memory, every failure path
with the exact close code, the closing handshake, limits, compression and properties."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from sansnet.protocol.websocket import (
    CLOSED,
    CLOSING,
    FRAGMENT_SIZE,
    MAX_UNSENT_PONGS,
    OPEN,
    BinaryMessage,
    Closed,
    DeflateParameters,
    Pong,
    TextMessage,
    WebSocketConnection,
    check_close_code,
    is_valid_received_close_code,
)
from sansnet.protocol.websocket.closing import explain
from sansnet.protocol.websocket.deflate import server_accept
from sansnet.protocol.websocket.sizes import SizeLimits

from .ws_frames import encode_frame, frame_headers

MASK = b"\x01\x02\x03\x04"
MiB = 1024 * 1024


def pair(
    deflate: bool = False, **limits: int | None
) -> tuple[WebSocketConnection, WebSocketConnection]:
    params = DeflateParameters() if deflate else None
    client = WebSocketConnection("client", deflate=params, **limits)  # type: ignore[arg-type]
    server = WebSocketConnection("server", deflate=params, **limits)  # type: ignore[arg-type]
    return client, server


def pump(source: WebSocketConnection, sink: WebSocketConnection) -> list[object]:
    sink.receive_data(source.data_to_send())
    return sink.events_received()  # type: ignore[return-value]


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """A raw frame as a client sends it (masked), with any flags we like."""
    return encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=MASK if mask else None)


def server_receiving(data: bytes, **kwargs: object) -> tuple[WebSocketConnection, list[object]]:
    server = WebSocketConnection("server", **kwargs)  # type: ignore[arg-type]
    server.receive_data(data)
    return server, server.events_received()  # type: ignore[return-value]


def sent_close_code(conn: WebSocketConnection) -> int | None:
    """The code in the close frame the connection sent (server frames are unmasked)."""
    data = conn.data_to_send()
    while data:
        first, second = data[0], data[1]
        length, position = second & 0x7F, 2
        if length == 126:
            (length,), position = struct.unpack("!H", data[2:4]), 4
        payload = data[position : position + length]
        if first & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big") if payload else None
        data = data[position + length :]
    return None


def assert_fails(data: bytes, code: int, fragment: str = "", **kwargs: object) -> None:
    server, events = server_receiving(data, **kwargs)
    assert events, "no event"
    assert isinstance(events[-1], Closed), events
    assert events[-1].code == code, events[-1]
    assert type(events[-1].code) is int  # not wsproto's CloseReason, which only equals it
    assert fragment.lower() in events[-1].reason.lower()
    assert sent_close_code(server) == code
    assert server.state is CLOSED
    assert server.close_code == code
    assert type(server.close_code) is int
    assert isinstance(server.error, RemoteProtocolError)
    assert server.next_event() is None
    server.receive_data(b"more")  # discarded
    assert server.next_event() is None


# ------------------------------------------------------------------------------- echo


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 1 << 20])
@pytest.mark.parametrize("deflate", [False, True])
def test_echo_text_and_binary_of_every_length_class(size: int, deflate: bool) -> None:
    client, server = pair(deflate)
    text = ("é" * size)[:size] if size else ""
    data = os.urandom(size)
    client.send_text(text)
    client.send_binary(data)
    assert pump(client, server) == [TextMessage(text), BinaryMessage(data)]
    server.send_message(text)
    server.send_message(data)
    assert pump(server, client) == [TextMessage(text), BinaryMessage(data)]


def test_fragmented_messages_are_reassembled() -> None:
    server, events = server_receiving(
        frame(0x1, "h€".encode()[:2], fin=False)
        + frame(0x9, b"ping in between")
        + frame(0x0, "h€".encode()[2:], fin=False)
        + frame(0x0, b"llo")
        + frame(0x2, b"ab", fin=False)
        + frame(0x0, b"", fin=False)
        + frame(0x0, b"cd")
    )
    assert events == [TextMessage("h€llo"), BinaryMessage(b"abcd")]
    assert server.data_to_send() == encode_frame(0xA, b"ping in between")  # the pong


@pytest.mark.parametrize("role", ["client", "server"])
def test_a_long_message_goes_out_in_fragments_of_fragment_size(role: str) -> None:
    sender = WebSocketConnection(role)  # type: ignore[arg-type]
    receiver = WebSocketConnection("server" if role == "client" else "client")
    data = os.urandom(2 * FRAGMENT_SIZE + 1000)
    sender.send_binary(data)
    wire = sender.data_to_send()
    assert frame_headers(wire) == [
        (False, 0, 0x2, FRAGMENT_SIZE),
        (False, 0, 0x0, FRAGMENT_SIZE),
        (True, 0, 0x0, 1000),
    ]
    receiver.receive_data(wire)
    assert receiver.events_received() == [BinaryMessage(data)]
    # A message of exactly fragment_size bytes is one frame.
    sender.send_binary(data[:FRAGMENT_SIZE])
    assert frame_headers(sender.data_to_send()) == [(True, 0, 0x2, FRAGMENT_SIZE)]


def test_a_long_text_is_fragmented_in_characters_and_arrives_whole() -> None:
    client, server = pair(fragment_size=1000)
    text = "é€🚀" * 1000  # 3,000 characters, 9,000 bytes of UTF-8
    client.send_text(text)
    wire = client.data_to_send()
    frames = frame_headers(wire)
    assert [opcode for _, _, opcode, _ in frames] == [0x1, 0x0, 0x0]
    assert [fin for fin, _, _, _ in frames] == [False, False, True]
    assert sum(length for _, _, _, length in frames) == len(text.encode())
    server.receive_data(wire)
    assert server.events_received() == [TextMessage(text)]
    client.send_text("x" * 2500)
    assert [length for *_, length in frame_headers(client.data_to_send())] == [1000, 1000, 500]


def test_fragment_size_none_sends_one_frame_a_message() -> None:
    client, server = pair(fragment_size=None)
    data = os.urandom(3 * FRAGMENT_SIZE)
    client.send_binary(data)
    client.send_text("y" * (3 * FRAGMENT_SIZE))
    wire = client.data_to_send()
    assert frame_headers(wire) == [(True, 0, 0x2, len(data)), (True, 0, 0x1, len(data))]
    server.receive_data(wire)
    assert server.events_received() == [BinaryMessage(data), TextMessage("y" * len(data))]


def test_compressed_messages_are_never_fragmented() -> None:
    client, _ = pair(deflate=True, fragment_size=10)
    data = os.urandom(1000)  # incompressible: the frame stays about as long
    client.send_binary(data)
    frames = frame_headers(client.data_to_send())
    assert len(frames) == 1
    assert frames[0][:3] == (True, 0x40, 0x2)  # FIN, RSV1 (compressed), binary


def test_a_lone_surrogate_in_a_long_text_queues_nothing_and_breaks_nothing() -> None:
    client, server = pair(fragment_size=100)
    with pytest.raises(LocalProtocolError, match="no UTF-8 form"):
        client.send_text("é" * 500 + "\udc80")  # the surrogate is in the last fragment
    assert client.data_to_send() == b""
    client.send_text("next")  # a new message, not a continuation of a broken one
    wire = client.data_to_send()
    assert frame_headers(wire) == [(True, 0, 0x1, 4)]
    server.receive_data(wire)
    assert server.events_received() == [TextMessage("next")]


@pytest.mark.parametrize("failing_frame", [1, 2])
def test_a_message_that_fails_halfway_queues_none_of_its_frames(
    failing_frame: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a frame can fail (no memory, an interrupt): none of the message goes
    out. Once wsproto has built a first fragment it is mid-message for good, so the
    connection closes with 1011 instead of gluing the next message onto the broken one."""
    client, server = pair(fragment_size=100)
    real_send = client._ws.send
    calls = 0

    def failing_send(event: object) -> bytes:
        nonlocal calls
        calls += 1
        if calls == failing_frame:
            raise MemoryError
        return real_send(event)  # type: ignore[arg-type]

    monkeypatch.setattr(client._ws, "send", failing_send)
    with pytest.raises(MemoryError):
        client.send_binary(b"a" * 250)
    monkeypatch.undo()
    wire = client.data_to_send()
    if failing_frame == 1:  # nothing was built: the connection goes on
        assert wire == b""
        assert client.state is OPEN
        client.send_binary(b"next")
        server.receive_data(client.data_to_send())
        assert server.events_received() == [BinaryMessage(b"next")]
    else:
        assert [opcode for _, _, opcode, _ in frame_headers(wire)] == [0x8]  # close only
        assert (client.state, client.close_code) == (CLOSING, 1011)
        with pytest.raises(LocalProtocolError):
            client.send_binary(b"next")
        server.receive_data(wire)
        assert server.events_received() == [Closed(1011, "Internal error.")]


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "256"])
def test_fragment_size_must_be_a_positive_int_or_none(size: object) -> None:
    with pytest.raises(ValueError, match="fragment_size"):
        WebSocketConnection("client", fragment_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"deflate": "x"}, "deflate"),
        ({"deflate": True}, "deflate"),
        ({"compress_threshold": "x"}, "compress_threshold"),
        ({"deflate": DeflateParameters(), "compress_threshold": "x"}, "compress_threshold"),
        ({"compress_threshold": -1}, "compress_threshold"),
        ({"compress_threshold": None}, "compress_threshold"),
        ({"max_message_size": "1000"}, "max_message_size"),
        ({"max_message_size": -1}, "max_message_size"),
        ({"max_frame_size": 1.5}, "max_frame_size"),
    ],
)
def test_wrong_arguments_are_refused_by_name(options: dict[str, object], named: str) -> None:
    # deflate="x" was taken and failed in wsproto at the first message; a str
    # compress_threshold raised TypeError ('<' between int and str) from send_text().
    with pytest.raises(InvalidArgument, match=f"^{named} must be"):
        WebSocketConnection("client", **options)  # type: ignore[arg-type]
    connection = WebSocketConnection("client", deflate=DeflateParameters())
    for name in ("compress_threshold", "max_message_size", "max_frame_size"):
        before = getattr(connection, name)
        with pytest.raises(InvalidArgument, match=f"^{name} must be"):
            setattr(connection, name, "x")
        assert getattr(connection, name) == before


def test_empty_fragments() -> None:
    _, events = server_receiving(
        frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) + frame(0x0, b"")
    )
    assert events == [TextMessage("")]
    _, events = server_receiving(frame(0x2, b"", fin=False) + frame(0x0, b"x"))
    assert events == [BinaryMessage(b"x")]


def test_pings_are_answered_and_never_surfaced_and_pongs_are() -> None:
    client, server = pair()
    client.send_ping(b"abc")
    assert pump(client, server) == []
    assert pump(server, client) == [Pong(b"abc")]
    server.send_pong(b"unsolicited")
    assert pump(server, client) == [Pong(b"unsolicited")]
    with pytest.raises(ValueError, match="125"):
        client.send_ping(b"x" * 126)
    with pytest.raises(ValueError, match="125"):
        client.send_pong(b"x" * 126)


def test_pongs_waiting_to_be_sent_are_bounded_and_the_newest_ping_is_answered() -> None:
    client, server = pair()
    flood = MAX_UNSENT_PONGS + 50
    # A peer that floods pings and reads nothing: our output holds a bounded number of
    # pongs, the last of them for the newest ping (RFC 6455 section 5.5.3).
    for index in range(flood):
        client.send_ping(b"%d" % index)
        client.send_text("m")  # frames queued between the pongs stay in order
    events = pump(client, server)
    assert events == [TextMessage("m")] * flood
    expected = [Pong(b"%d" % index) for index in range(MAX_UNSENT_PONGS - 1)]
    assert pump(server, client) == [*expected, Pong(b"%d" % (flood - 1))]
    # Once written, the count starts again: every ping of a short burst is answered.
    for index in range(3):
        client.send_ping(b"again %d" % index)
    assert pump(client, server) == []
    assert pump(server, client) == [Pong(b"again %d" % index) for index in range(3)]


def test_frames_split_byte_by_byte() -> None:
    client, server = pair(deflate=True)
    client.send_text("fragmented " * 50)
    client.send_ping(b"p")
    client.send_binary(b"\x00" * 70000)
    data = client.data_to_send()
    events: list[object] = []
    for index in range(len(data)):
        server.receive_data(data[index : index + 1])
        events += server.events_received()
    assert events == [TextMessage("fragmented " * 50), BinaryMessage(b"\x00" * 70000)]


def test_client_frames_are_masked_with_a_fresh_key_each() -> None:
    # wsproto draws each key from os.urandom (RFC 6455 section 5.3); the random
    # argument is accepted for compatibility and not called.
    def random(n: int) -> bytes:
        raise AssertionError("not used")

    client = WebSocketConnection("client", random=random)
    server = WebSocketConnection("server")
    client.send_binary(b"abcdefgh")
    first = client.data_to_send()
    client.send_binary(b"abcdefgh")
    second = client.data_to_send()
    assert first[:2] == second[:2] == b"\x82\x88"  # the mask bit and the length
    assert first[2:6] != second[2:6]  # two keys (the same with odds of 2**-32)
    assert b"abcdefgh" not in first + second
    server.receive_data(first + second)
    assert server.events_received() == [BinaryMessage(b"abcdefgh")] * 2


def test_bad_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        WebSocketConnection("peer")  # type: ignore[arg-type]


# --------------------------------------------------------------------- failure paths

FAILURES = [
    pytest.param(frame(0x1, b"x", rsv=0x20), 1002, "RSV2 or RSV3", id="rsv2"),
    pytest.param(frame(0x1, b"x", rsv=0x10), 1002, "RSV2 or RSV3", id="rsv3"),
    pytest.param(frame(0x1, b"x", rsv=0x40), 1002, "no compression", id="rsv1-without-deflate"),
    pytest.param(frame(0x9, b"x", rsv=0x40), 1002, "reserved bit", id="rsv1-on-control"),
    *[
        pytest.param(frame(op, b"x"), 1002, f"reserved opcode {op:#x}", id=f"opcode-{op}")
        for op in range(3, 8)
    ],
    *[
        pytest.param(frame(op, b""), 1002, f"reserved opcode {op:#x}", id=f"opcode-{op}")
        for op in range(0xB, 0x10)
    ],
    pytest.param(frame(0x9, b"x", fin=False), 1002, "fragmented", id="fragmented-ping"),
    pytest.param(frame(0x8, b"\x03\xe8", fin=False), 1002, "fragmented", id="fragmented-close"),
    pytest.param(frame(0x9, b"x" * 126), 1002, "longer than 125", id="long-ping"),
    pytest.param(frame(0x1, b"x", mask=False), 1002, "not masked", id="unmasked"),
    pytest.param(frame(0x0, b"x"), 1002, "continues nothing", id="lone-continuation"),
    pytest.param(
        frame(0x1, b"a", fin=False) + frame(0x1, b"b"),
        1002,
        "before the last one ended",
        id="text-during-fragments",
    ),
    pytest.param(
        frame(0x1, b"a", fin=False) + frame(0x2, b"b"),
        1002,
        "before the last one ended",
        id="binary-during-fragments",
    ),
    pytest.param(b"\x81\xff" + b"\x80" + b"\x00" * 7 + MASK, 1002, "top bit", id="length-top-bit"),
    pytest.param(b"\x81\xfe\x00\x05" + MASK, 1002, "shortest form", id="length-16-bit-for-5"),
    pytest.param(
        b"\x82\xff" + (300).to_bytes(8, "big") + MASK, 1002, "shortest form", id="length-64-bit"
    ),
    pytest.param(frame(0x1, b"\xff"), 1007, "not valid UTF-8", id="invalid-utf8"),
    pytest.param(
        frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
        1007,
        "UTF-8",
        id="surrogate",
    ),
    pytest.param(
        frame(0x1, b"ok", fin=False) + frame(0x0, b"\xf4\x90\x80\x80"),
        1007,
        "UTF-8",
        id="invalid-utf8-fragment",
    ),
    pytest.param(
        frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b""), 1007, "UTF-8", id="truncated-utf8"
    ),
    pytest.param(frame(0x8, b"\x03"), 1002, "1-byte payload", id="close-one-byte"),
    pytest.param(frame(0x8, b"\x03\xe8\xff"), 1007, "close reason", id="close-reason-utf8"),
]
FAILURES += [
    pytest.param(
        frame(0x8, code.to_bytes(2, "big")),
        1002,
        "invalid close code",
        id=f"close-code-{code}",
    )
    # 1014 (IANA's "bad gateway") is missing from wsproto's table, which refuses it.
    for code in (0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
]


@pytest.mark.parametrize(("data", "code", "fragment"), FAILURES)
def test_protocol_violations_close_with_the_right_code(
    data: bytes, code: int, fragment: str
) -> None:
    assert_fails(data, code, fragment)


def test_a_masked_frame_from_the_server_fails_the_client() -> None:
    client = WebSocketConnection("client")
    client.receive_data(frame(0x1, b"x"))
    [closed] = client.events_received()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.reason) == (1002, "A frame from the server is masked.")


def test_invalid_utf8_fails_before_the_frame_is_complete() -> None:
    """RFC 6455 section 8.1 and Autobahn 6.4.*: fail fast, not at the end of the frame."""
    data = frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"x" * 1000)
    server = WebSocketConnection("server")
    server.receive_data(data[:30])
    [closed] = server.events_received()
    assert isinstance(closed, Closed)
    assert closed.code == 1007


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4999]
)
def test_valid_close_codes_are_echoed(code: int) -> None:
    server, events = server_receiving(frame(0x8, code.to_bytes(2, "big") + "bye 🚀".encode()))
    assert events == [Closed(code, "bye 🚀")]
    assert sent_close_code(server) == code
    assert server.close_code == code
    assert server.close_reason == "bye 🚀"


def test_frame_size_limit() -> None:
    assert_fails(frame(0x2, b"x" * 101), 1009, "exceeds the 100-byte limit", max_frame_size=100)
    _, events = server_receiving(frame(0x2, b"x" * 100), max_frame_size=100)
    assert events == [BinaryMessage(b"x" * 100)]


def test_message_size_limit_across_fragments() -> None:
    data = frame(0x2, b"x" * 60, fin=False) + frame(0x0, b"x" * 60)
    assert_fails(data, 1009, "message exceeds", max_message_size=100)
    _, events = server_receiving(data, max_message_size=120)
    assert events == [BinaryMessage(b"x" * 120)]


def test_unlimited_sizes() -> None:
    _, events = server_receiving(
        frame(0x2, b"x" * 1000), max_message_size=None, max_frame_size=None
    )
    assert events == [BinaryMessage(b"x" * 1000)]


def test_compressed_size_limits_count_inflated_bytes() -> None:
    client, _ = pair(deflate=True)
    client.send_binary(b"\x00" * 1_000_000)
    bomb = client.data_to_send()
    assert len(bomb) < 2000
    for limits in ({"max_message_size": 100_000}, {"max_frame_size": 100_000}):
        server = WebSocketConnection("server", deflate=DeflateParameters(), **limits)  # type: ignore[arg-type]
        server.receive_data(bomb)
        [closed] = server.events_received()
        assert isinstance(closed, Closed)
        assert closed.code == 1009
    server = WebSocketConnection(
        "server", deflate=DeflateParameters(), max_message_size=None, max_frame_size=None
    )
    server.receive_data(bomb)
    assert server.events_received() == [BinaryMessage(b"\x00" * 1_000_000)]


def test_corrupt_compressed_data() -> None:
    server = WebSocketConnection("server", deflate=DeflateParameters())
    server.receive_data(frame(0x2, b"\xff\xff\xff\xff", rsv=0x40))
    [closed] = server.events_received()
    assert isinstance(closed, Closed)
    assert closed.code == 1007


def test_rsv1_on_a_continuation_frame() -> None:
    server = WebSocketConnection("server", deflate=DeflateParameters())
    server.receive_data(frame(0x1, b"a", fin=False) + frame(0x0, b"b", rsv=0x40))
    [closed] = server.events_received()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.reason) == (1002, "A continuation frame has RSV1 set.")


def test_a_deferred_failure_lets_a_send_go_out_before_the_close() -> None:
    """What a driver does before a send (take in what arrived, to see a close frame)
    must not fail the connection ahead of that send: Autobahn 4.1.5 wants the echo of
    'first' before the 1002 that answers the reserved opcode."""
    server = WebSocketConnection("server")
    server.receive_data(frame(0x1, b"first") + frame(0x7, b"reserved") + frame(0x9, b""))
    assert server.next_event(defer_failure=True) == TextMessage("first")
    assert not server.failure_pending
    assert server.next_event(defer_failure=True) is None  # the violation, kept
    assert server.failure_pending
    assert server.next_event(defer_failure=True) is None  # still kept, nothing parsed
    assert (server.state, server.error) == (OPEN, None)
    server.send_text("first")
    closed = server.next_event()
    assert isinstance(closed, Closed)
    assert closed.code == 1002
    assert isinstance(server.error, RemoteProtocolError)
    assert not server.failure_pending
    out = server.data_to_send()
    echo = encode_frame(0x1, b"first")
    assert out.startswith(echo)  # the echo, then the close frame
    assert out[len(echo)] == 0x88


def test_a_deferred_read_still_takes_in_a_close_frame() -> None:
    client = WebSocketConnection("client")
    client.receive_data(encode_frame(0x8, struct.pack("!H", 1001) + b"going away"))
    closed = client.next_event(defer_failure=True)
    assert closed == Closed(1001, "going away")
    assert client.state is CLOSED
    assert client.data_to_send()[:1] == b"\x88"  # our answer, masked


def test_input_pending_says_whether_what_was_received_is_parsed_to_its_end() -> None:
    """A close frame that came in the same read as a message is still in the engine once
    the message is handed over, with nothing left in the socket: input_pending tells the
    WebSocket to parse it before a send (it used to look at the socket only)."""
    server = WebSocketConnection("server")
    assert not server.input_pending
    assert server.next_event() is None  # nothing received: nothing parsed
    server.receive_data(frame(0x1, b"hello") + frame(0x8, struct.pack("!H", 1001)))
    assert server.input_pending
    assert server.next_event() == TextMessage("hello")
    assert server.input_pending  # the close frame is waiting
    assert server.next_event() == Closed(1001)
    assert not server.input_pending  # nothing is parsed after the close
    client = WebSocketConnection("client")
    client.receive_data(encode_frame(0x1, b"half")[:3])
    assert client.next_event() is None
    assert not client.input_pending  # what is left needs more bytes
    client.receive_eof()
    assert client.input_pending
    assert client.next_event() == Closed(1006)


def test_messages_before_a_violation_are_delivered_first() -> None:
    """Lazy parsing: Autobahn 4.1.3 and friends expect the echo before the failure."""
    server = WebSocketConnection("server")
    server.receive_data(frame(0x1, b"first") + frame(0x5, b"") + frame(0x9, b""))
    assert server.next_event() == TextMessage("first")
    server.send_text("first")
    echoed = server.data_to_send()
    assert echoed == encode_frame(0x1, b"first")
    closed = server.next_event()
    assert isinstance(closed, Closed)
    assert closed.code == 1002


# ------------------------------------------------------------------ closing handshake


def test_we_close_first() -> None:
    client, server = pair()
    client.send_text("last words")
    client.close(1001, "going away")
    assert client.state is CLOSING
    assert client.close_code == 1001
    with pytest.raises(LocalProtocolError, match="closing"):
        client.send_text("too late")
    with pytest.raises(LocalProtocolError, match="already called"):
        client.close()
    assert pump(client, server) == [TextMessage("last words"), Closed(1001, "going away")]
    server.send_text("nope") if server.state is OPEN else None
    assert pump(server, client) == [Closed(1001, "")]
    assert client.state is CLOSED
    assert (client.close_code, client.close_reason) == (1001, "going away")
    with pytest.raises(LocalProtocolError, match="already closed"):
        client.close()
    with pytest.raises(LocalProtocolError, match="closed"):
        client.send_binary(b"x")


def test_messages_received_while_closing_are_still_delivered() -> None:
    client, server = pair()
    client.close()
    server.send_text("in flight")
    assert pump(server, client) == [TextMessage("in flight")]
    server.receive_data(client.data_to_send())
    assert server.events_received() == [Closed(1000, "")]
    client.receive_data(server.data_to_send())
    assert client.events_received() == [Closed(1000, "")]


def test_ping_while_closing_gets_no_pong() -> None:
    _client, server = pair()
    server.close()
    server.data_to_send()
    server.receive_data(frame(0x9, b"late ping"))
    assert server.events_received() == []
    assert server.data_to_send() == b""


def test_peer_closes_with_no_code() -> None:
    server, events = server_receiving(frame(0x8, b""))
    assert events == [Closed(1005, "")]
    assert server.close_code == 1005
    assert server.data_to_send() == b"\x88\x00"  # an empty close back


def test_data_after_the_peers_close_is_discarded() -> None:
    server, events = server_receiving(frame(0x8, b"\x03\xe8") + frame(0x1, b"ignored"))
    assert events == [Closed(1000, "")]
    server.receive_data(frame(0x1, b"also ignored"))
    assert server.next_event() is None


def test_connection_lost_without_close_frame() -> None:
    server = WebSocketConnection("server")
    server.receive_data(frame(0x1, b"hello")[:4])
    server.receive_eof()
    assert server.events_received() == [Closed(1006, "")]
    assert server.close_code == 1006
    with pytest.raises(LocalProtocolError, match="after receive_eof"):
        server.receive_data(b"x")
    for partial in (b"", frame(0x9, b"abc")[:8], frame(0x2, b"abcdef")[:8]):
        server = WebSocketConnection("server")
        server.receive_data(partial)
        server.receive_eof()
        assert server.events_received() == [Closed(1006, "")]


def test_receive_data_takes_bytes_only() -> None:
    # wsproto's receive_data(None) means the end of the stream: passed through, it
    # made the next next_event() raise wsproto's own LocalProtocolError, and a str
    # raised a bare TypeError.
    server = WebSocketConnection("server")
    for wrong in (None, "text", 7):
        with pytest.raises(LocalProtocolError, match="receive_data\\(\\) takes bytes"):
            server.receive_data(wrong)  # type: ignore[arg-type]
    assert server.next_event() is None
    assert server.state is OPEN
    server.receive_data(bytearray(frame(0x1, b"hel", fin=False)))
    server.receive_data(memoryview(frame(0x0, b"lo")))
    assert server.events_received() == [TextMessage("hello")]

    class Subclass(bytes):
        pass

    server.receive_data(Subclass(frame(0x1, b"hi")))  # a subclass of bytes is bytes
    assert server.events_received() == [TextMessage("hi")]


def test_headers_arriving_in_pieces() -> None:
    data = frame(0x2, b"x" * 300) + frame(0x2, b"y" * 70000)
    server = WebSocketConnection("server")
    events: list[object] = []
    for cut in (1, 2, 3, 5, 9, 12, 20):
        server.receive_data(data[:cut])
        data = data[cut:]
        events += server.events_received()
    server.receive_data(data)
    events += server.events_received()
    assert events == [BinaryMessage(b"x" * 300), BinaryMessage(b"y" * 70000)]


def test_a_64_bit_length_header_arriving_in_pieces() -> None:
    data = frame(0x2, b"z" * 70000)
    server = WebSocketConnection("server")
    for start in range(0, 14, 5):
        server.receive_data(data[start : start + 5])
        assert server.events_received() == []
    server.receive_data(data[15:])
    assert server.events_received() == [BinaryMessage(b"z" * 70000)]


def test_a_violation_after_our_close_sends_no_second_close() -> None:
    server = WebSocketConnection("server")
    server.close()
    server.data_to_send()
    server.receive_data(frame(0x5, b""))
    [closed] = server.events_received()
    assert isinstance(closed, Closed)
    assert closed.code == 1002
    assert server.close_code == 1000  # ours, sent first
    assert server.data_to_send() == b""


def test_connection_lost_after_our_close_keeps_our_code() -> None:
    client = WebSocketConnection("client")
    client.close(4000, "mine")
    client.receive_eof()
    assert client.events_received() == [Closed(1006, "")]
    assert client.close_code == 4000


@pytest.mark.parametrize(
    "code", [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 0, True, "1000"]
)
def test_invalid_close_codes_to_send(code: object) -> None:
    client = WebSocketConnection("client")
    with pytest.raises(ValueError, match="Close code"):
        client.close(code)  # type: ignore[arg-type]
    assert client.state is OPEN
    with pytest.raises(ValueError):
        check_close_code(code)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes_to_send(code: int) -> None:
    server = WebSocketConnection("server")
    server.close(code)
    assert server.data_to_send() == b"\x88\x02" + code.to_bytes(2, "big")
    # 1014 (IANA) may be sent, though wsproto's table, and so our receiving side,
    # refuses it (test_valid_received_close_codes_agree_with_wsproto).


@pytest.mark.parametrize("code", [1016, 2000, 2999])
def test_close_codes_reserved_for_future_versions_are_not_sent(code: int) -> None:
    """Issue: we sent 1016-2999 (RFC 6455 section 7.4.2 keeps them for future versions)
    though peers, our own receiving side included, refuse them with 1002."""
    client = WebSocketConnection("client")
    with pytest.raises(ValueError, match="reserved for future versions"):
        client.close(code)
    assert client.state is OPEN
    assert client.data_to_send() == b""
    assert not is_valid_received_close_code(code)


def test_close_reason_length() -> None:
    client = WebSocketConnection("client")
    with pytest.raises(ValueError, match="123 bytes"):
        client.close(1000, "é" * 62)
    client.close(1000, "é" * 61 + "x")


def test_compression_is_reported() -> None:
    client, _ = pair(deflate=True)
    assert client.compression == DeflateParameters()
    assert WebSocketConnection("server").compression is None


def test_compress_threshold() -> None:
    client = WebSocketConnection("client", deflate=DeflateParameters(), compress_threshold=10)
    client.send_text("short")
    assert client.data_to_send()[0] == 0x81  # no RSV1
    client.send_text("long enough to compress")
    assert client.data_to_send()[0] == 0xC1


def test_no_context_takeover_resets_both_sides() -> None:
    params = DeflateParameters(our_no_context_takeover=True, their_no_context_takeover=True)
    client = WebSocketConnection("client", deflate=params)
    server = WebSocketConnection("server", deflate=params)
    sizes = []
    for _ in range(3):
        client.send_text("repeat " * 20)
        data = client.data_to_send()
        sizes.append(len(data))
        server.receive_data(data)
        assert server.events_received() == [TextMessage("repeat " * 20)]
    assert sizes[0] == sizes[1] == sizes[2]  # no shared history between messages


def test_an_unanswered_no_context_takeover_offer_binds_nobody() -> None:
    # Autobahn 12.*/13.*: the client offers client_no_context_takeover ("you may ask
    # me"), we do not echo it, so the client keeps its LZ77 window across messages;
    # the server must keep its inflater too or it fails with 1007.
    _, params = server_accept(["permessage-deflate; client_no_context_takeover"])  # type: ignore[misc]
    server = WebSocketConnection("server", deflate=params)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    text = "the same sixteen" * 4
    for _ in range(3):
        body = (compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        server.receive_data(frame(0x1, body, rsv=0x40))
        assert server.events_received() == [TextMessage(text)]


def _compressed_frame(body: bytes, *, fin: bool = True, opcode: int = 0x1) -> bytes:
    return frame(opcode, body, fin=fin, rsv=0x40 if opcode else 0)


def test_messages_that_end_their_deflate_stream_with_bfinal() -> None:
    # RFC 7692 section 7.2.3.4: a sender may end each message with a BFINAL block; its
    # next message is then a new DEFLATE stream. None of them may inflate to nothing.
    server = WebSocketConnection("server", deflate=DeflateParameters())
    for text in ("hello", "world", "again"):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = compressor.compress(text.encode()) + compressor.flush(zlib.Z_FINISH)
        server.receive_data(_compressed_frame(body[:2], fin=False))
        server.receive_data(_compressed_frame(body[2:], opcode=0x0))
        assert server.events_received() == [TextMessage(text)]


def test_data_after_the_end_of_a_deflate_stream_fails_with_1007() -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(b"hello") + compressor.flush(zlib.Z_FINISH) + b"\x01\x02"
    server, events = server_receiving(_compressed_frame(body), deflate=DeflateParameters())
    assert sent_close_code(server) == 1007
    assert "end of the compressed stream" in str(server.error)
    assert not any(isinstance(event, TextMessage) for event in events)


def test_context_takeover_shrinks_repeated_messages() -> None:
    client, server = pair(deflate=True)
    sizes = []
    for _ in range(2):
        client.send_text("repeat " * 20)
        data = client.data_to_send()
        sizes.append(len(data))
        server.receive_data(data)
        server.events_received()
    assert sizes[1] < sizes[0]


def test_empty_compressed_message() -> None:
    client, server = pair(deflate=True)
    client.send_binary(b"")
    assert pump(client, server) == [BinaryMessage(b"")]


# ------------------------------------------------------------------------- properties

messages = st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=6)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.booleans(), st.data())
def test_any_segmentation_gives_the_same_messages(
    sent: list[str | bytes], deflate: bool, data: st.DataObject
) -> None:
    client, server = pair(deflate)
    for message in sent:
        client.send_message(message)
    client.send_ping(b"keepalive")
    wire = client.data_to_send()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    received: list[object] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        server.receive_data(wire[start:end])
        received += server.events_received()
    assert received == [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in sent]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.binary(max_size=300), st.sampled_from(["client", "server"]), st.booleans(), st.booleans())
def test_garbage_ends_in_a_valid_close_and_never_raises(
    garbage: bytes, role: str, deflate: bool, eof: bool
) -> None:
    conn = WebSocketConnection(role, deflate=DeflateParameters() if deflate else None)  # type: ignore[arg-type]
    conn.receive_data(garbage)
    if eof:
        conn.receive_eof()
    events = conn.events_received()
    closes = [e for e in events if isinstance(e, Closed)]
    assert len(closes) <= 1
    if closes:
        assert closes[0] is events[-1]
        assert (
            closes[0].code
            in (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
            or 3000 <= closes[0].code <= 4999
        )
        out = conn.data_to_send()
        if out and role == "server":
            assert out[0] & 0x0F in (0x8, 0xA)


def test_zlib_errors_are_not_swallowed_elsewhere() -> None:
    assert zlib.compressobj()  # the module the codec uses is the standard one


def test_driver_helpers_report_pending_output_and_eof() -> None:
    client = WebSocketConnection("client")
    assert not client.wants_write
    client.send_text("x")
    assert client.wants_write
    client.data_to_send()
    assert not client.wants_write
    assert not client.eof_received
    client.receive_eof()
    assert client.eof_received


# ------------------------------------------------------------- misuse raises typed errors


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda c: c.send_text(b"bytes"), "send_text() takes a str, not bytes"),
        (lambda c: c.send_text("lone \udc80"), "no UTF-8 form"),
        (lambda c: c.send_binary("text"), "send_binary() takes bytes"),
        (lambda c: c.send_message(42), "not int"),
        (lambda c: c.send_message(None), "not NoneType"),
        (lambda c: c.send_ping("text"), "send_ping() takes bytes"),
        (lambda c: c.send_pong(7), "send_pong() takes bytes"),
        (lambda c: c.send_ping(b"x" * 126), "ping payload is at most 125 bytes"),
        (lambda c: c.close(1000, b"bytes"), "close reason is a str"),
        (lambda c: c.close(1000, "\ud800"), "no UTF-8 form"),
        (lambda c: c.close(1000, "x" * 124), "123 bytes"),
    ],
)
def test_misuse_raises_local_protocol_error_and_changes_nothing(
    call: object, fragment: str
) -> None:
    for role in ("client", "server"):
        conn = WebSocketConnection(role, deflate=DeflateParameters())  # type: ignore[arg-type]
        with pytest.raises(
            LocalProtocolError, match=fragment.replace("(", r"\(").replace(")", r"\)")
        ):
            call(conn)  # type: ignore[operator]
        assert conn.state is OPEN
        assert conn.data_to_send() == b""


def test_send_text_of_bytes_regression() -> None:
    """It used to raise AttributeError: 'bytes' object has no attribute 'encode'."""
    client = WebSocketConnection("client")
    with pytest.raises(LocalProtocolError, match="send_binary"):
        client.send_text(b"not text")  # type: ignore[arg-type]


def test_bytes_like_payloads_are_accepted() -> None:
    client, server = pair()
    client.send_binary(bytearray(b"ab"))
    client.send_binary(memoryview(b"cd"))
    client.send_ping(memoryview(b"p"))  # type: ignore[arg-type]
    client.send_pong(bytearray(b"q"))  # type: ignore[arg-type]
    assert pump(client, server) == [BinaryMessage(b"ab"), BinaryMessage(b"cd"), Pong(b"q")]


def test_limits_and_threshold_can_change_after_construction() -> None:
    server = WebSocketConnection("server", deflate=DeflateParameters())
    server.max_message_size = 10
    server.max_frame_size = None
    server.compress_threshold = 1000
    assert (server.max_message_size, server.max_frame_size, server.compress_threshold) == (
        10,
        None,
        1000,
    )
    server.send_text("short")
    assert server.data_to_send()[0] == 0x81  # below the threshold: no RSV1
    server.receive_data(frame(0x2, b"x" * 11))
    [closed] = server.events_received()
    assert closed == Closed(1009, "A message exceeds the 10-byte limit.")
    plain = WebSocketConnection("client")
    plain.compress_threshold = 5
    assert plain.compress_threshold == 5


def test_a_text_message_is_limited_in_utf8_bytes_not_characters() -> None:
    text = "é" * 60  # 120 bytes of UTF-8
    assert_fails(frame(0x1, text.encode()), 1009, "message exceeds", max_message_size=100)
    _, events = server_receiving(frame(0x1, text.encode()), max_message_size=120)
    assert events == [TextMessage(text)]


def test_the_frame_limit_counts_each_frame_of_a_message() -> None:
    data = frame(0x2, b"x" * 80, fin=False) + frame(0x0, b"x" * 80)
    _, events = server_receiving(data, max_frame_size=100)
    assert events == [BinaryMessage(b"x" * 160)]
    assert_fails(data + frame(0x2, b"y" * 101), 1009, "frame exceeds", max_frame_size=100)


def test_a_huge_frame_fails_as_soon_as_its_bytes_pass_the_limit() -> None:
    """The frame says 1 GiB; what arrived so far is refused once past the limit, long
    before the frame is complete (wsproto hands over partial frames)."""
    server = WebSocketConnection("server", max_message_size=1000)
    server.receive_data(b"\x82\xff" + (1 << 30).to_bytes(8, "big") + MASK + b"x" * 600)
    assert server.events_received() == []
    server.receive_data(b"x" * 600)
    [closed] = server.events_received()
    assert closed == Closed(1009, "A message exceeds the 1000-byte limit.")


# ------------------------------------------------------- permessage-deflate, bounded


def _deflated(data: bytes, *, wbits: int = 15) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_a_small_payload_inflating_past_the_limit_closes_1009_without_inflating_it() -> None:
    body = _deflated(bytes(64 * 1024 * 1024))  # 64 MiB of zeros
    assert len(body) < 70_000
    server = WebSocketConnection("server", deflate=DeflateParameters(), max_message_size=MiB)
    tracemalloc.start()
    try:
        server.receive_data(frame(0x2, body, rsv=0x40))
        events = server.events_received()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [Closed(1009, "A message exceeds the 1048576-byte limit once inflated.")]
    assert sent_close_code(server) == 1009
    assert peak < 4 * MiB  # the wire bytes and at most one MiB (+1) inflated


def test_the_inflate_bound_spans_the_fragments_of_a_message() -> None:
    body = _deflated(bytes(3000))
    cut = len(body) // 2
    data = frame(0x2, body[:cut], fin=False, rsv=0x40) + frame(0x0, body[cut:])
    _, events = server_receiving(data, deflate=DeflateParameters(), max_message_size=2999)
    assert events == [Closed(1009, "A message exceeds the 2999-byte limit once inflated.")]
    _, events = server_receiving(data, deflate=DeflateParameters(), max_message_size=3000)
    assert events == [BinaryMessage(bytes(3000))]


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_a_ping_between_compressed_fragments_is_answered_and_the_message_intact(
    opcode: int,
) -> None:
    """wsproto PR #205 (unmerged in 1.3.2): wsproto's own PerMessageDeflate loses track of the message here."""
    text = "compressed across fragments, with a ping between them " * 20
    body = _deflated(text.encode())
    thirds = len(body) // 3
    data = (
        frame(opcode, body[:thirds], fin=False, rsv=0x40)
        + frame(0x9, b"between")
        + frame(0x0, body[thirds : 2 * thirds], fin=False)
        + frame(0xA, b"pong too")
        + frame(0x0, body[2 * thirds :])
    )
    for step in (len(data), 1):
        server = WebSocketConnection("server", deflate=DeflateParameters())
        events: list[object] = []
        for start in range(0, len(data), step):
            server.receive_data(data[start : start + step])
            events += server.events_received()
        expected = TextMessage(text) if opcode == 0x1 else BinaryMessage(text.encode())
        assert events == [Pong(b"pong too"), expected]
        assert server.data_to_send() == encode_frame(0xA, b"between")
    # and the next message still inflates with the shared window
    server.receive_data(frame(0x1, _deflated(b"next"), rsv=0x40))
    assert server.events_received() == [TextMessage("next")]


def test_wsproto_still_mishandles_a_ping_between_compressed_fragments() -> None:
    """Why we have our own extension: if this starts failing, wsproto merged its fix (PR #205)."""
    from wsproto.extensions import PerMessageDeflate
    from wsproto.frame_protocol import FrameProtocol, Opcode

    extension = PerMessageDeflate()
    extension.finalize("permessage-deflate")
    proto = FrameProtocol(client=False, extensions=[extension])
    body = _deflated(b"abcdefgh" * 40)
    proto.receive_bytes(
        frame(0x2, body[:5], fin=False, rsv=0x40) + frame(0x9, b"") + frame(0x0, body[5:])
    )
    payload = b"".join(
        bytes(f.payload)  # type: ignore[arg-type]
        for f in proto.received_frames()
        if f.opcode is Opcode.BINARY
    )
    assert payload != b"abcdefgh" * 40


def test_a_control_frame_with_rsv1_fails_when_compression_is_agreed() -> None:
    assert_fails(
        frame(0x9, b"x", rsv=0x40), 1002, "control frame has RSV1", deflate=DeflateParameters()
    )


@pytest.mark.parametrize("bits", [8, 9, 12])
def test_the_peers_agreed_window_inflates_its_messages(bits: int) -> None:
    data = os.urandom(300) * 20
    params = DeflateParameters(their_window_bits=bits)
    _, events = server_receiving(
        frame(0x2, _deflated(data, wbits=max(bits, 9)), rsv=0x40), deflate=params
    )
    assert events == [BinaryMessage(data)]


def test_our_window_and_no_context_takeover_are_honoured() -> None:
    params = DeflateParameters(our_window_bits=9, our_no_context_takeover=True)
    client = WebSocketConnection("client", deflate=params)
    data = os.urandom(300) * 20
    client.send_binary(data)
    wire = client.data_to_send()
    server = WebSocketConnection(
        "server", deflate=DeflateParameters(their_window_bits=9, their_no_context_takeover=True)
    )
    server.receive_data(wire)
    assert server.events_received() == [BinaryMessage(data)]
    client.send_binary(data)
    assert len(client.data_to_send()) == len(wire)  # no shared history


def test_a_message_ending_in_a_final_empty_stored_block() -> None:
    # RFC 7692 section 7.2.1 removes 00 00 FF FF from "01 00 00 FF FF", a final empty
    # stored block, leaving its header: our appended tail completes it.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(b"hello") + compressor.flush(zlib.Z_SYNC_FLUSH) + b"\x01"
    _, events = server_receiving(frame(0x1, body, rsv=0x40), deflate=DeflateParameters())
    assert events == [TextMessage("hello")]


def test_the_extension_offers_what_the_handshake_offers() -> None:
    from sansnet.protocol.websocket.deflate import DeflateExtension, client_offer

    extension = DeflateExtension(DeflateParameters(), SizeLimits(None, None))
    assert extension.enabled()
    assert f"permessage-deflate; {extension.offer()}" == client_offer()


# ------------------------------------------------------------------ the rule tables


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        *[(code, True) for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011)],
        *[(code, True) for code in (1012, 1013, 3000, 3999, 4000, 4999)],
        *[(code, False) for code in (0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000)],
    ],
)
def test_valid_received_close_codes_agree_with_wsproto(code: int, valid: bool) -> None:
    assert is_valid_received_close_code(code) is valid
    _, events = server_receiving(frame(0x8, code.to_bytes(2, "big")))
    [closed] = events
    assert isinstance(closed, Closed)
    assert closed.code == (code if valid else 1002)


def test_a_reason_wsproto_words_in_a_way_we_do_not_know_is_passed_on() -> None:
    assert explain("Something new went wrong") == "Something new went wrong"
    assert explain("Invalid opcode 0x3") == "A frame has the reserved opcode 0x3."


def test_size_limits_room() -> None:
    assert SizeLimits(None, None).room(10, 20) is None
    assert SizeLimits(100, None).room(10, 20) == 80
    assert SizeLimits(None, 100).room(10, 20) == 90
    assert SizeLimits(100, 50).room(10, 20) == 40
    assert SizeLimits(None, None).breach(1 << 40, 1 << 40) is None
