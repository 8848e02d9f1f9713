"""``net.serve``: the HTTP and WebSocket server, on the sans-IO engine.

``sansnet.serve(port, handler_or_config)`` returns a :class:`Server` without blocking.
Run it in one of the two structured forms, which work the same on asyncio and trio::

    async with sansnet.serve(8080, handler) as handle:     # serves inside the block
        ...
    handle = await task_group.start(sansnet.serve(8080, handler).run)   # until stop()

A handler gets a :class:`ServeRequest` and returns str, bytes or None (200,
``text/plain; charset=utf-8``), a :class:`ServeResponse` or a dict with ``status``,
``headers`` and ``body``. Handlers may be ``async def`` or plain functions (a plain
function runs on the event loop thread: keep it quick). An exception in a handler
becomes a 500, is logged to the ``sansnet.server`` logger with its traceback, and the
server goes on. Defaults and the attack each one stops are listed in
:class:`ServeConfig`.
"""

from __future__ import annotations

import inspect
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import Any, cast

import anyio
import anyio.abc

from ._lifecycle import ListeningServer, ServeHandle, is_async_callable
from ._version import __version__
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
    Limits,
    PeerClosed,
    RequestHead,
    ServerConnection,
    is_supported,
)
from .protocol.forwarded import TrustedProxies, resolve_client
from .protocol.websocket import WebSocketConnection, accept, is_upgrade_request
from .transport.clock import now
from .transport.connect import Backend
from .transport.receive import receive
from .transport.streams import NetworkStream
from .transport.tls import server_context
from .websocket import WebSocket

if sys.version_info < (3, 11):  # pragma: no cover
    pass

__all__ = [
    "ServeConfig",
    "ServeHandle",
    "ServeRequest",
    "ServeResponse",
    "Server",
    "serve",
]

logger = logging.getLogger("sansnet.server")
access_logger = logging.getLogger("sansnet.access")

SERVER_HEADER = f"sansnet/{__version__}"
MiB = 1024 * 1024


# ============================================================================= models


ResponseLike = ServeResponse | Mapping[str, Any] | str | bytes | bytearray | memoryview | None
RequestHandler = Callable[[ServeRequest], Awaitable[ResponseLike] | ResponseLike]
WebSocketHandler = Callable[[WebSocket], Awaitable[None] | None]
SubprotocolChooser = Callable[[ServeRequest, list[str]], str | None]


@dataclass
class ServeConfig:
    """Everything :func:`serve` can be told. At least one handler is required.

    ==========================  =========  ==================================================
    option                      default    what it is for (the attack it stops)
    ==========================  =========  ==================================================
    ``address``                 127.0.0.1  where to listen: an IPv4/IPv6 address (``"::1"``,
                                           ``"0.0.0.0"``), maybe ``"http://"``-prefixed, or a
                                           host name such as ``"localhost"``
    ``uds``                     None       listen on this Unix domain socket path instead of
                                           TCP (file mode 0o666, removed at stop; port and
                                           address are then ignored)
    ``tls``                     None       an ``ssl.SSLContext``, a PEM file with certificate
                                           and key, or a (certificate, key) pair
    ``limits``                  Limits()   head and body sizes (414, 431, 413)
    ``max_connections``         10000      open connections; more get 503 and are closed
                                           (file-descriptor exhaustion)
    ``header_timeout``          10 s       a whole request head must arrive within this
                                           (slowloris); 408, then close
    ``keepalive_timeout``       5 s        an idle keep-alive connection is closed
                                           (idle connections hoarding slots)
    ``body_timeout``            30 s       the longest silence while reading a body
                                           (slow uploads holding a handler)
    ``drain_timeout``           10 s       how long stop() lets in-flight requests finish
    ``access_log``              False      one line per request to the ``sansnet.access``
                                           logger
    ``trusted_proxies``         ()         proxies whose ``Forwarded`` / ``X-Forwarded-*``
                                           fields set ``ip``, ``scheme``, ``host`` (IPs,
                                           networks, ``"*"``, ``"unix"``); from anyone
                                           else they are ignored (spoofing)
    ``subprotocols``            None       WebSocket subprotocols we speak, by preference,
                                           or a function (request, offered) -> choice
    ``compression``             True       permessage-deflate for WebSockets
    ``max_message_size``        16 MiB     WebSocket message limit (1009)
    ``max_frame_size``          16 MiB     WebSocket frame limit (1009)
    ``ping_interval``           20 s       WebSocket keepalive ping (None: off)
    ``ping_timeout``            20 s       close with 1011 when the pong is that late
    ``close_timeout``           10 s       wait for the peer's close frame
    ==========================  =========  ==================================================
    """

    handle_request: RequestHandler | None = None
    handle_web_socket: WebSocketHandler | None = None
    address: str = "127.0.0.1"
    uds: str | None = None
    tls: ssl.SSLContext | str | tuple[str, str] | None = None
    limits: Limits = field(default_factory=Limits)
    max_connections: int = 10_000
    header_timeout: float | None = 10.0
    keepalive_timeout: float | None = 5.0
    body_timeout: float | None = 30.0
    drain_timeout: float = 10.0
    access_log: bool = False
    trusted_proxies: Sequence[str] | str = ()
    subprotocols: Sequence[str] | SubprotocolChooser | None = None
    compression: bool = True
    max_message_size: int | None = 16 * MiB
    max_frame_size: int | None = 16 * MiB
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if self.handle_request is None and self.handle_web_socket is None:
            raise InvalidArgument(
                "ServeConfig needs a handler: pass handle_request, handle_web_socket, or both."
            )
        for name in ("handle_request", "handle_web_socket"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise InvalidArgument(
                    f"ServeConfig.{name} must be callable, not {type(value).__name__}."
                )
        if not isinstance(self.address, str) or not self.address:
            raise InvalidArgument(
                f"ServeConfig.address must be a non-empty str, not {self.address!r}."
            )
        if self.max_connections < 1:
            raise InvalidArgument("ServeConfig.max_connections must be at least 1.")
        try:
            TrustedProxies(self.trusted_proxies)
        except ValueError as exc:
            raise InvalidArgument(f"ServeConfig.{exc}") from None

    @property
    def host(self) -> str:
        """The address without an ``http://`` prefix or IPv6 brackets."""
        host = self.address.strip()
        for prefix in ("http://", "https://"):
            if host.lower().startswith(prefix):
                host = host[len(prefix) :]
        host = host.rstrip("/")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host

    def ssl_context(self) -> ssl.SSLContext | None:
        tls = self.tls
        if tls is None or isinstance(tls, ssl.SSLContext):
            return tls
        if isinstance(tls, tuple):
            return server_context(tls[0], tls[1])
        return server_context(tls)


# ============================================================================= handle


# ========================================================================= connections


class _ConnectionRecord:
    """What stop() needs to know about one connection."""

    __slots__ = ("idle", "in_request", "stream", "websocket")

    def __init__(self, stream: NetworkStream) -> None:
        self.stream = stream
        self.idle = False  # waiting for the next request with nothing buffered
        self.in_request = False
        self.websocket: WebSocket | None = None


class _DateHeader:
    """The Date field, formatted once per second and shared by every connection."""

    def __init__(self) -> None:
        self.second = -1
        self.fields: list[tuple[str, str]] = [("date", ""), ("server", SERVER_HEADER)]
        self.refresh()  # never empty: even the first answer, an error, carries a date

    def refresh(self) -> None:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.fields[0] = ("date", formatdate(second, usegmt=True))


_TEXT_PLAIN = "text/plain; charset=utf-8"


async def _close_body(body: object) -> None:
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


def _problem(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", _TEXT_PLAIN)], (message + "\n").encode()


class Server(ListeningServer):
    """An HTTP and WebSocket server not yet running; made by :func:`serve`. Use
    ``async with server as handle`` or ``handle = await task_group.start(server.run)``."""

    def __init__(self, port: int, config: ServeConfig) -> None:
        super().__init__(
            port,
            host=config.host,
            ssl_context=config.ssl_context(),
            backend=config.backend,
            drain_timeout=config.drain_timeout,
            uds=config.uds,
        )
        self.config = config
        self._date = _DateHeader()
        self._records: set[_ConnectionRecord] = set()
        self._trusted = TrustedProxies(config.trusted_proxies)
        self._scheme = self.scheme
        self._request_is_async = is_async_callable(config.handle_request)

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls is not None else "http"

    async def _drain(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response,
        WebSockets with 1001; whatever is left after drain_timeout is cancelled."""
        for record in list(self._records):
            if record.websocket is not None:
                self._task_group.start_soon(_close_going_away, record.websocket)  # type: ignore[union-attr]
            elif record.idle and not record.in_request:
                # Closing the stream ends the idle read at once (cheaper than a cancel
                # scope around every keep-alive wait).
                self._task_group.start_soon(record.stream.aclose)  # type: ignore[union-attr]
        await super()._drain()

    def _make_request(
        self, head: RequestHead, body: bytes, peer_ip: str, peer_port: int
    ) -> ServeRequest:
        """The handler's view of a request: the peer's address, or the client's as
        ``trusted_proxies`` report it (see :mod:`sansnet.protocol.forwarded`)."""
        if not self._trusted:
            return ServeRequest(head, body, peer_ip, peer_port, scheme=self._scheme)
        client = resolve_client(head.headers, peer_ip, self._trusted)
        if client is None:
            return ServeRequest(head, body, peer_ip, peer_port, scheme=self._scheme)
        ip, port = peer_ip, peer_port
        if client.ip is not None:
            ip, port = client.ip, client.port or 0
        scheme = {"ws": "http", "wss": "https"}.get(client.scheme or "", client.scheme)
        return ServeRequest(head, body, ip, port, scheme=scheme or self._scheme, host=client.host)

    # ---------------------------------------------------------------- one connection

    async def _serve_one(self, stream: NetworkStream) -> None:
        config = self.config
        if self._stopping or len(self._records) >= config.max_connections:
            await self._refuse(stream)
            return
        record = _ConnectionRecord(stream)
        self._records.add(record)
        self._connection_started()
        date = self._date
        conn = ServerConnection(config.limits, default_headers=date.fields)
        peer_ip, peer_port = stream.peer
        try:
            while True:
                head = await self._next_request(stream, conn, record)
                if head is None:
                    return
                record.in_request = True
                if is_upgrade_request(head) and config.handle_web_socket is not None:
                    await self._upgrade(stream, conn, head, record, peer_ip, peer_port)
                    return
                body = await self._read_body(stream, conn, head)
                if body is None:
                    return
                request = self._make_request(head, body, peer_ip, peer_port)
                status, headers, payload = await self._respond(request, head)
                if self.stopping:
                    conn.disable_keep_alive()  # the response says Connection: close
                date.refresh()
                if isinstance(payload, bytes):
                    conn.send_response(status, headers, payload)
                    await stream.write(conn.data_to_send(), config.body_timeout)
                else:
                    await self._stream_response(stream, conn, status, headers, payload)
                if config.access_log:
                    _log_access(request, status)
                record.in_request = False
                if conn.must_close:
                    return
        except (TransportError, LocalProtocolError):
            pass  # the peer went away mid-exchange: nothing to answer, nothing to log
        finally:
            self._records.discard(record)
            self._connection_ended()
            conn.send_eof()
            await stream.aclose()

    async def _refuse(self, stream: NetworkStream) -> None:
        status, headers, body = _problem(503, "The server is busy or stopping; try again later.")
        self._date.refresh()
        conn = ServerConnection(default_headers=self._date.fields)
        conn.disable_keep_alive()
        try:
            conn.send_error_response(status, headers, body)
            await stream.write(conn.data_to_send(), 5)
        except TransportError:
            pass
        finally:
            await stream.aclose()

    async def _next_request(
        self, stream: NetworkStream, conn: ServerConnection, record: _ConnectionRecord
    ) -> RequestHead | None:
        """Read until a request head; None when the connection should end quietly."""
        config = self.config
        started: float | None = None
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                await self._send_queued(stream, conn)
                return None
            if type(event) is RequestHead:
                return event
            if event is NEED_DATA:
                if conn.idle:
                    if self._stopping:
                        return None
                    record.idle = True
                    try:
                        await receive(stream, conn, config.keepalive_timeout)
                    except (ReadTimeout, ReadError):
                        return None  # idle too long, or closed by stop(): end quietly
                    finally:
                        record.idle = False
                else:
                    # The head's clock starts at its first bytes: set when the head turns
                    # out incomplete, microseconds later, not on every request.
                    if started is None:
                        started = now()
                    timeout = config.header_timeout
                    if timeout is not None:
                        timeout = started + timeout - now()
                        if timeout <= 0:
                            await self._timeout_head(stream, conn)
                            return None
                    try:
                        await receive(stream, conn, timeout)
                    except ReadTimeout:
                        await self._timeout_head(stream, conn)
                        return None
                self._date.refresh()  # the engine may answer an error from what came
                continue
            if isinstance(event, PeerClosed) or event is PAUSED:
                return None
            raise AssertionError(f"unexpected {event!r} between requests")  # pragma: no cover

    async def _timeout_head(self, stream: NetworkStream, conn: ServerConnection) -> None:
        status, headers, body = _problem(408, "The request head did not arrive in time.")
        self._date.refresh()
        conn.send_error_response(status, headers, body)
        await self._send_queued(stream, conn)

    async def _send_queued(self, stream: NetworkStream, conn: ServerConnection) -> None:
        """Write a final (error) answer, then linger so the client reads it rather than
        a reset caused by the bytes it is still sending."""
        data = conn.data_to_send()
        if data:
            try:
                await stream.write(data, 5)
            except TransportError:
                return
            await stream.linger()

    async def _read_body(
        self, stream: NetworkStream, conn: ServerConnection, head: RequestHead
    ) -> bytes | None:
        """The whole request body (decoded per Content-Encoding); None after answering
        an error (the connection then closes)."""
        conn.send_continue()
        parts: list[bytes] = []
        body_timeout = self.config.body_timeout
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                await self._send_queued(stream, conn)
                return None
            if type(event) is Data:
                parts.append(event.data)
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
                    status, headers, payload = _problem(
                        408, "The request body did not arrive in time."
                    )
                    self._date.refresh()
                    conn.send_error_response(status, headers, payload)
                    await self._send_queued(stream, conn)
                    return None
                self._date.refresh()  # the engine may answer an error from what came
                continue
            raise AssertionError(f"unexpected {event!r} in a request body")  # pragma: no cover
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        encoding = head.headers.get("content-encoding")
        if encoding:
            return await self._decode_body(stream, conn, head, encoding, body)
        return body

    async def _decode_body(
        self,
        stream: NetworkStream,
        conn: ServerConnection,
        head: RequestHead,
        encoding: str,
        body: bytes,
    ) -> bytes | None:
        if not is_supported(encoding):
            problem = _problem(
                415,
                f"Content-Encoding {encoding!r} is not supported (gzip, deflate, br, zstd are).",
            )
        else:
            try:
                decoded = ContentDecoder(
                    encoding, max_size=self.config.limits.max_body_bytes
                ).decode_all(body)
            except DecodingError as exc:
                problem = _problem(exc.status_hint, str(exc))
            else:
                fields = head.headers.copy()
                for name in ("content-encoding", "content-length"):
                    if name in fields:
                        del fields[name]
                head.headers = fields
                return decoded
        status, headers, payload = problem
        conn.disable_keep_alive()
        conn.send_response(status, headers, payload)
        await self._send_queued(stream, conn)
        return None

    async def _respond(
        self, request: ServeRequest, head: RequestHead
    ) -> tuple[int, Any, bytes | AsyncIterable[bytes] | Iterable[bytes]]:
        """Call the request handler and turn what it returns into (status, headers, body)."""
        handler = self.config.handle_request
        if handler is None:
            return (
                426,
                [
                    ("upgrade", "websocket"),
                    ("connection", "Upgrade"),
                    ("content-type", _TEXT_PLAIN),
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
            return _convert(result)
        except Exception:
            logger.exception(
                "The request handler failed on %s %s from %s:%s",
                request.method,
                request.target,
                request.ip,
                request.port,
            )
            return _problem(500, "Internal Server Error")

    async def _stream_response(
        self,
        stream: NetworkStream,
        conn: ServerConnection,
        status: int,
        headers: Any,
        body: AsyncIterable[bytes] | Iterable[bytes],
    ) -> None:
        timeout = self.config.body_timeout
        try:
            conn.start_response(status, headers)
            await stream.write(conn.data_to_send(), timeout)
            try:
                if isinstance(body, AsyncIterable):
                    async for chunk in body:
                        conn.send_data(_as_bytes(chunk))
                        data = conn.data_to_send()
                        if data:
                            await stream.write(data, timeout)
                else:
                    for chunk in body:
                        conn.send_data(_as_bytes(chunk))
                        data = conn.data_to_send()
                        if data:
                            await stream.write(data, timeout)
            except (TransportError, LocalProtocolError):
                raise
            except Exception:
                logger.exception(
                    "The response body iterator failed after the head was sent; "
                    "closing the connection."
                )
                conn.disable_keep_alive()
                raise WriteError("The response body iterator failed.") from None
        except BaseException:  # the peer left, the task was cancelled, or the body failed
            await _close_body(body)
            raise
        conn.send_end()
        await stream.write(conn.data_to_send(), timeout)

    # ---------------------------------------------------------------- websocket

    async def _upgrade(
        self,
        stream: NetworkStream,
        conn: ServerConnection,
        head: RequestHead,
        record: _ConnectionRecord,
        ip: str,
        port: int,
    ) -> None:
        config = self.config
        # The upgrade request has no body to speak of; read what there is.
        body = await self._read_body(stream, conn, head)
        if body is None:
            return
        request = self._make_request(head, body, ip, port)
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
            await self._send_queued(stream, conn)
            return
        conn.send_response(101, agreed.headers)
        await stream.write(conn.data_to_send(), config.body_timeout)
        if config.access_log:
            _log_access(request, 101)
        engine = WebSocketConnection(
            "server",
            deflate=agreed.deflate,
            max_message_size=config.max_message_size,
            max_frame_size=config.max_frame_size,
            subprotocol=agreed.subprotocol,
        )
        data, eof = conn.trailing_data
        if data:
            engine.receive_data(data)
        if eof:
            engine.receive_eof()
        socket = WebSocket(
            stream,
            engine,
            request=request,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            close_timeout=config.close_timeout,
        )
        record.websocket = socket
        if self._stopping:
            await _close_going_away(socket)
        handler = config.handle_web_socket
        assert handler is not None
        try:
            result = handler(socket)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "The WebSocket handler failed on %s from %s:%s", request.target, ip, port
            )
            await socket.close_quietly(1011, "Internal error")
        else:
            await socket.close_quietly(1000, "")


async def _close_going_away(socket: WebSocket) -> None:
    await socket.close_quietly(1001, "The server is shutting down.")


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"A streamed response body must yield bytes, not {type(chunk).__name__}.")


def _convert(result: Any) -> tuple[int, Any, bytes | AsyncIterable[bytes] | Iterable[bytes]]:
    """A handler's return value -> (status, headers, body)."""
    if isinstance(result, str):
        return 200, [("content-type", _TEXT_PLAIN)], result.encode("utf-8")
    if result is None:
        return 200, [("content-type", _TEXT_PLAIN)], b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, [("content-type", _TEXT_PLAIN)], bytes(result)
    if isinstance(result, ServeResponse):
        status, headers, body = result.status, result.headers, result.body
    elif isinstance(result, Mapping):
        unknown = set(result) - {"status", "headers", "body"}
        if unknown:
            raise TypeError(
                f"The handler returned a dict with unknown keys {sorted(unknown)}; use status, headers and body."
            )
        status, headers, body = (
            result.get("status", 200),
            result.get("headers"),
            result.get("body", b""),
        )
    else:
        raise TypeError(
            f"The handler returned {type(result).__name__}; return str, bytes, None, a "
            "ServeResponse or a dict with status, headers and body."
        )
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 999:
        raise TypeError(
            f"The handler returned the invalid status {status!r}; use an int from 200 to 999."
        )
    fields = Headers(headers) if headers is not None else Headers()
    if isinstance(body, str):
        if "content-type" not in fields:
            fields.add("content-type", _TEXT_PLAIN)
        return status, fields, body.encode("utf-8")
    if body is None:
        return status, fields, b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return status, fields, bytes(body)
    if isinstance(body, (AsyncIterable, Iterable)) and not isinstance(body, Mapping):
        return status, fields, cast("AsyncIterable[bytes] | Iterable[bytes]", body)
    raise TypeError(
        f"The handler returned a body of type {type(body).__name__}; use str, bytes or an iterable of bytes."
    )


def _log_access(request: ServeRequest, status: int) -> None:
    access_logger.info(
        '%s:%s - "%s %s HTTP/%s" %s',
        request.ip,
        request.port,
        request.method,
        request.target,
        request.http_version,
        status,
    )


def serve(port: int, handler_or_config: RequestHandler | ServeConfig, **options: Any) -> Server:
    """A server for ``port`` (0: any free port) with a request handler or a
    :class:`ServeConfig` (Lune's ``net.serve``). Keyword ``options`` are ServeConfig
    fields. Nothing is bound until the server runs; see :class:`Server`."""
    return Server(port, _config(handler_or_config, options))


def _config(
    handler_or_config: RequestHandler | ServeConfig, options: dict[str, Any]
) -> ServeConfig:
    """serve()'s arguments as one ServeConfig."""
    if isinstance(handler_or_config, ServeConfig):
        return replace(handler_or_config, **options) if options else handler_or_config
    if callable(handler_or_config):
        return ServeConfig(handle_request=handler_or_config, **options)
    raise InvalidArgument(
        f"serve() takes a handler or a ServeConfig, not {type(handler_or_config).__name__}."
    )
