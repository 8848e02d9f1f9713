"""The sans-IO WebSocket connection (RFC 6455 sections 5-7, RFC 7692), after the handshake.

Contract, for both roles:

1. Bytes from the peer go in with :meth:`WebSocketConnection.receive_data`, the end of
   the stream with :meth:`~WebSocketConnection.receive_eof`.
2. :meth:`~WebSocketConnection.next_event` parses just enough to return the next event
   (:class:`TextMessage`, :class:`BinaryMessage`, :class:`Pong`, :class:`Closed`) or None
   when it needs more bytes. It parses lazily on purpose: a message is handed over
   before the bytes that follow it are even looked at, so a peer's protocol error never
   hides a message sent before it. Pings are answered with pongs inside
   ``next_event`` and never surfaced; while :data:`MAX_UNSENT_PONGS` pongs wait in
   ``data_to_send()``, a newer ping's pong replaces the last of them (RFC 6455 section
   5.5.3 lets an endpoint answer only the most recent ping), so that a peer flooding
   pings while it reads nothing cannot grow our output without bound.
3. After *every* call of ``next_event`` and of the ``send_*``/``close`` methods, write
   :meth:`~WebSocketConnection.data_to_send` to the peer.
4. The peer's protocol violations never raise: the connection sends the right close
   frame (1002 protocol error, 1007 invalid UTF-8, 1009 too big, 1011 internal error),
   records the exception in :attr:`~WebSocketConnection.error`, and returns
   :class:`Closed`. After :class:`Closed`, write ``data_to_send()`` and close the
   transport (:attr:`~WebSocketConnection.state` is CLOSED).
5. Our own misuse (sending after close, a str where bytes belong, a bad close code)
   raises :class:`~sansnet.LocalProtocolError` or :class:`~sansnet.InvalidArgument`
   (both ``ValueError``) and changes nothing.

Sizes are limited per frame and per message, counted after decompression as the bytes
arrive, so a message is refused with 1009 before it is ever buffered whole.

A message longer than ``fragment_size`` (:data:`FRAGMENT_SIZE`, 256 KiB, by default) is
sent as several frames of at most that size (RFC 6455 section 5.4), unless
permessage-deflate was agreed: every frame wsproto builds is copied about four times
(and masked in Python on the client), and copies of 256 KiB reuse memory where copies of
a whole large message make the allocator map and fault in fresh pages every time (1 MiB
echoes run about 1.3x faster this way). ``fragment_size=None`` sends every message as
one frame.

How it is built: **wsproto** parses and builds every frame (masking, fragmentation,
control frames, close frames, UTF-8 validation); this class is the policy around it, on
wsproto's public API only. Each connection drives one frame-level
:class:`wsproto.connection.Connection`, not a :class:`wsproto.WSConnection`:
``WSConnection`` also runs the opening handshake, with its own HTTP/1.1 parser and its own
extension negotiation, while sansnet's handshake runs over sansnet's HTTP/1.1 engine
(:mod:`.handshake`: our header limits and refusals, 400/426 answers, the bytes that
arrived after the 101 handed over) and negotiates permessage-deflate itself. ``Connection``
starts OPEN after that handshake, as hypercorn drives it. What wsproto lacks is added here:
size limits (wsproto#86), automatic pongs, the close-code rules of :mod:`.closing`,
readable close reasons, the lazy "message first" reading above (wsproto's ``events()`` is a
generator; it is pulled one event at a time), and a bounded permessage-deflate
(:class:`~.deflate.DeflateExtension`, in place of wsproto's ``PerMessageDeflate``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal

from wsproto import events as ws
from wsproto.connection import Connection, ConnectionState, ConnectionType

from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from sansnet.protocol.events import Event, Sentinel

from .closing import (
    ABNORMAL_CLOSURE,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    check_close_code,
    explain,
)
from .deflate import DeflateExtension, DeflateParameters
from .sizes import SizeLimits

__all__ = [
    "CLOSED",
    "CLOSING",
    "FRAGMENT_SIZE",
    "MAX_UNSENT_PONGS",
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
FRAGMENT_SIZE: Final = 256 * 1024
"""The largest frame a message is sent in by default (see the module docstring)."""
MAX_UNSENT_PONGS: Final = 16
"""Automatic pongs kept waiting for ``data_to_send()``; past them, a ping's pong replaces
the last one (a peer sends up to this many pings in a row and gets every answer)."""
# wsproto reports a frame it refuses as a CloseConnection event without changing its
# state; a close frame from the peer moves it out of these states.
_STILL_OPEN: Final = (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING)


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


def checked_size(name: str, value: object, *, none: bool) -> Any:
    """``value`` if it is an int >= 0 (or None when ``none``), else InvalidArgument: the
    rule for a size limit here, and for ``socket()``'s and ``ServeConfig``'s, which
    check theirs with it before any connection."""
    if (value is None and none) or (type(value) is int and value >= 0):
        return value
    what = "None (no limit) or an int >= 0" if none else "an int >= 0"
    raise InvalidArgument(f"{name} must be {what}, not {value!r}.")


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class WebSocketConnection:
    """One WebSocket connection after a successful handshake. See the module docstring.

    ``role`` is ``"client"`` (we mask what we send, the peer must not) or ``"server"``.
    ``deflate`` is the permessage-deflate agreement from the handshake, or None.
    ``max_message_size`` and ``max_frame_size`` (None: unlimited) bound what the peer
    may send, after decompression (default 16 MiB each; a breach closes with 1009).
    ``compress_threshold``: messages shorter than this are sent uncompressed.
    ``fragment_size``: a longer message goes out in frames of at most this many bytes (a
    text message: this many characters); None sends one frame a message. Ignored when
    ``deflate`` is agreed (compressed messages are sent whole).
    ``random`` is accepted for compatibility and unused: wsproto draws every masking key
    from ``os.urandom`` (RFC 6455 section 5.3 wants them unpredictable).
    An argument of the wrong type or value (here or set later on the properties) raises
    :class:`~sansnet.InvalidArgument` naming it.
    """

    __slots__ = (
        "_close_code",
        "_close_reason",
        "_closed_sent",
        "_compress_threshold",
        "_deferred",
        "_deflate",
        "_eof",
        "_events",
        "_fragment_size",
        "_frame_size",
        "_last_pong",
        "_limits",
        "_message_size",
        "_out",
        "_parts",
        "_pongs",
        "_state",
        "_unparsed",
        "_ws",
        "error",
        "subprotocol",
    )

    def __init__(
        self,
        role: Literal["client", "server"],
        *,
        deflate: DeflateParameters | None = None,
        max_message_size: int | None = 16 * MiB,
        max_frame_size: int | None = 16 * MiB,
        subprotocol: str | None = None,
        compress_threshold: int = 0,
        random: Callable[[int], bytes] = os.urandom,
        fragment_size: int | None = FRAGMENT_SIZE,
    ) -> None:
        if role not in ("client", "server"):
            raise InvalidArgument(f"role must be 'client' or 'server', not {role!r}.")
        if fragment_size is not None and (
            isinstance(fragment_size, bool)
            or not isinstance(fragment_size, int)
            or fragment_size < 1
        ):
            raise InvalidArgument(
                f"fragment_size must be a positive int or None, not {fragment_size!r}."
            )
        if deflate is not None and not isinstance(deflate, DeflateParameters):
            raise InvalidArgument(
                "deflate must be the DeflateParameters a handshake agreed (Handshake.deflate) "
                f"or None, not {deflate!r}."
            )
        checked_size("compress_threshold", compress_threshold, none=False)
        checked_size("max_message_size", max_message_size, none=True)
        checked_size("max_frame_size", max_frame_size, none=True)
        # The deflate extension compresses whole messages: compressed, they go as one frame.
        self._fragment_size = fragment_size if deflate is None else None
        self._limits = SizeLimits(max_message_size, max_frame_size)
        self._compress_threshold = compress_threshold
        self._deflate = (
            DeflateExtension(deflate, self._limits, compress_threshold=compress_threshold)
            if deflate is not None
            else None
        )
        self._ws = Connection(
            ConnectionType.CLIENT if role == "client" else ConnectionType.SERVER,
            extensions=[self._deflate] if self._deflate is not None else None,
        )
        self._events: Iterator[ws.Event] | None = None  # wsproto's, pulled lazily
        self.subprotocol = subprotocol
        self.error: Exception | None = None
        """The peer's violation that failed the connection, if any."""
        self._out: list[bytes] = []
        self._pongs = 0  # automatic pongs in _out; the last one is at _out[_last_pong]
        self._last_pong = 0
        self._eof = False
        self._unparsed = False  # input received that next_event() has not looked at yet
        self._state: Sentinel = OPEN
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_sent = False  # the Closed event was returned
        self._deferred: _Failure | None = None  # found by next_event(defer_failure=True)
        # the message being received: its pieces and sizes (before wsproto decodes text)
        self._parts: list[Any] = []
        self._frame_size = 0
        self._message_size = 0

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
    def input_pending(self) -> bool:
        """True when bytes (or the end of the stream) were received that
        :meth:`next_event` has not parsed to their end: it may return an event with no
        more input (a close frame that came in the same read as a message, or with the
        handshake's answer)."""
        return self._unparsed

    @property
    def eof_received(self) -> bool:
        """True once :meth:`receive_eof` was called."""
        return self._eof

    @property
    def compression(self) -> DeflateParameters | None:
        """The permessage-deflate agreement, or None."""
        return self._deflate.params if self._deflate is not None else None

    @property
    def max_message_size(self) -> int | None:
        """The largest message the peer may send, in bytes after decompression."""
        return self._limits.max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int | None) -> None:
        self._limits.max_message_size = checked_size("max_message_size", value, none=True)

    @property
    def max_frame_size(self) -> int | None:
        """The largest frame the peer may send, in bytes after decompression."""
        return self._limits.max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int | None) -> None:
        self._limits.max_frame_size = checked_size("max_frame_size", value, none=True)

    @property
    def compress_threshold(self) -> int:
        """Messages shorter than this many bytes are sent uncompressed."""
        return self._compress_threshold

    @compress_threshold.setter
    def compress_threshold(self, value: int) -> None:
        self._compress_threshold = checked_size("compress_threshold", value, none=False)
        if self._deflate is not None:
            self._deflate.compress_threshold = value

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer; then call :meth:`next_event`."""
        received: object = data
        if type(received) is not bytes and not isinstance(received, (bytes, bytearray, memoryview)):
            # wsproto takes None for the end of the stream, and would then fail inside
            # next_event(): the end of the stream is receive_eof().
            raise LocalProtocolError(
                f"receive_data() takes bytes, not {type(received).__name__}; call "
                "receive_eof() when the stream ends."
            )
        if self._eof:
            raise LocalProtocolError("receive_data() called after receive_eof().")
        if self._state is not CLOSED:
            self._ws.receive_data(data)  # data after the close is discarded
            self._unparsed = True

    def receive_eof(self) -> None:
        """The peer's stream ended; then call :meth:`next_event`."""
        self._eof = True
        self._unparsed = True

    def events_received(self) -> list[Event]:
        """Every event available now (stops when more bytes are needed)."""
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def next_event(self, *, defer_failure: bool = False) -> Event | None:
        """The next event, or None when more bytes are needed (or after :class:`Closed`).

        Then write :meth:`data_to_send`: answering a ping or a close may have queued bytes.

        ``defer_failure=True`` is for taking in what already arrived before sending (to
        see a close frame that is waiting): if the peer's next bytes break the protocol,
        return None and keep the failure, so that a message sent now still goes out
        before the close that fails the connection; the next call without it fails the
        connection as usual. :attr:`failure_pending` says whether one is kept.
        """
        if self._closed_sent:
            return None
        deferred = self._deferred
        if deferred is not None:
            if defer_failure:
                return None
            self._deferred = None
            return self._on_failure(deferred)
        try:
            return self._next()
        except _Failure as failure:
            if defer_failure:
                self._deferred = failure
                self._events = None
                return None
            return self._on_failure(failure)
        except Exception as exc:  # pragma: no cover - a bug of ours; fail cleanly
            self.error = exc
            return self._fail(INTERNAL_ERROR, "Internal error.")

    @property
    def failure_pending(self) -> bool:
        """True when ``next_event(defer_failure=True)`` found a violation that the next
        plain :meth:`next_event` call turns into the connection's failure."""
        return self._deferred is not None

    def _on_failure(self, failure: _Failure) -> Closed:
        self.error = RemoteProtocolError(failure.reason)
        return self._fail(failure.code, failure.reason)

    def _next(self) -> Event | None:
        while True:
            events = self._events
            if events is None:
                if not self._unparsed:  # all parsed: wsproto needs more bytes
                    return None
                events = self._events = self._ws.events()
            event = next(events, None)
            if event is None:  # wsproto needs more bytes
                self._events = None
                self._unparsed = False
                return self._lost() if self._eof else None
            if isinstance(event, ws.Message):
                message = self._data(event)
                if message is not None:
                    return message
            elif isinstance(event, ws.Ping):
                if self._state is OPEN:
                    self._pong(self._ws.send(event.response()))
            elif isinstance(event, ws.Pong):
                return Pong(bytes(event.payload))
            else:
                assert isinstance(event, ws.CloseConnection)
                return self._close_received(event)

    def _data(self, event: ws.Message[Any]) -> Event | None:
        """Count a piece of a message against the limits; deliver the message when whole."""
        data = event.data
        size = _utf8_size(data) if isinstance(data, str) else len(data)
        frame_size = self._frame_size + size
        message_size = self._message_size + size
        reason = self._limits.breach(frame_size, message_size)
        if reason is not None:
            raise _Failure(MESSAGE_TOO_BIG, reason)
        self._frame_size = 0 if event.frame_finished else frame_size
        parts = self._parts
        if not event.message_finished:
            self._message_size = message_size
            parts.append(data)
            return None
        self._message_size = 0
        is_text = isinstance(event, ws.TextMessage)
        if parts:
            parts.append(data)
            self._parts = []
            data = "".join(parts) if is_text else b"".join(parts)
        return TextMessage(data) if is_text else BinaryMessage(data)

    def _close_received(self, event: ws.CloseConnection) -> Closed:
        if self._ws.state in _STILL_OPEN:
            # Not a close frame: wsproto refused the peer's bytes (its ParseFailed).
            # int(): wsproto's code is its CloseReason enum, which only equals the int.
            deflate = self._deflate
            if deflate is not None and deflate.failure is not None:
                raise _Failure(int(event.code), deflate.failure)
            raise _Failure(int(event.code), explain(event.reason or ""))
        code, reason = int(event.code), event.reason or ""
        if self._state is OPEN:
            # The peer starts the closing handshake: answer with its code (an empty close
            # frame if it sent none).
            self._out.append(self._ws.send(ws.CloseConnection(code=event.code)))
            self._close_code, self._close_reason = code, reason
        self._state = CLOSED
        return self._finish(code, reason)

    def _lost(self) -> Closed:
        """The stream ended without a close frame (RFC 6455 section 7.1.5: code 1006)."""
        self._state = CLOSED
        if self._close_code is None:
            self._close_code, self._close_reason = ABNORMAL_CLOSURE, ""
        return self._finish(ABNORMAL_CLOSURE, "")

    def _fail(self, code: int, reason: str) -> Closed:
        """Fail the connection (RFC 6455 section 7.1.7): send close if we still may."""
        if self._state is OPEN:
            self._out.append(self._ws.send(ws.CloseConnection(code=code, reason=reason)))
            self._close_code, self._close_reason = code, reason
        self._state = CLOSED
        self._parts = []
        return self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> Closed:
        self._closed_sent = True
        self._events = None
        self._unparsed = False  # what follows is never parsed
        return Closed(code, reason)

    # ------------------------------------------------------------------ output

    def _pong(self, frame: bytes) -> None:
        out = self._out
        if self._pongs < MAX_UNSENT_PONGS:
            self._pongs += 1
            self._last_pong = len(out)
            out.append(frame)
        else:
            out[self._last_pong] = frame

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (b"" if none)."""
        out = self._out
        if not out:
            return b""
        self._pongs = 0
        if len(out) == 1:
            return out.pop()
        data = b"".join(out)
        out.clear()
        return data

    def _check_open(self) -> None:
        if self._state is not OPEN:
            what = "closing" if self._state is CLOSING else "closed"
            raise LocalProtocolError(f"Can't send on a WebSocket that is {what}.")

    def send_text(self, text: str) -> None:
        """Send a text message. Then write :meth:`data_to_send`."""
        if not isinstance(text, str):
            raise LocalProtocolError(
                f"send_text() takes a str, not {type(text).__name__}; "
                "send bytes with send_binary()."
            )
        self._check_open()
        size = self._fragment_size
        try:
            if size is None or len(text) <= size:
                self._out.append(self._ws.send(ws.TextMessage(data=text)))
                return
            if not text.isascii():
                # wsproto encodes each fragment in turn: find a lone surrogate before the
                # first fragment goes out, not halfway through the message.
                text.encode("utf-8")
        except UnicodeEncodeError:
            raise LocalProtocolError(
                "The text has no UTF-8 form (it holds a lone surrogate)."
            ) from None
        self._send_fragments(ws.TextMessage, text, size)

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message. Then write :meth:`data_to_send`."""
        self._check_open()
        payload = _payload("send_binary", data)
        size = self._fragment_size
        if size is None or len(payload) <= size:
            self._out.append(self._ws.send(ws.BytesMessage(data=payload)))
        else:
            self._send_fragments(ws.BytesMessage, memoryview(payload), size)

    def _send_fragments(self, kind: Any, data: Any, size: int) -> None:
        """Queue one message as frames of at most ``size`` items of ``data`` (a str or a
        memoryview): the first with the message's opcode, then continuations, FIN on
        the last. All of them or none: if building one fails (memory, an interrupt),
        none is queued, and since wsproto cannot be told the message is abandoned, the
        connection is closed with 1011 rather than left to glue the next message on."""
        send = self._ws.send
        frames: list[bytes] = []
        total = len(data)
        try:
            for start in range(0, total, size):
                end = start + size
                frames.append(send(kind(data=data[start:end], message_finished=end >= total)))
        except BaseException:
            if frames:  # wsproto is now halfway through a message it will never finish
                self.close(INTERNAL_ERROR, "Internal error.")
            raise
        self._out.extend(frames)

    def send_message(self, message: str | bytes) -> None:
        """Send a str as text or bytes as binary."""
        if isinstance(message, str):
            self.send_text(message)
        else:
            self.send_binary(message)

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes of payload); a :class:`Pong` with the same
        payload will come back. Then write :meth:`data_to_send`."""
        payload = _control_payload("send_ping", payload)
        self._check_open()
        self._out.append(self._ws.send(ws.Ping(payload=payload)))

    def send_pong(self, payload: bytes = b"") -> None:
        """Send an unsolicited pong (a heartbeat that asks for no answer)."""
        payload = _control_payload("send_pong", payload)
        self._check_open()
        self._out.append(self._ws.send(ws.Pong(payload=payload)))

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: send a close frame with ``code`` and ``reason``.

        ``code`` is 1000-4999 but 1004, 1005, 1006, 1015 and 1016-2999 (else
        :class:`~sansnet.InvalidArgument`, a ``ValueError``);
        ``reason`` at most 123 bytes of UTF-8. :attr:`close_code` is ``code`` from now
        on. Keep calling :meth:`next_event` until :class:`Closed` (the peer's answer),
        then close the transport. Raises :class:`~sansnet.LocalProtocolError` if the
        connection is already closing or closed.
        """
        check_close_code(code)
        if not isinstance(reason, str):
            raise LocalProtocolError(f"A close reason is a str, not {type(reason).__name__}.")
        try:
            encoded = reason.encode("utf-8")
        except UnicodeEncodeError:
            raise LocalProtocolError(
                "The close reason has no UTF-8 form (it holds a lone surrogate)."
            ) from None
        if len(encoded) > 123:
            raise LocalProtocolError("A close reason is at most 123 bytes of UTF-8.")
        if self._state is not OPEN:
            raise LocalProtocolError(
                "close() was already called."
                if self._state is CLOSING
                else "The WebSocket is already closed."
            )
        self._out.append(self._ws.send(ws.CloseConnection(code=code, reason=reason)))
        self._state = CLOSING
        self._close_code, self._close_reason = code, reason


def _payload(method: str, data: object) -> bytes | bytearray:
    """``data`` as wsproto takes a binary payload, or LocalProtocolError for a non-bytes."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data.tobytes()
    hint = "; send text with send_text()" if isinstance(data, str) else ""
    raise LocalProtocolError(
        f"{method}() takes bytes, bytearray or memoryview, not {type(data).__name__}{hint}."
    )


def _control_payload(method: str, data: object) -> bytes:
    """A ping or pong payload: bytes-like, at most 125 bytes (RFC 6455 section 5.5)."""
    payload = bytes(_payload(method, data))
    if len(payload) > 125:
        raise LocalProtocolError(f"A {method[5:]} payload is at most 125 bytes.")
    return payload
