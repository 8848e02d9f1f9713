"""One connection's life on the server: :class:`ServerSession`.

:class:`~sansnet.Server` admits a connection (or refuses it with 503), keeps the record
that a graceful stop needs, and closes the stream at the end; in between, a session
serves it: read the next request head within the header or keep-alive timeout, read and
decode the body, call the request handler, write the response (whole or streamed), and
hand the connection to a :class:`~sansnet.WebSocket` on an upgrade. Every answer the
connection gets that is not the handler's (400, 408, 413, 415, 426, 431, 500) is written
here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import socket
import struct
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import anyio

from .errors import (
    DecodingError,
    HandshakeError,
    InvalidArgument,
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TransportError,
    WriteError,
)
from .models import ServeRequest, ServeResponse
from .protocol import (
    NEED_DATA,
    PAUSED,
    ContentDecoder,
    Data,
    EndOfMessage,
    Headers,
    PeerClosed,
    RequestHead,
    ServerConnection,
    accept_encoding,
    is_supported,
)
from .protocol.websocket import accept, is_upgrade_request
from .transport.clock import now
from .transport.receive import receive
from .transport.streams import NetworkStream
from .websocket import WebSocket, engine_after_upgrade

if TYPE_CHECKING:
    from .server import Server, _ConnectionRecord

__all__ = [
    "SHUTTING_DOWN",
    "TEXT_PLAIN",
    "ServerSession",
    "close_body",
    "problem",
    "response_parts",
]

logger = logging.getLogger("sansnet.server")
access_logger = logging.getLogger("sansnet.access")

SHUTTING_DOWN = "The server is shutting down."
"""The reason of the 1001 close a WebSocket gets when the server stops."""

TEXT_PLAIN = "text/plain; charset=utf-8"
# Pieces of a request body read in a row before other tasks get a turn (about 10 ms of
# h11's work on one-byte chunks).
_PIECES_PER_TURN = 512

# A streamed sync body yields to the event loop once this many bytes are written, a
# chunk counting _CHUNK_COST more than its size (so empty chunks count too).
_CHECKPOINT_EVERY = 64 * 1024
_CHUNK_COST = 1024


async def close_body(body: object) -> None:
    """Run a streamed body's cleanup (a generator's ``finally``) now that its response
    ended early, rather than whenever the garbage collector finds it. Shielded from
    cancellation, bounded to 5 s; a failing cleanup is logged."""
    try:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(5, shield=True):
                await aclose()
            return
        close = getattr(body, "close", None)
        if close is not None:
            close()
    except Exception:
        logger.exception("Closing a response body iterator after an early end failed.")


DECODE_STEP = 64 * 1024
"""The encoded bytes of a request body decoded between two checkpoints."""


def problem(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A plain-text answer of our own (an error, a 503): (status, headers, body)."""
    return status, [("content-type", TEXT_PLAIN)], (message + "\n").encode()


class ServerSession:
    """Serves one connection of ``server`` (see the module docstring): ``conn`` is its
    protocol object, ``record`` what a graceful stop reads of it (idle, in a request,
    a WebSocket)."""

    __slots__ = (
        "_config",
        "_conn",
        "_date",
        "_ip",
        "_local",
        "_make_request",
        "_port",
        "_record",
        "_request_is_async",
        "_server",
        "_stream",
    )

    def __init__(
        self,
        server: Server,
        stream: NetworkStream,
        conn: ServerConnection,
        record: _ConnectionRecord,
    ) -> None:
        self._server = server
        self._config = server.config
        # What every connection of the server shares: the Date field, formatted once a
        # second, and whether the request handler is a coroutine function.
        self._date = server._date
        self._request_is_async = server._request_is_async
        self._make_request = server._make_request  # the peer, or the client behind a proxy
        self._stream = stream
        self._conn = conn
        self._record = record
        self._ip, self._port = stream.peer
        # The server's own address, read only by a request URL without Host.
        self._local = functools.partial(getattr, stream, "local")

    async def serve(self) -> None:
        """Serve requests until the connection ends: it must close, the peer left, it
        was idle too long, or a WebSocket took it over. The stream is the caller's to
        close; transport and local protocol errors come out (the peer went away)."""
        stream = self._stream
        conn = self._conn
        record = self._record
        config = self._config
        date = self._date
        while True:
            head = await self._next_request()
            if head is None:
                return
            record.in_request = True
            if config.handle_web_socket is not None and is_upgrade_request(head):
                await self._upgrade(head)
                return
            body = await self._read_body(head)
            if body is None:
                return
            request = self._make_request(head, body, self._ip, self._port, self._local)
            status, headers, payload = await self._respond(request, head)
            if self._server.stopping:
                conn.disable_keep_alive()  # the response says Connection: close
            date.refresh()
            if isinstance(payload, bytes):
                try:
                    conn.send_response(status, headers, payload)
                except LocalProtocolError:
                    status = self._answer_refused(request)
                await stream.write(conn.data_to_send(), config.body_timeout)
            else:
                status = await self._stream_response(request, status, headers, payload)
            if config.access_log:
                _log_access(request, status)
            record.in_request = False
            if conn.must_close:
                return

    async def _next_request(self) -> RequestHead | None:
        """Read until a request head; None when the connection should end quietly."""
        stream = self._stream
        conn = self._conn
        record = self._record
        config = self._config
        started: float | None = None
        waited = False  # the keep-alive wait is over: bytes came
        read = False  # this call read from the stream (which let other tasks run)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                await self._send_queued()
                return None
            if type(event) is RequestHead:
                if not read:
                    # Pipelined: it came with what was read for an earlier request. An
                    # asyncio read of buffered bytes, a handler that never awaits and a
                    # write the transport takes at once do not yield either: without
                    # this, one client pipelining cheap requests held the event loop
                    # for seconds (a read brings up to 256 KiB of them).
                    await anyio.lowlevel.checkpoint()
                return event
            if event is NEED_DATA:
                if self._server.stopping:
                    return None  # idle, or partway through a head: no request to finish
                if conn.idle and not waited:
                    record.awaiting_head = True
                    try:
                        await receive(stream, conn, config.keepalive_timeout)
                    except (ReadTimeout, ReadError):
                        return None  # idle too long, or closed by stop(): end quietly
                    finally:
                        record.awaiting_head = False
                    # Bytes came: still idle means empty lines before a head, which run
                    # on the head's clock (else a CRLF now and then holds it forever).
                    waited = True
                else:
                    # The head's clock starts at its first bytes: set when the head turns
                    # out incomplete, microseconds later, not on every request.
                    if started is None:
                        started = now()
                    timeout = config.header_timeout
                    if timeout is not None:
                        timeout = started + timeout - now()
                        if timeout <= 0:
                            await self._timeout_head()
                            return None
                    record.awaiting_head = True  # not a request yet: stop() may close it
                    try:
                        await receive(stream, conn, timeout)
                    except ReadTimeout:
                        record.awaiting_head = False  # (the 408 is not cut short)
                        await self._timeout_head()
                        return None
                    finally:
                        record.awaiting_head = False
                read = True
                self._date.refresh()  # the engine may answer an error from what came
                continue
            if isinstance(event, PeerClosed) or event is PAUSED:
                return None
            raise AssertionError(f"unexpected {event!r} between requests")  # pragma: no cover

    async def _timeout_head(self) -> None:
        status, headers, body = problem(408, "The request head did not arrive in time.")
        self._date.refresh()
        self._conn.send_error_response(status, headers, body)
        await self._send_queued()

    async def _send_queued(self) -> None:
        """Write a final (error) answer, then linger so the client reads it rather than
        a reset caused by the bytes it is still sending."""
        stream = self._stream
        conn = self._conn
        data = conn.data_to_send()
        if data:
            try:
                await stream.write(data, 5)
            except TransportError:
                return
            await stream.linger()

    async def _read_body(self, head: RequestHead) -> bytes | None:
        """The whole request body (decoded per Content-Encoding); None after answering
        an error (the connection then closes)."""
        stream = self._stream
        conn = self._conn
        conn.send_continue()
        # The first piece as it is (usually the whole body), then one growing buffer:
        # a list of pieces costs ~50 bytes of memory per piece, so a chunked body of
        # tiny chunks under max_body_bytes would take many times that limit.
        first = b""
        rest: bytearray | None = None
        body_timeout = self._config.body_timeout
        pieces = 0
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                await self._send_queued()
                return None
            if type(event) is Data:
                pieces += 1
                if not pieces % _PIECES_PER_TURN:
                    # A read brings up to 256 KiB: tens of thousands of tiny chunks,
                    # seconds of h11's work. Other connections get a turn meanwhile.
                    await anyio.lowlevel.checkpoint()
                if rest is not None:
                    rest += event.data
                elif first:
                    rest = bytearray(first)
                    rest += event.data
                else:
                    first = event.data
                continue
            if type(event) is EndOfMessage:
                break
            if event is NEED_DATA:
                pending = conn.data_to_send()
                if pending:
                    await stream.write(pending, body_timeout)
                try:
                    await receive(stream, conn, body_timeout)
                except ReadTimeout:
                    status, headers, payload = problem(
                        408, "The request body did not arrive in time."
                    )
                    self._date.refresh()
                    conn.send_error_response(status, headers, payload)
                    await self._send_queued()
                    return None
                self._date.refresh()  # the engine may answer an error from what came
                continue
            raise AssertionError(f"unexpected {event!r} in a request body")  # pragma: no cover
        body = first if rest is None else bytes(rest)
        encoding = head.headers.get("content-encoding")
        if encoding:
            return await self._decode_body(head, encoding, body)
        return body

    async def _decode_body(
        self,
        head: RequestHead,
        encoding: str,
        body: bytes,
    ) -> bytes | None:
        conn = self._conn
        if not is_supported(encoding):
            answer = problem(
                415,
                f"Content-Encoding {encoding[:200]!r} is not supported ({accept_encoding()} are).",
            )
        else:
            try:
                decoded = await self._decoded(encoding, body)
            except DecodingError as exc:
                answer = problem(exc.status_hint, str(exc))
            else:
                fields = head.headers.copy()
                for name in ("content-encoding", "content-length"):
                    if name in fields:
                        del fields[name]
                head.headers = fields
                return decoded
        status, headers, payload = answer
        if status == 415:  # what we do decode (RFC 9110 section 15.5.16)
            headers.append(("accept-encoding", accept_encoding()))
        conn.disable_keep_alive()
        conn.send_response(status, headers, payload)
        await self._send_queued()
        return None

    async def _decoded(self, encoding: str, body: bytes) -> bytes:
        """``body`` decoded, :data:`DECODE_STEP` bytes of it at a time with a checkpoint
        between, so that a body slow to decode (many tiny gzip members or zstd frames)
        does not hold up the other connections."""
        decoder = ContentDecoder(encoding, max_size=self._config.limits.max_body_bytes)
        if len(body) <= DECODE_STEP:
            return decoder.decode_all(body)
        pieces: list[bytes] = []
        for start in range(0, len(body), DECODE_STEP):
            pieces.extend(decoder.decode(body[start : start + DECODE_STEP]))
            await anyio.lowlevel.checkpoint()
        decoder.finish()
        return b"".join(pieces)

    async def _respond(
        self, request: ServeRequest, head: RequestHead
    ) -> tuple[int, Any, bytes | AsyncIterable[bytes] | Iterable[bytes]]:
        """Call the request handler and turn what it returns into (status, headers, body)."""
        handler = self._config.handle_request
        if handler is None:
            return (
                426,
                [
                    ("upgrade", "websocket"),
                    ("connection", "Upgrade"),
                    ("content-type", TEXT_PLAIN),
                ],
                b"This endpoint speaks WebSocket only; send an upgrade request.\n",
            )
        try:
            if self._request_is_async:
                result = await handler(request)  # type: ignore[misc]
            else:
                result = handler(request)
                if inspect.isawaitable(result):
                    result = await result
            return response_parts(result)
        except Exception:
            return self._handler_failed(request)
        except anyio.get_cancelled_exc_class():
            if cancelled_for_real():
                raise
            return self._handler_failed(request)  # a CancelledError of the handler's own

    def _handler_failed(self, request: ServeRequest) -> tuple[int, Any, bytes]:
        logger.exception(
            "The request handler failed on %s %s from %s:%s",
            request.method,
            request.target,
            request.ip,
            request.port,
        )
        return problem(500, "Internal Server Error")

    def _answer_refused(self, request: ServeRequest) -> int:
        """The protocol refused the handler's response (a field with CR, LF or non-ASCII
        text, a Content-Length that does not match, a body on a 204 or 205, a 2xx to
        CONNECT, ...) and changed nothing: log why and queue a 500 instead. Returns 500."""
        logger.exception(
            "The request handler's response to %s %s from %s:%s cannot be sent; "
            "answering 500 instead",
            request.method,
            request.target,
            request.ip,
            request.port,
        )
        self._conn.send_response(*problem(500, "Internal Server Error"))
        return 500

    async def _stream_response(
        self,
        request: ServeRequest,
        status: int,
        headers: Any,
        body: AsyncIterable[bytes] | Iterable[bytes],
    ) -> int:
        """Write a response whose body is an iterable: the head, each chunk as the
        body yields it, the end; returns the status sent. A response that carries no
        body (to HEAD, a 204, 205 or 304) ends after its head; its body is closed unread,
        never iterated (an endless event stream would otherwise run on, unseen). A head
        the protocol refuses becomes a 500 (see :meth:`_answer_refused`); a body that
        breaks its head's framing (more or fewer bytes than its Content-Length) is
        logged and closes the connection."""
        stream = self._stream
        conn = self._conn
        timeout = self._config.body_timeout
        try:
            try:
                conn.start_response(status, headers)
            except LocalProtocolError:
                status = self._answer_refused(request)
                await stream.write(conn.data_to_send(), timeout)
                await close_body(body)
                return status
            if not conn.response_has_body:
                conn.send_end()
                await stream.write(conn.data_to_send(), timeout)
                await close_body(body)
                return status
            await stream.write(conn.data_to_send(), timeout)
            # A TransportError while we write means the client went away; one from the
            # body (a proxied upstream that broke) is the body's failure, to be logged.
            writing = False
            try:
                # A write returns at once while the transport takes data (asyncio), and
                # an async iterator need not await either: without a checkpoint, an
                # endless body and a fast reader would keep the event loop from everyone
                # else. One every 64 chunks or 64 KiB, as a checkpoint per chunk halves
                # the rate of small chunks.
                unchecked = 0
                chunks = body if isinstance(body, AsyncIterable) else _Chunks(body)
                async for chunk in chunks:
                    conn.send_data(_as_bytes(chunk))
                    data = conn.data_to_send()
                    if data:
                        writing = True
                        await stream.write(data, timeout)
                        writing = False
                    unchecked += len(data) + _CHUNK_COST
                    if unchecked >= _CHECKPOINT_EVERY:
                        unchecked = 0
                        await anyio.lowlevel.checkpoint()
                conn.send_end()
            except TransportError:
                if writing:
                    raise
                raise self._body_failed(request) from None
            except LocalProtocolError:
                logger.exception(
                    "The streamed response to %s %s from %s:%s broke its framing after the "
                    "head was sent; closing the connection.",
                    request.method,
                    request.target,
                    request.ip,
                    request.port,
                )
                conn.disable_keep_alive()
                raise WriteError("The streamed response broke its framing.") from None
            except Exception:
                raise self._body_failed(request) from None
            except anyio.get_cancelled_exc_class():
                if cancelled_for_real():
                    raise
                raise self._body_failed(request) from None  # the body's own CancelledError
        except BaseException:  # the peer left, the task was cancelled, or the body failed
            await close_body(body)
            raise
        await stream.write(conn.data_to_send(), timeout)
        return status

    def _body_failed(self, request: ServeRequest) -> WriteError:
        """Log that a streamed body raised (after its head was sent)
        and return the error that closes the connection."""
        logger.exception(
            "The response body iterator failed on %s %s from %s:%s after the head "
            "was sent; closing the connection.",
            request.method,
            request.target,
            request.ip,
            request.port,
        )
        self._conn.disable_keep_alive()
        # Reset, not closed: a body framed by the end of the connection (HTTP/1.0)
        # would look complete to the client after a FIN.
        sock = self._stream.raw_socket
        if sock is not None:
            with contextlib.suppress(OSError):  # linger 0: the close sends RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self._stream.abort()
        return WriteError("The response body iterator failed.")

    # ---------------------------------------------------------------- websocket

    async def _upgrade(self, head: RequestHead) -> None:
        """Answer a WebSocket upgrade request (101, or the handshake's error), then
        hand the connection to the WebSocket handler and close the socket after it."""
        stream = self._stream
        conn = self._conn
        record = self._record
        config = self._config
        # The upgrade request has no body to speak of; read what there is.
        body = await self._read_body(head)
        if body is None:
            return
        request = self._make_request(head, body, self._ip, self._port, self._local)
        chooser = config.subprotocols
        subprotocols: Any = chooser
        if callable(chooser):
            subprotocols = lambda offered: chooser(request, offered)  # noqa: E731
        self._date.refresh()
        try:
            agreed = accept(head, subprotocols=subprotocols, compression=config.compression)
        except HandshakeError as error:
            conn.disable_keep_alive()
            conn.send_response(
                error.status,
                list(error.headers) if not isinstance(error.headers, Mapping) else error.headers,
                error.body,
            )
            await self._send_queued()
            return
        except Exception:
            # The application's subprotocols chooser raised, or chose a subprotocol the
            # client did not offer: this connection gets a 500, the server goes on.
            logger.exception(
                "Accepting the WebSocket upgrade failed on %s from %s:%s "
                "(ServeConfig.subprotocols raised, or chose a subprotocol not offered)",
                request.target,
                self._ip,
                self._port,
            )
            status, headers, payload = problem(500, "Internal Server Error")
            conn.disable_keep_alive()
            conn.send_response(status, headers, payload)
            await self._send_queued()
            return
        conn.send_response(101, agreed.headers)
        await stream.write(conn.data_to_send(), config.body_timeout)
        if config.access_log:
            _log_access(request, 101)
        engine = engine_after_upgrade(
            "server",
            agreed,
            conn,
            max_message_size=config.max_message_size,
            max_frame_size=config.max_frame_size,
        )
        socket = WebSocket(
            stream,
            engine,
            request=request,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            close_timeout=config.close_timeout,
        )
        record.websocket = socket
        if self._server.stopping:
            await socket._close_quietly(1001, SHUTTING_DOWN, by_user=False)
        handler = config.handle_web_socket
        assert handler is not None
        try:
            result = handler(socket)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "The WebSocket handler failed on %s from %s:%s",
                request.target,
                self._ip,
                self._port,
            )
            await socket.close_quietly(1011, "Internal error")
        else:
            await socket.close_quietly(1000, "")


class _Chunks:
    """A sync iterable of body chunks as an async iterator (one loop serves both)."""

    __slots__ = ("_iterator",)

    def __init__(self, body: Iterable[Any]) -> None:
        self._iterator = iter(body)

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: closing the socket resets it


def cancelled_for_real() -> bool:
    """Whether the cancellation being raised is this task's (the server stopping, the
    connection cut off), not a CancelledError that a handler or a body iterator raised
    or let through from a task of its own, which must end that response only (asyncio:
    the task counts the cancellations asked of it; trio's Cancelled only comes from a
    cancelled scope; on Python 3.10, with no count, every one is taken as real)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop: trio
        return True
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise InvalidArgument(f"A streamed response body must yield bytes, not {type(chunk).__name__}.")


def response_parts(result: Any) -> tuple[int, Any, bytes | AsyncIterable[bytes] | Iterable[bytes]]:
    """A request handler's return value (str, bytes, None, a ServeResponse or a dict)
    as (status, headers, body); :class:`~sansnet.InvalidArgument` (a ``TypeError``) for anything else. Also how
    :class:`sansnet.testing.MockTransport` reads its handler's answers."""
    if isinstance(result, str):
        return 200, [("content-type", TEXT_PLAIN)], result.encode("utf-8")
    if result is None:
        return 200, [("content-type", TEXT_PLAIN)], b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, [("content-type", TEXT_PLAIN)], bytes(result)
    if isinstance(result, ServeResponse):
        status, headers, body = result.status, result.headers, result.body
    elif isinstance(result, Mapping):
        unknown = set(result) - {"status", "headers", "body"}
        if unknown:
            raise InvalidArgument(
                f"The handler returned a dict with unknown keys {sorted(unknown)}; use status, headers and body."
            )
        status, headers, body = (
            result.get("status", 200),
            result.get("headers"),
            result.get("body", b""),
        )
    else:
        raise InvalidArgument(
            f"The handler returned {type(result).__name__}; return str, bytes, None, a "
            "ServeResponse or a dict with status, headers and body."
        )
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 999:
        raise InvalidArgument(
            f"The handler returned the invalid status {status!r}; use an int from 200 to 999."
        )
    fields = Headers(headers) if headers is not None else Headers()
    if isinstance(body, str):
        if "content-type" not in fields:
            fields.add("content-type", TEXT_PLAIN)
        return status, fields, body.encode("utf-8")
    if body is None:
        return status, fields, b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return status, fields, bytes(body)
    if isinstance(body, (AsyncIterable, Iterable)) and not isinstance(body, Mapping):
        return status, fields, cast("AsyncIterable[bytes] | Iterable[bytes]", body)
    raise InvalidArgument(
        f"The handler returned a body of type {type(body).__name__}; use str, bytes or an iterable of bytes."
    )


def _escape_for_log(text: str) -> str:
    """``text`` safe inside a double-quoted access-log field: ``"`` and ``\\`` get a
    backslash, anything not printable ASCII becomes ``\\xNN`` (``\\uNNNN`` past
    latin-1), so a client cannot end the field early or break the line."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # the usual target: nothing to escape
    return "".join(_escape_character(character) for character in text)


def _escape_character(character: str) -> str:
    if character in '"\\':
        return "\\" + character
    if character.isascii() and character.isprintable():
        return character
    code = ord(character)  # a target is decoded as latin-1: one character per byte
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _log_access(request: ServeRequest, status: int) -> None:
    access_logger.info(
        '%s:%s - "%s %s HTTP/%s" %s',
        request.ip,
        request.port,
        request.method,
        _escape_for_log(request.target),
        request.http_version,
        status,
    )
