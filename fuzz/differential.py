"""Fuzz harness: what our client and server write parses the same in h11 and in llhttp,
and what they accept, llhttp accepts and frames the same way.

Run: ``python fuzz/differential.py [libFuzzer flags] [corpus dirs]`` (see
fuzz/README.md).

Input: byte 0 options, byte 1 how to stream the body, then an HTTP message used as
material (the corpus holds real requests and responses): its start line, fields and
body are taken apart leniently and, unless bit 2 says otherwise, cleaned to the RFC
9110/9112 grammar. Our ClientConnection (requests) or ServerConnection (responses)
then writes them, and h11 and httptools (llhttp) parse what it wrote. Then the material
bytes themselves, cut where byte 1 says, are received by our ServerConnection (requests,
each answered) or ClientConnection (a response to GET, or HEAD with bit 5, then the end
of the stream), and by llhttp. Options:

* bit 0: a response written by ServerConnection, else a request by ClientConnection
* bit 1: the body is streamed (``start_*`` and ``send_data``), else sent whole
* bit 2: raw: the material is not cleaned; our writer must refuse what is invalid
  (LocalProtocolError) or write something both parsers accept the same way
* bit 3: trailers (on a streamed, chunked body)
* bit 4: a second message follows on the same connection
* bit 5: response mode: the request was HEAD
* bit 6: response mode: the request was HTTP/1.0 (requests: ``Connection: close``)
* bit 7: response mode: a 103 Early Hints comes first

Properties checked, any breach being a crash:

1. Writing raises nothing but LocalProtocolError, and clean material never raises it.
2. h11 and llhttp both accept every message we wrote, and agree on the method,
   target, version (or status and reason), fields, body, trailers and keep-alive.
3. Clean material comes out as given: the fields we were asked to send are there, in
   order, with their values, and the body is the body (h11 moves Host first and
   rewrites Transfer-Encoding and Connection: those are judged by property 2).
4. Every message we received completely, llhttp received completely too, with the same
   start line, fields, body, trailers (less those we drop) and keep-alive; reading
   stops at our first refusal (refusing is always allowed). The exceptions are the
   known differences of :func:`known_difference`, and HTTP/1.0 keep-alive (h11 does
   not offer it). sansnet on h11 accepting what llhttp refuses, or framing a body
   differently, is a finding.

Skipped, with the reasons in :func:`llhttp_can_judge`: llhttp on methods it does not
know, and on responses to HEAD (it cannot be told the request method); after a message
llhttp takes for an upgrade (or CONNECT), which we answer without switching.
"""

from __future__ import annotations

import re
import sys

import _common
from _common import Exchange, Message, check

with _common.instrumented("h11"):
    from sansnet.errors import LocalProtocolError, RemoteProtocolError
    from sansnet.protocol import (
        ERROR,
        MIGHT_SWITCH_PROTOCOL,
        MUST_CLOSE,
        SEND_BODY,
        ClientConnection,
        Data,
        EndOfMessage,
        InformationalResponse,
        Limits,
        RequestHead,
        ResponseHead,
        ServerConnection,
        reason_phrase,
    )
    from sansnet.protocol.http11 import _NOT_IN_TRAILERS

TCHAR = re.compile(rb"[^-!#$%&'*+.^_`|~0-9A-Za-z]")
# origin-form: absolute-path ["?" query]; pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@"; query adds "/" and "?" (RFC 9110 section 4.1, RFC 3986).
NOT_TARGET = re.compile(rb"[^-._~A-Za-z0-9%!$&'()*+,;=:@/?]")
NOT_FIELD_VCHAR = re.compile(rb"[^\t \x21-\x7e\x80-\xff]")
# The methods llhttp knows (llhttp/src/llhttp/constants.ts, HTTP ones): it refuses any
# other token, which RFC 9110 section 9.1 allows. That is llhttp's limit, not ours.
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY".split()
)
FRAMING = (b"content-length", b"transfer-encoding")
REWRITTEN = (b"transfer-encoding", b"connection")


# ---------------------------------------------------------------------- material


class Material:
    """An HTTP message taken apart without judging it."""

    def __init__(self, data: bytes, *, response: bool, clean: bool) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
        start = lines[0].split(b" ", 2) if lines else [b""]
        start += [b""] * (3 - len(start))
        self.fields: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                self.fields.append((name, value[1:] if value[:1] == b" " else value))
        if response:
            self.status = int(b"".join(re.findall(rb"[0-9]", start[1]))[:3] or b"200")
            self.reason = start[2]
        else:
            self.method, self.target = start[0], start[1]
        if clean:
            self.clean(response=response)

    def clean(self, *, response: bool) -> None:
        if response:
            if not 200 <= self.status <= 999:
                self.status = 200 + self.status % 800
            self.reason = NOT_FIELD_VCHAR.sub(b"", self.reason).strip(b" \t")
        else:
            self.method = TCHAR.sub(b"", self.method) or b"GET"
            target = NOT_TARGET.sub(b"", self.target)
            self.target = target if target.startswith(b"/") else b"/" + target
            if self.method == b"CONNECT":
                self.method = b"GET"  # CONNECT takes an authority-form target
        fields = []
        for name, value in self.fields:
            name = TCHAR.sub(b"", name)
            value = NOT_FIELD_VCHAR.sub(b"", value).strip(b" \t")
            lower = name.lower()
            if not name or lower in FRAMING or lower == b"connection":
                continue  # framing is the writer's job; Connection is chosen below
            if lower in (b"upgrade", b"expect", b"trailer", b"te"):
                continue  # they change what the peer expects next: not material here
            if lower == b"host" and any(n.lower() == b"host" for n, _ in fields):
                continue  # one Host field per request (RFC 9112 section 3.2)
            fields.append((name, value))
        self.fields = fields


def text(data: bytes) -> str:
    return data.decode("latin-1")


# ---------------------------------------------------------------------- oracles


def llhttp_can_judge(message: Message) -> bool:
    return message.start[0] in LLHTTP_METHODS


def compare(ours: list[Message], h11: list[Message], llhttp: list[Message]) -> None:
    for index, mine in enumerate(ours):
        check(index < len(h11), f"h11 did not read message {index + 1}: {mine!r}")
        theirs = h11[index]
        check(
            theirs.start[:2] == mine.start[:2] and theirs.body == mine.body,
            f"h11 read {theirs!r}, we wrote {mine!r}",
        )
        # h11 rewrites the framing and connection fields it writes (chunked, or nothing
        # to an HTTP/1.0 client; "close" added, "keep-alive" dropped): those are judged
        # by the parsers agreeing on the framing, not by being sent as given.
        given = [f for f in _common.as_h11(mine.headers) if f[0] not in REWRITTEN]
        check(_contains(theirs.headers, given), f"h11 fields {theirs.headers!r}")
        check(theirs.trailers == mine.trailers, f"h11 trailers {theirs.trailers!r}")
        if index >= len(llhttp):
            continue  # the caller checked that llhttp had no reason to stop
        _check_agree(
            theirs,
            _trim(llhttp[index]),
            f"message {index + 1}: h11 and llhttp disagree",
            keep_alive=True,
        )


_COMPARED = (
    ("start line", "start"),
    ("fields", "headers"),
    ("body", "body"),
    ("trailers", "trailers"),
)


def _check_agree(
    mine: Message, other: Message, say: str, *, keep_alive: bool = False, after: str = ""
) -> None:
    """Two parses of one message agree on its start line, fields, body and trailers
    (and keep-alive, when asked); ``say`` begins the finding, ``after`` ends it."""
    compared = _COMPARED
    if keep_alive:
        compared = (*compared, ("keep-alive", "keep_alive"))
    for what, name in compared:
        a, b = getattr(mine, name), getattr(other, name)
        check(a == b, f"{say} on the {what}: {a!r} vs {b!r}{after}")


def _trim(message: Message) -> Message:
    """llhttp hands a field value over with the OWS after it (its callers, Node.js or
    uvicorn, trim it); RFC 9112 section 5 says that whitespace is not part of the value.
    So ``X: a `` is ``a`` for both parsers once read as the RFC says: not a difference.
    And the fields are compared as h11 reports them (see :func:`_common.as_h11`)."""
    message.headers = _common.as_h11(
        [(name, value.rstrip(b" \t")) for name, value in message.headers]
    )
    message.trailers = [(name, value.rstrip(b" \t")) for name, value in message.trailers]
    return message


def _contains(fields: list[tuple[bytes, bytes]], wanted: list[tuple[bytes, bytes]]) -> bool:
    """``wanted`` appears in ``fields`` in order (the writer adds its own fields). h11
    writes Host first, in responses too: the order of fields with different names
    carries no meaning (RFC 9110 section 5.3), so Host fields are compared on their own."""

    def host(field: tuple[bytes, bytes]) -> bool:
        return field[0] == b"host"

    return _in_order([f for f in fields if host(f)], [f for f in wanted if host(f)]) and (
        _in_order([f for f in fields if not host(f)], [f for f in wanted if not host(f)])
    )


def _in_order(fields: list[tuple[bytes, bytes]], wanted: list[tuple[bytes, bytes]]) -> bool:
    position = 0
    for field in wanted:
        try:
            position = fields.index(field, position) + 1
        except ValueError:
            return False
    return True


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _as_received(fields: list[tuple[str, str | bytes]]) -> list[tuple[bytes, bytes]]:
    """The fields a parser should report for what we were asked to send. Whitespace
    around a value is OWS on the wire (RFC 9112 section 5: ``field-line = field-name
    ":" OWS field-value OWS``), not part of the value: writing it is valid, and every
    parser drops it, so a value given with it arrives without it."""
    return [(name.lower().encode("latin-1"), _bytes(value).strip(b" \t")) for name, value in fields]


# ---------------------------------------------------------------------- requests


def write_request(
    conn: ClientConnection, material: Material, options: int, stream_seed: int, close: bool
) -> Message:
    # Values as bytes: sent as they are, obs-text included (a non-ASCII str is refused).
    fields: list[tuple[str, str | bytes]] = [(text(name), value) for name, value in material.fields]
    if close:
        fields.append(("Connection", "close"))
    method, target = text(material.method), text(material.target)
    body = material.body
    if options & 2:
        if options & 8:
            fields.append(("Transfer-Encoding", "chunked"))
        conn.start_request(method, target, fields)
        for piece in _common.split(body, stream_seed):
            conn.send_data(piece)
        conn.send_end([("x-checksum", str(len(body)))] if options & 8 else None)
    else:
        conn.send_request(method, target, fields, body)
    trailers = [(b"x-checksum", str(len(body)).encode())] if options & 10 == 10 else []
    return Message(
        (material.method, material.target, b"1.1"),
        _as_received(fields),
        body,
        trailers,
    )


def test_requests(data: bytes, options: int, stream_seed: int) -> None:
    clean = not options & 4
    second = bool(options & 16)
    conn = ClientConnection("fuzz.example", 8080)
    wire = bytearray()
    ours: list[Message] = []
    materials = [data]
    if second:
        # The second request is the same material cut differently: head and body swap.
        materials.append(data[len(data) // 2 :] + b"\r\n\r\n" + data[: len(data) // 2])
    for index, raw in enumerate(materials):
        material = Material(raw, response=False, clean=clean)
        close = bool(options & 64) or (index == len(materials) - 1 and second)
        try:
            ours.append(write_request(conn, material, options, stream_seed, close))
        except LocalProtocolError as error:
            check(not clean, f"clean material refused: {error}")
            if conn.our_state is SEND_BODY:
                return  # the head went out, the body did not: nothing to compare
            wire += conn.data_to_send()
            break
        wire += conn.data_to_send()
        if conn.keep_alive is False:
            break
        # The server answers, so that the connection can carry the next request.
        conn.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
        while not isinstance(conn.next_event(), EndOfMessage):
            pass
        if not conn.reusable:
            break
    if not ours:
        return
    h11 = _common.h11_read_requests(bytes(wire), eof=False)
    llhttp = _common.Llhttp(response=False)
    llhttp.feed(bytes(wire))
    judged = all(llhttp_can_judge(message) for message in ours)
    if judged:
        check(llhttp.error is None, f"{llhttp.error} on {bytes(wire)!r}")
        check(len(llhttp.messages) == len(ours), f"llhttp read {len(llhttp.messages)} requests")
    compare(ours, h11, llhttp.messages if judged else [])


# ---------------------------------------------------------------------- responses


def write_response(
    conn: ServerConnection, material: Material, options: int, stream_seed: int, wire: bytearray
) -> Message:
    """Write one response into ``wire``; the request was GET, or HEAD with bit 5."""
    # Values as bytes: sent as they are, obs-text included (a non-ASCII str is refused).
    fields: list[tuple[str, str | bytes]] = [(text(name), value) for name, value in material.fields]
    if options & 128:
        conn.send_informational(103, [("Link", "</a.css>; rel=preload")])
    status = material.status
    reason = text(material.reason) if material.reason else None
    body = b"" if status in (204, 205, 304) else material.body
    trailers: list[tuple[bytes, bytes]] = []
    if options & 2:
        conn.start_response(status, fields, reason=reason)
        head = conn.data_to_send()
        wire += head
        for piece in _common.split(body, stream_seed):
            conn.send_data(piece)
        # Trailers go out only in a chunked body: the head we wrote says whether it is.
        chunked = _common.body_is_chunked(head, head_request=bool(options & 32), status=status)
        if options & 8 and chunked:
            trailers = [(b"x-checksum", str(len(body)).encode())]
        conn.send_end([("X-Checksum", str(len(body)))] if trailers else None)
    else:
        conn.send_response(status, fields, body, reason=reason)
    wire += conn.data_to_send()
    head_only = options & 32
    return Message(
        (str(status).encode(), (reason or reason_phrase(status)).encode("latin-1"), b"1.1"),
        _as_received(fields),
        b"" if head_only else body,
        trailers,
    )


def test_responses(data: bytes, options: int, stream_seed: int) -> None:
    clean = not options & 4
    method = "HEAD" if options & 32 else "GET"
    version = "1.0" if options & 64 else "1.1"
    request = f"{method} / HTTP/{version}\r\nHost: fuzz\r\n\r\n".encode()
    rounds = 2 if options & 16 else 1
    conn = ServerConnection(Limits(), default_headers=[("Server", "fuzz")])
    wire = bytearray()
    ours: list[Message] = []
    exchanges: list[Exchange] = []
    for _ in range(rounds):
        conn.receive_data(request)
        conn.next_event()  # the request head
        conn.next_event()  # its end
        material = Material(data, response=True, clean=clean)
        try:
            ours.append(write_response(conn, material, options, stream_seed, wire))
        except LocalProtocolError as error:
            check(not clean, f"clean material refused: {error}")
            return
        exchanges.append(Exchange(method))
        if conn.must_close:
            break
    closing = conn.must_close
    h11, problem = _common.h11_read_responses(bytes(wire), exchanges, eof=closing)
    check(problem is None, f"h11 refused our responses: {problem}: {bytes(wire)!r}")
    llhttp = _common.Llhttp(response=True)
    llhttp.feed(bytes(wire))
    judged = method != "HEAD"
    finals = [m for m in llhttp.messages if not m.start[0].startswith(b"1")]
    if judged:
        check(llhttp.error is None, f"{llhttp.error} on {bytes(wire)!r}")
        partial = llhttp.partial
        if partial is not None and closing and partial.start:
            finals.append(partial)  # close-delimited: llhttp would end it at EOF
        check(len(finals) == len(ours), f"llhttp read {len(finals)} responses: {bytes(wire)!r}")
        for message in finals:
            message.keep_alive = message.keep_alive and not closing
    for message in h11:
        message.keep_alive = message.keep_alive and not closing
    compare(ours, h11, finals if judged else [])


# ------------------------------------------------------------- what we accept


def known_difference(parser: _common.Llhttp, error: str, data: bytes, mine: Message) -> bool:
    """llhttp refused, before completing it, a message we accepted: is that one of the
    known differences between h11 (which we run on) and llhttp? Each is recognised
    narrowly, so anything else stays a finding:

    * h11 discards chunk extensions unparsed (RFC 9112 section 7.1.1 lets a recipient
      ignore them), so control characters and other bytes llhttp refuses there pass.
    * The trailer section: our scan of heads (bare LF, obs-fold) does not see it, h11
      checks less there, and llhttp refuses. Trailer lines ending in bare LF and
      obs-fold in trailers (h11 unfolds it) are documented differences; control
      characters in trailer values are refused by the engine since the fuzzer found
      them. Recognised by llhttp failing on a header line once it had the whole body
      of a chunked message.
    * Whitespace after a chunk size (``5 \\r\\n``): h11 accepts it on purpose ("some
      servers in the wild"), llhttp refuses it (reported; llhttp's leniency for it then
      reads the same message).
    * The same Content-Length value repeated (two fields, or a list ``17, 17``): RFC
      9110 section 8.6 lets a recipient take it as one value, as h11 does (and
      sansnet's own reader did); llhttp refuses it. Different values are refused by
      h11, so the framing is the same: the body we read is that long.
    * A response with both Content-Length and Transfer-Encoding: chunked wins (RFC
      9112 section 6.3), as h11 reads it, and the connection is closed after it;
      llhttp refuses it (its ``lenient_chunked_length`` then reads the same body).
    """
    if "chunk extensions" in error:
        return True
    if error.endswith("Data after `Connection: close`") and parser.messages:
        # llhttp takes an HTTP/1.0 interim response (``HTTP/1.0 100 Continue``) for
        # one that ends the connection; a 1xx is not the final response and h11 reads
        # on, as RFC 9110 section 15.2 says a client does.
        return _interim(parser.messages[-1])
    partial = parser.partial
    chunked = (b"transfer-encoding", b"chunked") in mine.headers
    if chunked and partial is not None and partial.body == mine.body and "header" in error:
        return True
    both = (
        "Transfer-Encoding can't be present with Content-Length",
        "Content-Length can't be present with Transfer-Encoding",
    )
    if parser.response and error.endswith(both):
        # A response with both framings: Transfer-Encoding wins (RFC 9112 section
        # 6.3), as h11 reads it, and the engine closes the connection after it (it
        # may be smuggling); llhttp refuses it, and its leniency for it reads the same.
        if mine.keep_alive:
            return False
        again = _common.Llhttp(response=True)
        again.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        again.feed(data)
        return any(m.body == mine.body for m in again.messages if not _interim(m))
    if error.endswith("Invalid character in chunk size"):
        again = _common.Llhttp(response=parser.response)
        again.parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
        again.feed(data)
        done = [m for m in again.messages if not _interim(m)]
        return len(done) > len(parser.messages) or (
            again.partial is not None and again.partial.body == mine.body
        )
    if error.endswith(("Duplicate Content-Length", "Invalid character in Content-Length")):
        lengths = [value for name, value in mine.headers if name == b"content-length"]
        # (compared as numbers: "04" twice is the length 4, found by the fuzzer)
        return len(lengths) == 1 and lengths[0].isdigit() and int(lengths[0]) == len(mine.body)
    return False


def _add_body_event(message: Message, event: Data | EndOfMessage) -> None:
    """A body piece, or the end of the body with its trailers, into ``message``."""
    if isinstance(event, Data):
        message.body += event.data
        return
    if event.trailers is not None:
        message.trailers = _common.field_bytes(event.trailers)
    message.complete = True


def compare_accepted(
    ours: list[Message], parser: _common.Llhttp, data: bytes, *, eof: bool, what: str
) -> None:
    """Every message we accepted, llhttp accepted too, framed the same way: the same
    start line, fields, body, trailers (less those we drop: ``_NOT_IN_TRAILERS``) and
    the same answer to "does the connection go on after it"."""
    theirs = [m for m in parser.messages if not _interim(m)]
    partial = parser.partial
    if eof and parser.error is None and partial is not None and partial.start:
        theirs.append(partial)  # a body delimited by the close: llhttp ends it at EOF
        partial.complete = True
        partial.keep_alive = False
    for index, mine in enumerate(ours):
        if not parser.response and mine.start[0] not in LLHTTP_METHODS:
            return  # llhttp refuses methods it does not know (see LLHTTP_METHODS)
        if index >= len(theirs):
            if parser.upgraded:
                return  # llhttp stops at an upgrade or CONNECT; we answered without one
            error = parser.error or "no error, the message is incomplete"
            if parser.error is not None and known_difference(parser, error, data, mine):
                return
            raise _common.Finding(
                f"{what} {index + 1}: we accepted {mine!r}, llhttp did not ({error}): {data!r}"
            )
        trailer_names = {name.lower() for name, _ in theirs[index].trailers}
        other = _trim(theirs[index])
        other.trailers = [f for f in other.trailers if f[0].decode() not in _NOT_IN_TRAILERS]
        _check_agree(
            mine, other, f"{what} {index + 1}: we and llhttp disagree", after=f": {data!r}"
        )
        if parser.upgraded and index + 1 == len(parser.messages):
            return  # llhttp stopped after this message (an upgrade): nothing follows
        if mine.keep_alive != other.keep_alive:
            # h11 does not offer HTTP/1.0 keep-alive: we close where llhttp would go on.
            if mine.start[2] == b"1.0" and other.keep_alive:
                return
            # A Connection field in the trailers: RFC 9110 section 6.5.1 keeps it out
            # (the engine drops it, h11 ignores it); llhttp closes on its "close".
            if mine.keep_alive and b"connection" in trailer_names:
                return
            raise _common.Finding(
                f"{what} {index + 1}: we say keep-alive={mine.keep_alive}, llhttp "
                f"{other.keep_alive}: {data!r}"
            )


def _interim(message: Message) -> bool:
    """An interim 1xx response but 101: we skip them, llhttp reports them."""
    status = message.start[0] if message.start else b""
    return len(status) == 3 and status[:1] == b"1" and status != b"101"


def read_requests(data: bytes, stream_seed: int) -> None:
    """Our server reads ``data``, answering each request (200, or 405 to CONNECT, as a
    server that does not tunnel): what it accepted, llhttp must accept the same way."""
    conn = ServerConnection(Limits())
    ours: list[Message] = []
    current: Message | None = None
    try:
        for piece in [*_common.split(data, stream_seed), None]:
            if piece is None:
                conn.receive_eof()
            else:
                conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if isinstance(event, RequestHead):
                    current = Message(
                        (event.method.encode(), event.target.encode(), event.http_version.encode()),
                        _common.field_bytes(event.headers),
                    )
                elif isinstance(event, (Data, EndOfMessage)):
                    assert current is not None
                    _add_body_event(current, event)
                    if isinstance(event, Data):
                        continue
                    # Does the client's message let the connection go on? After an
                    # upgrade proposal (MIGHT_SWITCH_PROTOCOL) that shows once we answer.
                    switch = conn.their_state is MIGHT_SWITCH_PROTOCOL
                    current.keep_alive = conn.their_state is not MUST_CLOSE
                    ours.append(current)
                    status = 405 if current.start[0] == b"CONNECT" else 200
                    conn.send_response(status, [("Content-Length", "0")])
                    conn.data_to_send()
                    if switch:
                        current.keep_alive = not conn.must_close
                    current = None
                else:
                    break  # NEED_DATA, PAUSED (we closed, or the client did)
            if conn.must_close and conn.their_state is not ERROR and current is None:
                break
    except RemoteProtocolError:
        pass  # refusing is always allowed: what came before it is compared
    if not ours:
        return
    parser = _common.Llhttp(response=False)
    parser.feed(data)
    compare_accepted(ours, parser, data, eof=False, what="request")


def read_response(data: bytes, stream_seed: int, method: str) -> None:
    """Our client, after sending one ``method`` request, reads ``data`` and then the
    end of the stream: what it accepted, llhttp must accept the same way."""
    conn = ClientConnection("fuzz")
    conn.send_request(method, "/")
    conn.data_to_send()
    mine: Message | None = None
    done = False
    try:
        for piece in [*_common.split(data, stream_seed), None]:
            if piece is None:
                conn.receive_eof()
            else:
                conn.receive_data(piece)
            while not done:
                event = conn.next_event()
                if isinstance(event, ResponseHead):
                    mine = Message(
                        (
                            str(event.status_code).encode(),
                            event.reason.encode("latin-1"),
                            event.http_version.encode(),
                        ),
                        _common.field_bytes(event.headers),
                    )
                elif isinstance(event, InformationalResponse):
                    continue  # an interim 1xx: llhttp's messages drop them too (_interim)
                elif isinstance(event, (Data, EndOfMessage)):
                    assert mine is not None
                    _add_body_event(mine, event)
                    if isinstance(event, Data):
                        continue
                    # A body that only the close could end leaves nothing to go on with.
                    mine.keep_alive = conn.keep_alive and piece is not None
                    done = True
                else:
                    break
            if done:
                break
    except RemoteProtocolError:
        pass
    if not done or mine is None or method == "HEAD":
        return  # llhttp cannot be told that a response answers HEAD
    parser = _common.Llhttp(response=True)
    parser.feed(data)
    # The bytes after our response's end are the next one's, which llhttp reads too (or
    # refuses): compare the first only. Its end is where we ended it.
    compare_accepted([mine], parser, data, eof=True, what="response")


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    options, stream_seed = data[0], data[1]
    if options & 1:
        test_responses(data[2:], options, stream_seed)
        read_response(data[2:], stream_seed, "HEAD" if options & 32 else "GET")
    else:
        test_requests(data[2:], options, stream_seed)
        read_requests(data[2:], stream_seed)


if __name__ == "__main__":
    _common.main(test_one_input)
    sys.exit(0)
