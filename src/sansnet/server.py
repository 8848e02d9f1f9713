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
server goes on; so does a response HTTP cannot carry (a CR, LF or non-ASCII text in a
header value, a Content-Length that does not match the body, a body on a 204 or 205, a
2xx to CONNECT), and a streamed body that breaks its Content-Length after the head went out is
logged and closes the connection. Any other failure while serving a connection is
logged there too and closes that connection only. Defaults and the attack each one
stops are listed in :class:`ServeConfig`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from email.utils import formatdate
from time import time as _wall_clock
from typing import Any

import anyio

from ._lifecycle import ListeningServer, ServeHandle, is_async_callable
from ._server_session import SHUTTING_DOWN, ServerSession, cancelled_for_real, problem
from ._transport_api import check_seconds
from ._version import __version__
from .errors import (
    InvalidArgument,
    LocalProtocolError,
    TransportError,
)
from .models import ServeRequest, ServeResponse
from .protocol import (
    Limits,
    RequestHead,
    ServerConnection,
)
from .protocol.forwarded import TrustedProxies, resolve_client
from .protocol.websocket.connection import checked_size
from .transport.connect import Backend
from .transport.streams import NetworkStream
from .transport.tls import check_server_tls, server_tls_context
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

SERVER_HEADER = f"sansnet/{__version__}"
MiB = 1024 * 1024
# A refused connection (503: full or stopping) reads and drops what the client sends,
# so that closing does not reset the connection under the 503: at most this long, this
# many bytes, and this many refusals at once (past it they close at once, as before).
_REFUSAL_LINGER = 1.0
_REFUSAL_LINGER_LIMIT = MiB
_REFUSALS_LINGERING = 100


# ============================================================================= models


ResponseLike = ServeResponse | Mapping[str, Any] | str | bytes | bytearray | memoryview | None
RequestHandler = Callable[[ServeRequest], Awaitable[ResponseLike] | ResponseLike]
WebSocketHandler = Callable[[WebSocket], Awaitable[None] | None]
SubprotocolChooser = Callable[[ServeRequest, list[str]], str | None]


# Every timeout of ServeConfig: None is "no limit" (ping_interval: no pings) except for
# the two that must be a number.
_TIMEOUT_FIELDS = (
    "header_timeout",
    "keepalive_timeout",
    "body_timeout",
    "drain_timeout",
    "ping_interval",
    "ping_timeout",
    "close_timeout",
)
_NUMBER_ONLY_TIMEOUTS = frozenset(("drain_timeout", "close_timeout"))


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
    ``limits``                  Limits()   head and body sizes (414, 431, 413); a dict
                                           of Limits fields is taken too
    ``max_connections``         10000      open connections; more get 503 and are closed
                                           (file-descriptor exhaustion), after what the
                                           client sent is read and dropped (1 s, 1 MiB)
    ``header_timeout``          10 s       a whole request head must arrive within this
                                           (slowloris); 408, then close
    ``keepalive_timeout``       5 s        an idle keep-alive connection is closed
                                           (idle connections hoarding slots)
    ``body_timeout``            30 s       the longest silence while reading a body
                                           (slow uploads holding a handler)
    ``drain_timeout``           10 s       how long stop() lets in-flight requests finish
    ``access_log``              False      one line per request to the ``sansnet.access``
                                           logger (``"`` and ``\\`` in the target
                                           backslash-escaped: log forging)
    ``trusted_proxies``         ()         proxies whose ``Forwarded`` / ``X-Forwarded-*``
                                           fields set ``ip``, ``scheme``, ``host`` (IPs,
                                           networks, ``"*"``, ``"unix"``); from anyone
                                           else they are ignored (spoofing)
    ``subprotocols``            None       WebSocket subprotocols we speak, by preference,
                                           or a function (request, offered) -> choice (or
                                           None; a plain function, not async); if it
                                           raises or returns a name not offered, that
                                           upgrade gets 500 and is logged
    ``compression``             True       permessage-deflate for WebSockets
    ``max_message_size``        16 MiB     WebSocket message limit (1009; None: none)
    ``max_frame_size``          16 MiB     WebSocket frame limit (1009; None: none)
    ``ping_interval``           20 s       WebSocket keepalive ping (None: off)
    ``ping_timeout``            20 s       close with 1011 when the pong is that late
    ``close_timeout``           10 s       wait for the peer's close frame
    ==========================  =========  ==================================================

    Timeouts are positive, finite numbers of seconds; ``header_timeout``,
    ``keepalive_timeout``, ``body_timeout``, ``ping_interval`` and ``ping_timeout`` may
    also be None (no limit; no pings). ``max_connections`` is an int >= 1,
    ``max_message_size`` and ``max_frame_size`` an int >= 0 or None. Anything else
    raises :class:`~sansnet.InvalidArgument` here, not when a connection comes.
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
    trusted_proxies: (
        Sequence[
            str
            | ipaddress.IPv4Address
            | ipaddress.IPv6Address
            | ipaddress.IPv4Network
            | ipaddress.IPv6Network
        ]
        | str
    ) = ()
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
        if "\x00" in self.address or not _encodes(self.address, str.encode):
            raise InvalidArgument(
                "ServeConfig.address must be an IP address or a host name, with no NUL "
                f"and no lone surrogate, not {self.address!r}."
            )
        check_server_tls(self.tls, "ServeConfig.tls")
        uds: object = self.uds
        if uds is not None and (
            not isinstance(uds, str) or not uds or "\x00" in uds or not _encodes(uds, os.fsencode)
        ):
            raise InvalidArgument(
                "ServeConfig.uds must be None or the path of a Unix socket: a non-empty str "
                f"with no NUL that the file system can hold, not {uds!r}."
            )
        limits: Any = self.limits
        if isinstance(limits, Mapping):  # plain data (a worker's JSON options)
            known = [item.name for item in fields(Limits)]
            unknown = sorted(str(name) for name in limits if name not in known)
            if unknown:
                raise InvalidArgument(
                    f"ServeConfig.limits: unknown {unknown}; Limits has {', '.join(known)}."
                )
            try:
                self.limits = Limits(**limits)
            except ValueError as exc:
                raise InvalidArgument(f"ServeConfig.limits: {exc}") from None
        elif not isinstance(limits, Limits):
            raise InvalidArgument(
                "ServeConfig.limits must be a sansnet.Limits (or a dict of its fields), "
                f"not {type(limits).__name__}."
            )
        max_connections: object = self.max_connections
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise InvalidArgument(
                f"ServeConfig.max_connections must be an int >= 1, not {max_connections!r}."
            )
        for name in _TIMEOUT_FIELDS:
            check_seconds(
                f"ServeConfig.{name}", getattr(self, name), none=name not in _NUMBER_ONLY_TIMEOUTS
            )
        for name in ("max_message_size", "max_frame_size"):  # the engine's rule, checked now
            checked_size(f"ServeConfig.{name}", getattr(self, name), none=True)
        if isinstance(self.subprotocols, str):  # "chat" would be "c", "h", "a", "t"
            raise InvalidArgument(
                f"ServeConfig.subprotocols is a list of names ([{self.subprotocols!r}]), "
                "not a str: a str would accept each of its letters as a subprotocol."
            )
        if callable(self.subprotocols) and is_async_callable(self.subprotocols):
            raise InvalidArgument(
                "ServeConfig.subprotocols is an async function, but the chooser runs inside "
                "the opening handshake, which cannot await it: make it a plain function "
                "(request, offered) -> name or None, and do async work in handle_web_socket."
            )
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
        return server_tls_context(self.tls, "ServeConfig.tls")


def _encodes(text: str, encode: Callable[[str], bytes]) -> bool:
    """``encode(text)`` works: ``str.encode`` (UTF-8: no lone surrogate) or ``os.fsencode``
    (which takes a byte that is not UTF-8, as os.fsdecode and sys.argv give it)."""
    try:
        encode(text)
    except UnicodeEncodeError:
        return False
    return True


# ============================================================================= handle


# ========================================================================= connections


class _ConnectionRecord:
    """What stop() needs to know about one connection."""

    __slots__ = ("awaiting_head", "in_request", "stream", "websocket")

    def __init__(self, stream: NetworkStream) -> None:
        self.stream = stream
        # Reading for the next request head (nothing yet, or part of one): no request
        # to finish, so stop() may close the connection at once.
        self.awaiting_head = False
        self.in_request = False
        self.websocket: WebSocket | None = None


class _DateHeader:
    """The Date field, formatted once per second and shared by every connection."""

    __slots__ = ("expires", "fields")

    def __init__(self) -> None:
        self.expires = 0.0  # when the field next needs formatting: the next whole second
        self.fields: list[tuple[str, str]] = [("date", ""), ("server", SERVER_HEADER)]
        self.refresh()  # never empty: even the first answer, an error, carries a date

    def refresh(self) -> None:
        """Bring the field up to date; called per request, so one chained comparison
        unless the second changed (a wall clock set back counts too)."""
        now = _wall_clock()
        expires = self.expires
        if not expires - 1.0 <= now < expires:
            second = int(now)
            self.expires = second + 1.0
            self.fields[0] = ("date", formatdate(second, usegmt=True))


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
            # A client may half-close after its request and still read the answer (as
            # on trio); asyncio cannot half-close TLS.
            half_close=config.tls is None,
            uds=config.uds,
        )
        self.config = config
        self._date = _DateHeader()
        self._records: set[_ConnectionRecord] = set()
        # None when nobody is trusted: the common case costs one identity test a request
        self._trusted = TrustedProxies(config.trusted_proxies) or None
        self._scheme = self.scheme
        self._request_is_async = is_async_callable(config.handle_request)
        self._refusals_lingering = 0

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls is not None else "http"

    async def _drain(self) -> None:
        """Graceful stop: connections with no request in progress (idle, or partway
        through a request head) close now, busy ones after their response, WebSockets
        with 1001; whatever is left after drain_timeout is cancelled."""
        for record in list(self._records):
            if record.websocket is not None:
                self._task_group.start_soon(_close_going_away, record.websocket)  # type: ignore[union-attr]
            elif record.awaiting_head and not record.in_request:
                # Closing the stream ends the read at once (cheaper than a cancel scope
                # around every keep-alive wait).
                self._task_group.start_soon(self._close_stream, record.stream)  # type: ignore[union-attr]
        await super()._drain()

    async def _close_web_sockets_at_once(self) -> None:
        """For :func:`sansnet.testing.serve` as its block ends: every open WebSocket gets
        our close frame (1001, as from :meth:`stop`) if its stream takes it at once;
        nobody waits for the answer, the connections are cut right after."""
        for record in list(self._records):
            if record.websocket is not None:
                await record.websocket._close_at_once(1001, SHUTTING_DOWN)

    def _make_request(
        self,
        head: RequestHead,
        body: bytes,
        peer_ip: str,
        peer_port: int,
        local: Callable[[], tuple[str, int]],
    ) -> ServeRequest:
        """The handler's view of a request: the peer's address, or the client's as
        ``trusted_proxies`` report it (see :mod:`sansnet.protocol.forwarded`); ``local``
        reads the server's own address (for a URL without Host)."""
        if self._trusted is None:
            return ServeRequest(head, body, peer_ip, peer_port, scheme=self._scheme, server=local)
        client = resolve_client(head.headers, peer_ip, self._trusted)
        if client is None:
            return ServeRequest(head, body, peer_ip, peer_port, scheme=self._scheme, server=local)
        ip, port = peer_ip, peer_port
        if client.ip is not None:
            ip, port = client.ip, client.port or 0
        scheme = {"ws": "http", "wss": "https"}.get(client.scheme or "", client.scheme)
        return ServeRequest(
            head, body, ip, port, scheme=scheme or self._scheme, host=client.host, server=local
        )

    # ---------------------------------------------------------------- one connection

    async def _serve_one(self, stream: NetworkStream) -> None:
        config = self.config
        if self._stopping or len(self._records) >= config.max_connections:
            await self._refuse(stream)
            return
        record = _ConnectionRecord(stream)
        self._records.add(record)
        self._connection_started(stream)
        date = self._date
        conn = ServerConnection(config.limits, default_headers=date.fields)
        try:
            await ServerSession(self, stream, conn, record).serve()
        except (TransportError, LocalProtocolError):
            pass  # the peer went away mid-exchange: nothing to answer, nothing to log
        except Exception:
            # A defect of ours (the handler's errors are answered with 500 before
            # this): it must end this connection only, never the server.
            logger.exception(
                "Serving the connection from %s failed; that connection is closed, the "
                "server goes on.",
                stream.description,
            )
        except anyio.get_cancelled_exc_class():
            # Cut off mid-exchange (stop()'s drain_timeout ran out): what the peer has
            # not taken is dropped, or closing would wait for a peer that never reads.
            stream.abort()
            if cancelled_for_real():
                raise
            # A CancelledError of the application's own (a WebSocket handler awaiting a
            # task cancelled elsewhere): it ends this connection, never the server
            # (re-raised, it would cancel the listener's task group).
            logger.exception(
                "Serving the connection from %s failed; that connection is closed, the "
                "server goes on.",
                stream.description,
            )
        finally:
            self._records.discard(record)
            try:
                conn.send_eof()
            finally:
                # Soon while serving (the loop goes on and closes it next); within what
                # is left of drain_timeout once stopping (stop() may have begun since
                # the check above). Whatever happened, the connection is counted ended.
                await self._end_connection(stream, stream.aclose_soon, stream.aclose_within)

    async def _refuse(self, stream: NetworkStream) -> None:
        """Answer 503 and close, the request unread. Closing a socket with the client's
        bytes unread sends a reset, which can destroy the 503 before the client reads
        it: so the refusal half-closes, then reads and drops what the client still
        sends until it closes, for :data:`_REFUSAL_LINGER` seconds and
        :data:`_REFUSAL_LINGER_LIMIT` bytes at most, and only
        :data:`_REFUSALS_LINGERING` refusals at once: past that, an overloaded server
        closes at once rather than hold more descriptors."""
        status, headers, body = problem(503, "The server is busy or stopping; try again later.")
        self._date.refresh()
        conn = ServerConnection(default_headers=self._date.fields)
        conn.disable_keep_alive()
        try:
            conn.send_error_response(status, headers, body)
            await stream.write(conn.data_to_send(), 5)
            if self._refusals_lingering < _REFUSALS_LINGERING:
                self._refusals_lingering += 1
                try:
                    await stream.linger(_REFUSAL_LINGER, _REFUSAL_LINGER_LIMIT)
                finally:
                    self._refusals_lingering -= 1
        except TransportError:
            pass
        finally:
            await self._close_ended(stream, stream.aclose, stream.aclose_within)


async def _close_going_away(socket: WebSocket) -> None:
    # Not the handler's close(): one it makes afterwards returns quietly.
    await socket._close_quietly(1001, SHUTTING_DOWN, by_user=False)


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
