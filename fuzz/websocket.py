"""Fuzz harness: a WebSocketConnection, after the handshake, fed arbitrary bytes.

Run: ``python fuzz/websocket.py [libFuzzer flags] [corpus dirs]`` (see fuzz/README.md).

Input: byte 0 options, byte 1 where to cut the rest into pieces, then the bytes the
peer sends. Options:

* bit 0: we are the client (the peer's frames must be unmasked), else the server
* bit 1: permessage-deflate was agreed
* bit 2: the peer compresses without context takeover
* bit 3: windows of 9 bits (else 15) both ways
* bit 4: the peer's stream ends after the bytes (``receive_eof``)
* bit 5: we start the closing handshake before any byte arrives
* bit 6: we send a text message and a ping after each event
* bit 7: tiny limits (1000-byte messages, 300-byte frames), else 64 KiB and 16 KiB

Properties checked, any breach being a crash:

1. ``next_event`` never raises, and a failure it reports (``error``) is always the
   peer's :class:`~sansnet.RemoteProtocolError`, never an internal error caught by the
   connection's last-resort handler.
2. :class:`Closed` comes at most once, last, with a valid code: the peer's (1000-1003,
   1007-1013, 3000-4999, 1005 for none), 1006 when the stream ended, or ours for a
   failure (1002, 1007, 1009). After the end of the stream it must have come.
3. Memory stays bounded: after each round of events wsproto's unparsed buffer holds
   less than one frame header and one control frame (we pull its events until it needs
   bytes), the message being assembled is within ``max_message_size``, what the deflate
   extension inflated within ``max_frame_size`` and ``max_message_size``, and every
   delivered message within ``max_message_size``.
4. Everything we send is valid for the peer: parsed by wsproto's frame decoder in the
   peer's role (masking, control frame sizes, valid close codes, UTF-8 reasons,
   compressed payloads), with nothing after our close frame.
5. The messages and pongs we deliver, and those wsproto delivers for the same bytes,
   agree on their common prefix; a clean close from the peer gives both the same code.
   The engine itself drives wsproto, so this compares our policy layer and our
   permessage-deflate extension with bare wsproto and its ``PerMessageDeflate``.

The harness looks at private state (ours and wsproto's buffer) to check property 3.
"""

from __future__ import annotations

import sys

import _common
from _common import check

# wsproto parses the frames under WebSocketConnection: instrument it too, so the fuzzer
# is guided by its branches as well as ours.
with _common.instrumented("wsproto"):
    from wsproto.extensions import PerMessageDeflate
    from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

    from sansnet.errors import RemoteProtocolError
    from sansnet.protocol.websocket import (
        BinaryMessage,
        Closed,
        DeflateParameters,
        Pong,
        TextMessage,
        WebSocketConnection,
        is_valid_received_close_code,
    )

KiB = 1024
FAILURE_CODES = {1002, 1007, 1009}
# One frame header (at most 14 bytes) and one control frame's payload (at most 125):
# what the connection may hold unparsed once it has returned every event it can.
MAX_UNPARSED = 14 + 125


def _deflate(client: bool, params: DeflateParameters, *, inbound: bool) -> PerMessageDeflate:
    """wsproto's permessage-deflate for the role ``client``, configured like ``params``
    (seen from us). ``inbound``: the extension decodes what the peer sends us."""
    ours = params.our_window_bits, params.our_no_context_takeover
    theirs = params.their_window_bits, params.their_no_context_takeover
    # wsproto's client decompresses with the server's settings and vice versa.
    mine, peer = (ours, theirs) if inbound else (theirs, ours)
    if client:
        ext = PerMessageDeflate(
            client_max_window_bits=mine[0],
            client_no_context_takeover=mine[1],
            server_max_window_bits=peer[0],
            server_no_context_takeover=peer[1],
        )
    else:
        ext = PerMessageDeflate(
            server_max_window_bits=mine[0],
            server_no_context_takeover=mine[1],
            client_max_window_bits=peer[0],
            client_no_context_takeover=peer[1],
        )
    ext._enabled = True
    return ext


class Session:
    def __init__(self, options: int) -> None:
        self.client = bool(options & 1)
        bits = 9 if options & 8 else 15
        self.params = (
            DeflateParameters(
                our_window_bits=bits,
                their_window_bits=bits,
                their_no_context_takeover=bool(options & 4),
            )
            if options & 2
            else None
        )
        tiny = bool(options & 128)
        self.max_message = 1000 if tiny else 64 * KiB
        self.max_frame = 300 if tiny else 16 * KiB
        self.talk = bool(options & 64)
        self.conn = WebSocketConnection(
            "client" if self.client else "server",
            deflate=self.params,
            max_message_size=self.max_message,
            max_frame_size=self.max_frame,
        )
        self.events: list[object] = []
        self.closed: Closed | None = None
        self.output = bytearray()
        self.sent = 0

    def flush(self) -> None:
        self.output += self.conn.data_to_send()

    def pump(self) -> None:
        conn = self.conn
        for _ in range(100_000):
            event = conn.next_event()
            self.flush()
            if event is None:
                break
            check(self.closed is None, f"{event!r} after Closed")
            self.events.append(event)
            if isinstance(event, Closed):
                self.closed = event
            elif isinstance(event, TextMessage):
                check(len(event.data.encode("utf-8", "surrogatepass")) <= self.max_message, "text")
            elif isinstance(event, BinaryMessage):
                check(len(event.data) <= self.max_message, "binary message beyond the limit")
            else:
                check(isinstance(event, Pong), f"unexpected event {event!r}")
            if self.talk and conn.state.name == "OPEN":
                self.sent += 1
                conn.send_text(f"message {self.sent} é")
                conn.send_ping(b"p%d" % self.sent)
                self.flush()
        else:
            raise _common.Finding("next_event() never returned None")
        self.check_bounds()

    def check_bounds(self) -> None:
        conn = self.conn
        if self.closed is None:  # after Closed, nobody reads wsproto's buffer again
            unparsed = len(conn._ws._proto._frame_decoder.buffer)
            check(unparsed <= MAX_UNPARSED, f"{unparsed} bytes buffered unparsed")
        assembled = sum(
            len(part.encode("utf-8", "surrogatepass")) if isinstance(part, str) else len(part)
            for part in conn._parts
        )
        check(assembled <= self.max_message, f"{assembled} bytes assembled")
        check(conn._message_size <= self.max_message, f"message size {conn._message_size}")
        check(conn._frame_size <= self.max_frame, f"frame size {conn._frame_size}")
        deflate = conn._deflate
        if deflate is not None:
            check(deflate._message_size <= self.max_message, "inflated past the message limit")
            check(deflate._frame_size <= self.max_frame, "inflated past the frame limit")


def check_end(session: Session, eof: bool) -> None:
    conn = session.conn
    closed = session.closed
    if conn.error is not None:
        check(
            isinstance(conn.error, RemoteProtocolError),
            f"internal error: {conn.error!r}",
        )
        check(closed is not None and closed.code in FAILURE_CODES, f"failure with {closed}")
    if eof:
        check(closed is not None, "the stream ended without a Closed event")
    if closed is not None:
        code = closed.code
        check(
            is_valid_received_close_code(code) or code in (1005, 1006) or code in FAILURE_CODES,
            f"invalid close code {code}",
        )
        check(conn.state.name == "CLOSED", f"state {conn.state} after Closed")
        check(conn.next_event() is None, "an event after Closed")


def check_output(session: Session) -> None:
    """Property 4: the peer (wsproto, other role) can parse all we sent."""
    peer_client = not session.client
    extensions = [_deflate(peer_client, session.params, inbound=False)] if session.params else []
    proto = FrameProtocol(peer_client, extensions)
    proto.receive_bytes(bytes(session.output))
    closes = 0
    try:
        for frame in proto.received_frames():
            check(closes == 0, f"a frame after our close frame: {frame!r}")
            if frame.opcode is Opcode.CLOSE:
                closes += 1
                # wsproto reports an empty close frame as 1005 and refuses a literal one.
                code, _reason = frame.payload
                check(
                    code == 1005 or (1000 <= code <= 4999 and code not in (1004, 1006, 1015)),
                    f"we sent close code {code}",
                )
    except ParseFailed as error:
        raise _common.Finding(f"wsproto cannot parse what we sent: {error}") from None


def compare_with_wsproto(session: Session, wire: list[bytes]) -> None:
    """Property 5: wsproto's frame decoder, in our role, on the same bytes."""
    extensions = [_deflate(session.client, session.params, inbound=True)] if session.params else []
    proto = FrameProtocol(session.client, extensions)
    theirs: list[object] = []
    parts: list[str | bytes] = []
    their_close: tuple[int, str] | None = None
    wsproto_lost = False
    inflating = None
    try:
        for piece in wire:
            proto.receive_bytes(piece)
            for frame in proto.received_frames():
                if inflating is not None and inflating.eof:
                    # The message ended its DEFLATE stream with BFINAL: wsproto keeps the
                    # finished inflater and inflates every later message to nothing.
                    wsproto_lost = True
                    break
                if frame.opcode.iscontrol() and parts and session.params is not None:
                    # wsproto forgets that a fragmented message is compressed once a
                    # control frame comes between its fragments (its frame_inbound_complete
                    # resets _inbound_compressed) and passes the rest through raw: from
                    # here on it is no reference. RFC 6455 section 5.4 allows the frame.
                    wsproto_lost = True
                    break
                if frame.opcode is Opcode.PONG:
                    theirs.append(Pong(bytes(frame.payload)))
                elif frame.opcode is Opcode.CLOSE:
                    their_close = frame.payload
                    break
                elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                    payload = frame.payload
                    parts.append(payload if isinstance(payload, str) else bytes(payload))
                    if frame.message_finished:
                        inflating = extensions[0]._decompressor if extensions else None
                        if frame.opcode is Opcode.TEXT:
                            theirs.append(TextMessage("".join(parts)))  # type: ignore[arg-type]
                        else:
                            theirs.append(BinaryMessage(b"".join(parts)))  # type: ignore[arg-type]
                        parts = []
            if their_close is not None or wsproto_lost:
                break
    except ParseFailed:
        pass  # wsproto refused the bytes here; compare what came before
    ours = [event for event in session.events if not isinstance(event, Closed)]
    for index, (mine, their) in enumerate(zip(ours, theirs)):
        check(mine == their, f"event {index + 1}: ours {mine!r}, wsproto's {their!r}")
    closed = session.closed
    if (
        closed is not None
        and their_close is not None
        and session.conn.error is None
        and len(ours) == len(theirs)
    ):
        check(
            (closed.code, closed.reason) == (int(their_close[0]), their_close[1]),
            f"close {closed.code} {closed.reason!r} vs wsproto's {their_close}",
        )


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    options, split_seed = data[0], data[1]
    eof = bool(options & 16)
    session = Session(options)
    conn = session.conn
    if options & 32:
        conn.close(1001, "going away")
        session.flush()
    pieces = _common.split(data[2:], split_seed)
    for piece in pieces:
        if session.closed is not None:
            break
        conn.receive_data(piece)
        session.pump()
    if eof:
        conn.receive_eof()
        session.pump()
    check_end(session, eof)
    check_output(session)
    compare_with_wsproto(session, pieces)


if __name__ == "__main__":
    _common.main(test_one_input)
    sys.exit(0)
