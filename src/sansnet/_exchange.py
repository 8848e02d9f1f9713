"""One HTTP/1.1 request and response over a pooled connection.

:class:`HTTP11Exchange` is the client's HTTP/1.1 driver (httpcore's
``AsyncHTTP11Connection``, one request at a time): it writes the request head and body
(waiting for ``100 Continue`` between them when the request asks to), reads up to the
final response head, and leaves the body to a :class:`PooledBody`, which reads it on
demand and gives the connection back to the pool. The pool, the choice of connection
and the retry of a request the server never answered are the transport's
(:class:`sansnet.client.Client`'s pool transport); the bytes are the protocol object's
(:class:`~sansnet.protocol.ClientConnection`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio

from ._transport_api import PHASE_TIMEOUTS, Deadlines, Request, ResponseBody, StreamedBody
from .errors import NetError, ReadError, ReadTimeout, RemoteProtocolError, UsageError, WriteError
from .protocol import (
    NEED_DATA,
    ClientConnection,
    Data,
    EndOfMessage,
    InformationalResponse,
    ResponseHead,
)
from .transport.clock import now
from .transport.pool import ConnectionPool, PooledConnection
from .transport.receive import receive, receive_event
from .transport.streams import NetworkStream

__all__ = ["CONTINUE_WAIT", "HTTP11Exchange", "PooledBody", "Trace", "Unanswered"]


Trace = Callable[[str, bytes], None]
"""A function told of every head on the wire: ("request", the bytes we sent, with the
Authorization value built from the URL's credentials shown as ``Basic ***``) and
("response", the head we received, as bytes)."""


def closed_mid_request() -> UsageError:
    """What a request gets when :meth:`sansnet.Client.aclose` closed its connection."""
    return UsageError(
        "The client was closed while this request was in flight; close the client only "
        "once its requests are done, or make a new one."
    )


class Unanswered(Exception):
    """An exchange that failed before any byte of its response arrived: the server may
    have closed the idle connection as we sent, so the request can go again on a new
    connection (when its method is idempotent and its body can be replayed). ``error``
    is the failure to raise when it does not."""

    def __init__(self, error: ReadError | WriteError | RemoteProtocolError) -> None:
        super().__init__(str(error))
        self.error = error


class HTTP11Exchange:
    """One request and its response head over ``conn`` (see the module docstring);
    ``trace`` is told of every head on the wire."""

    __slots__ = ("_protocol", "_stream", "_trace")

    def __init__(self, conn: PooledConnection, trace: Trace | None) -> None:
        self._protocol = conn.protocol
        self._stream = conn.stream
        self._trace = trace

    async def send(self, request: Request, target: str, timeout: Deadlines) -> ResponseHead:
        """Send ``request`` for ``target`` (the URL's origin form, or its absolute form
        for a forward proxy) and read up to its final response head. Raises
        :class:`Unanswered` when the exchange failed before the response began (the
        request may then be sent again on another connection); any other error as it
        comes."""
        protocol = self._protocol
        stream = self._stream
        times = timeout.timeout
        body = request.body
        write_error: WriteError | None = None
        try:
            if _expects_continue(request):
                final = await self._upload(request, body, target, timeout)
                if final is not None:
                    return final  # answered before the body: it was never sent
            elif isinstance(body, bytes):
                protocol.send_request(request.method, target, request.headers, body)
                data = protocol.data_to_send()
                if self._trace is not None:
                    self._trace("request", _masked(data[: data.index(b"\r\n\r\n") + 4], request))
                try:
                    await stream.write(data, timeout.bound(times.write))
                except PHASE_TIMEOUTS:
                    timeout.cut_short()
                    raise
            else:
                await self._upload(request, body, target, timeout)
        except WriteError as exc:
            # The server may have answered (and closed) before taking our whole body, as
            # servers do with 413 or a redirect: read that answer if there is one.
            write_error = exc
        received = False
        try:
            while True:
                event = _next_head(protocol, self._trace)
                if type(event) is ResponseHead:
                    return event
                if type(event) is InformationalResponse:
                    continue  # 100, 103 ...: the final response follows
                # NEED_DATA: read on. PeerClosed or PAUSED cannot come before a
                # head: next_event raises RemoteProtocolError instead.
                try:
                    received = (
                        await receive(stream, protocol, timeout.bound(times.read)) or received
                    )
                except PHASE_TIMEOUTS:
                    timeout.cut_short()
                    raise
        except (ReadError, RemoteProtocolError) as exc:
            if received:  # part of an answer came: the request is not sent again
                raise
            if write_error is not None:
                write_error.__cause__ = exc  # as `raise write_error from exc` would
                raise Unanswered(write_error) from None
            raise Unanswered(exc) from None

    async def _upload(
        self, request: Request, body: bytes | StreamedBody, target: str, timeout: Deadlines
    ) -> ResponseHead | None:
        """Send the head, then the body: a streamed one chunked (or per the caller's
        Content-Length; the total deadline bounds the waits for its chunks too), bytes
        with their Content-Length. With ``Expect: 100-continue``,
        wait for the server's go-ahead between the two (see :func:`_await_continue`);
        a final response that comes instead is returned, the body unsent (the
        connection is then not reused)."""
        protocol = self._protocol
        stream = self._stream
        times = timeout.timeout
        headers = request.headers
        if isinstance(body, bytes) and "content-length" not in headers:
            headers = headers.copy()
            headers.add("Content-Length", str(len(body)))
        protocol.start_request(request.method, target, headers)
        try:
            head = protocol.data_to_send()
            if self._trace is not None:
                self._trace("request", _masked(head, request))
            with timeout:
                await stream.write(head, timeout.bound(times.write))
            if _expects_continue(request):
                final = await _await_continue(protocol, stream, timeout, self._trace)
                if final is not None:
                    return final
            if isinstance(body, bytes):
                protocol.send_data(body)
                with timeout:
                    await stream.write(protocol.data_to_send(), timeout.bound(times.write))
            else:
                # The caller's code: its own timeouts pass as they are; the total deadline
                # (on the loop's clock, as the scope's) bounds its waits too.
                with anyio.CancelScope(deadline=timeout.deadline) as scope:
                    async for chunk in body:
                        if chunk:
                            protocol.send_data(chunk)
                            with timeout:
                                await stream.write(
                                    protocol.data_to_send(), timeout.bound(times.write)
                                )
                if scope.cancelled_caught:
                    raise timeout.total_error()
        finally:
            if not isinstance(body, bytes):
                await body.aclose()
        protocol.send_end()
        with timeout:
            await stream.write(protocol.data_to_send(), timeout.bound(times.write))
        return None


CONTINUE_WAIT = 1.0
"""Seconds a request with ``Expect: 100-continue`` waits for the server's 100 before it
sends the body anyway (RFC 9110 section 10.1.1; curl waits 1 s too)."""


def _next_head(protocol: ClientConnection, trace: Trace | None) -> object:
    """``protocol.next_event()``, tracing a response head (interim or final)."""
    event = protocol.next_event()
    if trace is not None and type(event) in (ResponseHead, InformationalResponse):
        trace("response", _head_bytes(event))  # type: ignore[arg-type]
    return event


def _masked(head: bytes, request: Request) -> bytes:
    """A request head for the trace: the credentials taken from the URL masked, and a
    proxy's (``Proxy-Authorization``, from the proxy URL, on the connection to it)."""
    credentials = request._credentials
    if credentials is not None:
        head = head.replace(credentials.encode("latin-1"), b"Basic ***")
    if b"uthorization:" in head:
        head = _PROXY_AUTHORIZATION.sub(rb"\1 ***", head)
    return head


# the value of a Proxy-Authorization field after its scheme ("Basic ***")
_PROXY_AUTHORIZATION = re.compile(rb"(?im)^(proxy-authorization:[ \t]*\S+)[^\r\n]*")


def _expects_continue(request: Request) -> bool:
    return bool(request.body) and request.headers.get("expect", "").lower() == "100-continue"


async def _await_continue(
    protocol: ClientConnection,
    stream: NetworkStream,
    timeout: Deadlines,
    trace: Trace | None,
) -> ResponseHead | None:
    """After a head with ``Expect: 100-continue``: None once the server said 100 (or
    stayed silent for :data:`CONTINUE_WAIT` seconds): send the body. A final response
    instead is returned: the server decided without the body (417, 401, 413...). A
    connection that breaks before any byte of a response raises :class:`Unanswered`."""
    wait_until = now() + CONTINUE_WAIT
    received = False
    try:
        while True:
            event = _next_head(protocol, trace)
            if type(event) is ResponseHead:
                return event
            if type(event) is InformationalResponse:
                if event.status_code == 100:
                    return None
                continue  # 103 Early Hints and the like: keep waiting
            left = wait_until - now()
            if left <= 0:
                return None
            try:
                with timeout:
                    received = (
                        await receive(
                            stream,
                            protocol,
                            timeout.bound(min(left, timeout.timeout.read or left)),
                        )
                        or received
                    )
            except ReadTimeout:
                return None  # no 100 in time: send the body anyway
    except (ReadError, RemoteProtocolError) as exc:
        if received:
            raise
        raise Unanswered(exc) from None  # a stale connection, as in send()


def _head_bytes(head: ResponseHead | InformationalResponse) -> bytes:
    lines = [f"HTTP/{head.http_version} {head.status_code} {head.reason}"]
    lines.extend(f"{name}: {value}" for name, value in head.headers.raw_items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


class PooledBody(ResponseBody):
    """The body of a response read from a pooled connection, which goes back to the
    pool once the body was read to its end (and is closed otherwise)."""

    __slots__ = ("_conn", "_done", "_pool", "_timeout")

    def __init__(self, pool: ConnectionPool, conn: PooledConnection, timeout: Deadlines) -> None:
        self._pool = pool
        self._conn = conn
        self._timeout = timeout
        self._done = False

    async def read(self) -> bytes:
        protocol = self._conn.protocol
        event = protocol.next_event()
        if event is NEED_DATA:
            deadlines = self._timeout
            with deadlines:
                try:
                    event = await receive_event(self._conn.stream, protocol, deadlines.body_read)
                except NetError as exc:
                    if self._conn.dropped:
                        raise closed_mid_request() from exc
                    raise
                if self._conn.dropped:  # an abort reads as the end of the stream, which
                    raise closed_mid_request()  # would end a close-delimited body early
        if type(event) is Data:
            return event.data
        if isinstance(event, EndOfMessage):
            self._done = True
            return b""
        raise RemoteProtocolError(f"Unexpected {event!r} in a response body.")  # pragma: no cover

    async def release(self, *, complete: bool) -> None:
        await self._pool.release(self._conn, reusable=complete and self._done)
