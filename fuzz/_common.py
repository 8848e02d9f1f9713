"""Shared pieces of the fuzz harnesses: instrumentation, input slicing and the oracles.

Not a harness itself. Every harness starts with::

    import _common
    with _common.instrumented():
        from sansnet... import ...

so that atheris instruments sansnet (and only what each harness asks for besides) for
coverage, then builds its ``test_one_input`` on the helpers here and calls
:func:`main`.

The oracles are independent parsers: h11 (pure Python) and httptools (llhttp, the
parser of Node.js). A harness turns a disagreement or an unexpected exception into a
Python exception, which atheris reports as a crash and saves under ``-artifact_prefix``.

sansnet's HTTP/1.1 engine drives h11. Importing this module sets
``SANSNET_PURE_H11=1`` unless it is set already, so that the engine runs on pure h11,
which the HTTP harnesses instrument too: h11 decides much of what is accepted, and
coverage inside it guides the fuzzer there. ``SANSNET_PURE_H11=0`` fuzzes the compiled
``h11_mypyc`` build instead (blind inside h11). h11 as an oracle is the pure build either
way, so it checks sansnet's layer around h11 (hold-back, checks, events, cycles), and
llhttp is the independent parser.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("SANSNET_PURE_H11", "1")


@contextmanager
def instrumented(*extra: str) -> Iterator[None]:
    """Instrument sansnet (and the ``extra`` top-level packages) while importing."""
    with atheris.instrument_imports(include=["sansnet", *extra]):
        yield


def instrument_modules(*names: str) -> None:
    """Instrument every function already defined in the modules ``names`` (their
    classes' methods included), for code imported before :func:`instrumented` could
    see it, such as the standard library's. Narrower than ``atheris.instrument_all()``,
    which patches every function loaded (asyncio, anyio, h11...): about 40 s of start-up
    per run, for edges the harness never reaches."""
    wanted = set(names)
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and obj.__module__ in wanted:
            atheris.instrument_func(obj)


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer with ``sys.argv`` (a corpus directory and ``-flags``)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


class Finding(AssertionError):
    """A property a harness checks did not hold: a crash for libFuzzer."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Finding(message)


def field_bytes(headers: object) -> list[tuple[bytes, bytes]]:
    """A sansnet :class:`~sansnet.protocol.Headers` as (lowercase name, value) bytes, in
    order, repeats included (values are Latin-1 text of the received bytes)."""
    return [
        (name.encode("ascii"), value.encode("latin-1"))
        for name, value in headers.multi_items()  # type: ignore[attr-defined]
    ]


def body_is_chunked(head: bytes, *, head_request: bool, status: int) -> bool:
    """Whether the response whose head we just wrote (``head``: what ``data_to_send``
    gave after ``start_response``, interim responses first) has a chunked body, the
    only kind that can carry trailers. A response to HEAD, a 204 or a 304 has none,
    whatever its head says."""
    final = head.rstrip(b"\r\n").rpartition(b"\r\n\r\n")[2].lower()
    return (
        b"\r\ntransfer-encoding: chunked" in final and not head_request and status not in (204, 304)
    )


# ------------------------------------------------------------------------ input slicing


def split(data: bytes, seed: int) -> list[bytes]:
    """Cut ``data`` into pieces at points chosen by ``seed`` (0: one piece).

    The low 3 bits give the number of cuts (0-7); the rest seeds where they fall, so a
    mutation of the seed byte moves the cuts and a mutation of the data keeps them.
    """
    cuts = seed & 7
    if cuts == 0 or len(data) < 2:
        return [data]
    rng = random.Random(seed)
    points = sorted({rng.randrange(1, len(data)) for _ in range(cuts)})
    pieces = []
    start = 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


# ------------------------------------------------------------------- h11 as an oracle


@dataclass
class Message:
    """One parsed HTTP message, as bytes, the way both oracles can report it."""

    start: tuple[bytes, ...]  # (method, target, version) or (status, reason, version)
    headers: list[tuple[bytes, bytes]]  # lowercase names
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False
    keep_alive: bool = True


@dataclass
class Exchange:
    """What a request was, as far as the framing of its response depends on it."""

    method: str = "GET"
    upgrade: bool = False  # the request proposed an upgrade (a 101 may answer it)


def as_h11(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``fields`` as h11 reports them. It folds repeated Content-Length fields (which
    must all agree, else it refuses the message, as we do) into the first one, and
    lowercases Transfer-Encoding values (codings are case-insensitive, RFC 9112
    section 7). Neither changes what the message means."""
    seen = False
    out = []
    for name, value in fields:
        if name == b"content-length":
            if seen:
                continue
            seen = True
            value = value.split(b",")[0].strip(b" \t")
        elif name == b"transfer-encoding":
            value = value.lower()
        out.append((name, value))
    return out


def check_same_as_h11(
    kind: str, ours: list[Message], theirs: list[Message], not_in_trailers: frozenset[str]
) -> None:
    """The messages we and h11 both parsed agree on their common prefix. Trailer fields
    we drop on purpose (``not_in_trailers``: framing and routing fields) are left out
    of h11's side."""
    for index, (mine, other) in enumerate(zip(ours, theirs)):
        other_trailers = [f for f in other.trailers if f[0].decode() not in not_in_trailers]
        same = (
            mine.start == other.start
            and as_h11(mine.headers) == other.headers
            and mine.body == other.body
            and mine.trailers == other_trailers
        )
        check(same, f"{kind} {index + 1}: we parsed {mine!r}, h11 parsed {other!r}")


def _h11_headers(headers: object) -> list[tuple[bytes, bytes]]:
    return [(bytes(name), bytes(value)) for name, value in headers]  # type: ignore[attr-defined]


def h11_read_responses(
    wire: bytes, exchanges: list[Exchange], *, eof: bool
) -> tuple[list[Message], str | None]:
    """Parse a server's output with h11 as the client that sent ``exchanges``.

    Returns the final responses parsed (informational ones are skipped) and h11's error,
    if it refused the bytes. The bytes left over after the last expected response are
    an error too: a server must not send what nobody asked for.
    """
    import h11

    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(wire)
    if eof:
        conn.receive_data(b"")
    responses: list[Message] = []
    try:
        for exchange in exchanges:
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            if conn.our_state is not h11.IDLE:
                return responses, f"h11 cannot send request {len(responses) + 1}: {conn.states}"
            headers = [("Host", "fuzz")]
            if exchange.upgrade:
                headers += [("Connection", "upgrade"), ("Upgrade", "fuzz")]
            conn.send(h11.Request(method=exchange.method, target="/", headers=headers))
            conn.send(h11.EndOfMessage())
            message: Message | None = None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return responses, None if message is None else "incomplete response"
                if event is h11.PAUSED:
                    if conn.their_state is h11.SWITCHED_PROTOCOL:
                        return responses, None
                    return responses, f"h11 paused in {conn.states}"
                if isinstance(event, h11.InformationalResponse):
                    if event.status_code == 101:
                        responses.append(
                            Message(
                                (b"101", bytes(event.reason), bytes(event.http_version)),
                                _h11_headers(event.headers),
                                complete=True,
                            )
                        )
                    continue
                if isinstance(event, h11.Response):
                    message = Message(
                        (str(event.status_code).encode(), bytes(event.reason), event.http_version),
                        _h11_headers(event.headers),
                    )
                elif isinstance(event, h11.Data):
                    assert message is not None
                    message.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    assert message is not None
                    message.trailers = _h11_headers(event.headers)
                    message.complete = True
                    message.keep_alive = conn.their_state is h11.DONE and (
                        conn.our_state is h11.DONE
                    )
                    responses.append(message)
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return responses, "connection closed before the response"
        # Everything expected was read: nothing may follow.
        if conn.their_state is h11.DONE and conn.our_state is h11.DONE:
            conn.start_next_cycle()
        leftover, _closed = conn.trailing_data
        if conn.their_state is h11.SWITCHED_PROTOCOL:
            return responses, None
        if leftover:
            return responses, f"{len(leftover)} bytes after the last response: {leftover[:60]!r}"
        event = conn.next_event()
        if event not in (h11.NEED_DATA, h11.PAUSED) and not isinstance(event, h11.ConnectionClosed):
            return responses, f"unexpected event after the last response: {event!r}"
    except h11.RemoteProtocolError as error:
        return responses, f"h11: {error}"
    return responses, None


def h11_read_requests(
    wire: bytes, *, eof: bool, max_requests: int = 100, methods: list[bytes] | None = None
) -> list[Message]:
    """Parse a client's output with h11 as the server; answer each request with an empty
    200. Returns the complete requests read before h11 stopped or refused the bytes;
    ``methods`` gets the method of every request head h11 read, complete or not."""
    import h11

    conn = h11.Connection(h11.SERVER)
    conn.receive_data(wire)
    if eof:
        conn.receive_data(b"")
    requests: list[Message] = []
    message: Message | None = None
    try:
        while len(requests) < max_requests:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and conn.their_state is h11.DONE:
                    if conn.our_state is h11.SEND_RESPONSE:
                        _h11_answer(conn, requests[-1].start[0])
                        continue
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                        continue
                break
            if isinstance(event, h11.Request):
                if methods is not None:
                    methods.append(bytes(event.method))
                message = Message(
                    (bytes(event.method), bytes(event.target), event.http_version),
                    _h11_headers(event.headers),
                )
            elif isinstance(event, h11.Data):
                assert message is not None
                message.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert message is not None
                message.trailers = _h11_headers(event.headers)
                message.complete = True
                requests.append(message)
                message = None
                if conn.our_state is h11.SEND_RESPONSE:
                    _h11_answer(conn, requests[-1].start[0])
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    message_keep_alive = True
                    conn.start_next_cycle()
                else:
                    message_keep_alive = False
                requests[-1].keep_alive = message_keep_alive
            else:
                break  # ConnectionClosed
    except h11.RemoteProtocolError:
        pass
    return requests


def _h11_answer(conn: object, method: bytes) -> None:
    """Answer the way fuzz/http_server.py's session does where it matters: a CONNECT
    gets 405 (a 2xx would open a tunnel), anything else 200."""
    import h11

    assert isinstance(conn, h11.Connection)
    status = 405 if method == b"CONNECT" else 200
    conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())


# -------------------------------------------------------------- httptools as an oracle


class Llhttp:
    """httptools' request or response parser, collecting whole messages."""

    def __init__(self, *, response: bool) -> None:
        import httptools

        self.response = response
        self.messages: list[Message] = []
        self._current: Message | None = None
        self._url = b""
        self._status = b""
        self._in_trailers = False
        self.error: str | None = None
        self.upgraded = False
        parser_type = httptools.HttpResponseParser if response else httptools.HttpRequestParser
        self.parser = parser_type(self)

    # callbacks
    def on_message_begin(self) -> None:
        self._current = Message((), [])
        self._url = b""
        self._status = b""
        self._in_trailers = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_status(self, status: bytes) -> None:
        self._status += status

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        pair = (name.lower(), value)
        if self._in_trailers:
            self._current.trailers.append(pair)
        else:
            self._current.headers.append(pair)

    def on_headers_complete(self) -> None:
        assert self._current is not None
        parser = self.parser
        version = parser.get_http_version().encode()
        if self.response:
            self._current.start = (str(parser.get_status_code()).encode(), self._status, version)
        else:
            self._current.start = (parser.get_method(), self._url, version)
        self._current.keep_alive = parser.should_keep_alive()
        self._in_trailers = True  # later headers are trailers

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._current.body += body

    def on_message_complete(self) -> None:
        assert self._current is not None
        self._current.complete = True
        self._current.keep_alive = self.parser.should_keep_alive()
        self.messages.append(self._current)
        self._current = None

    @property
    def partial(self) -> Message | None:
        """The message begun but not complete (a close-delimited body, say)."""
        return self._current

    def feed(self, data: bytes) -> None:
        import httptools

        if self.error is not None or self.upgraded:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True
        except httptools.HttpParserError as error:
            self.error = f"llhttp: {type(error).__name__}: {error}"


def corpus_dir(name: str) -> str:
    return os.path.join(HERE, "corpus", name)
