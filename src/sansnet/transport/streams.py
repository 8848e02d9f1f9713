"""Byte streams the drivers read and write: the one small interface every backend meets.

:class:`NetworkStream` is what the HTTP and WebSocket drivers use: ``read``, ``write``,
``aclose``, plus the peer's address and TLS details. Implementations:

* :class:`AnyioStream` wraps any anyio byte stream (TCP or TLS, asyncio or trio);
* :class:`AsyncioStream` talks to an asyncio transport directly, without anyio's
  per-call overhead (the fast path on asyncio and uvloop);
* :class:`MemoryStream` pairs (:func:`memory_stream_pair`) join two ends in memory.

Every backend error becomes a :class:`~sansnet.TransportError` subclass that names the
peer, so drivers never see an ``OSError``, an ``ssl.SSLError`` or an anyio exception.
"""

from __future__ import annotations

import asyncio
import math
import select
import socket
import ssl
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from sansnet.errors import ReadError, ReadTimeout, WriteError, WriteTimeout

from .clock import now

__all__ = [
    "AnyioStream",
    "AsyncioStream",
    "MemoryStream",
    "NetworkStream",
    "TLSInfo",
    "memory_stream_pair",
]

READ_SIZE = 64 * 1024
# How long aclose() lets the peer take our last bytes before it aborts the connection.
CLOSE_WAIT = 5.0
# The most AnyioStream.write hands anyio's stream at once under a write timeout: the
# timeout bounds each piece (anyio's send waits until all it was given has gone).
WRITE_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What was agreed on a TLS connection."""

    version: str | None
    cipher: str | None
    alpn_protocol: str | None
    peer_certificate: dict[str, Any] | None


def _tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> TLSInfo | None:
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TLSInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        alpn_protocol=ssl_object.selected_alpn_protocol(),
        peer_certificate=ssl_object.getpeercert() or None,
    )


def _address(value: Any) -> tuple[str, int]:
    """(host, port) from a socket address; a Unix socket's is (path, 0), its peer's
    usually ("", 0)."""
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    if isinstance(value, bytes):  # pragma: no cover - Linux abstract socket names
        value = value.decode(errors="replace")
    return str(value or ""), 0


def _describe(peer: tuple[str, int]) -> str:
    return f"{peer[0]}:{peer[1]}" if peer[1] or peer[0] else "a Unix socket peer"


class NetworkStream:
    """A connected, bidirectional byte stream.

    ``read`` returns b"" at the end of the stream; ``read`` and ``write`` raise
    :class:`~sansnet.ReadError`/:class:`~sansnet.WriteError` when the connection
    breaks and :class:`~sansnet.ReadTimeout`/:class:`~sansnet.WriteTimeout` after
    ``timeout`` seconds (None: wait forever). ``aclose`` never raises.

    It has no instance attributes of its own (``__slots__ = ()``), so that a subclass
    that lists its ``__slots__`` gets instances without a ``__dict__``.
    """

    __slots__ = ()

    description = "the peer"

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        raise NotImplementedError

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def aclose_within(self, timeout: float) -> None:
        """Close like :meth:`aclose`, but give the peer only ``timeout`` seconds to take
        our last bytes (aclose waits up to :data:`CLOSE_WAIT`), then abort: for a caller
        whose own bound (a WebSocket's ``close_timeout``) must hold. Never raises.

        This default aborts when ``timeout`` is not positive, then calls :meth:`aclose`;
        the streams here bound the wait itself."""
        if timeout <= 0:
            self.abort()
        await self.aclose()

    async def aclose_soon(self) -> None:
        """Close like :meth:`aclose`, but a stream may return before its socket is gone
        when nothing is left to send: the event loop finishes closing it in its next
        iteration. For a caller that keeps the loop running after this (a server ending
        one of its connections), never for one that may block next (the peer would not
        see the close until the loop runs again). Never raises."""
        await self.aclose()

    async def send_eof(self) -> None:
        """Close our sending side, keep reading (TCP half-close). A no-op where the
        transport cannot (TLS). Never raises."""

    def abort(self) -> None:
        """Drop whatever is not yet sent, so that :meth:`aclose` returns at once even
        when the peer has stopped reading. Call it for a connection left broken or
        mid-message; then call :meth:`aclose`."""

    async def wait_writable(self) -> None:
        """Wait until a :meth:`write` would not wait for the peer to read: for a writer
        that gives up (a timeout, a cancellation) and must not leave data behind when
        it does; a WebSocket's send waits here before it frames its message. Returns at
        once where a write buffers nothing of its own (this default), and when the
        connection is closing (the write then reports it)."""

    @property
    def writes_whole(self) -> bool:
        """True when a :meth:`write` that is cancelled (or fails) has sent all of its
        data or none of it, never a part: then a message cut off by a cancelled send
        cannot corrupt the bytes that follow. False (the default, the safe answer) where
        a cancelled write may have sent a part: a WebSocket then drops the connection."""
        return False

    @property
    def closing_wakes_reader(self) -> bool:
        """True when :meth:`aclose` (or :meth:`aclose_within`) from one task ends a
        :meth:`read` waiting in another (it returns b"" or raises
        :class:`~sansnet.ReadError`). A WebSocket on trio then reads without a timeout
        of its own and keeps its keepalive deadline from another task, which closes the
        stream when the peer is taken for dead (see ``sansnet._alarm``). False (the
        default, the safe answer) where that is not promised: the WebSocket then bounds
        each read itself."""
        return False

    async def linger(self, timeout: float = 2.0, limit: int = 1024 * 1024) -> None:
        """After a final answer: stop sending, then read and drop what the peer still
        sends (up to ``limit`` bytes or ``timeout`` seconds), so the peer reads our
        answer instead of a connection reset. Never raises."""
        await self.send_eof()
        received = 0
        try:
            with anyio.move_on_after(timeout):
                while received < limit:
                    data = await self.read(READ_SIZE)
                    if not data:
                        return
                    received += len(data)
        except (ReadError, ReadTimeout):
            pass

    @property
    def peer(self) -> tuple[str, int]:
        """The remote (host, port)."""
        raise NotImplementedError

    @property
    def local(self) -> tuple[str, int]:
        """The local (host, port)."""
        raise NotImplementedError

    @property
    def tls(self) -> TLSInfo | None:
        """TLS details, or None on a plain connection."""
        return None

    @property
    def raw_socket(self) -> socket.socket | None:
        """The connected socket, for socket options (TTL, say), or None where there is
        none (in memory). Read and write through the stream, never through it."""
        return None

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> NetworkStream:
        """Run a TLS client handshake over this connection (a proxy's tunnel) and return
        the encrypted stream; use only the returned stream afterwards. Call it before
        anything was read that belongs to the TLS layer. Raises ``ssl.SSLError``,
        ``OSError`` or ``TimeoutError`` (after ``timeout`` seconds) as the backend does;
        the caller maps them (:func:`sansnet.transport.connect.open_tcp_stream`'s
        messages)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start TLS.")

    def is_readable(self) -> bool:
        """True if reading would not block: on an idle connection this means the peer
        closed it or sent something unexpected, so it must not be reused; before a
        WebSocket send, that the peer's close frame may be waiting. A stream that
        cannot tell returns False (the default)."""
        return False


def _read_timeout(stream: NetworkStream, timeout: float | None) -> ReadTimeout:
    return ReadTimeout(f"No data from {stream.description} within {timeout} s (read timeout).")


def _write_timeout(stream: NetworkStream, timeout: float | None) -> WriteTimeout:
    return WriteTimeout(
        f"{stream.description} did not take our data within {timeout} s (write timeout)."
    )


# --------------------------------------------------------------------------- anyio


class AnyioStream(NetworkStream):
    """A :class:`NetworkStream` over an anyio byte stream (TCP or TLS; asyncio or trio)."""

    __slots__ = (
        "_aborted",
        "_closing",
        "_peer",
        "_received",
        "_socket",
        "_ssl_object",
        "_stream",
        "_tls",
        "_tls_layers",
        "description",
    )

    def __init__(self, stream: anyio.abc.ByteStream, description: str | None = None) -> None:
        self._stream = stream
        self._aborted = False
        self._closing: anyio.CancelScope | None = None  # an aclose waiting for the peer
        # extra() builds every attribute each call: look them up once.
        self._peer = _address(stream.extra(anyio.abc.SocketAttribute.remote_address, ("?", 0)))
        self._socket: socket.socket | None = stream.extra(
            anyio.abc.SocketAttribute.raw_socket, None
        )
        self._ssl_object: ssl.SSLObject | None = stream.extra(TLSAttribute.ssl_object, None)
        # What the handshake (done before we get the stream) agreed, read now: once the
        # peer's close_notify is read, the SSLObject answers "handshake not done yet".
        self._tls = _tls_info(self._ssl_object)
        self._tls_layers, self._received = _read_buffers(stream)
        self.description = description or _describe(self._peer)

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._stream.receive(max_bytes)
            # A deadline scope rather than anyio.fail_after (a generator context manager
            # around one): the same timeout for less work on every read. Leaving the
            # block without returning means the deadline cancelled the read.
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                return await self._stream.receive(max_bytes)
            raise TimeoutError
        except anyio.EndOfStream:
            return b""
        except TimeoutError:
            raise _read_timeout(self, timeout) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError) as exc:
            raise ReadError(
                f"The connection to {self.description} broke while reading: {exc!r}."
            ) from exc

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        try:
            if timeout is None:
                await self._stream.send(data)
                return
            if len(data) <= WRITE_PIECE:
                with anyio.CancelScope(deadline=anyio.current_time() + timeout):  # see read()
                    await self._stream.send(data)
                    return
                raise TimeoutError
            # The timeout is a limit on silence, not on the whole write: anyio's send
            # waits until all of what it is given has gone, so a large write goes in
            # pieces, each with a deadline of its own (a slow reader that takes some
            # within the timeout is no timeout).
            for start in range(0, len(data), WRITE_PIECE):
                with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                    await self._stream.send(data[start : start + WRITE_PIECE])
                    continue
                raise TimeoutError
        except TimeoutError:
            raise _write_timeout(self, timeout) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError) as exc:
            raise WriteError(
                f"The connection to {self.description} broke while writing: {exc!r}."
            ) from exc

    async def aclose(self) -> None:
        await self.aclose_within(CLOSE_WAIT)

    async def aclose_within(self, timeout: float) -> None:
        with anyio.CancelScope(shield=True):
            try:
                if self._aborted or timeout <= 0:
                    await anyio.aclose_forcefully(self._stream)
                    return
                with anyio.move_on_after(timeout) as scope:
                    self._closing = scope
                    # Our close_notify first: anyio's TLS streams are opened with
                    # standard_compatible=False, and their aclose() sends none, so a
                    # strict peer would see a truncated stream (asyncio's sends one).
                    await _send_close_notify(self._stream)
                    await self._stream.aclose()
                if scope.cancelled_caught:
                    # The timeout, or abort(), stopped the close half-way: the socket
                    # may still be open.
                    await anyio.aclose_forcefully(self._stream)
            except (OSError, ssl.SSLError, anyio.BrokenResourceError):
                pass
            finally:
                self._closing = None

    def abort(self) -> None:
        # anyio has no synchronous abort: the next aclose() closes at once instead,
        # without a TLS close_notify and without waiting for the peer, and one waiting
        # for the peer now stops waiting.
        self._aborted = True
        if self._closing is not None:
            self._closing.cancel()

    @property
    def closing_wakes_reader(self) -> bool:
        # Over a socket (TCP, Unix, TLS over them), closing closes the socket, and
        # anyio wakes a task that waits on it with ClosedResourceError: a ReadError.
        # Another anyio byte stream may not say so.
        return self._socket is not None

    async def send_eof(self) -> None:
        if self._ssl_object is not None:
            return  # TLS has no half-close
        try:
            await self._stream.send_eof()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, NotImplementedError):
            pass

    @property
    def peer(self) -> tuple[str, int]:
        return self._peer

    @property
    def local(self) -> tuple[str, int]:
        return _address(self._stream.extra(anyio.abc.SocketAttribute.local_address, ("?", 0)))

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> NetworkStream:
        try:
            with anyio.fail_after(timeout):
                wrapped = await TLSStream.wrap(
                    self._stream,
                    hostname=server_hostname,
                    ssl_context=ssl_context,
                    standard_compatible=False,
                )
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise _closed_during_handshake() from exc
        return AnyioStream(wrapped, self.description)

    @property
    def tls(self) -> TLSInfo | None:
        return self._tls

    @property
    def raw_socket(self) -> socket.socket | None:
        return self._socket

    def is_readable(self) -> bool:
        sock = self._socket
        if sock is None:  # pragma: no cover - every anyio TCP stream has one
            return False
        # What the layers above the socket took from it and hold, unread, which the
        # socket no longer shows: in any TLS layer, a record (a close_notify that came
        # with the last response) or its decrypted bytes; chunks in anyio's asyncio
        # socket stream. (The end of the socket stays in the socket for the poll.)
        for ssl_object, incoming in self._tls_layers:
            if incoming.pending or ssl_object.pending():
                return True
        if self._received:
            return True
        return _socket_readable(sock)


def anyio_stream(stream: anyio.abc.ByteStream, description: str | None = None) -> AnyioStream:
    """``stream`` for the drivers: a :class:`~sansnet.transport.trio_stream.TrioStream`
    for a plain socket of anyio's trio backend (the current task is trio's), else an
    :class:`AnyioStream`."""
    trio = sys.modules.get("trio")
    if (
        trio is not None
        and isinstance(stream, anyio.abc.SocketStream)
        and trio.lowlevel.in_trio_task()
    ):
        from .trio_stream import TrioStream

        return TrioStream(stream, description)
    return AnyioStream(stream, description)


def _closed_during_handshake() -> ConnectionResetError:
    """What anyio's TLS handshake raises as EndOfStream or BrokenResourceError (the
    peer closed or reset the connection), as asyncio's own handshake reports it."""
    return ConnectionResetError("the server closed the connection during the TLS handshake")


async def _send_close_notify(stream: anyio.abc.ByteStream) -> None:
    """Send the TLS close_notify of each of ``stream``'s TLS layers, from the one we
    read (TLS to an origin, inside a proxy's TLS tunnel) down to the one over the
    socket, each through the layer below it; without waiting for the peer's own
    close_notify (anyio's ``TLSStream.unwrap()`` would). A layer that lost a record
    (anyio's ``_broken``) or cannot send ends it: the close goes on without. Private
    attributes of anyio: a layer without them ends it too."""
    layer: object = stream
    while isinstance(layer, TLSStream) and not layer.standard_compatible:
        # (A standard-compatible layer does the whole closing handshake in aclose().)
        ssl_object = getattr(layer, "_ssl_object", None)
        outgoing = getattr(layer, "_write_bio", None)
        if (
            getattr(layer, "_broken", True)
            or not isinstance(ssl_object, ssl.SSLObject)
            or not isinstance(outgoing, ssl.MemoryBIO)
        ):
            return
        try:
            ssl_object.unwrap()  # puts our close_notify in the outgoing buffer
        except ssl.SSLWantReadError:
            pass  # the peer's close_notify has not come: we don't wait for it
        except (ssl.SSLError, ValueError, OSError):
            return
        if outgoing.pending:
            try:
                await layer.transport_stream.send(outgoing.read())
            except (
                OSError,
                ssl.SSLError,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                anyio.BusyResourceError,
            ):
                return  # the peer is gone: close anyway
        layer = layer.transport_stream


def _read_buffers(
    stream: anyio.abc.ByteStream,
) -> tuple[tuple[tuple[ssl.SSLObject, ssl.MemoryBIO], ...], deque[bytes] | None]:
    """Where ``stream`` keeps bytes it took from the socket but was not asked for yet,
    for :meth:`AnyioStream.is_readable`: the SSL object and incoming buffer (anyio's
    ``_read_bio``) of each TLS layer, from the one we read (TLS to an origin, inside a
    proxy's TLS tunnel) down to the one over the socket, and the queue of anyio's
    asyncio socket stream beneath them (its protocol's ``read_queue``; anyio's trio
    stream reads the socket as asked, and keeps nothing). Private attributes of
    anyio, looked up once: a layer without them is skipped."""
    layers: list[tuple[ssl.SSLObject, ssl.MemoryBIO]] = []
    layer: object = stream
    while isinstance(layer, TLSStream):
        ssl_object = getattr(layer, "_ssl_object", None)
        incoming = getattr(layer, "_read_bio", None)
        if isinstance(ssl_object, ssl.SSLObject) and isinstance(incoming, ssl.MemoryBIO):
            layers.append((ssl_object, incoming))
        layer = layer.transport_stream
    received = getattr(getattr(layer, "_protocol", None), "read_queue", None)
    return tuple(layers), received if isinstance(received, deque) else None


def _socket_readable(sock: socket.socket) -> bool:
    try:
        if sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # pragma: no cover - a closed socket
        return True


# ------------------------------------------------------------------------- asyncio


RECEIVE_SIZE = 256 * 1024
"""The most one receive from the socket takes: asyncio's own ``max_size``."""

_receiving = threading.local()
"""``view``: the buffer sockets are received into on this thread's event loop, one for
all of its connections (a receive is copied out of it at once)."""


def _new_receive_buffer() -> memoryview:
    view = _receiving.view = memoryview(bytearray(RECEIVE_SIZE))
    return view


class _StreamProtocol(asyncio.BufferedProtocol):
    """The asyncio protocol behind :class:`AsyncioStream`: buffers what arrives, pauses
    the transport when the buffer is full, and wakes the one reader or writer waiting.

    A buffered protocol: the transport receives into the thread's ``_receiving.view``
    and :meth:`buffer_updated` copies out the bytes that came. A plain protocol gets a new
    ``RECEIVE_SIZE`` bytes object from the transport for every receive, shrunk to what
    came: glibc's malloc serves that size with mmap (an mmap, an mremap, a munmap and
    page faults per receive) unless an earlier free raised its threshold, which made
    the cost of a small response depend on the process's history."""

    HIGH_WATER = 256 * 1024

    def __init__(
        self,
        on_connected: Callable[[_StreamProtocol], None] | None = None,
        half_close: bool = False,
    ) -> None:
        self.half_close = half_close  # keep sending after the peer's EOF (raw TCP)
        self.transport: asyncio.Transport | None = None
        self.buffer: deque[bytes] = deque()
        self.offset = 0  # where the unread part of buffer[0] starts
        self.buffered = 0
        self.eof = False
        # The peer's end (eof_received), which reads report however the connection
        # ends after it: an error counts for reads only if it came before the end.
        self.peer_eof = False
        self.closing = False  # our close began: waiting reads and writes end at once
        self.exception: BaseException | None = None
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        # wait_writable() callers: several tasks may wait for room at once
        self.room_waiters: list[asyncio.Future[None]] = []
        self.closed: asyncio.Future[None] | None = None
        self.paused_reading = False
        self.paused_writing = False
        self.on_connected = on_connected
        # The read timeout (see _arm_read_timer): the waiting read's deadline, and one
        # timer that is moved only when it fires early, not re-created per read.
        self.read_deadline: float | None = None
        self.read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.closed = asyncio.get_running_loop().create_future()
        if self.on_connected is not None:
            self.on_connected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        try:
            view: memoryview = _receiving.view
        except AttributeError:
            view = _new_receive_buffer()
        return view

    def buffer_updated(self, nbytes: int) -> None:
        # The transport calls this right after get_buffer(), on the same thread, with
        # nothing in between: the buffer still holds what it received.
        data = _receiving.view[:nbytes].tobytes()
        self.buffer.append(data)
        self.buffered += len(data)
        if self.buffered > self.HIGH_WATER and not self.paused_reading:
            assert self.transport is not None
            self.paused_reading = True
            self.transport.pause_reading()
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = self.peer_eof = True
        self._wake_reader()
        # HTTP has no use for half-closed sockets: close our side too. A raw TCP stream
        # may still have something to say (asyncio ignores True under TLS).
        return self.half_close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        if exc is not None:
            self.exception = exc
        self._wake_reader()
        # Nothing waits for room on a connection that is gone (and Python 3.10's TLS
        # transport may not report is_closing() then: a waiter would wait again forever).
        self.paused_writing = False
        self._wake_writers()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def take_buffered(self) -> bytes:
        """Take every byte received and not yet read, and forget that the buffer paused
        reading: how a server's TLS handshake (:mod:`sansnet.transport.listen`) hands
        what came before it to the TLS layer, which resumes reading itself."""
        data = b"".join(self.buffer)[self.offset :]
        self.buffer.clear()
        self.offset = self.buffered = 0
        self.paused_reading = False
        return data

    def close_begun(self) -> None:
        """Our close began: a read and writes that wait in other tasks end now, with
        ReadError and WriteError as on trio, not when the close is done (which waits
        for the peer to take what is left to send)."""
        self.closing = True
        self._wake_reader()
        self._wake_writers()

    def _wake_reader(self) -> None:
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def arm_read_timer(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Time out the waiting read ``timeout`` seconds from now.

        Invariant: while a read waits with a deadline, a timer is pending at or before
        that deadline. Reads come far more often than timeouts, so a read only moves
        the deadline; the timer is re-created when it would fire too late (a shorter
        timeout than the pending one), and re-armed by :meth:`_read_timer_fired` when it
        fires before the current deadline. One pending timer per connection at most.
        """
        deadline = self.read_deadline = loop.time() + timeout
        timer = self.read_timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self.read_timer = loop.call_at(deadline, self._read_timer_fired, loop)

    def _read_timer_fired(self, loop: asyncio.AbstractEventLoop) -> None:
        self.read_timer = None
        deadline = self.read_deadline
        waiter = self.read_waiter
        if deadline is None or waiter is None or waiter.done():
            return  # no read is waiting: the next one arms a timer again
        if loop.time() >= deadline:
            waiter.set_exception(TimeoutError())
        else:
            self.read_timer = loop.call_at(deadline, self._read_timer_fired, loop)

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for waiter in self.room_waiters:
            if not waiter.done():
                waiter.set_result(None)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class AsyncioStream(NetworkStream):
    """A :class:`NetworkStream` straight over an asyncio transport (asyncio and uvloop).

    Reads take what is buffered without a trip through the event loop when data is
    already there; a full buffer pauses the transport (backpressure towards the peer);
    writes only wait when the transport asks us to pause.
    """

    __slots__ = ("_loop", "_peer", "_protocol", "_transport", "description")

    def __init__(self, protocol: _StreamProtocol, description: str | None = None) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self._transport = protocol.transport
        self._loop = asyncio.get_running_loop()
        self._peer = _address(self._transport.get_extra_info("peername"))
        self.description = description or _describe(self._peer)

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer:
            if protocol.eof or protocol.closing:
                return self._eof_or_error()
            waiter = protocol.read_waiter = self._loop.create_future()
            if timeout is not None:
                protocol.arm_read_timer(self._loop, timeout)
            try:
                await waiter
            except TimeoutError:
                raise _read_timeout(self, timeout) from None
            finally:
                protocol.read_waiter = None
                protocol.read_deadline = None
            if not protocol.buffer:
                return self._eof_or_error()
        buffer = protocol.buffer
        start = protocol.offset
        head = buffer[0]
        if len(head) - start > max_bytes:
            # Part of a large chunk: take a slice and remember where the rest starts,
            # rather than copy the rest into a new chunk on every read (quadratic in
            # the chunk size: the loop hands over up to 256 KiB at a time).
            end = start + max_bytes
            data = head[start:end]
            protocol.offset = end
        else:
            buffer.popleft()
            data = head[start:] if start else head
            protocol.offset = 0
            while buffer and len(data) + len(buffer[0]) <= max_bytes:
                data += buffer.popleft()
        protocol.buffered -= len(data)
        if protocol.paused_reading and protocol.buffered <= protocol.HIGH_WATER // 4:
            protocol.paused_reading = False
            if not self._transport.is_closing():
                self._transport.resume_reading()
        return data

    def _eof_or_error(self) -> bytes:
        protocol = self._protocol
        exc = protocol.exception
        # Once the peer's end was received, every read returns b"": a later error (a
        # write to the peer that is gone: EPIPE, a reset) broke writing, not reading.
        if exc is not None and not protocol.peer_eof:
            raise ReadError(
                f"The connection to {self.description} broke while reading: {exc!r}."
            ) from exc
        if protocol.closing and not protocol.peer_eof:
            raise ReadError(f"The connection to {self.description} was closed while reading.")
        return b""

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        transport = self._transport
        if transport.is_closing():
            exc = self._protocol.exception
            raise WriteError(
                f"The connection to {self.description} is closed; could not write"
                + (f": {exc!r}." if exc else ".")
            )
        try:
            transport.write(data)
        except (OSError, RuntimeError) as exc:  # pragma: no cover - transports buffer errors
            raise WriteError(
                f"The connection to {self.description} broke while writing: {exc!r}."
            ) from exc
        protocol = self._protocol
        held = 0  # what the transport held to send when the timer was armed
        while protocol.paused_writing and not transport.is_closing():
            waiter = protocol.write_waiter = self._loop.create_future()
            timer = None
            if timeout is not None:
                held = transport.get_write_buffer_size()
                timer = self._loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            except TimeoutError:
                # The timeout is a limit on silence, not on the whole write: a peer
                # that took some since the timer was armed gets another `timeout`.
                if transport.get_write_buffer_size() < held:
                    continue
                raise _write_timeout(self, timeout) from None
            finally:
                protocol.write_waiter = None
                if timer is not None:
                    timer.cancel()
        if (protocol.exception is not None or protocol.closing) and transport.is_closing():
            if protocol.exception is None:  # close() began while this write waited
                raise WriteError(f"The connection to {self.description} was closed while writing.")
            raise WriteError(
                f"The connection to {self.description} broke while writing: {protocol.exception!r}."
            )

    async def wait_writable(self) -> None:
        protocol = self._protocol
        transport = self._transport
        while protocol.paused_writing and not transport.is_closing():
            waiter = self._loop.create_future()
            protocol.room_waiters.append(waiter)
            try:
                await waiter
            finally:
                protocol.room_waiters.remove(waiter)

    async def aclose(self) -> None:
        await self.aclose_within(CLOSE_WAIT)

    async def aclose_within(self, timeout: float) -> None:
        if self._loop.is_closed():
            return  # see is_readable()
        transport = self._transport
        protocol = self._protocol
        closed = protocol.closed
        if not transport.is_closing():
            transport.close()
        protocol.close_begun()
        if closed is None or closed.done():
            return
        # Wait (shielded, bounded) until the socket is really gone, so descriptors are
        # back when aclose returns; abort if the peer does not take our last bytes.
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(timeout):
                await asyncio.shield(closed)
                return
            transport.abort()  # a peer that stopped reading

    @property
    def writes_whole(self) -> bool:
        # write() hands all of its data to the transport before it first waits (for
        # the transport to drain): a cancelled write has still sent everything.
        return True

    async def aclose_soon(self) -> None:
        transport = self._transport
        if (
            transport.get_write_buffer_size() == 0
            and transport.get_extra_info("ssl_object") is None
        ):
            # Nothing left to send, no TLS close_notify to exchange: close() schedules
            # the socket's close for the loop's next iteration, which needs nothing from
            # the peer. Waiting for it in aclose() costs two cancel scopes and a shielded
            # future: about a tenth of a `Connection: close` request on the server.
            transport.close()
            return
        await self.aclose()

    def abort(self) -> None:
        if not self._loop.is_closed():  # see is_readable()
            self._transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> NetworkStream:
        protocol = self._protocol
        assert not protocol.buffer, "bytes arrived before the TLS handshake"
        with anyio.fail_after(timeout):
            tls_transport = await self._loop.start_tls(
                self._transport, protocol, ssl_context, server_hostname=server_hostname
            )
        if tls_transport is None:  # pragma: no cover - the connection closed meanwhile
            raise ConnectionResetError("The connection closed during the TLS handshake.")
        # The same protocol now hears the decrypted bytes: it pauses and closes the TLS
        # transport from here on.
        protocol.transport = tls_transport
        return AsyncioStream(protocol, self.description)

    async def send_eof(self) -> None:
        transport = self._transport
        if not transport.is_closing() and transport.can_write_eof():
            try:
                transport.write_eof()
            except (OSError, RuntimeError):  # pragma: no cover - a transport already gone
                pass

    @property
    def peer(self) -> tuple[str, int]:
        return self._peer

    @property
    def local(self) -> tuple[str, int]:
        return _address(self._transport.get_extra_info("sockname"))

    @property
    def tls(self) -> TLSInfo | None:
        return _tls_info(self._transport.get_extra_info("ssl_object"))

    @property
    def raw_socket(self) -> socket.socket | None:
        sock: socket.socket | None = self._transport.get_extra_info("socket")
        return sock

    def is_readable(self) -> bool:
        # A closed loop: a pooled connection kept past the end of asyncio.run(), asked
        # for by the next run. It can be neither used nor closed (asyncio's transport
        # closes through its loop): a pool drops it, and its socket is closed when the
        # transport is collected, as for any transport a closed loop leaves behind.
        protocol = self._protocol
        return (
            bool(protocol.buffer)
            or protocol.eof
            or self._transport.is_closing()
            or self._loop.is_closed()
        )


# -------------------------------------------------------------------------- memory


class _Pipe:
    """One direction of an in-memory connection."""

    def __init__(self, capacity: int) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.capacity = capacity
        self.closed = False
        self.readable = anyio.Event()
        self.writable = anyio.Event()
        self.writable.set()

    def notify(self) -> None:
        self.readable.set()


class MemoryStream(NetworkStream):
    """One end of an in-memory connection made by :func:`memory_stream_pair`.

    Writes wait while the other end has ``capacity`` bytes unread (backpressure, like a
    socket buffer). ``aclose`` ends the stream: the other end reads b"".
    """

    def __init__(
        self, incoming: _Pipe, outgoing: _Pipe, name: tuple[str, int], peer: tuple[str, int]
    ) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._name = name
        self._peer = peer
        self.description = f"{peer[0]}:{peer[1]} (in memory)"

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        pipe = self._incoming
        deadline = math.inf if timeout is None else now() + timeout
        while not pipe.chunks:
            if pipe.closed:
                await anyio.lowlevel.checkpoint()
                return b""
            pipe.readable = anyio.Event()
            if timeout is None:
                await pipe.readable.wait()
                continue
            with anyio.move_on_after(max(0.0, deadline - now())) as scope:
                await pipe.readable.wait()
            if scope.cancelled_caught:
                raise _read_timeout(self, timeout)
        data = pipe.chunks.popleft()
        if len(data) > max_bytes:
            pipe.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        pipe.size -= len(data)
        if pipe.size <= pipe.capacity:
            pipe.writable.set()
        await anyio.lowlevel.checkpoint()
        return data

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        pipe = self._outgoing
        if pipe.closed:
            raise WriteError(f"The in-memory connection to {self.description} is closed.")
        # All of it first, then wait while the peer has more than capacity unread (as
        # an asyncio transport takes a write whole, then waits): a write cancelled while
        # it waits has delivered everything, which writes_whole promises.
        if data:
            pipe.chunks.append(bytes(data))
            pipe.size += len(data)
            pipe.notify()
        deadline = math.inf if timeout is None else now() + timeout
        while pipe.size > pipe.capacity and not pipe.closed:
            with anyio.move_on_after(max(0.0, deadline - now())) as scope:
                await self._room(pipe)
            if scope.cancelled_caught:
                raise _write_timeout(self, timeout)
        await anyio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        pipe = self._outgoing
        while pipe.size >= pipe.capacity and not pipe.closed:
            await self._room(pipe)

    @staticmethod
    async def _room(pipe: _Pipe) -> None:
        """Until the reader takes some (or the pipe closes); one event for every waiter."""
        if pipe.writable.is_set():
            pipe.writable = anyio.Event()
        await pipe.writable.wait()

    @property
    def writes_whole(self) -> bool:
        # write() delivers everything at once, then waits for room.
        return True

    @property
    def closing_wakes_reader(self) -> bool:
        # aclose() closes both pipes and wakes their readers: a waiting read returns b"".
        return True

    async def aclose(self) -> None:
        for pipe in (self._outgoing, self._incoming):
            pipe.closed = True
            pipe.notify()
            pipe.writable.set()

    async def send_eof(self) -> None:
        self._outgoing.closed = True
        self._outgoing.notify()

    @property
    def peer(self) -> tuple[str, int]:
        return self._peer

    @property
    def local(self) -> tuple[str, int]:
        return self._name

    def is_readable(self) -> bool:
        return bool(self._incoming.chunks) or self._incoming.closed


def memory_stream_pair(
    capacity: int = 256 * 1024,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    server: tuple[str, int] = ("127.0.0.1", 80),
) -> tuple[MemoryStream, MemoryStream]:
    """Two connected in-memory streams: (client end, server end)."""
    to_server, to_client = _Pipe(capacity), _Pipe(capacity)
    return (
        MemoryStream(to_client, to_server, client, server),
        MemoryStream(to_server, to_client, server, client),
    )
