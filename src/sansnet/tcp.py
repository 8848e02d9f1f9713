"""``net.tcp`` (Lune 0.10): raw TCP and TLS byte streams, and a TCP listener.

::

    import sansnet as net

    async with await net.tcp.connect("example.com", 443, tls=True) as stream:
        await stream.write(b"HEAD / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n")
        print(await stream.read())

    async def echo(stream: net.tcp.TcpStream) -> None:
        async for chunk in stream:
            await stream.write(chunk)

    async with net.tcp.serve(0, echo) as handle:   # handle.port: the port the OS chose
        ...

Everything runs on the transports the HTTP client and server use: a native asyncio
stream on asyncio and uvloop, anyio's sockets on trio. Errors are the usual
:class:`~sansnet.TransportError` family.

Where this differs from Lune (each a choice a Python user would expect; see
docs/lune.md): ``read()`` returns ``b""`` at the end of the stream (Lune: an empty
buffer), and reads up to 64 KiB by default (Lune: 1,024 bytes); ``close()`` closes both
directions (Lune's shuts down the writing side only: that is :meth:`TcpStream.send_eof`
here); TLS is ``tls=True`` or an ``ssl.SSLContext`` (Lune: ``true`` or
``{ tls = true }``). Lune has no listener; :func:`serve` is ours.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from ._idna import ascii_host
from ._lifecycle import ListeningServer, ServeHandle, is_async_callable
from ._server_session import cancelled_for_real
from ._transport_api import check_seconds, valid_seconds
from .errors import (
    InvalidArgument,
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    TransportError,
    WriteError,
    WriteTimeout,
)
from .transport.connect import Backend, open_tcp_stream
from .transport.streams import (
    CLOSE_WAIT,
    READ_SIZE,
    NetworkStream,
    TLSInfo,
    _read_timeout,
    _write_timeout,
)
from .transport.tls import (
    CertTypes,
    ServerTLSTypes,
    VerifyTypes,
    check_client_tls,
    client_context,
    server_tls_context,
)

__all__ = ["MAX_READ", "TcpHandle", "TcpServer", "TcpStream", "connect", "serve"]

logger = logging.getLogger("sansnet.tcp")

TcpHandler = Callable[["TcpStream"], Awaitable[None]]
DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_READ = 256 * 1024
"""The most one :meth:`TcpStream.read` returns, whatever ``max_bytes`` asks: the size
handed to the socket is capped there (a read of ``2**31`` bytes allocated 2 GiB)."""


def _ip(address: tuple[str, int]) -> tuple[str | None, int | None]:
    host, port = address
    if host in ("", "?") or not port:
        return None, None  # unknown (Lune: nil)
    return host, port


class _Turn:
    """One task at a time, the others wait their turn in order. Cheaper than
    ``anyio.Lock`` on the hot path (no task lookup): a read or write that finds it free
    only sets a flag.

    Invariant: ``busy`` is True while a task holds the turn; :meth:`release` hands it
    straight to the first waiter (``busy`` stays True) or frees it. A waiter cancelled
    after being handed the turn passes it on, so the turn never leaks."""

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque[anyio.Event] = deque()

    async def __aenter__(self) -> None:
        if self.busy:
            await self._wait()
        else:
            self.busy = True

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    async def take(self, timeout: float | None) -> float | None:
        """Take the turn, waiting at most ``timeout`` seconds for it (None: as long as it
        takes); returns what is left of ``timeout`` for the work done in the turn, and
        the caller must :meth:`release` the turn. Returns -1.0, without the turn, when
        the wait ran out: the caller raises its timeout error."""
        if not self.busy:
            self.busy = True
            return timeout
        if timeout is None:
            await self._wait()
            return None
        started = anyio.current_time()
        with anyio.move_on_after(timeout):
            await self._wait()
            return max(0.0, timeout - (anyio.current_time() - started))
        return -1.0

    async def _wait(self) -> None:
        """Wait until the turn is handed to us."""
        event = anyio.Event()
        self.waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed to us as we were cancelled: pass it on
            else:
                self.waiters.remove(event)
            raise

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft().set()
        else:
            self.busy = False


class TcpStream:
    """A connected TCP (or TLS) byte stream: Lune 0.10's ``TcpStream``.

    One task may read while another writes (full duplex); concurrent reads (or
    concurrent writes) take turns, and a ``timeout`` counts the wait for the turn. Use
    ``async with`` (or call :meth:`close`) so the socket is released; ``async for chunk
    in stream`` reads until the peer ends.

    ``local_ip``, ``local_port``, ``remote_ip``, ``remote_port`` are read once, when the
    stream opens (None when unknown, as Lune's nil).
    """

    def __init__(self, stream: NetworkStream) -> None:
        self._stream = stream
        self._reading = _Turn()
        self._writing = _Turn()
        self._closed = False
        self._eof_sent = False
        # The size of a write that did not finish (it timed out or was cancelled), or
        # None. The peer has an unknown part of it (trio sends what the socket took,
        # asyncio's transport keeps the rest to send), so this stream sends nothing
        # more: a later write would land after a gap on one backend and pile up without
        # a bound on another.
        self._unfinished: int | None = None
        self.local_ip, self.local_port = _ip(stream.local)
        self.remote_ip, self.remote_port = _ip(stream.peer)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def tls(self) -> TLSInfo | None:
        """What TLS agreed (version, cipher, ALPN protocol, peer certificate), or None
        on plain TCP."""
        return self._stream.tls

    @property
    def ttl(self) -> int | None:
        """The IP time-to-live (IPv6: unicast hop limit) of outgoing packets, or None
        where the stream has no socket (in memory; closed, or broken and released)."""
        sock = self._stream.raw_socket
        if sock is None or self._closed:
            return None
        level, option = _ttl_option(sock)
        try:
            value: int = sock.getsockopt(level, option)
        except OSError:  # the socket is gone: the connection broke and was released
            return None
        return value

    async def read(self, max_bytes: int = READ_SIZE, *, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` bytes, as soon as any have arrived; ``b""`` once the peer
        has finished sending (and on every later call). One read returns at most
        :data:`MAX_READ` (256 KiB) bytes, however large ``max_bytes`` is, as a socket
        read returns what it has: loop (or ``async for``) to read more.

        Raises :class:`~sansnet.ReadTimeout` when nothing arrives within ``timeout``
        seconds (None: wait as long as it takes; the stream stays usable after a
        timeout), :class:`~sansnet.ReadError` if the connection breaks or this stream
        was closed. Data that arrived before a break is returned first: nothing the
        peer sent is lost.

        Over TLS, a peer that closes the connection without its TLS close_notify also
        reads as the end (``b""``), on every backend, as Python's asyncio and anyio
        treat it: a protocol of your own that must tell a message cut short from a
        whole one gives its messages a length or an end marker (HTTP's framing does).
        """
        if type(max_bytes) is not int or max_bytes < 1:
            raise InvalidArgument(f"max_bytes must be a positive int, not {max_bytes!r}.")
        _check_timeout(timeout)
        left = await self._reading.take(timeout)  # the timeout bounds the wait for it too
        if left is not None and left < 0:
            raise _read_timeout(self._stream, timeout)
        try:
            if self._closed:
                raise self._closed_error()
            try:
                data = await self._stream.read(min(max_bytes, MAX_READ), left)
            except ReadTimeout:
                raise _read_timeout(self._stream, timeout) from None  # the caller's, not left
            except ReadError:
                if self._closed:  # close() ran while this read waited
                    raise self._closed_error() from None
                raise
            if not data and self._closed:  # the same, where the backend just ends the stream
                raise self._closed_error()
            return data
        finally:
            self._reading.release()

    def _closed_error(self) -> ReadError:
        return ReadError(
            f"The TCP stream to {self._stream.description} is closed (close() was "
            "called); connect again to read more."
        )

    async def write(
        self, data: bytes | bytearray | memoryview | str, *, timeout: float | None = None
    ) -> None:
        """Send all of ``data`` (a ``str`` is sent as UTF-8). Returns once the data is
        handed to the operating system, waiting while the peer does not keep up
        (backpressure).

        Raises :class:`~sansnet.WriteTimeout` when the peer takes nothing for
        ``timeout`` seconds (a limit on silence: a slow reader that keeps taking some is
        no timeout), :class:`~sansnet.WriteError` if the connection broke, this stream
        was closed, or :meth:`send_eof` was called. A failed write never affects what
        can still be read: what the peer sent before it went away stays readable.

        A write that does not finish (a ``WriteTimeout``, or the caller's task
        cancelled while it waits) ends the sending side, on every backend: the peer has
        an unknown part of ``data``, so later writes raise
        :class:`~sansnet.WriteError` rather than send bytes after a gap. Reading goes
        on; :meth:`send_eof` and :meth:`close` still work. To retry, connect again. One
        exception: over TLS on trio (anyio's TLS stream), a cut write breaks the TLS
        layer itself, and reads raise :class:`~sansnet.ReadError` too.
        """
        if type(data) is bytes:
            payload = data
        elif isinstance(data, str):
            try:
                payload = data.encode()
            except UnicodeEncodeError as exc:
                raise InvalidArgument(
                    f"write() sends a str as UTF-8, and this one has no UTF-8 form: a lone "
                    f"surrogate at index {exc.start}. Send bytes, or fix the text."
                ) from None
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        else:
            raise InvalidArgument(
                f"write() takes bytes or str, not {type(data).__name__}; encode it first."
            )
        _check_timeout(timeout)
        left = await self._writing.take(timeout)  # the timeout bounds the wait for it too
        if left is not None and left < 0:
            raise _write_timeout(self._stream, timeout)
        try:
            if self._closed or self._eof_sent:
                why = "close() was called" if self._closed else "send_eof() was called"
                raise WriteError(
                    f"The TCP stream to {self._stream.description} is closed for writing "
                    f"({why}); nothing of these {len(payload)} bytes was sent."
                )
            if self._unfinished is not None:
                raise WriteError(
                    f"The TCP stream to {self._stream.description} sends nothing more: an "
                    f"earlier write of {self._unfinished} bytes did not finish (it timed "
                    "out or was cancelled), so the peer has an unknown part of it. Nothing "
                    f"of these {len(payload)} bytes was sent; reading still works. Close "
                    "the stream and connect again to send more."
                )
            if payload:
                cut = True  # until the write returns or the connection is known broken
                try:
                    await self._stream.write(payload, left)
                    cut = False
                except WriteTimeout:
                    raise _write_timeout(self._stream, timeout) from None  # the caller's
                except WriteError:
                    cut = False  # broken or closed: later writes fail with the stream's error
                    if self._closed:  # close() ran while this write waited
                        raise self._closed_while_writing(len(payload)) from None
                    raise
                finally:
                    if cut:  # a timeout or a cancellation
                        self._unfinished = len(payload)
                if self._closed:  # the same, where the backend just dropped the rest
                    raise self._closed_while_writing(len(payload))
        finally:
            self._writing.release()

    def _closed_while_writing(self, size: int) -> WriteError:
        return WriteError(
            f"The TCP stream to {self._stream.description} was closed (close() was "
            f"called) while a write of {size} bytes waited; part of them may not have "
            "been sent."
        )

    async def send_eof(self) -> None:
        """Finish sending but keep reading (a TCP half-close, Lune's ``close``): the peer
        reads the end of the stream; what it still sends arrives here. Later writes
        raise :class:`~sansnet.WriteError`.

        TLS has no half-close in Python's ``ssl``: on a TLS stream this raises
        :class:`~sansnet.LocalProtocolError`; call :meth:`close` instead."""
        if self._stream.tls is not None:
            raise LocalProtocolError(
                "A TLS stream cannot be half-closed (Python's ssl has no TLS half-close); "
                "call close() to end it."
            )
        async with self._writing:
            if self._closed or self._eof_sent:
                return
            self._eof_sent = True
            await self._stream.send_eof()

    async def close(self) -> None:
        """Close both directions and release the socket. Never raises; calling it
        again does nothing. Reads and writes after it raise."""
        await self._close_within(CLOSE_WAIT)

    aclose = close  # the name anyio and contextlib.aclosing look for

    async def _close_within(self, timeout: float) -> None:
        """:meth:`close`, giving the peer at most ``timeout`` seconds to take our last
        bytes (then the connection is aborted): the listener's close during a stop."""
        if self._closed:
            return
        self._closed = True
        await self._stream.aclose_within(timeout)

    async def __aenter__(self) -> TcpStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The chunks the peer sends, until it finishes sending."""
        while True:
            chunk = await self.read()
            if not chunk:
                return
            yield chunk

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        secure = " tls" if self._stream.tls is not None else ""
        return f"<TcpStream {self._stream.description}{secure}{state}>"


def _ttl_option(sock: socket.socket) -> tuple[int, int]:
    if sock.family == socket.AF_INET6:
        return socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
    return socket.IPPROTO_IP, socket.IP_TTL


def _host(text: object, name: str) -> str:
    """A host name or address, without IPv6 brackets."""
    if not isinstance(text, str) or not text.strip("[] "):
        raise InvalidArgument(f"{name} must be a non-empty str, not {text!r}.")
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if any(char < " " or char == "\x7f" for char in host):
        # A NUL was a bare ValueError on asyncio, and trio's resolver cut the name
        # there ("127.0.0.1\x00x" reached 127.0.0.1).
        raise InvalidArgument(
            f"{name} {text!r} holds a control character (NUL, a newline...): pass a host "
            "name or an IP address only."
        )
    if not host.isascii():  # a name is looked up in its IDNA form: it must have one
        try:
            return ascii_host(host)  # not the "idna" codec the resolver would use
        except UnicodeError as exc:
            raise InvalidArgument(f"{name} {text!r} is no host name: {exc}.") from None
    return host


def _check_timeout(timeout: object) -> None:
    """InvalidArgument unless ``timeout`` is None or a timeout the HTTP client's
    :class:`~sansnet.Timeout` takes too (:func:`valid_seconds`: positive and finite)."""
    if timeout is not None and not valid_seconds(timeout):
        raise InvalidArgument(
            f"timeout must be a positive number of seconds, finite, or None (no limit), "
            f"not {timeout!r}."
        )


def _check_port(port: object, low: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise InvalidArgument(f"port must be an int from {low} to 65535, not {port!r}.")
    return port


async def connect(
    host: str,
    port: int,
    *,
    tls: bool | ssl.SSLContext = False,
    ttl: int | None = None,
    timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    alpn: list[str] | tuple[str, ...] = (),
    server_hostname: str | None = None,
    backend: Backend = "auto",
) -> TcpStream:
    """Open a TCP connection to ``host``:``port`` (a name, an IPv4 or an IPv6 address;
    names resolving to both families race as ``request`` does: Happy Eyeballs).

    ``tls``: True for TLS verified as :func:`sansnet.request` verifies it (``verify``,
    ``cert``; ``alpn``: a list of protocol names to offer, such as ``["http/1.1"]``,
    none by default), or your own ``ssl.SSLContext`` (then ``verify``, ``cert`` and
    ``alpn`` do not apply). ``server_hostname``: the name to check the certificate
    against (and send as SNI) when it is not ``host``.
    ``ttl``: the IP time-to-live of outgoing packets (1-255). ``timeout``: seconds for
    name resolution, connect and TLS handshake together (None: no limit).

    Raises :class:`~sansnet.ConnectError` (refused, unreachable, unknown name),
    :class:`~sansnet.TLSError` (handshake or certificate), :class:`~sansnet.ConnectTimeout`;
    :class:`~sansnet.InvalidArgument`, before any I/O, for an option of the wrong shape.
    """
    host = _host(host, "host")
    _check_port(port, 1)
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255
    ):
        raise InvalidArgument(f"ttl must be an int from 1 to 255 or None, not {ttl!r}.")
    _check_timeout(timeout)
    if server_hostname is not None:
        server_hostname = _host(server_hostname, "server_hostname")
    context: ssl.SSLContext | None
    if isinstance(tls, ssl.SSLContext):
        context = tls
    elif tls is True:
        check_client_tls(verify, cert, alpn)  # before tuple(): a str would be its letters
        context = client_context(verify, cert, tuple(alpn))
    elif tls is False:
        context = None
    else:
        raise InvalidArgument(f"tls must be True, False or an ssl.SSLContext, not {tls!r}.")
    stream = await open_tcp_stream(
        host,
        port,
        ssl_context=context,
        server_hostname=server_hostname,
        timeout=timeout,
        backend=backend,
        half_close=context is None,  # asyncio cannot half-close TLS
    )
    if ttl is not None:
        sock = stream.raw_socket
        if sock is not None:
            level, option = _ttl_option(sock)
            sock.setsockopt(level, option, ttl)
    return TcpStream(stream)


# ============================================================================ listener


class TcpHandle(ServeHandle):
    """A running TCP listener: ``ip``, ``port`` (the port the OS chose for port 0),
    ``url`` (``tcp://`` or ``tls://``) and :meth:`stop`."""

    async def stop(self) -> None:
        """Stop gracefully: stop accepting at once, give the handlers still running
        ``drain_timeout`` seconds to finish, then cancel them and close their streams.
        Returns when every connection is closed and the port is free, within
        ``drain_timeout`` (plus a moment): a peer that does not read gets only what is
        left of it to take a closing stream's last bytes. A second call
        raises :class:`~sansnet.ServerStoppedError`. Called from a handler, it starts
        the stop and returns at once."""
        await self._server.stop()


class TcpServer(ListeningServer):
    """A TCP listener not yet running; made by :func:`serve`. Use ``async with server as
    handle`` or ``handle = await task_group.start(server.run)``."""

    handle_class = TcpHandle

    def __init__(
        self,
        port: int,
        handler: TcpHandler,
        *,
        address: str = "127.0.0.1",
        tls: ServerTLSTypes | None = None,
        max_connections: int = 10_000,
        drain_timeout: float = 10.0,
        backend: Backend = "auto",
    ) -> None:
        if not callable(handler) or not is_async_callable(handler):
            raise InvalidArgument(
                "tcp.serve() needs an async handler: async def handler(stream): ..., "
                f"not {handler!r}."
            )
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise InvalidArgument(f"max_connections must be an int, not {max_connections!r}.")
        if max_connections < 1:
            raise InvalidArgument("max_connections must be at least 1.")
        check_seconds("drain_timeout", drain_timeout, none=False)
        host = _host(address, "address")
        context = server_tls_context(tls, "tls", alpn=())
        super().__init__(
            port,
            host=host,
            ssl_context=context,
            backend=backend,
            drain_timeout=drain_timeout,
            half_close=context is None,  # asyncio cannot half-close TLS
        )
        self._handler = handler
        self.max_connections = max_connections

    @property
    def scheme(self) -> str:
        return "tls" if self._ssl is not None else "tcp"

    async def _serve_one(self, stream: NetworkStream) -> None:
        if self._stopping or self._connections >= self.max_connections:
            stream.abort()  # over the limit: close at once, the listener goes on
            await stream.aclose()
            return
        self._connection_started(stream)
        tcp = TcpStream(stream)
        try:
            await self._handler(tcp)
        except TransportError as exc:
            logger.info("TCP connection from %s ended: %s", stream.description, exc)
        except Exception:
            logger.exception(
                "The TCP handler failed for the connection from %s; that connection is "
                "closed, the listener goes on.",
                stream.description,
            )
        except anyio.get_cancelled_exc_class():
            if cancelled_for_real():  # the listener stopping, or its drain running out
                raise
            # A CancelledError of the handler's own (it awaited a task cancelled
            # elsewhere): it ends this connection, never the listener (re-raised, it
            # would cancel the listener's task group), as in the HTTP server.
            logger.exception(
                "The TCP handler for the connection from %s was cancelled from inside; "
                "that connection is closed, the listener goes on.",
                stream.description,
            )
        finally:
            await self._end_connection(stream, tcp.close, tcp._close_within)


def serve(port: int, handler: TcpHandler, **options: Any) -> TcpServer:
    """A TCP listener on ``port`` (0: any free port) that runs ``async def
    handler(stream)`` for each connection, in its own task, and closes the stream when
    the handler returns. Nothing is bound until it runs: ``async with serve(...) as
    handle`` or ``await task_group.start(server.run)``.

    Keyword ``options`` (those of :class:`TcpServer`): ``address``: where to listen (127.0.0.1 by default; ``"::1"``, ``"0.0.0.0"``).
    ``tls``: an ``ssl.SSLContext``, a PEM file with certificate and key, or a
    (certificate, key) pair (anything else, ``True`` too, raises
    :class:`~sansnet.InvalidArgument`). A handler's exception is logged to the ``sansnet.tcp``
    logger and closes that connection only. Beyond ``max_connections`` open
    connections, new ones are closed at once. ``stop()`` waits ``drain_timeout``
    seconds for running handlers, then cancels them.
    """
    return TcpServer(port, handler, **options)
