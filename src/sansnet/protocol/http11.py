"""Sans-IO HTTP/1.1 connections: :class:`ServerConnection` and :class:`ClientConnection`.

A connection object never does I/O. The contract, for both roles:

1. Bytes from the peer go in with :meth:`~HTTPConnection.receive_data`; the end of the
   stream with :meth:`~HTTPConnection.receive_eof`.
2. :meth:`~HTTPConnection.next_event` then returns the next event
   (:class:`~.events.RequestHead`, :class:`~.events.ResponseHead`, :class:`~.events.Data`,
   :class:`~.events.EndOfMessage`, :class:`~.events.ConnectionClosed`) or a sentinel:
   :data:`~.events.NEED_DATA` (read more and call ``receive_data``) or
   :data:`~.events.PAUSED` (finish sending your message first).
3. Our messages go out through the ``send_*`` / ``start_*`` methods; after calling any
   of them, write :meth:`~HTTPConnection.data_to_send` to the peer.
4. A peer's violation raises :class:`~sansnet.RemoteProtocolError`. A server connection
   has then already queued the error response: write ``data_to_send()`` and close.
   Our own misuse raises :class:`~sansnet.LocalProtocolError` and changes nothing.
5. When a cycle is complete on both sides and both want keep-alive, the connection
   starts the next cycle by itself; :attr:`~HTTPConnection.our_state` and
   :attr:`~HTTPConnection.their_state` are then ``IDLE`` again. Otherwise one of them is
   ``MUST_CLOSE`` and the driver must close the transport.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from sansnet._version import __version__
from sansnet.errors import LocalProtocolError, RemoteProtocolError

from . import _state
from ._readers import (
    TOKEN,
    ChunkedReader,
    ContentLengthReader,
    Fields,
    UntilCloseReader,
    parse_content_length,
    parse_fields,
    read_head,
)
from ._state import (
    CLIENT,
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    MIGHT_SWITCH_PROTOCOL,
    MUST_CLOSE,
    SEND_BODY,
    SEND_RESPONSE,
    SERVER,
    SWITCHED_PROTOCOL,
    ConnectionState,
)
from ._writers import (
    ChunkedWriter,
    CloseDelimitedWriter,
    ContentLengthWriter,
    NoBodyWriter,
    Writer,
    reason_phrase,
    write_head,
)
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    Event,
    RequestHead,
    ResponseHead,
    Sentinel,
)
from .headers import Headers, HeadersLike
from .limits import Limits

__all__ = [
    "CLOSED",
    "DONE",
    "ERROR",
    "IDLE",
    "MIGHT_SWITCH_PROTOCOL",
    "MUST_CLOSE",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SWITCHED_PROTOCOL",
    "ClientConnection",
    "HTTPConnection",
    "ServerConnection",
]

USER_AGENT: Final = f"sansnet/{__version__}"

_Reader = ContentLengthReader | ChunkedReader | UntilCloseReader
_VERSION: Final = re.compile(r"HTTP/([0-9])\.([0-9])")
_REQUEST_SPECIAL: Final = frozenset(
    ["content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"]
)
_RESPONSE_SPECIAL: Final = frozenset(["content-length", "transfer-encoding", "connection"])
_METHODS: Final = frozenset(
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]
)


def _as_items(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """Header input of any accepted shape -> (name, value) pairs, names as given."""
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.raw_items()
    if type(headers) is list and all(
        type(item) is tuple and len(item) == 2 and type(item[0]) is str and type(item[1]) is str
        for item in headers
    ):
        return headers  # already (str, str) pairs: the common, fast case
    return Headers(headers).raw_items()


def _tokens(values: list[str]) -> set[str]:
    """The comma-separated tokens of list-valued fields, lowercase."""
    return {token.strip(" \t").lower() for value in values for token in value.split(",")}


def _one_length(previous: str | None, value: str) -> str:
    """A Content-Length field we are asked to send: one per message (two could
    disagree, and peers that pick different ones would frame the body differently)."""
    if previous is not None:
        raise LocalProtocolError(
            f"Two Content-Length fields ({previous!r} and {value!r}): send one."
        )
    return value


def _length_value(value: str) -> int:
    """The number in a Content-Length field we are asked to send: ASCII digits, with
    optional spaces or tabs around them (``str.strip()`` and ``int()`` would also take
    other whitespace, such as U+001C, which no peer reads as part of a number)."""
    digits = value.strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise LocalProtocolError(f"Invalid Content-Length {value!r}: send ASCII digits.")
    return int(digits)


def _chunked(value: str, before: bool) -> bool:
    """A Transfer-Encoding field we are asked to send (``before``: one came already):
    we frame the body as chunked and apply no other coding, so there must be one field
    that says exactly that (else the peer would frame the body differently, or refuse
    it: chunked may not be applied twice, RFC 9112 section 6.1)."""
    # Exactly that: llhttp, for one, does not see "chunked" in "chunked<HTAB>".
    if before or value.lower() != "chunked":
        raise LocalProtocolError(
            f"Transfer-Encoding {value!r}: only 'chunked' can be sent; compress the body "
            "and set Content-Encoding instead."
        )
    return True


def _is_method(method: str) -> bool:
    return method in _METHODS or (isinstance(method, str) and TOKEN.fullmatch(method) is not None)


class HTTPConnection:
    """What client and server connections share: buffers, states, the event pump.

    Not instantiated directly; use :class:`ClientConnection` or
    :class:`ServerConnection`.
    """

    __slots__ = (
        "_body_received",
        "_buf",
        "_eof",
        "_out",
        "_reader",
        "_state",
        "_writer",
        "limits",
    )

    _our_role: Sentinel
    _their_role: Sentinel

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._state = ConnectionState()
        self._buf = bytearray()
        self._eof = False
        self._out: list[bytes] = []
        self._reader: _Reader | None = None
        self._writer: Writer | None = None
        self._body_received = 0

    # ---------------------------------------------------------------- state

    @property
    def our_state(self) -> Sentinel:
        """Our side's state: IDLE, SEND_RESPONSE (server), SEND_BODY, DONE, MUST_CLOSE,
        CLOSED, MIGHT_SWITCH_PROTOCOL (client), SWITCHED_PROTOCOL or ERROR."""
        return self._state.states[self._our_role]

    @property
    def their_state(self) -> Sentinel:
        """The peer's state, with the same names as :attr:`our_state`."""
        return self._state.states[self._their_role]

    @property
    def keep_alive(self) -> bool:
        """False once either side has asked to close after the current cycle."""
        return self._state.keep_alive

    @property
    def must_close(self) -> bool:
        """True when the transport must be closed: the connection cannot be reused."""
        states = self._state.states
        return any(
            state is MUST_CLOSE or state is CLOSED or state is ERROR for state in states.values()
        )

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """After a protocol switch: the bytes received beyond the HTTP message, and
        whether the peer's end of stream was received. Hand them to the next protocol."""
        return bytes(self._buf), self._eof

    # ---------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer. Then call :meth:`next_event` until it
        returns NEED_DATA or PAUSED."""
        if self._eof:
            raise LocalProtocolError("receive_data() called after receive_eof().")
        self._buf += data

    def receive_eof(self) -> None:
        """The peer closed its sending side. Then call :meth:`next_event`."""
        self._eof = True

    def next_event(self) -> Event | Sentinel:
        """The next event from the peer, or NEED_DATA, or PAUSED.

        Raises :class:`~sansnet.RemoteProtocolError` if the peer broke the protocol;
        the connection is then unusable (a server has queued its error response).
        """
        their_state = self._state.states[self._their_role]
        try:
            if their_state is SEND_BODY:
                return self._read_body()
            return self._read_other(their_state)
        except RemoteProtocolError as error:
            self._on_remote_error(error)
            raise

    def events_received(self) -> list[Event]:
        """Every event available now, in order (stops at NEED_DATA or PAUSED)."""
        events: list[Event] = []
        while True:
            event = self.next_event()
            if isinstance(event, Sentinel):
                return events
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events

    def _read_other(self, their_state: Sentinel) -> Event | Sentinel:
        """Read when the peer is not sending a body: a head, or what follows a message."""
        raise NotImplementedError

    def _read_body(self) -> Event | Sentinel:
        reader = self._reader
        assert reader is not None
        event = reader.read(self._buf)
        if event is None:
            if not self._eof:
                return NEED_DATA
            event = reader.read_eof()
        if type(event) is Data:
            self._body_received += len(event.data)
            limit = self.limits.max_body_bytes
            if limit is not None and self._body_received > limit:
                raise RemoteProtocolError(
                    f"The body is larger than {limit} bytes.", status_hint=413
                )
            return event
        self._reader = None
        self._body_received = 0
        self._state.process_event(self._their_role, _state.END)
        self._maybe_next_cycle()
        return event

    def _read_after_message(self, their_state: Sentinel) -> Event | Sentinel:
        """The peer's message is complete: more bytes wait for the next cycle, belong to
        the next protocol, or are an error; the end of the stream closes the peer's side."""
        if their_state is SWITCHED_PROTOCOL or their_state is MIGHT_SWITCH_PROTOCOL:
            return PAUSED
        if their_state is ERROR:
            raise LocalProtocolError(
                "The connection is broken by an earlier protocol error; close it."
            )
        if self._buf and their_state is not CLOSED:
            our_state = self._state.states[self._our_role]
            if their_state is DONE or our_state is SEND_RESPONSE or our_state is SEND_BODY:
                return PAUSED  # pipelined: parse after our message is complete
            raise RemoteProtocolError(
                "The peer sent data after a message that ends the connection."
            )
        if self._eof:
            if their_state is not CLOSED:
                self._state.process_event(self._their_role, _state.CLOSE)
            return ConnectionClosed()
        return NEED_DATA

    def _on_remote_error(self, error: RemoteProtocolError) -> None:
        self._state.process_error(self._their_role)

    # ---------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (b"" if none). Write all of them, in order,
        before calling it again."""
        out = self._out
        if not out:
            return b""
        if len(out) == 1:
            return out.pop()
        data = b"".join(out)
        out.clear()
        return data

    def send_data(self, data: bytes) -> None:
        """Send a piece of our message's body. Then write :meth:`data_to_send`."""
        writer = self._writer
        if writer is None:
            raise LocalProtocolError(
                f"Can't send body data now: our side is {self.our_state.name}."
            )
        framed = writer.write(data)
        if framed:
            self._out.append(framed)

    def send_end(self, trailers: HeadersLike | None = None) -> None:
        """End our message's body (with trailers, if chunked). Then write
        :meth:`data_to_send`; the connection may now be ready for the next cycle."""
        writer = self._writer
        if writer is None:
            raise LocalProtocolError(f"Can't end a message now: our side is {self.our_state.name}.")
        tail = writer.end(_as_items(trailers) if trailers is not None else None)
        if tail:
            self._out.append(tail)
        self._writer = None
        if type(writer) is CloseDelimitedWriter:
            self._state.disable_keep_alive()
        if self._state.states[self._their_role] is SEND_BODY:
            # We finished before the peer did: its unread body makes reuse impossible.
            self._state.disable_keep_alive()
        self._state.process_event(self._our_role, _state.END)
        self._maybe_next_cycle()

    def disable_keep_alive(self) -> None:
        """Close after the current cycle: the next head we send says Connection: close,
        and :attr:`must_close` becomes true once the cycle is complete."""
        self._state.disable_keep_alive()

    def send_eof(self) -> None:
        """Record that we are closing our side (call before closing the transport)."""
        if self.our_state is not CLOSED and self.our_state is not ERROR:
            if _state.CLOSE in _state.EVENT_TRIGGERED_TRANSITIONS[self._our_role][self.our_state]:
                self._state.process_event(self._our_role, _state.CLOSE)
            else:
                self._state.process_error(self._our_role)

    def _maybe_next_cycle(self) -> None:
        states = self._state.states
        if states[CLIENT] is DONE and states[SERVER] is DONE and self._state.keep_alive:
            self._state.start_next_cycle()


# ============================================================================ server


class ServerConnection(HTTPConnection):
    """The server side of one HTTP/1.1 connection. See the module docstring.

    Stricter than h11 where leniency lets requests be smuggled or resources be held:
    Content-Length with Transfer-Encoding, conflicting or malformed Content-Length,
    codings other than a final ``chunked``, obs-fold, whitespace before a colon, control
    characters in values, bare-LF line ends, missing or repeated Host, versions other than
    1.0 and 1.1, HTTP/2 prefaces and HTTP/0.9 request lines are all refused with the
    matching status, as are breaches of :class:`~sansnet.protocol.Limits`.

    ``default_headers`` is a list of (name, value) fields added to every response we
    send (a driver keeps ``date`` and ``server`` there; it may change the list in place).
    """

    __slots__ = (
        "_checked_line",
        "_request_method",
        "_request_version",
        "default_headers",
        "expect_continue",
    )

    _our_role = SERVER
    _their_role = CLIENT

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        default_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(limits if limits is not None else Limits())
        self.default_headers = default_headers if default_headers is not None else []
        self._request_method = "GET"
        self._request_version = "1.1"
        self._checked_line = False
        self.expect_continue = False
        """True while the client waits for ``100 Continue`` before sending its body:
        call :meth:`send_continue` when you want the body, or answer at once."""

    @property
    def receiving_head(self) -> bool:
        """True while part of a request head has arrived but not all of it: the time a
        driver bounds with its header-read timeout."""
        return self._state.states[CLIENT] is IDLE and bool(self._buf)

    @property
    def idle(self) -> bool:
        """True between requests with nothing buffered: the keep-alive idle state."""
        return (
            self._state.states[CLIENT] is IDLE
            and self._state.states[SERVER] is IDLE
            and not self._buf
        )

    # ---------------------------------------------------------------- input

    def _read_other(self, their_state: Sentinel) -> Event | Sentinel:
        if their_state is not IDLE:
            return self._read_after_message(their_state)
        if not self._buf:
            if self._eof:
                self._state.process_event(CLIENT, _state.CLOSE)
                return ConnectionClosed()
            return NEED_DATA
        lines = read_head(self._buf, self.limits, request=True)
        if lines is None:
            if self._buf and not self._checked_line:
                self._check_partial_request_line()
            if self._eof:
                if self._buf:
                    raise RemoteProtocolError(
                        "The client disconnected in the middle of a request head."
                    )
                self._state.process_event(CLIENT, _state.CLOSE)
                return ConnectionClosed()
            return NEED_DATA
        self._checked_line = False
        method, target, version = self._parse_request_line(lines[0])
        fields = parse_fields(lines, 1, self.limits)
        request = RequestHead(method, target, Headers._from_fields(fields), version)
        self._frame_request(request, fields)
        self._state.process_event(CLIENT, _state.REQUEST)
        return request

    def _check_partial_request_line(self) -> None:
        """Refuse a bad request line as soon as it is complete, not when the head is:
        HTTP/0.9 requests and HTTP/2 prefaces never send the blank line we wait for."""
        end = self._buf.find(b"\r\n")
        if end >= 0:
            self._checked_line = True
            self._parse_request_line(self._buf[:end].decode("latin-1"))

    def _parse_request_line(self, line: str) -> tuple[str, str, str]:
        parts = line.split(" ")
        if len(parts) != 3:
            if len(parts) == 2 and parts[0] and parts[1][:1] == "/":
                raise RemoteProtocolError(
                    "HTTP/0.9 requests are not supported; send an HTTP/1.1 request line.",
                    status_hint=505,
                )
            raise RemoteProtocolError(
                f"Invalid request line {line[:80]!r}: expected METHOD SP TARGET SP HTTP/1.1."
            )
        method, target, version = parts
        if version == "HTTP/1.1":
            version = "1.1"
        elif version == "HTTP/1.0":
            version = "1.0"
        elif _VERSION.fullmatch(version):
            raise RemoteProtocolError(
                f"{version} is not supported; this server speaks HTTP/1.1 and HTTP/1.0.",
                status_hint=505,
            )
        else:
            raise RemoteProtocolError(f"Invalid HTTP version {version[:20]!r} in the request line.")
        if not _is_method(method):
            raise RemoteProtocolError(f"Invalid method {method[:20]!r}: a method is a token.")
        first = target[:1]
        if first != "/" and not _valid_other_target(method, target):
            raise RemoteProtocolError(f"Invalid request target {target[:80]!r}.")
        if not target.isascii() or "\t" in target:
            raise RemoteProtocolError("The request target must be ASCII without tabs.")
        return method, target, version

    def _frame_request(self, request: RequestHead, fields: Fields) -> None:
        """Apply RFC 9112 section 6 (message body length) and the connection rules."""
        lengths: list[str] = []
        codings: list[str] = []
        connection: list[str] = []
        hosts = 0
        expect = upgrade = False
        for lower, _, value in fields:
            if lower in _REQUEST_SPECIAL:
                if lower == "content-length":
                    lengths.append(value)
                elif lower == "transfer-encoding":
                    codings.append(value)
                elif lower == "host":
                    hosts += 1
                elif lower == "connection":
                    connection.append(value)
                elif lower == "expect":
                    expect = value.lower() == "100-continue"
                else:
                    upgrade = True
        version = request.http_version
        if hosts != 1 and (version == "1.1" or hosts > 1):
            if hosts == 0:
                raise RemoteProtocolError("HTTP/1.1 requests must have a Host header field.")
            raise RemoteProtocolError("The request has more than one Host header field.")
        self._request_method = request.method
        self._request_version = version
        self._body_received = 0
        if codings:
            if lengths:
                raise RemoteProtocolError(
                    "The request has both Content-Length and Transfer-Encoding; refusing it "
                    "(RFC 9112 section 6.3: a request smuggling vector)."
                )
            if version == "1.0":
                raise RemoteProtocolError("HTTP/1.0 requests cannot use Transfer-Encoding.")
            members = [m.strip(" \t").lower() for value in codings for m in value.split(",")]
            if members[-1] != "chunked":
                raise RemoteProtocolError(
                    f"Transfer-Encoding {', '.join(codings)!r} does not end in chunked, so the "
                    "body length is unknown (RFC 9112 section 6.3)."
                )
            if len(members) > 1:
                raise RemoteProtocolError(
                    f"Transfer-Encoding {', '.join(codings)!r}: only 'chunked' is supported.",
                    status_hint=501,
                )
            self._reader = ChunkedReader(self.limits)
        elif lengths:
            length = parse_content_length(lengths)
            limit = self.limits.max_body_bytes
            if limit is not None and length > limit:
                raise RemoteProtocolError(
                    f"The body ({length} bytes) is larger than {limit} bytes.", status_hint=413
                )
            self._reader = ContentLengthReader(length)
        else:
            self._reader = ContentLengthReader(0)
        tokens = _tokens(connection) if connection else None
        if version == "1.1":
            if tokens and "close" in tokens:
                self._state.disable_keep_alive()
        elif not tokens or "keep-alive" not in tokens:
            self._state.disable_keep_alive()
        if upgrade and tokens and "upgrade" in tokens:
            self._state.propose_upgrade()
        has_body = not (type(self._reader) is ContentLengthReader and self._reader.remaining == 0)
        self.expect_continue = expect and has_body and version == "1.1"

    def _on_remote_error(self, error: RemoteProtocolError) -> None:
        super()._on_remote_error(error)
        our_state = self._state.states[SERVER]
        if our_state is IDLE or our_state is SEND_RESPONSE:
            self._send_error_response(error)

    def _send_error_response(self, error: RemoteProtocolError) -> None:
        body = (str(error) + "\n").encode("utf-8")
        self.send_error_response(
            error.status_hint, [("content-type", "text/plain; charset=utf-8")], body
        )

    def send_error_response(
        self, status: int, headers: HeadersLike | None = None, body: bytes = b""
    ) -> None:
        """Send a final response that ends the connection, even before a request head
        has arrived (a 408 for a head that never completed, a 503 for a connection
        refused under load). Adds Content-Length and ``Connection: close``; afterwards
        write :meth:`data_to_send` and close the transport."""
        our_state = self._state.states[SERVER]
        if our_state is not IDLE and our_state is not SEND_RESPONSE:
            raise LocalProtocolError(
                f"Can't send an error response now ({self._state.describe()})."
            )
        self._state.disable_keep_alive()
        items = [
            *self.default_headers,
            *_as_items(headers),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        head = write_head(f"HTTP/1.1 {status} {reason_phrase(status)}", items, len(items))
        if our_state is SEND_RESPONSE and self._request_method == "HEAD":
            body = b""  # a response to HEAD has no content (RFC 9110 section 9.3.2)
        self._out.append(head + body)
        self._state.process_event(SERVER, _state.RESPONSE)
        self._state.process_event(SERVER, _state.END)
        self.expect_continue = False

    # ---------------------------------------------------------------- output

    def send_continue(self) -> None:
        """Send ``100 Continue`` if the client is waiting for it (else do nothing).
        Then write :meth:`data_to_send`."""
        if self.expect_continue:
            self.expect_continue = False
            self._out.append(b"HTTP/1.1 100 Continue\r\n\r\n")

    def send_informational(self, status: int, headers: HeadersLike | None = None) -> None:
        """Send a 1xx interim response other than 101 (such as 103 Early Hints)."""
        if not 100 <= status < 200 or status == 101:
            raise LocalProtocolError(
                f"send_informational() takes a 1xx status other than 101, not {status}."
            )
        if self.our_state is not SEND_RESPONSE:
            raise LocalProtocolError(
                f"Can't send a {status} response now: {self._state.describe()}."
            )
        if status == 100:
            self.expect_continue = False
        items = [*self.default_headers, *_as_items(headers)]
        self._out.append(
            write_head(f"HTTP/1.1 {status} {reason_phrase(status)}", items, len(items))
        )
        self._state.process_event(SERVER, _state.INFORMATIONAL)

    def send_response(
        self,
        status: int,
        headers: HeadersLike | None = None,
        body: bytes = b"",
        *,
        reason: str | None = None,
    ) -> None:
        """Send a complete response: head and whole body, framed by Content-Length.

        Adds ``Content-Length`` (unless you set it, in which case it must match),
        ``Connection: close`` when the connection will close, and ``default_headers``.
        For a HEAD request the body is not sent. Status 101 accepts the client's
        upgrade: the connection is then SWITCHED_PROTOCOL (see :attr:`trailing_data`).
        Then write :meth:`data_to_send`.
        """
        self._start(status, headers, reason, body)
        if status != 101:
            self.send_end()

    def start_response(
        self,
        status: int,
        headers: HeadersLike | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """Send a response head; stream the body with :meth:`send_data` and finish it
        with :meth:`send_end`. The body is framed by your Content-Length if you set one,
        else chunked (HTTP/1.1 clients) or by closing the connection (HTTP/1.0)."""
        self._start(status, headers, reason, None)

    def _start(
        self, status: int, headers: HeadersLike | None, reason: str | None, body: bytes | None
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise LocalProtocolError(f"Invalid status code {status!r}: use 100 to 999.")
        state = self._state
        if 100 <= status < 200 and status != 101:
            raise LocalProtocolError("Use send_informational() for 1xx responses.")
        kind = _state.SWITCH if status == 101 else _state.RESPONSE
        if state.states[SERVER] is not SEND_RESPONSE or not state.allows(SERVER, kind):
            if status == 101:
                raise LocalProtocolError("Can't send 101: the client did not propose an upgrade.")
            raise LocalProtocolError(
                f"Can't start a response now ({state.describe()}): one response per request."
            )
        items = (
            [*self.default_headers, *_as_items(headers)] if headers else list(self.default_headers)
        )
        length: str | None = None
        chunked = said_close = False
        for name, value in items:
            lower = name.lower()
            if lower in _RESPONSE_SPECIAL:
                if lower == "content-length":
                    length = _one_length(length, value)
                elif lower == "transfer-encoding":
                    chunked = _chunked(value, chunked)
                elif "close" in _tokens([value]):
                    said_close = True
                    state.disable_keep_alive()
        declared: int | None = None
        if length is not None:
            # Checked for every status and method: even where no body follows (HEAD,
            # 304), the field goes out and must be one decimal number.
            if chunked:
                raise LocalProtocolError("Set Content-Length or Transfer-Encoding, not both.")
            declared = _length_value(length)
        if self.expect_continue:
            # Answering without reading the body the client holds back: reuse is unsafe.
            self.expect_continue = False
            state.disable_keep_alive()
        method = self._request_method
        writer: Writer
        if status == 101 or status == 204 or status == 304:
            writer = NoBodyWriter(str(status))
            if body:
                writer.write(body)
        elif method == "HEAD":
            writer = NoBodyWriter(None)
            if length is None and body is not None and not chunked:
                items.append(("content-length", str(len(body))))
        elif chunked:
            writer = ChunkedWriter()
        elif body is not None:
            if length is None:
                items.append(("content-length", str(len(body))))
            elif declared != len(body):
                raise LocalProtocolError(
                    f"Content-Length {length!r} does not match the body ({len(body)} bytes)."
                )
            writer = ContentLengthWriter(len(body))
        elif declared is not None:
            writer = ContentLengthWriter(declared)
        elif self._request_version == "1.1":
            items.append(("transfer-encoding", "chunked"))
            writer = ChunkedWriter()
        else:
            writer = CloseDelimitedWriter()
            state.disable_keep_alive()
        if not state.keep_alive and not said_close and status != 101:
            items.append(("connection", "close"))
        if reason is None:
            reason = reason_phrase(status)
        head = write_head(f"HTTP/1.1 {status} {reason}", items, len(items))
        state.process_event(SERVER, kind)
        if status == 101:
            self._out.append(head)
            return
        self._writer = writer
        if body:
            data = writer.write(body)
            self._out.append(head + data if data else head)
        else:
            self._out.append(head)


def _valid_other_target(method: str, target: str) -> bool:
    """Targets other than origin-form: absolute-form, authority-form (CONNECT) and
    asterisk-form (OPTIONS), RFC 9112 section 3.2."""
    if target == "*":
        return method == "OPTIONS"
    if method == "CONNECT":
        host, colon, port = target.rpartition(":")
        return bool(host) and colon == ":" and port.isdigit()
    scheme, sep, rest = target.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest) and rest[0] not in "/?"


# ============================================================================ client


class ClientConnection(HTTPConnection):
    """The client side of one HTTP/1.1 connection to ``host``:``port``. See the module
    docstring.

    Requests get ``Host`` (with the port when it is not the scheme's default),
    ``User-Agent: sansnet/<version>`` and ``Accept: */*`` unless you set them.
    Interim 1xx responses are skipped, except 101 when our request proposed an upgrade.
    After the response's :class:`~.events.EndOfMessage`, :attr:`reusable` tells whether
    the connection may carry another request.
    """

    __slots__ = ("_host_header", "_method", "_upgrade", "default_headers")

    _our_role = CLIENT
    _their_role = SERVER

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        scheme: str = "http",
        limits: Limits | None = None,
        default_headers: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(limits if limits is not None else Limits.client())
        default_port = 443 if scheme in ("https", "wss") else 80
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        self._host_header = host if port is None or port == default_port else f"{host}:{port}"
        self.default_headers: list[tuple[str, str]] = (
            list(default_headers)
            if default_headers is not None
            else [("User-Agent", USER_AGENT), ("Accept", "*/*")]
        )
        self._method = "GET"
        self._upgrade = False

    @property
    def reusable(self) -> bool:
        """True when both sides are IDLE and the connection may carry another request."""
        states = self._state.states
        return states[CLIENT] is IDLE and states[SERVER] is IDLE and not self._eof and not self._buf

    # ---------------------------------------------------------------- output

    def send_request(
        self,
        method: str,
        target: str,
        headers: HeadersLike | None = None,
        body: bytes = b"",
    ) -> None:
        """Send a complete request: head and whole body, framed by Content-Length.

        ``Content-Length`` is added for a non-empty body, and for an empty one when
        the method usually carries a body (POST, PUT, PATCH). Then write
        :meth:`data_to_send` and read the response with :meth:`next_event`.
        """
        self._start(method, target, headers, body)
        self.send_end()

    def start_request(
        self,
        method: str,
        target: str,
        headers: HeadersLike | None = None,
    ) -> None:
        """Send a request head; stream the body with :meth:`send_data` and finish with
        :meth:`send_end`. The body is chunked unless you set Content-Length."""
        self._start(method, target, headers, None)

    def _start(
        self, method: str, target: str, headers: HeadersLike | None, body: bytes | None
    ) -> None:
        state = self._state
        if state.states[CLIENT] is not IDLE:
            raise LocalProtocolError(
                f"Can't send a request now ({state.describe()}): finish the previous "
                "cycle or open a new connection."
            )
        if not _is_method(method):
            raise LocalProtocolError(f"Invalid method {method!r}: a method is a token.")
        if not (
            target.isascii()
            and " " not in target
            and "\t" not in target  # other control characters: write_head refuses them
            and (target[:1] == "/" or _valid_other_target(method, target))
        ):
            # RFC 9112 section 3.2: the forms a server accepts (ours refuses the rest).
            raise LocalProtocolError(
                f"Invalid request target {target!r}: use an ASCII origin-form ('/path?q'), "
                "absolute-form, authority-form (CONNECT) or '*' (OPTIONS), percent-encoded."
            )
        given = _as_items(headers)
        items: list[tuple[str, str]] = []
        seen: set[str] = set()
        length: str | None = None
        chunked = False
        hosts = 0
        connection: list[str] = []
        for name, value in given:
            lower = name.lower()
            seen.add(lower)
            if lower == "content-length":
                length = _one_length(length, value)
            elif lower == "transfer-encoding":
                chunked = _chunked(value, chunked)
            elif lower == "connection":
                connection.append(value)
            elif lower == "host" and hosts:
                # RFC 9112 section 3.2: a server must refuse such a request with 400.
                raise LocalProtocolError("A request has one Host field, not several.")
            elif lower == "host":
                hosts = 1
        if not hosts:
            items.append(("Host", self._host_header))
        for name, value in self.default_headers:
            if name.lower() not in seen:
                items.append((name, value))
        items.extend(given)
        writer: Writer
        if chunked:
            if length is not None:
                raise LocalProtocolError("Set Content-Length or Transfer-Encoding, not both.")
            writer = ChunkedWriter()
        elif body is not None:
            if length is None:
                if body or method in ("POST", "PUT", "PATCH"):
                    items.append(("Content-Length", str(len(body))))
            elif _length_value(length) != len(body):
                raise LocalProtocolError(
                    f"Content-Length {length!r} does not match the body ({len(body)} bytes)."
                )
            writer = ContentLengthWriter(len(body))
        elif length is not None:
            writer = ContentLengthWriter(_length_value(length))
        else:
            items.append(("Transfer-Encoding", "chunked"))
            writer = ChunkedWriter()
        head = write_head(f"{method} {target} HTTP/1.1", items, len(items))
        tokens = _tokens(connection) if connection else set()
        if "close" in tokens:
            state.disable_keep_alive()
        self._upgrade = "upgrade" in tokens and "upgrade" in seen
        if self._upgrade:
            state.propose_upgrade()
        state.process_event(CLIENT, _state.REQUEST)
        self._method = method
        self._writer = writer
        if body:
            self._out.append(head + writer.write(body))
        else:
            self._out.append(head)

    # ---------------------------------------------------------------- input

    def _read_other(self, their_state: Sentinel) -> Event | Sentinel:
        if their_state is SEND_RESPONSE:
            return self._read_response_head()
        if their_state is IDLE:  # no request in flight: an idle pooled connection
            if self._buf:
                raise RemoteProtocolError("The server sent data before any request was made.")
            if self._eof:
                self._state.process_event(SERVER, _state.CLOSE)
                return ConnectionClosed()
            return NEED_DATA
        return self._read_after_message(their_state)

    def _read_response_head(self) -> Event | Sentinel:
        while True:
            lines = read_head(self._buf, self.limits, request=False)
            if lines is None:
                if self._eof:
                    if self._buf:
                        raise RemoteProtocolError(
                            "The server disconnected in the middle of the response head."
                        )
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                return NEED_DATA
            response = self._parse_response(lines)
            status = response.status_code
            if status >= 200:
                break
            if status == 101:
                if not self._upgrade:
                    raise RemoteProtocolError("The server switched protocols (101) unasked.")
                self._state.process_event(SERVER, _state.SWITCH)
                return response
            # Other 1xx responses are interim: skip them and read the final response.
            self._state.process_event(SERVER, _state.INFORMATIONAL)
        self._frame_response(response)
        self._state.process_event(SERVER, _state.RESPONSE)
        if self._state.states[CLIENT] is SEND_BODY:
            # The server answered before our body was complete: we cannot know whether it
            # reads the rest, so the connection is not reused.
            self._state.disable_keep_alive()
        return response

    def _parse_response(self, lines: list[str]) -> ResponseHead:
        line = lines[0]
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version == "HTTP/1.1":
            version = "1.1"
        elif version == "HTTP/1.0":
            version = "1.0"
        else:
            raise RemoteProtocolError(
                f"Invalid status line {line[:80]!r}: the server does not speak HTTP/1.1."
            )
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise RemoteProtocolError(f"Invalid status code {code[:10]!r} in {line[:80]!r}.")
        fields = parse_fields(lines, 1, self.limits)
        return ResponseHead(int(code), Headers._from_fields(fields), reason, version)

    def _frame_response(self, response: ResponseHead) -> None:
        """RFC 9112 section 6.3, in order."""
        status = response.status_code
        lengths: list[str] = []
        codings: list[str] = []
        connection: list[str] = []
        for lower, _, value in response.headers._fields:
            if lower in _RESPONSE_SPECIAL:
                if lower == "content-length":
                    lengths.append(value)
                elif lower == "transfer-encoding":
                    codings.append(value)
                else:
                    connection.append(value)
        tokens = _tokens(connection) if connection else None
        if response.http_version == "1.1":
            if tokens and "close" in tokens:
                self._state.disable_keep_alive()
        elif not tokens or "keep-alive" not in tokens:
            self._state.disable_keep_alive()
        self._body_received = 0
        if self._method == "HEAD" or status == 204 or status == 304:
            self._reader = ContentLengthReader(0)
        elif codings:
            members = [m.strip(" \t").lower() for value in codings for m in value.split(",")]
            if lengths:
                # Both framings: Transfer-Encoding wins, and the connection is suspect.
                self._state.disable_keep_alive()
            if members[-1] == "chunked":
                self._reader = ChunkedReader(self.limits)
            else:
                self._reader = UntilCloseReader()
                self._state.disable_keep_alive()
        elif lengths:
            length = parse_content_length(lengths)
            limit = self.limits.max_body_bytes
            if limit is not None and length > limit:
                raise RemoteProtocolError(
                    f"The response body ({length} bytes) is larger than {limit} bytes."
                )
            self._reader = ContentLengthReader(length)
        else:
            self._reader = UntilCloseReader()
            self._state.disable_keep_alive()
