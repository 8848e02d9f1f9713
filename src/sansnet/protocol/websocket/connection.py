"""The sans-IO WebSocket connection (RFC 6455 sections 5-7, RFC 7692), after the handshake.

Contract, for both roles:

1. Bytes from the peer go in with :meth:`WebSocketConnection.receive_data`, the end of
   the stream with :meth:`~WebSocketConnection.receive_eof`.
2. :meth:`~WebSocketConnection.next_event` parses just enough to return the next event
   (:class:`TextMessage`, :class:`BinaryMessage`, :class:`Pong`, :class:`Closed`) or None
   when it needs more bytes. It parses lazily on purpose: a message is handed over
   before the bytes that follow it are even looked at, so a peer's protocol error never
   hides a message sent before it. Pings are answered with pongs inside
   ``next_event`` and never surfaced.
3. After *every* call of ``next_event`` and of the ``send_*``/``close`` methods, write
   :meth:`~WebSocketConnection.data_to_send` to the peer.
4. The peer's protocol violations never raise: the connection sends the right close
   frame (1002 protocol error, 1007 invalid UTF-8, 1009 too big, 1011 internal error),
   records the exception in :attr:`~WebSocketConnection.error`, and returns
   :class:`Closed`. After :class:`Closed`, write ``data_to_send()`` and close the
   transport (:attr:`~WebSocketConnection.state` is CLOSED).
5. Our own misuse (sending after close, a bad close code) raises
   :class:`~sansnet.LocalProtocolError` or ``ValueError`` and changes nothing.

Sizes are limited per frame and per message, counted after decompression.
"""

from __future__ import annotations

import codecs
import os
import zlib
from collections.abc import Callable
from typing import Any, Final, Literal

from sansnet.errors import LocalProtocolError, RemoteProtocolError
from sansnet.protocol.events import Event, Sentinel

from . import _frames
from ._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    check_close_code,
    encode_frame,
    is_valid_received_close_code,
)
from ._mask import apply_mask
from .deflate import DeflateCodec, DeflateParameters

__all__ = [
    "CLOSED",
    "CLOSING",
    "OPEN",
    "BinaryMessage",
    "Closed",
    "Pong",
    "TextMessage",
    "WebSocketConnection",
]

OPEN: Final = Sentinel("OPEN")
CLOSING: Final = Sentinel("CLOSING")  # we sent a close frame and wait for the peer's
CLOSED: Final = Sentinel("CLOSED")

MiB: Final = 1024 * 1024
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class TextMessage(Event):
    """A complete text message (reassembled from its fragments, decompressed)."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data


class BinaryMessage(Event):
    """A complete binary message (reassembled from its fragments, decompressed)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Pong(Event):
    """A pong arrived, carrying ``payload`` (match it to a ping you sent)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Closed(Event):
    """The connection is closed for reading; it is the last event.

    ``code`` and ``reason`` say how: the peer's close frame (1005 when it carried no
    code), 1006 when the stream ended without one, or the code we failed the connection
    with. The code to show a user (ours if we closed first) is
    :attr:`WebSocketConnection.close_code`.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason


class _Failure(Exception):
    """Internal: the peer broke the protocol; fail the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocketConnection:
    """One WebSocket connection after a successful handshake. See the module docstring.

    ``role`` is ``"client"`` (we mask what we send, the peer must not) or ``"server"``.
    ``deflate`` is the permessage-deflate agreement from the handshake, or None.
    ``max_message_size`` and ``max_frame_size`` (None: unlimited) bound what the peer
    may send, after decompression (default 64 MiB and 16 MiB; a breach closes with 1009).
    ``compress_threshold``: messages shorter than this are sent uncompressed.
    ``random`` supplies masking keys (clients); tests may pass a deterministic one.
    """

    __slots__ = (
        "_buf",
        "_close_code",
        "_close_reason",
        "_closed_sent",
        "_codec",
        "_eof",
        "_fin",
        "_frame_size",
        "_in_frame",
        "_is_client",
        "_mask",
        "_mask_pool",
        "_msg_compressed",
        "_msg_opcode",
        "_msg_size",
        "_offset",
        "_opcode",
        "_out",
        "_parts",
        "_random",
        "_remaining",
        "_state",
        "_text",
        "compress_threshold",
        "error",
        "max_frame_size",
        "max_message_size",
        "subprotocol",
    )

    def __init__(
        self,
        role: Literal["client", "server"],
        *,
        deflate: DeflateParameters | None = None,
        max_message_size: int | None = 64 * MiB,
        max_frame_size: int | None = 16 * MiB,
        subprotocol: str | None = None,
        compress_threshold: int = 0,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}.")
        self._is_client = role == "client"
        self._codec = DeflateCodec(deflate) if deflate is not None else None
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.subprotocol = subprotocol
        self.compress_threshold = compress_threshold
        self.error: Exception | None = None
        """The peer's violation that failed the connection, if any."""
        self._random = random
        self._mask_pool = b""
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._eof = False
        self._state: Sentinel = OPEN
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_sent = False  # the Closed event was returned
        # the frame being read
        self._in_frame = False
        self._opcode = 0
        self._fin = True
        self._mask: bytes | None = None
        self._remaining = 0
        self._offset = 0
        self._frame_size = 0
        # the message being assembled
        self._msg_opcode = 0  # 0: none; OP_TEXT or OP_BINARY
        self._msg_compressed = False
        self._msg_size = 0
        self._parts: list[Any] = []  # str pieces for text, bytes for binary
        self._text: codecs.IncrementalDecoder | None = None

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> Sentinel:
        """OPEN, CLOSING (we sent close, waiting for the peer's) or CLOSED."""
        return self._state

    @property
    def close_code(self) -> int | None:
        """None while open; else our own code if we closed first, the peer's code if it
        did (1005 when it sent none), 1006 if the stream ended without a close frame, or
        the code we failed the connection with."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """The reason that goes with :attr:`close_code` (may be empty)."""
        return self._close_reason

    @property
    def wants_write(self) -> bool:
        """True when :meth:`data_to_send` has bytes waiting."""
        return bool(self._out)

    @property
    def eof_received(self) -> bool:
        """True once :meth:`receive_eof` was called."""
        return self._eof

    @property
    def compression(self) -> DeflateParameters | None:
        """The permessage-deflate agreement, or None."""
        return self._codec.params if self._codec is not None else None

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer; then call :meth:`next_event`."""
        if self._eof:
            raise LocalProtocolError("receive_data() called after receive_eof().")
        if self._state is not CLOSED:
            self._buf += data  # data after the close is discarded

    def receive_eof(self) -> None:
        """The peer's stream ended; then call :meth:`next_event`."""
        self._eof = True

    def events_received(self) -> list[Event]:
        """Every event available now (stops when more bytes are needed)."""
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed (or after :class:`Closed`).

        Then write :meth:`data_to_send`: answering a ping or a close may have queued bytes.
        """
        if self._closed_sent:
            return None
        try:
            return self._parse()
        except _Failure as failure:
            self.error = RemoteProtocolError(failure.reason)
            return self._fail(failure.code, failure.reason)
        except Exception as exc:  # pragma: no cover - a bug of ours; fail cleanly
            self.error = exc
            return self._fail(_frames.INTERNAL_ERROR, "Internal error.")

    def _parse(self) -> Event | None:
        buf = self._buf
        while True:
            if not self._in_frame and not self._read_header(buf):
                return self._lost() if self._eof else None
            remaining = self._remaining
            if self._opcode >= OP_CLOSE:  # control frames are read whole (<= 125 bytes)
                if len(buf) < remaining:
                    return self._lost() if self._eof else None
                payload = bytes(buf[:remaining])
                del buf[:remaining]
                self._in_frame = False
                if self._mask is not None:
                    payload = apply_mask(payload, self._mask)
                event = self._control(self._opcode, payload)
                if event is not None:
                    return event
                continue
            size = len(buf)
            if size >= remaining:
                chunk = bytes(buf[:remaining]) if size > remaining else bytes(buf)
                del buf[:remaining]
                self._remaining = 0
                self._in_frame = False
            elif size:
                chunk = bytes(buf)
                buf.clear()
                self._remaining = remaining - size
            else:
                return self._lost() if self._eof else None
            mask = self._mask
            if mask is not None and chunk:
                offset = self._offset
                if offset:
                    mask = mask[offset:] + mask[:offset]
                chunk = apply_mask(chunk, mask)
                self._offset = (offset + len(chunk)) & 3
            event = self._data(chunk, not self._in_frame)
            if event is not None:
                return event

    def _read_header(self, buf: bytearray) -> bool:
        """Parse a frame header off ``buf``; False if incomplete. RFC 6455 section 5.2."""
        size = len(buf)
        if size < 2:
            return False
        first, second = buf[0], buf[1]
        length = second & 0x7F
        position = 2
        if length == 126:
            if size < 4:
                return False
            length = (buf[2] << 8) | buf[3]
            position = 4
        elif length == 127:
            if size < 10:
                return False
            length = int.from_bytes(buf[2:10], "big")
            position = 10
            if length >> 63:
                raise _Failure(_frames.PROTOCOL_ERROR, "The frame length has its top bit set.")
        masked = second & 0x80
        if masked:
            if size < position + 4:
                return False
            mask = bytes(buf[position : position + 4])
            position += 4
        else:
            mask = None
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        rsv1 = first & 0x40
        if first & 0x30:
            raise _Failure(_frames.PROTOCOL_ERROR, "A frame has RSV2 or RSV3 set.")
        if bool(masked) == self._is_client:
            raise _Failure(
                _frames.PROTOCOL_ERROR,
                "A frame from the server is masked."
                if self._is_client
                else "A frame from the client is not masked.",
            )
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise _Failure(_frames.PROTOCOL_ERROR, f"Reserved control opcode 0x{opcode:X}.")
            if not fin:
                raise _Failure(_frames.PROTOCOL_ERROR, "A control frame is fragmented.")
            if length > 125:
                raise _Failure(_frames.PROTOCOL_ERROR, "A control frame is longer than 125 bytes.")
            if rsv1:
                raise _Failure(_frames.PROTOCOL_ERROR, "A control frame has RSV1 set.")
        else:
            if opcode > OP_BINARY:
                raise _Failure(_frames.PROTOCOL_ERROR, f"Reserved data opcode 0x{opcode:X}.")
            if opcode == OP_CONTINUATION:
                if not self._msg_opcode:
                    raise _Failure(
                        _frames.PROTOCOL_ERROR, "A continuation frame continues nothing."
                    )
                if rsv1:
                    raise _Failure(_frames.PROTOCOL_ERROR, "A continuation frame has RSV1 set.")
            else:
                if self._msg_opcode:
                    raise _Failure(
                        _frames.PROTOCOL_ERROR, "A new message started before the last one ended."
                    )
                if rsv1 and self._codec is None:
                    raise _Failure(
                        _frames.PROTOCOL_ERROR, "RSV1 is set but no compression was agreed."
                    )
                self._msg_opcode = opcode
                self._msg_compressed = bool(rsv1)
                self._msg_size = 0
            limit = self.max_frame_size
            if limit is not None and length > limit:
                raise _Failure(
                    _frames.MESSAGE_TOO_BIG,
                    f"A frame of {length} bytes exceeds the {limit}-byte limit.",
                )
            limit = self.max_message_size
            if limit is not None and not self._msg_compressed and self._msg_size + length > limit:
                raise _Failure(
                    _frames.MESSAGE_TOO_BIG, f"A message exceeds the {limit}-byte limit."
                )
            self._frame_size = 0
        del buf[:position]
        self._in_frame = True
        self._opcode = opcode
        self._fin = fin
        self._mask = mask
        self._remaining = length
        self._offset = 0
        return True

    def _data(self, chunk: bytes, frame_done: bool) -> Event | None:
        """Add a piece of a data frame's payload to the message; deliver it when whole."""
        final = frame_done and self._fin
        if self._msg_compressed:
            chunk = self._inflate(chunk, final)
        is_text = self._msg_opcode == OP_TEXT
        parts = self._parts
        if final and not parts:
            # The whole message is this chunk: the common, fast case.
            self._msg_opcode = 0
            if not is_text:
                return BinaryMessage(chunk)
            text = self._text
            try:
                if text is None:
                    return TextMessage(chunk.decode("utf-8"))
                self._text = None
                return TextMessage(text.decode(chunk, True))
            except UnicodeDecodeError:
                raise _Failure(
                    _frames.INVALID_PAYLOAD, "A text message is not valid UTF-8."
                ) from None
        self._msg_size += len(chunk)
        if is_text:
            # Validate as the bytes arrive, so invalid UTF-8 fails at once (RFC 6455
            # section 8.1), and keep the decoded text.
            text = self._text
            if text is None:
                text = self._text = _Utf8Decoder()
            try:
                decoded = text.decode(chunk, final)
            except UnicodeDecodeError:
                raise _Failure(
                    _frames.INVALID_PAYLOAD, "A text message is not valid UTF-8."
                ) from None
            if decoded:
                parts.append(decoded)
        elif chunk:
            parts.append(chunk)
        if not final:
            return None
        self._parts = []
        self._text = None
        self._msg_opcode = 0
        if is_text:
            return TextMessage("".join(parts))
        return BinaryMessage(b"".join(parts))

    def _inflate(self, chunk: bytes, final: bool) -> bytes:
        codec = self._codec
        assert codec is not None
        frame_limit = self.max_frame_size
        message_limit = self.max_message_size
        limits = [
            limit - used
            for limit, used in ((frame_limit, self._frame_size), (message_limit, self._msg_size))
            if limit is not None
        ]
        limit = min(limits) if limits else 1 << 62
        try:
            out = codec.decompress(chunk, limit, final=final)
        except zlib.error as error:
            raise _Failure(
                _frames.INVALID_PAYLOAD, f"A compressed message is corrupt: {error}."
            ) from None
        if len(out) > limit:
            raise _Failure(
                _frames.MESSAGE_TOO_BIG, "A compressed message inflates past the size limit."
            )
        self._frame_size += len(out)
        return out

    def _control(self, opcode: int, payload: bytes) -> Event | None:
        if opcode == OP_PING:
            if self._state is OPEN:
                self._out.append(self._frame(OP_PONG, payload))
            return None
        if opcode == OP_PONG:
            return Pong(payload)
        # OP_CLOSE (RFC 6455 section 5.5.1)
        if len(payload) == 1:
            raise _Failure(_frames.PROTOCOL_ERROR, "A close frame has a 1-byte payload.")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_received_close_code(code):
                raise _Failure(
                    _frames.PROTOCOL_ERROR, f"The peer sent the invalid close code {code}."
                )
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise _Failure(
                    _frames.INVALID_PAYLOAD, "A close reason is not valid UTF-8."
                ) from None
        else:
            code, reason = _frames.NO_STATUS_RCVD, ""
        if self._state is OPEN:
            # The peer starts the closing handshake: answer with its code.
            echo = payload[:2]
            self._out.append(self._frame(OP_CLOSE, echo))
            self._close_code, self._close_reason = code, reason
        self._state = CLOSED
        self._buf.clear()
        return self._finish(code, reason)

    def _lost(self) -> Closed:
        """The stream ended without a close frame (RFC 6455 section 7.1.5: code 1006)."""
        self._state = CLOSED
        if self._close_code is None:
            self._close_code, self._close_reason = _frames.ABNORMAL_CLOSURE, ""
        return self._finish(_frames.ABNORMAL_CLOSURE, "")

    def _fail(self, code: int, reason: str) -> Closed:
        """Fail the connection (RFC 6455 section 7.1.7): send close if we still may."""
        if self._state is OPEN:
            self._out.append(self._close_frame(code, reason))
            self._close_code, self._close_reason = code, reason
        self._state = CLOSED
        self._buf.clear()
        self._parts = []
        self._text = None
        return self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> Closed:
        self._closed_sent = True
        return Closed(code, reason)

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (b"" if none)."""
        out = self._out
        if not out:
            return b""
        if len(out) == 1:
            return out.pop()
        data = b"".join(out)
        out.clear()
        return data

    def _new_mask(self) -> bytes:
        pool = self._mask_pool
        if len(pool) < 4:
            pool = self._random(1024)
        self._mask_pool = pool[4:]
        return pool[:4]

    def _frame(self, opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
        mask = self._new_mask() if self._is_client else None
        return encode_frame(opcode, payload, rsv1=rsv1, mask=mask)

    def _check_open(self) -> None:
        if self._state is not OPEN:
            what = "closing" if self._state is CLOSING else "closed"
            raise LocalProtocolError(f"Can't send on a WebSocket that is {what}.")

    def send_text(self, text: str) -> None:
        """Send a text message. Then write :meth:`data_to_send`."""
        self._check_open()
        self._send_data(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message. Then write :meth:`data_to_send`."""
        self._check_open()
        self._send_data(OP_BINARY, bytes(data))

    def send_message(self, message: str | bytes) -> None:
        """Send a str as text or bytes as binary."""
        if isinstance(message, str):
            self.send_text(message)
        else:
            self.send_binary(message)

    def _send_data(self, opcode: int, payload: bytes) -> None:
        codec = self._codec
        if codec is not None and len(payload) >= self.compress_threshold:
            self._out.append(self._frame(opcode, codec.compress(payload), rsv1=True))
        else:
            self._out.append(self._frame(opcode, payload))

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes of payload); a :class:`Pong` with the same
        payload will come back. Then write :meth:`data_to_send`."""
        self._check_open()
        if len(payload) > 125:
            raise ValueError("A ping payload is at most 125 bytes.")
        self._out.append(self._frame(OP_PING, bytes(payload)))

    def send_pong(self, payload: bytes = b"") -> None:
        """Send an unsolicited pong (a heartbeat that asks for no answer)."""
        self._check_open()
        if len(payload) > 125:
            raise ValueError("A pong payload is at most 125 bytes.")
        self._out.append(self._frame(OP_PONG, bytes(payload)))

    def _close_frame(self, code: int, reason: str) -> bytes:
        return self._frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8"))

    def close(self, code: int = _frames.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: send a close frame with ``code`` and ``reason``.

        ``code`` is 1000-4999 but 1004, 1005, 1006 and 1015 (else ``ValueError``);
        ``reason`` at most 123 bytes of UTF-8. :attr:`close_code` is ``code`` from now
        on. Keep calling :meth:`next_event` until :class:`Closed` (the peer's answer),
        then close the transport. Raises :class:`~sansnet.LocalProtocolError` if the
        connection is already closing or closed.
        """
        check_close_code(code)
        encoded = reason.encode("utf-8")
        if len(encoded) > 123:
            raise ValueError("A close reason is at most 123 bytes of UTF-8.")
        if self._state is not OPEN:
            raise LocalProtocolError(
                "close() was already called."
                if self._state is CLOSING
                else "The WebSocket is already closed."
            )
        self._out.append(self._frame(OP_CLOSE, code.to_bytes(2, "big") + encoded))
        self._state = CLOSING
        self._close_code, self._close_reason = code, reason
