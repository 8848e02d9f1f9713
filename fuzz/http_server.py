"""Fuzz harness: a ServerConnection fed arbitrary bytes from a client.

Run: ``python fuzz/http_server.py [libFuzzer flags] [corpus dirs]`` (see fuzz/README.md).

Input: byte 0 options, byte 1 where to cut the rest into pieces, byte 2 how to answer,
then the bytes the client sends. Options:

* bit 0: the client ends its stream after the bytes (``receive_eof``)
* bit 1: small :class:`Limits` (every limit reachable by a few hundred bytes)
* bits 2-3: when we answer a request: 0 after its body, 1 as soon as its head
  arrives (before the body), 2 after its body with a streamed (chunked) body, 3 never
* bit 4: accept an upgrade proposal with 101 instead of a normal response
* bit 5: send 100 Continue when the client waits for it
* bit 6: the connection has ``default_headers`` (as the driver sets date and server)
* bit 7: send a 103 Early Hints before each final response

Properties checked, any breach being a crash:

1. ``next_event`` raises nothing but :class:`~sansnet.RemoteProtocolError`; our own
   ``send_*`` calls, made only where the contract allows them, raise nothing.
2. The events come in order (a head, its data, its end; nothing after PeerClosed),
   bodies stay within ``max_body_bytes``, names are tokens, values have no CR/LF/NUL.
3. After a RemoteProtocolError, ``data_to_send()`` is one well-formed response with the
   error's ``status_hint`` and ``Connection: close`` (checked by h11 as the client and by
   llhttp's response parser), the connection is ERROR/MUST_CLOSE, and ``next_event``
   then raises LocalProtocolError.
4. Everything the server wrote, over the whole connection, parses with h11 as the
   responses to the requests it received, in order, with nothing left over.
5. The complete requests we accepted and h11 (as a server) accepted too are the same
   requests in both: method, target, version, fields, body, trailers. We are stricter
   than h11, so only the common prefix is compared.
"""

from __future__ import annotations

import re
import sys

import _common
from _common import Exchange, Message, check

with _common.instrumented("h11"):
    from sansnet.errors import LocalProtocolError, RemoteProtocolError
    from sansnet.protocol import (
        DONE,
        ERROR,
        IDLE,
        MIGHT_SWITCH_PROTOCOL,
        MUST_CLOSE,
        NEED_DATA,
        PAUSED,
        SEND_BODY,
        SEND_RESPONSE,
        SWITCHED_PROTOCOL,
        Data,
        EndOfMessage,
        Limits,
        PeerClosed,
        RequestHead,
        ServerConnection,
    )
    from sansnet.protocol.http11 import _NOT_IN_TRAILERS, TOKEN

SMALL = Limits(
    max_request_line=64,
    max_header_bytes=256,
    max_header_fields=8,
    max_body_bytes=64,
    max_chunk_line=32,
)
STATUSES = [200, 200, 201, 204, 304, 404, 500, 299, 999]
BODIES = [b"", b"ok", b"x" * 100, b"hello, world\n"]


class Session:
    def __init__(self, options: int, answer_seed: int) -> None:
        self.options = options
        self.answer_seed = answer_seed
        self.limits = SMALL if options & 2 else Limits()
        self.timing = (options >> 2) & 3
        default_headers = [("server", "fuzz"), ("date", "today")] if options & 64 else None
        self.conn = ServerConnection(self.limits, default_headers=default_headers)
        self.wire = bytearray()  # everything we wrote
        self.received = b""  # everything the client sent
        self.exchanges: list[Exchange] = []  # one per response we wrote, in order
        self.requests: list[Message] = []  # complete requests, as parsed by us
        self.current: Message | None = None
        self.current_request: RequestHead | None = None
        self.answered = False  # the current request has its response
        self.body_size = 0
        self.closed = False
        self.switched = False
        self.count = 0

    def flush(self) -> None:
        self.wire += self.conn.data_to_send()

    def upgrade_proposed(self) -> bool:
        """The current request proposed an upgrade a 101 may accept now: its message is
        complete (the client MIGHT_SWITCH_PROTOCOL: it has an Upgrade field) and it has
        the "upgrade" connection option (RFC 9110 section 7.8)."""
        request = self.current_request
        if request is None or self.conn.their_state is not MIGHT_SWITCH_PROTOCOL:
            return False
        options = {
            token.strip(" \t").lower()
            for value in request.headers.get_all("connection")
            for token in value.split(",")
        }
        return "upgrade" in options

    # ------------------------------------------------------------------ answering

    def answer(self) -> None:
        """Send a whole response to the current request (the contract allows it now)."""
        conn = self.conn
        request = self.current_request
        assert request is not None
        check(conn.our_state is SEND_RESPONSE, f"answering in {conn.our_state}")
        seed = self.answer_seed + self.count
        self.count += 1
        upgrade = self.upgrade_proposed()
        if self.options & 32:
            conn.send_continue()
        if self.options & 128:
            conn.send_informational(103, [("link", "</style.css>; rel=preload")])
        if upgrade and self.options & 16:
            conn.send_response(101, [("upgrade", "fuzz"), ("connection", "upgrade")])
            check(conn.our_state is SWITCHED_PROTOCOL, f"101 left us in {conn.our_state}")
            self.exchanges.append(Exchange(request.method, upgrade=True))
            self.flush()
            self.answered = True
            self.switched = True
            return
        # A 2xx answer to CONNECT makes a tunnel (RFC 9112 section 6.3), which this
        # engine leaves to the application; a server that does not tunnel refuses it.
        status = 405 if request.method == "CONNECT" else STATUSES[seed % len(STATUSES)]
        body = BODIES[(seed >> 4) % len(BODIES)] if status not in (204, 304) else b""
        headers = [("content-type", "text/plain")]
        if (seed >> 6) & 1:
            headers.append(("x-fuzz", "a b\tc"))
        if self.timing == 2:
            conn.start_response(status, headers)
            head = conn.data_to_send()
            self.wire += head
            for start in range(0, len(body), 7):
                conn.send_data(body[start : start + 7])
                self.flush()
            if conn.our_state is SEND_BODY:
                # Trailers need a chunked body (not to HEAD or HTTP/1.0, not 204/304).
                chunked = _common.body_is_chunked(
                    head, head_request=request.method == "HEAD", status=status
                )
                trailers = chunked and (seed >> 7) & 1
                conn.send_end([("x-trailer", "t")] if trailers else None)
        else:
            conn.send_response(status, headers, body)
        self.exchanges.append(Exchange(request.method, upgrade=upgrade))
        self.flush()
        self.answered = True

    # ------------------------------------------------------------------- events

    def on_event(self, event: object) -> None:
        conn = self.conn
        check(not self.closed, f"{event!r} after PeerClosed")
        if isinstance(event, RequestHead):
            check(self.current is None, "a request head inside a request")
            check(event.http_version in ("1.0", "1.1"), f"version {event.http_version!r}")
            check(TOKEN.fullmatch(event.method), f"method {event.method!r}")
            check(event.target and event.target.isascii(), f"target {event.target!r}")
            for raw, value in event.headers.raw_items():
                check(TOKEN.fullmatch(raw), f"name {raw!r}")
                check(not any(c in value for c in "\r\n\x00"), f"value {value!r}")
                check(value == value.strip(" \t"), f"value {value!r} not stripped")
            self.current = Message(
                (event.method.encode(), event.target.encode(), event.http_version.encode()),
                _common.field_bytes(event.headers),
            )
            self.current_request = event
            self.answered = False
            self.body_size = 0
            if self.timing == 1:
                self.answer()
        elif isinstance(event, Data):
            check(self.current is not None, "data outside a request")
            check(event.data, "an empty Data event")
            self.body_size += len(event.data)
            limit = self.limits.max_body_bytes
            check(limit is None or self.body_size <= limit, "body beyond max_body_bytes")
            assert self.current is not None
            self.current.body += event.data
        elif isinstance(event, EndOfMessage):
            check(self.current is not None, "end of a message that never began")
            assert self.current is not None
            if event.trailers is not None:
                self.current.trailers = _common.field_bytes(event.trailers)
            self.current.complete = True
            self.requests.append(self.current)
            self.current = None
            if self.timing in (0, 2) and not self.answered and conn.our_state is SEND_RESPONSE:
                self.answer()
        elif isinstance(event, PeerClosed):
            check(self.current is None, "closed in the middle of a request")
            self.closed = True
        else:
            raise _common.Finding(f"unexpected event {event!r}")

    def pump(self) -> None:
        """Take every event now available; answer requests as the options say."""
        conn = self.conn
        for _ in range(10_000):
            if self.closed or self.switched:
                return
            event = conn.next_event()
            if event is NEED_DATA:
                return
            if event is PAUSED:
                # The client's message is complete and more bytes wait: the next request,
                # or the bytes after an upgrade proposal. Answer to move on, if we may.
                if (
                    conn.our_state is SEND_RESPONSE
                    and self.timing != 3
                    and not self.answered
                    and self.current_request is not None
                ):
                    self.answer()
                    continue
                check(
                    conn.their_state
                    in (DONE, MUST_CLOSE, MIGHT_SWITCH_PROTOCOL, SWITCHED_PROTOCOL),
                    f"PAUSED with the client in {conn.their_state}",
                )
                return
            self.on_event(event)
        raise _common.Finding("next_event() never blocked")


def refused_method(session: Session, error: RemoteProtocolError, queued: bytes) -> str:
    """The method of the request the error answers, as far as the framing of the error
    response goes: the current request's; else the refused head's, which the engine
    records as soon as h11 has parsed it (so a refused HEAD request is answered without
    a body); a head refused before it reached h11 is answered as GET."""
    if session.current is not None and session.current_request is not None:
        return session.current_request.method
    if queued.endswith(f"{error}\n".encode()):
        return "GET"
    # No body: only right when the refused head is a HEAD request. Which head that is
    # cannot be told from here (bytes after it may have come in the same piece), so the
    # check is that a HEAD request line was received at all; the exact rule is tested in
    # tests/protocol/test_http_on_h11.py (test_a_refused_head_request_is_answered_...).
    lines = _REQUEST_LINE.findall(session.received)
    check(b"HEAD" in lines, f"an error response without its body, and no HEAD in {lines!r}")
    return "HEAD"


# Anywhere, not only after a line end: a request may start right after the previous
# body's last byte (``...}HEAD / HTTP/1.0``).
_REQUEST_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+) \S+ HTTP/[0-9]\.[0-9]\r\n")


def check_error_response(session: Session, error: RemoteProtocolError, queued: bytes) -> None:
    conn = session.conn
    check(conn.their_state is ERROR, f"client state {conn.their_state} after an error")
    if not queued:
        # No error response when ours was already under way: the client has its answer.
        check(
            conn.our_state not in (IDLE, SEND_RESPONSE),
            f"no error response queued in {conn.our_state}",
        )
        return
    check(conn.our_state is MUST_CLOSE, f"our state {conn.our_state} after the error response")
    check(conn.must_close, "must_close is false after an error")
    try:
        conn.next_event()
    except LocalProtocolError:
        pass
    else:
        raise _common.Finding("next_event() after an error did not raise LocalProtocolError")
    method = refused_method(session, error, queued)
    session.exchanges.append(Exchange(method))
    # llhttp cannot be told that a response answers HEAD; every other one must parse.
    if method != "HEAD":
        llhttp = _common.Llhttp(response=True)
        llhttp.feed(queued)
        check(llhttp.error is None, f"error response refused by {llhttp.error}: {queued!r}")
        check(len(llhttp.messages) == 1, f"llhttp saw {len(llhttp.messages)} responses")
        message = llhttp.messages[0]
        check(message.start[0] == str(error.status_hint).encode(), f"status {message.start}")
        check(not message.keep_alive, "llhttp says the error response keeps the connection")
        check(message.body.decode() == f"{error}\n", "error body is not the message")
    head = queued.split(b"\r\n\r\n", 1)[0].lower()
    check(b"\r\nconnection: close" in head, "no Connection: close in the error response")


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    options, split_seed, answer_seed = data[0], data[1], data[2]
    wire = data[3:]
    session = Session(options, answer_seed)
    session.received = wire
    conn = session.conn
    eof = bool(options & 1)
    error: RemoteProtocolError | None = None
    try:
        for piece in _common.split(wire, split_seed):
            if session.switched or session.closed:
                break
            conn.receive_data(piece)
            session.pump()
        if eof and not session.switched and not session.closed:
            conn.receive_eof()
            session.pump()
    except RemoteProtocolError as exc:
        error = exc
    if error is not None:
        check(isinstance(error.status_hint, int) and 400 <= error.status_hint <= 599, "hint")
        queued = conn.data_to_send()
        check_error_response(session, error, queued)
        session.wire += queued
    # Property 4: the whole output, error response included, as h11 the client reads it.
    # The transport is closed after an error, a switch, or when the connection must close.
    closing = error is not None or session.switched or conn.must_close
    responses, problem = _common.h11_read_responses(
        bytes(session.wire), session.exchanges, eof=closing
    )
    check(problem is None, f"h11 refused our output: {problem}: {bytes(session.wire)[-300:]!r}")
    check(
        len(responses) == len(session.exchanges),
        f"h11 read {len(responses)} responses, we wrote {len(session.exchanges)}",
    )
    compare_with_h11(session, wire, eof)


def compare_with_h11(session: Session, wire: bytes, eof: bool) -> None:
    """Property 5: the requests both of us accepted are the same requests."""
    theirs = _common.h11_read_requests(wire, eof=eof)
    ours = session.requests
    _common.check_same_as_h11("request", ours, theirs, _NOT_IN_TRAILERS)


if __name__ == "__main__":
    _common.main(test_one_input)
    sys.exit(0)
