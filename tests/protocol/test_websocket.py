"""WebSocketConnection: a client and a server object joined in memory, every failure path
with the exact close code, the closing handshake, limits, compression and properties."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansnet.errors import LocalProtocolError, RemoteProtocolError
from sansnet.protocol.websocket import (
    CLOSED,
    CLOSING,
    OPEN,
    BinaryMessage,
    Closed,
    DeflateParameters,
    Pong,
    TextMessage,
    WebSocketConnection,
    check_close_code,
)
from sansnet.protocol.websocket._frames import encode_frame
from sansnet.protocol.websocket._mask import apply_mask, python_apply_mask
from sansnet.protocol.websocket.deflate import server_accept

MASK = b"\x01\x02\x03\x04"


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
    data = encode_frame(opcode, payload, fin=fin, mask=MASK if mask else None)
    return bytes([data[0] | rsv]) + data[1:]


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
    assert fragment.lower() in events[-1].reason.lower()
    assert sent_close_code(server) == code
    assert server.state is CLOSED
    assert server.close_code == code
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


def test_masking_keys_come_from_the_random_source() -> None:
    calls: list[int] = []

    def random(n: int) -> bytes:
        calls.append(n)
        return bytes(n)

    client = WebSocketConnection("client", random=random)
    client.send_binary(b"ab")
    assert client.data_to_send() == b"\x82\x82\x00\x00\x00\x00ab"
    client.send_binary(b"cd")
    client.data_to_send()
    assert calls == [1024]  # keys are drawn from a pool, not one syscall per frame


def test_bad_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        WebSocketConnection("peer")  # type: ignore[arg-type]


# --------------------------------------------------------------------- failure paths

FAILURES = [
    pytest.param(frame(0x1, b"x", rsv=0x20), 1002, "RSV2 or RSV3", id="rsv2"),
    pytest.param(frame(0x1, b"x", rsv=0x10), 1002, "RSV2 or RSV3", id="rsv3"),
    pytest.param(frame(0x1, b"x", rsv=0x40), 1002, "no compression", id="rsv1-without-deflate"),
    pytest.param(frame(0x9, b"x", rsv=0x40), 1002, "control frame has RSV1", id="rsv1-on-control"),
    *[
        pytest.param(frame(op, b"x"), 1002, "reserved data opcode", id=f"opcode-{op}")
        for op in range(3, 8)
    ],
    *[
        pytest.param(frame(op, b""), 1002, "reserved control opcode", id=f"opcode-{op}")
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
        f"invalid close code {code}",
        id=f"close-code-{code}",
    )
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
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
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
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


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 5000, 0, True, "1000"])
def test_invalid_close_codes_to_send(code: object) -> None:
    client = WebSocketConnection("client")
    with pytest.raises(ValueError, match="Close code"):
        client.close(code)  # type: ignore[arg-type]
    assert client.state is OPEN
    with pytest.raises(ValueError):
        check_close_code(code)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [1000, 1003, 1016, 2999, 3000, 4999])
def test_valid_close_codes_to_send(code: int) -> None:
    server = WebSocketConnection("server")
    server.close(code)
    assert server.data_to_send() == b"\x88\x02" + code.to_bytes(2, "big")
    # 1016-2999 are reserved for future RFCs: we may send them when asked to, but a
    # peer may refuse them (as we do, with 1002; Autobahn 7.9.*).


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


# ---------------------------------------------------------------------------- masking


@given(st.binary(max_size=2000), st.binary(min_size=4, max_size=4))
def test_python_and_c_masking_agree(data: bytes, mask: bytes) -> None:
    assert python_apply_mask(data, mask) == apply_mask(data, mask)
    assert python_apply_mask(python_apply_mask(data, mask), mask) == data


@pytest.mark.parametrize("size", [511, 512, 513, 4096, 100_003])
def test_python_masking_of_long_payloads(size: int) -> None:
    data = os.urandom(size)
    assert python_apply_mask(data, MASK) == apply_mask(data, MASK)


def test_c_masking_checks_its_arguments() -> None:
    from sansnet.protocol import _speedups

    with pytest.raises(ValueError, match="4 bytes"):
        _speedups.apply_mask(b"abc", b"12")
    with pytest.raises(TypeError):
        _speedups.apply_mask(b"abc")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.apply_mask("abc", b"1234")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.apply_mask(b"abc", "1234")  # type: ignore[arg-type]
    assert _speedups.apply_mask(bytearray(b"ab"), memoryview(b"\x01\x01\x01\x01")) == b"`c"


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
