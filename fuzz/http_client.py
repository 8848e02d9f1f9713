"""Fuzz harness: a ClientConnection, after sending a request, fed arbitrary response bytes.

Run: ``python fuzz/http_client.py [libFuzzer flags] [corpus dirs]`` (see fuzz/README.md).

Input: byte 0 options, byte 1 where to cut the rest into pieces, then the bytes the
server sends. Options:

* bit 0: the server ends its stream after the bytes (``receive_eof``)
* bit 1: the requests are HEAD (else GET)
* bit 2: the first request proposes an upgrade (``Connection: upgrade``)
* bit 3: small :class:`Limits`
* bits 4-5: how many more requests to send, each once the previous response is
  complete and the connection is reusable (a keep-alive client)

Properties checked, any breach being a crash:

1. ``next_event`` raises nothing but :class:`~sansnet.RemoteProtocolError`.
2. The events come in order (one final head per request, its data, its end), a HEAD,
   204 or 304 response has no data, a Content-Length body is exactly that long, a 101
   only answers an upgrade proposal, nothing follows PeerClosed, and
   ``reusable`` is false after ``Connection: close`` or an HTTP/1.0 response.
3. The responses we read completely and h11 (as the same client) read completely too
   are the same responses: status, reason, fields, body, trailers.
"""

from __future__ import annotations

import sys

import _common
from _common import Exchange, Message, check

with _common.instrumented("h11"):
    from sansnet.errors import RemoteProtocolError
    from sansnet.protocol import (
        ERROR,
        IDLE,
        NEED_DATA,
        PAUSED,
        SWITCHED_PROTOCOL,
        ClientConnection,
        Data,
        EndOfMessage,
        InformationalResponse,
        Limits,
        PeerClosed,
        ResponseHead,
    )
    from sansnet.protocol.http11 import _NOT_IN_TRAILERS, TOKEN

SMALL = Limits(max_request_line=64, max_header_bytes=256, max_header_fields=8, max_chunk_line=32)


class Session:
    def __init__(self, options: int) -> None:
        self.options = options
        self.method = "HEAD" if options & 2 else "GET"
        self.more = (options >> 4) & 3
        self.conn = ClientConnection("fuzz", limits=SMALL if options & 8 else None)
        self.exchanges: list[Exchange] = []
        self.responses: list[Message] = []
        self.current: Message | None = None
        self.head: ResponseHead | None = None
        self.closed = False
        self.switched = False
        self.send_request(upgrade=bool(options & 4))

    def send_request(self, *, upgrade: bool) -> None:
        headers = [("connection", "upgrade"), ("upgrade", "fuzz")] if upgrade else []
        self.conn.send_request(self.method, "/", headers)
        self.conn.data_to_send()
        self.exchanges.append(Exchange(self.method, upgrade=upgrade))

    def on_event(self, event: object) -> None:
        check(not self.closed, f"{event!r} after PeerClosed")
        exchange = self.exchanges[-1]
        if isinstance(event, ResponseHead):
            check(self.current is None, "a response head inside a response")
            status = event.status_code
            check(200 <= status <= 999 or (status == 101 and exchange.upgrade), f"status {status}")
            check(event.http_version in ("1.0", "1.1"), f"version {event.http_version!r}")
            for raw, value in event.headers.raw_items():
                check(TOKEN.fullmatch(raw), f"name {raw!r}")
                check(not any(c in value for c in "\r\n\x00"), f"value {value!r}")
            self.head = event
            self.current = Message(
                (str(status).encode(), event.reason.encode("latin-1"), event.http_version.encode()),
                _common.field_bytes(event.headers),
            )
            if status == 101:
                check(self.conn.our_state is SWITCHED_PROTOCOL, "101 without a switch")
                self.current.complete = True
                self.responses.append(self.current)
                self.current = None
                self.switched = True
        elif isinstance(event, Data):
            check(self.current is not None and self.head is not None, "data outside a response")
            assert self.current is not None
            assert self.head is not None
            check(event.data, "an empty Data event")
            check(exchange.method != "HEAD", "data in a response to HEAD")
            check(self.head.status_code not in (204, 304), "data in a 204 or 304 response")
            self.current.body += event.data
        elif isinstance(event, EndOfMessage):
            check(self.current is not None and self.head is not None, "end outside a response")
            assert self.current is not None
            assert self.head is not None
            if event.trailers is not None:
                self.current.trailers = _common.field_bytes(event.trailers)
            length = self.head.headers.get("content-length")
            if (
                length is not None
                and "transfer-encoding" not in self.head.headers
                and exchange.method != "HEAD"
                and self.head.status_code not in (204, 304)
            ):
                expected = int(length.split(",")[0].strip())
                check(len(self.current.body) == expected, "body length != Content-Length")
            self.current.complete = True
            self.responses.append(self.current)
            tokens = {
                token.strip(" \t").lower()
                for value in self.head.headers.get_all("connection")
                for token in value.split(",")
            }
            if "close" in tokens or (
                self.head.http_version == "1.0" and "keep-alive" not in tokens
            ):
                check(not self.conn.reusable, "reusable after Connection: close or HTTP/1.0")
            self.current = None
            self.head = None
            if self.more and self.conn.reusable:
                self.more -= 1
                self.send_request(upgrade=False)
        elif isinstance(event, InformationalResponse):
            check(self.current is None, "an interim response inside a response")
            check(100 <= event.status_code <= 199, f"interim status {event.status_code}")
            check(event.status_code != 101, "101 as an interim response")
        elif isinstance(event, PeerClosed):
            check(self.current is None, "closed in the middle of a response")
            self.closed = True
        else:
            raise _common.Finding(f"unexpected event {event!r}")

    def pump(self) -> None:
        for _ in range(10_000):
            if self.closed or self.switched:
                return
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            if event is PAUSED:
                check(
                    self.conn.our_state is not IDLE or not self.more,
                    f"PAUSED: we are {self.conn.our_state}, the server {self.conn.their_state}",
                )
                return
            self.on_event(event)
        raise _common.Finding("next_event() never blocked")


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    options, split_seed = data[0], data[1]
    wire = data[2:]
    eof = bool(options & 1)
    session = Session(options)
    conn = session.conn
    try:
        for piece in _common.split(wire, split_seed):
            if session.switched or session.closed:
                break
            conn.receive_data(piece)
            session.pump()
        if eof and not session.switched and not session.closed:
            conn.receive_eof()
            session.pump()
    except RemoteProtocolError:
        check(conn.their_state is ERROR, f"server state {conn.their_state} after an error")
        check(conn.must_close, "must_close is false after an error")
    theirs, _problem = _common.h11_read_responses(wire, session.exchanges, eof=eof)
    _common.check_same_as_h11("response", session.responses, theirs, _NOT_IN_TRAILERS)


if __name__ == "__main__":
    _common.main(test_one_input)
    sys.exit(0)
