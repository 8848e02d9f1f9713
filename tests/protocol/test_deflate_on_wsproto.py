"""DeflateExtension inside wsproto's own handshake (``WSConnection``), as an embedder who
drives wsproto directly uses it: negotiated through wsproto's extension hooks, and talking
to wsproto's own ``PerMessageDeflate``."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import RemoteProtocolError

from sansnet.protocol.websocket.deflate import DeflateExtension, DeflateParameters
from sansnet.protocol.websocket.sizes import SizeLimits


def _pair(
    client_extension: Extension, server_extension: Extension
) -> tuple[WSConnection, WSConnection]:
    """A client and a server WSConnection, handshake done."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(
        client.send(Request(host="example", target="/", extensions=[client_extension]))
    )
    request = next(server.events())
    assert isinstance(request, Request)
    client.receive_data(server.send(AcceptConnection(extensions=[server_extension])))
    accepted = next(client.events())
    assert isinstance(accepted, AcceptConnection)
    return client, server


def _deliver(data: bytes, receiver: WSConnection) -> list[Event]:
    receiver.receive_data(data)
    return list(receiver.events())


def _first_byte_of_each_frame(wire: bytes, *, masked: bool) -> list[int]:
    """The first header byte (FIN, RSV1-3, opcode) of each frame of short frames."""
    firsts, i = [], 0
    while i < len(wire):
        firsts.append(wire[i])
        length = wire[i + 1] & 0x7F
        assert length < 126
        i += 2 + (4 if masked else 0) + length
    return firsts


@pytest.mark.parametrize("peer_is_wsproto", [False, True])
def test_negotiated_by_wsproto_and_compressing(peer_is_wsproto: bool) -> None:
    ours = DeflateExtension(limits=SizeLimits(1000, 1000))
    theirs: Extension = PerMessageDeflate() if peer_is_wsproto else DeflateExtension()
    client, server = _pair(ours, theirs)
    assert ours.params == DeflateParameters()
    wire = server.send(TextMessage("hello " * 50))
    assert len(wire) < 50  # compressed
    assert _deliver(wire, client) == [TextMessage("hello " * 50)]
    wire = client.send(BytesMessage(b"x" * 400))
    assert _deliver(wire, server) == [BytesMessage(b"x" * 400)]


@pytest.mark.parametrize("peer_is_wsproto", [False, True])
def test_a_fragmented_message_is_one_compressed_stream(peer_is_wsproto: bool) -> None:
    # RSV1 marks the first frame only (RFC 7692 section 6.1); the last frame flushes.
    ours = DeflateExtension()
    theirs: Extension = PerMessageDeflate() if peer_is_wsproto else DeflateExtension()
    client, server = _pair(ours, theirs)
    parts = [b"abc" * 10, b"", b"def" * 10, b"ghi"]
    wire = b"".join(
        client.send(BytesMessage(part, message_finished=i == len(parts) - 1))
        for i, part in enumerate(parts)
    )
    firsts = _first_byte_of_each_frame(wire, masked=True)
    assert firsts == [0x42, 0x00, 0x00, 0x80]  # RSV1|binary, continuation x2, FIN|continuation
    received = _deliver(wire, server)
    assert b"".join(bytes(event.data) for event in received) == b"".join(parts)  # type: ignore[attr-defined]
    # The context carries over to the next message, compressed as a whole.
    assert _deliver(client.send(BytesMessage(b"abc" * 10)), server) == [BytesMessage(b"abc" * 10)]


def test_an_empty_fragmented_message_is_one_empty_block() -> None:
    # After a first message, flushing nothing yields only the 00 00 FF FF that is cut off:
    # the empty message must still carry one byte (RFC 7692 section 7.2.3.6).
    client, server = _pair(DeflateExtension(), DeflateExtension())
    assert _deliver(client.send(BytesMessage(b"first")), server) == [BytesMessage(b"first")]
    wire = client.send(BytesMessage(b""))
    assert wire[1] & 0x7F == 1  # one payload byte
    assert _deliver(wire, server) == [BytesMessage(b"")]
    wire = client.send(BytesMessage(b"", message_finished=False))
    wire += client.send(BytesMessage(b"", message_finished=True))
    received = _deliver(wire, server)
    assert b"".join(bytes(event.data) for event in received) == b""  # type: ignore[attr-defined]
    assert not any(isinstance(event, CloseConnection) for event in received)


def test_the_threshold_is_decided_by_the_first_frame() -> None:
    ours = DeflateExtension(compress_threshold=20)
    client, server = _pair(ours, DeflateExtension())
    wire = client.send(BytesMessage(b"short", message_finished=False))
    wire += client.send(BytesMessage(b"then a much longer tail " * 5, message_finished=True))
    assert _first_byte_of_each_frame(wire, masked=True) == [0x02, 0x80]  # no RSV1
    received = _deliver(wire, server)
    assert b"".join(bytes(event.data) for event in received) == (  # type: ignore[attr-defined]
        b"short" + b"then a much longer tail " * 5
    )


def test_inflating_stays_within_the_limits_under_wsproto() -> None:
    # 1 MiB of zeros compresses to about 1 KB; the server's limit is 1,000 bytes, and the
    # inflate stops one byte past it instead of producing the whole MiB.
    guard = DeflateExtension(limits=SizeLimits(1000, None))
    client, server = _pair(PerMessageDeflate(), guard)
    wire = client.send(BytesMessage(bytes(1 << 20)))
    assert len(wire) < 2000
    events = _deliver(wire, server)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1009
    assert guard.failure == "A message exceeds the 1000-byte limit once inflated."


def test_server_declines_what_it_cannot_honour_and_wsproto_leaves_it_out() -> None:
    ours = DeflateExtension()
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    offer = DeflateExtension(server_max_window_bits=8)  # zlib cannot compress with 8 bits
    server.receive_data(client.send(Request(host="example", target="/", extensions=[offer])))
    next(server.events())
    answer = server.send(AcceptConnection(extensions=[ours]))
    assert b"permessage-deflate" not in answer.lower()
    assert not ours.enabled()
    client.receive_data(answer)
    next(client.events())
    wire = server.send(TextMessage("plain " * 20))
    assert wire[0] == 0x81  # FIN|text, no RSV1
    assert _deliver(wire, client) == [TextMessage("plain " * 20)]


def test_the_compressor_keeps_its_window_unless_no_context_takeover() -> None:
    for takeover in (True, False):
        ours = DeflateExtension(client_no_context_takeover=not takeover)
        client, server = _pair(ours, DeflateExtension())
        first = client.send(BytesMessage(b"a repeated phrase " * 4))
        second = client.send(BytesMessage(b"a repeated phrase " * 4))
        assert (len(second) < len(first)) is takeover
        assert _deliver(first + second, server) == [BytesMessage(b"a repeated phrase " * 4)] * 2


def test_a_refused_answer_is_wsprotos_own_error_under_wsproto() -> None:
    # Under WSConnection, a server's answer our offer does not allow raises what wsproto
    # raises for any bad answer (RemoteProtocolError hinting RejectConnection), not a
    # sansnet HandshakeError from inside wsproto's handshake.
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    offer = DeflateExtension(server_max_window_bits=10)
    server.receive_data(client.send(Request(host="example", target="/", extensions=[offer])))
    next(server.events())
    answer = server.send(AcceptConnection(extensions=[PerMessageDeflate()]))
    assert b"server_max_window_bits=10" in answer
    answer = answer.replace(b"server_max_window_bits=10", b"server_max_window_bits=12")
    with pytest.raises(RemoteProtocolError, match="did not honour") as info:
        client.receive_data(answer)
    assert isinstance(info.value.event_hint, RejectConnection)
    assert not offer.enabled()
