"""``net.socket`` and the :class:`WebSocket` object, client and server side.

One :class:`WebSocket` class drives a sans-IO
:class:`~sansnet.protocol.websocket.WebSocketConnection` over a stream.
:func:`socket` returns one as a client; :func:`sansnet.serve` hands one to
``handle_web_socket``.

How it reads: there is no background reader. Whichever task needs input (``next()``,
``close()`` waiting for the peer's close, ``ping()`` waiting for its pong) reads for
everyone, one at a time, and parses one message ahead at most (a few while ``ping()``
waits, see below); a ``close()`` or
``ping()`` waiting while another task reads takes over the reading as soon as that task
stops (it got its message, gave up, or was cancelled). So memory stays bounded
when a peer floods us (unread bytes wait in the socket, and TCP pushes back on the
peer), and pings from the peer are answered while someone is reading. Keepalive pings
are sent while someone reads, by the reading task when its read times out: a connection
nobody reads from is not pinged. (On trio, where a read's timeout costs a cancel scope, a
read that waits has none: the keepalive step is taken at its deadline by a small task of
the WebSocket's own while the read still waits, see ``sansnet._alarm``.)
Writes are serialized whole-message; a reader never waits for a slow writer.

The invariant, at all times: **what waits for** ``next()`` **is bounded**. ``next()``
and ``send()`` read only when no message is queued (one message ahead); ``ping()``
queues at most 16 messages or 1 MiB (the first whatever its size, plus what the read
that reaches the bound brought) before its pong, then stops reading until ``next()``
takes some (or its pong is read by someone else); once our close frame is out (``close()``, a keepalive timeout),
the peer's data messages are read and discarded, not queued, while we wait for its
close frame (the closing handshake needs only that frame; RFC 6455 does not ask for the
data sent after our close to be delivered). The one exception is a connection that
dies: the complete messages among the bytes already read (one read, 256 KiB at most,
past the message being received) stay readable, and nothing more is read.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio

from ._alarm import Alarm
from ._transport_api import check_seconds
from ._turn_lock import TurnLock
from ._urls import basic_authorization, checked_host, checked_port, split_url, target_parts
from .errors import (
    ConnectionClosed,
    HandshakeError,
    InvalidArgument,
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutError,
    TransportError,
    UnsupportedProtocol,
)
from .models import ServeRequest
from .protocol import (
    ClientConnection,
    Data,
    Event,
    InformationalResponse,
    ResponseHead,
    ServerConnection,
)
from .protocol.websocket import (
    BinaryMessage,
    ClientHandshake,
    Closed,
    Handshake,
    Pong,
    TextMessage,
    WebSocketConnection,
    check_close_code,
)
from .protocol.websocket.connection import CLOSED, OPEN, checked_size
from .proxies import (
    FROM_ENVIRONMENT,
    FromEnvironment,
    Proxy,
    _masked,
    environment_proxies,
    given_proxy,
)
from .transport.clock import now
from .transport.connect import Backend, open_tcp_stream, open_unix_stream
from .transport.proxy import open_tunnel
from .transport.receive import receive_event
from .transport.streams import NetworkStream
from .transport.tls import CertTypes, VerifyTypes, client_context

__all__ = ["WebSocket", "socket"]

logger = logging.getLogger("sansnet.websocket")

MiB = 1024 * 1024
_SCHEMES = {"ws": ("ws", 80), "http": ("ws", 80), "wss": ("wss", 443), "https": ("wss", 443)}


_READ_SIZE = 256 * 1024  # bytes asked of the stream per read (of frames; see _receive)
_BODY_SAMPLE = 64 * 1024  # bytes of a refused handshake's body kept for HandshakeError
_LINGER_LIMIT = 64 * MiB
# What ping() may queue for next() while it waits for its pong (websockets queues up to
# 16 messages): the first message always, more while both bounds hold.
_PING_QUEUE_MESSAGES = 16
_PING_QUEUE_BYTES = MiB
"""The most we read and drop from a peer after failing its connection (see _finish)."""


class WebSocket:
    """An open WebSocket (Lune's WebSocket).

    * ``await ws.send(message, binary=None)``: str is sent as text, bytes as binary
      (``binary=False`` sends bytes as text after a UTF-8 check). Raises
      :class:`~sansnet.ConnectionClosed` once the socket is closed.
    * ``await ws.next()``: the next message, str or bytes; None once the socket is
      closed (by us, by the peer, or because the connection died). Never raises for a
      closed or broken connection: :attr:`close_code` then says why.
    * ``await ws.close(code=1000, reason="")``: start the closing handshake; waits up to
      ``close_timeout`` for the peer's close frame. A second call raises.
    * ``async for message in ws``, ``async with ws``, :meth:`ping`.
    * :attr:`close_code`: None while open; our code if we closed first, the peer's code
      if it did (1005 when it sent none), 1006 if the connection died without a close.

    One task may wait in ``next()`` while others ``send()``.
    """

    def __init__(
        self,
        stream: NetworkStream,
        connection: WebSocketConnection,
        *,
        request: ServeRequest | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
    ) -> None:
        self._stream = stream
        self._conn = connection
        self.request = request
        """The upgrade request (server side), with ``path``, ``query`` and ``headers``."""
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._messages: deque[str | bytes] = deque()
        # fast_acquire: a free lock is taken without a trip through the event loop (the
        # stream I/O right after it is the checkpoint); about 10 us saved per message.
        # On trio, a TurnLock does the same for less (see _turn_lock).
        self._read_lock: anyio.Lock | TurnLock
        self._write_lock: anyio.Lock | TurnLock
        # On trio, a read that waits is not bounded by a cancel scope of its own (about
        # a sixth of a 49-byte echo): the keepalive deadline is the alarm's, which
        # closes the stream when the peer is taken for dead; so only on a stream whose
        # closing ends a read waiting in another task (see _receive and _on_alarm).
        self._alarm: Alarm | None = None
        self._waiting = False  # a read without a bound of its own waits (the alarm's)
        trio = sys.modules.get("trio")
        if trio is not None and trio.lowlevel.in_trio_task():
            self._read_lock = TurnLock(trio.lowlevel.checkpoint_if_cancelled)
            self._write_lock = TurnLock(trio.lowlevel.checkpoint_if_cancelled)
            if stream.closing_wakes_reader:
                self._alarm = Alarm(trio, self._on_alarm)
        else:
            self._read_lock = anyio.Lock(fast_acquire=True)
            self._write_lock = anyio.Lock(fast_acquire=True)
        self._finished = anyio.Event()  # the closing handshake is over (or the link died)
        # Set (and dropped) when the reading state changes: a message taken by next(),
        # the read lock let go, a pong, the end; close() and ping() wait on it (see
        # _wait_for_change).
        self._change: anyio.Event | None = None
        self._closed_by_user = False
        self._close_deadline: float | None = None  # close()'s, while it runs (clock time)
        self._transport_closed = False
        self._write_failed = False  # a write failed, or was cut short mid-frame
        self._pings: dict[bytes, tuple[float, anyio.Event]] = {}
        self._ping_results: dict[bytes, float] = {}
        self._last_ping = now()
        self._keepalive_payload: bytes | None = None
        self._latency: float | None = None

    # ------------------------------------------------------------------ state

    @property
    def close_code(self) -> int | None:
        """None while open; see the class docstring."""
        return self._conn.close_code

    @property
    def close_reason(self) -> str:
        """The reason that goes with :attr:`close_code` (may be empty)."""
        return self._conn.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        return self._conn.subprotocol

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection died."""
        return self._conn.state is not OPEN

    @property
    def latency(self) -> float | None:
        """The round-trip time of the last answered ping, in seconds."""
        return self._latency

    @property
    def peer(self) -> tuple[str, int]:
        """The remote (host, port)."""
        return self._stream.peer

    # ------------------------------------------------------------------ sending

    async def send(
        self, message: str | bytes | bytearray | memoryview, binary: bool | None = None
    ) -> None:
        """Send one message: a str as text, bytes as binary (``binary=False``: as text,
        which must then be UTF-8). Raises :class:`~sansnet.ConnectionClosed` if the
        socket is closed, :class:`~sansnet.InvalidArgument` (a ``TypeError`` and a
        ``ValueError``) for a message that is neither str nor bytes, or has no UTF-8
        form (a str with a lone surrogate; bytes with ``binary=False`` that are not
        UTF-8); the socket stays usable."""
        conn = self._conn
        text: str | None = None
        data: bytes | bytearray | memoryview = b""
        if isinstance(message, str):
            if binary:
                data = _utf8(message, "A message sent with binary=True")
            else:
                text = message
        elif isinstance(message, (bytes, bytearray, memoryview)):
            if binary is False:
                try:
                    text = bytes(message).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidArgument(
                        f"binary=False needs UTF-8 bytes; byte {exc.start} is not."
                    ) from None
            else:
                data = message
        else:
            raise InvalidArgument(f"send() takes str or bytes, not {type(message).__name__}.")
        if conn.state is OPEN and not self._messages and not self._read_lock.locked():
            # Nobody is reading, and the peer has sent something: take it in first
            # (one message ahead at most), so that a close frame waiting there closes
            # this socket and completes the handshake instead of the message going
            # nowhere. What was read already (with the last message, or with the
            # handshake's answer) is parsed here, without the lock: nobody else can
            # read before this returns, nor before the lock is taken (fast_acquire).
            first = conn.next_event(defer_failure=True) if conn.input_pending else None
            if first is not None and self._took(first):
                # A message queued (one ahead: enough) or a pong: the pump would stop
                # there. Taken before any await: a send cancelled from here on does not
                # lose it. A pong the engine owes goes out with our message.
                self._notify()
            elif first is not None or self._stream.is_readable():
                # (A close frame, if first is one, is lost if the lock's cancellation
                # check raises; the engine is closed then, and the next reader finishes.)
                try:
                    async with self._read_lock:
                        await self._pump(wait=False, first=first)
                finally:
                    self._notify()  # a close() or ping() may wait for the read lock
        # Room first (asyncio's transport takes a write whole, then waits for the peer):
        # a send given up while it waits here has framed nothing, so it leaves nothing
        # behind; one given up later has its message framed, and delivered whole.
        if conn.state is not OPEN:  # closing: raise now, not once the transport drains
            raise self._closed_error()
        await self._stream.wait_writable()
        if conn.state is not OPEN:
            raise self._closed_error()
        if text is None:
            conn.send_binary(data)
        else:
            try:
                conn.send_text(text)  # checks the text has a UTF-8 form, changes nothing if not
            except LocalProtocolError as exc:  # a lone surrogate
                raise InvalidArgument(str(exc)) from None
        await self._flush()

    def _closed_error(self) -> ConnectionClosed:
        code = self._conn.close_code
        return ConnectionClosed(
            f"The WebSocket is closed (code {code}); no more messages can be sent.",
            code=code,
            reason=self._conn.close_reason,
        )

    async def _flush(self) -> None:
        """Write everything the engine has queued. Writers take turns; every queued
        byte is written by the current writer before it lets go.

        A cancelled write may have sent part of a frame on a stream that does not
        write whole (``NetworkStream.writes_whole`` is False: trio's sockets, anyio's
        TLS): nothing can follow a frame cut short, so the connection is then dropped
        (close code 1006, the transport aborted and closed) and the cancellation goes
        on; later sends raise :class:`~sansnet.ConnectionClosed` and ``next()``
        returns None. asyncio and uvloop streams write whole: there a cancelled send
        still delivers its whole message, and the socket stays open. On every backend,
        a send cancelled while it waits for the write lock has its message framed
        already: the next writer sends it whole (a cancelled send may be delivered)."""
        async with self._write_lock:
            data = self._conn.data_to_send()
            if not data and self._write_failed:
                # Our frames, if we queued any, went out in another writer's write, and
                # a write failed: they may be lost with it (a send must not return then).
                raise self._closed_error()
            while data:
                # One write for everything queued (a large message's frames together): a
                # send cancelled while its write waits then loses all of the message or
                # none of it on a stream that writes whole (see the stream's write).
                try:
                    await self._stream.write(data)
                except TransportError:
                    self._write_failed = True
                    self._conn_lost()
                    raise self._closed_error() from None
                except BaseException:
                    if not self._stream.writes_whole:
                        self._write_failed = True
                        await self._drop_connection()
                    raise
                data = self._conn.data_to_send()

    async def _drop_connection(self) -> None:
        """Give up on the connection at once (a frame may be cut short on the wire):
        1006 unless we had sent our close, the transport aborted and closed."""
        self._give_up()
        with anyio.move_on_after(self.close_timeout, shield=True):
            await self._finish()

    async def _flush_soon(self) -> None:
        """Flush from the reading side, unless a writer holds the lock (it will write
        our bytes after its own, so the reader never waits behind a slow send).

        Bounded (see :meth:`_write_timeout`), so that a peer that stops reading (its
        window full, and our buffers) cannot hold the reader, and keepalive with it,
        forever: while open, a write not done when a keepalive pong would be late fails
        the connection as a keepalive timeout does (1011); once closing, one not done
        within ``close_timeout`` aborts it. (Where a cut write leaves part of a frame
        on the wire, :meth:`_flush` has dropped the connection already: 1006.)"""
        if self._write_lock.locked():
            return
        with anyio.move_on_after(self._write_timeout()) as scope:
            try:
                await self._flush()
            except ConnectionClosed:
                pass
        if not scope.cancelled_caught or self._finished.is_set():
            return
        if self._conn.state is OPEN:
            await self._keepalive_timeout()
        else:
            self._give_up()

    def _write_timeout(self) -> float | None:
        """How long the reader may wait to write (a pong, a keepalive ping, the answer
        to the peer's close frame). While open: until a keepalive pong would be late
        (the one we wait for, else the next ping's), and at least ``ping_timeout`` from
        now (a peer that takes a write within it is alive; ``_last_ping`` is old when
        nobody has been reading, so a bound from it alone would be 0 and fail a healthy
        connection); None when keepalive is off or ``ping_timeout`` is None (a ping is
        never late then). Once closing: ``close_timeout``."""
        if self._conn.state is not OPEN:
            return self.close_timeout
        interval, timeout = self.ping_interval, self.ping_timeout
        if interval is None or timeout is None:
            return None
        late = self._last_ping + timeout
        if self._keepalive_payload is None:
            late += interval  # the next ping goes out then, and is late timeout after
        return max(late - now(), timeout)

    # ------------------------------------------------------------------ receiving

    async def next(self) -> str | bytes | None:
        """The next message: str (text) or bytes (binary); None once closed."""
        messages = self._messages
        while True:
            if messages:
                message = messages.popleft()
                if self._change is not None:
                    self._notify()  # a ping() may be waiting to read on
                return message
            if self._finished.is_set():
                return None
            try:
                async with self._read_lock:
                    if messages or self._finished.is_set():
                        continue
                    await self._pump()
            finally:
                if self._change is not None:
                    self._notify()  # we let go of the read lock (maybe cancelled)

    def __aiter__(self) -> WebSocket:
        # The socket is its own iterator, not an async generator: leaving an `async for`
        # by an exception (a send to a peer that has gone, say) leaves no generator for
        # the garbage collector to finalize, which trio reports as a ResourceWarning.
        return self

    async def __anext__(self) -> str | bytes:
        message = await self.next()
        if message is None:
            raise StopAsyncIteration
        return message

    async def _pump(self, *, wait: bool = True, first: Event | None = None) -> None:
        """Read and parse until a message is queued, a pong arrives, or the connection
        is finished; with ``wait=False`` (before a send), also stop when a read would
        have to wait, and leave a protocol violation of the peer for the next reader, so
        that the message being sent goes out before the close that answers it. The
        caller holds the read lock, makes sure no message is queued (one message ahead
        at most), and loops as it needs. Once our close frame is out, the peer's data
        messages are discarded: only its close frame matters then. ``first``: an event
        the caller took from the engine already, handled before any other."""
        conn = self._conn
        while True:
            if first is None:
                event = conn.next_event(defer_failure=not wait)
            else:
                event, first = first, None
            # The event is taken in before the flush (a pong the engine owes) awaits:
            # a caller cancelled there must not lose a message the peer sent.
            took = event is not None and self._took(event)
            if conn.wants_write:
                await self._flush_soon()
            if took:
                return  # a message queued, or a pong a ping() may wait for
            if event is None:
                if conn.state is CLOSED:  # the Closed event was handled elsewhere
                    await self._finish()
                    return
                if not wait and (conn.failure_pending or not self._stream.is_readable()):
                    return  # a violation waits for the next reader, after our send
                if not await self._receive():
                    return
                continue
            if isinstance(event, Closed):
                await self._finish()
                return
            # A message while we are closing: discarded, read on for the peer's close.

    def _took(self, event: Event) -> bool:
        """Take in a message (queued while open) or a pong, without awaiting. True when
        a reader stops there; False for a message discarded because we are closing,
        and for a close frame (the caller finishes)."""
        if isinstance(event, (TextMessage, BinaryMessage)):
            if self._conn.state is OPEN:
                self._messages.append(event.data)
                return True
            return False
        if isinstance(event, Pong):
            self._on_pong(event.payload)
            return True
        return False

    async def _receive(self) -> bool:
        """Read once from the stream into the engine, sending keepalive pings when due.
        False if the connection is finished.

        The read is bounded by the next keepalive step (or, once closing, by
        ``close_timeout``); on trio, while open, that bound is the alarm's instead of
        the read's (see :meth:`_on_alarm`), unless the step is due already."""
        deadline = self._read_deadline()
        left = math.inf if deadline is None else deadline - now()
        alarm = self._alarm
        if deadline is not None and left <= 0:
            grace = self.ping_timeout
            if self._keepalive_payload is None or grace is None:
                # A ping is due: it goes out now, even while the peer keeps sending
                # (then a read never times out: an asyncio read returns what is
                # buffered whatever its timeout).
                return await self._keepalive()
            if left <= -grace:
                # Our pong is late by ping_timeout more: a peer that keeps sending and
                # never answers is dropped here, whatever still waits to be read.
                return await self._keepalive()
            if self._stream.is_readable():
                # Our pong is late, but bytes wait: they are read first, for up to
                # ping_timeout more. The pong may be among them, behind messages the
                # peer sent before our ping (an application that reads slowly).
                # Nothing waiting, the read below times out at once. (A read of its
                # own bound, not the alarm's: the alarm may still hold the deadline
                # just passed, and would take the step at once.)
                left += grace
            alarm = None
        try:
            # asyncio reads up to 256 KiB at a time: taking it whole saves re-slicing.
            if deadline is None:
                data = await self._stream.read(_READ_SIZE)
            elif alarm is not None and self._conn.state is OPEN:
                alarm.arm(deadline)
                self._waiting = True
                try:
                    data = await self._stream.read(_READ_SIZE)
                finally:
                    self._waiting = False
            else:  # asyncio, closing, or a late pong; with nothing waiting for a late
                # pong (left <= 0), on asyncio one turn of the loop: for bytes the
                # kernel holds that the transport has not handed over yet
                data = await self._stream.read(_READ_SIZE, max(0.0, left))
        except ReadTimeout:
            return await self._keepalive()
        except TransportError:
            data = b""
        conn = self._conn
        if conn.eof_received:
            return True  # the connection was dropped while we read (see _flush)
        if data:
            conn.receive_data(data)
        else:
            conn.receive_eof()
        return True

    def _read_deadline(self) -> float | None:
        """Until when to wait for bytes before the next keepalive step (clock time;
        None: no limit). Once closing: ``close_timeout`` from now."""
        if self._conn.state is not OPEN:
            return now() + self.close_timeout
        interval = self.ping_interval
        if interval is None:
            return None
        if self._keepalive_payload is not None and self.ping_timeout is not None:
            return self._last_ping + self.ping_timeout
        return self._last_ping + interval

    async def _on_alarm(self) -> None:
        """The alarm's task (trio), at the deadline a read without a bound of its own
        was armed with: if that read still waits, the step its timeout would have
        taken (:meth:`_keepalive`: a ping; for a late pong, our close frame and the
        stream closed; once closing or finished, which another task may have begun
        while the read waited, the connection given up and the stream closed; a closed
        stream ends the read), then the alarm armed for the next step. If nobody
        waits, nothing: the next read takes the step itself when it is due. Never
        raises (an exception would end the trio run): an unexpected one gives the
        connection up."""
        alarm = self._alarm
        assert alarm is not None
        try:
            if not self._waiting:
                return
            if self._conn.state is OPEN:
                deadline = self._read_deadline()
                if deadline is None:
                    return  # keepalive turned off meanwhile: the read waits as it would
                if deadline > now():
                    alarm.arm(deadline)  # a pong moved it
                    return
            await self._keepalive()
            # Armed again whatever the state: a close() begun meanwhile (while the ping
            # went out) may yet be cut short, and then only the next step (at
            # close_timeout once closing) ends the read.
            deadline = self._read_deadline()
            if self._waiting and deadline is not None:
                alarm.arm(deadline)
        except Exception:  # a defect: never seen
            logger.exception("The WebSocket's keepalive failed; the connection is dropped.")
            self._give_up()
            await self._finish()

    async def _keepalive(self) -> bool:
        conn = self._conn
        if conn.state is not OPEN:
            # The peer did not answer our close frame in time: give up on it.
            self._conn_lost()
            await self._finish()
            return False
        if self._keepalive_payload is not None and self.ping_timeout is not None:
            # The last keepalive ping went unanswered for ping_timeout: the link is dead.
            # (With ping_timeout=None a ping is never late: the next one replaces it.)
            await self._keepalive_timeout()
            return False
        payload = os.urandom(4)
        self._keepalive_payload = payload
        self._last_ping = now()
        conn.send_ping(payload)
        await self._flush_soon()  # bounded: by the time the pong would be late
        return not self._finished.is_set()

    async def _keepalive_timeout(self) -> None:
        """Fail the connection whose keepalive pong is late (or whose ping could not
        even be written: the peer does not read): our close frame (1011) goes out if
        it can within ``close_timeout`` (waiting for a writer that holds the lock, as
        ``close()`` does), then the connection is aborted, not closed gracefully: a
        graceful close would wait for a peer taken for dead to take our last bytes."""
        self._conn.close(1011, "keepalive ping timeout")
        with anyio.move_on_after(self.close_timeout):
            try:
                await self._flush()
            except ConnectionClosed:
                pass
        self._give_up()
        await self._finish()

    def _on_pong(self, payload: bytes) -> None:
        if payload == self._keepalive_payload:
            self._latency = now() - self._last_ping
            self._keepalive_payload = None
            self._last_ping = now()
        waiter = self._pings.pop(payload, None)
        if waiter is not None:
            self._latency = now() - waiter[0]
            self._ping_results[payload] = self._latency
            waiter[1].set()
            self._notify()

    def _notify(self) -> None:
        """Wake the tasks in :meth:`_wait_for_change`."""
        change = self._change
        if change is not None:
            self._change = None
            change.set()

    async def _wait_for_change(self) -> None:
        """Wait until next() takes a message, a reader lets go of the read lock
        (whether it got what it wanted, gave up or was cancelled), a pong arrives or
        the connection is finished: then the caller looks again at whether it may
        read. So close() and ping() never wait on a reader that has stopped reading."""
        change = self._change
        if change is None:
            change = self._change = anyio.Event()
        await change.wait()

    def _conn_lost(self) -> None:
        """The transport is gone: let the engine report 1006 (or keep our own code).
        Messages that had fully arrived (in bytes already read) stay readable, unless
        we were closing."""
        conn = self._conn
        if not conn.eof_received:
            conn.receive_eof()
        while (event := conn.next_event()) is not None:
            if isinstance(event, (TextMessage, BinaryMessage)) and conn.state is OPEN:
                self._messages.append(event.data)
        self._finished.set()
        self._notify()

    async def _finish(self, timeout: float | None = None) -> None:
        """The closing handshake is over: close the transport and wake everyone, within
        ``timeout`` seconds (default ``close_timeout``; ``close()`` passes what is left of
        its own): a peer that has not taken our last bytes by then is aborted, so that
        closing never waits past the user's bound for a peer that does not read.

        When we failed the connection (the peer broke the protocol or sent a message
        too big) the peer may still be sending: closing with its bytes unread would
        reset the connection, and a reset can destroy our close frame before the peer
        reads it (it would see 1006, not our 1009). So first our close frame goes out,
        then our end of the stream (TCP half-close; not under TLS), and what the peer
        still sends is read and dropped until it ends its side, within
        ``close_timeout`` and :data:`_LINGER_LIMIT` bytes, as websockets does."""
        self._finished.set()
        if self._alarm is not None:
            self._alarm.stop()
        for _, event in self._pings.values():
            event.set()
        self._notify()
        if not self._transport_closed:
            self._transport_closed = True
            deadline = now() + (self.close_timeout if timeout is None else timeout)
            if self._close_deadline is not None:  # within close()'s bound, whoever finishes
                deadline = min(deadline, self._close_deadline)
            conn = self._conn
            closed = False  # the flag is set: whatever happens below, the stream closes
            try:
                if conn.error is not None and not conn.eof_received:
                    with anyio.move_on_after(deadline - now()):
                        try:
                            await self._flush()  # our close frame, if a writer had the lock
                        except ConnectionClosed:
                            pass
                        await self._stream.linger(deadline - now(), _LINGER_LIMIT)
                elif conn.wants_write:
                    # Our answer to the peer's close frame, queued while a send() held
                    # the write lock: it goes out after that send's frames (RFC 6455
                    # section 5.5.1: finish the message, then answer), not cut off.
                    with anyio.move_on_after(deadline - now()):
                        try:
                            await self._flush()
                        except ConnectionClosed:
                            pass
                await self._stream.aclose_within(deadline - now())
                closed = True
            finally:
                if not closed:  # cancelled on the way (the caller's scope): cut it now
                    await self._cut()

    # ------------------------------------------------------------------ closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket: send a close frame, wait up to ``close_timeout`` for the
        peer's, then close the connection. ``close_timeout`` bounds the whole of it,
        writing our close frame included (a peer that does not read); when it runs out,
        the connection is aborted, not closed gracefully.

        ``code``: an int from 1000 to 4999 but 1004, 1005, 1006, 1015 and 1016-2999
        (reserved for future versions of the protocol); ``reason``: a str of at most
        123 bytes of UTF-8; else :class:`~sansnet.InvalidArgument` (a ``ValueError``
        and a ``TypeError``), and the socket stays open. A message already taken in
        (one at most: see the module docstring) stays readable with :meth:`next`; the
        data messages read while waiting for the peer's close frame are discarded, so
        that a peer that floods us meanwhile cannot make us hold them. A second call
        raises :class:`~sansnet.ConnectionClosed`."""
        _check_close_arguments(code, reason)
        if self._closed_by_user:
            raise ConnectionClosed(
                f"close() was already called on this WebSocket (code {self.close_code}).",
                code=self.close_code,
                reason=self.close_reason,
            )
        self._closed_by_user = True
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        """Send our close frame and wait for the peer's, both within ``close_timeout``
        (a peer that does not read can hold up the write as well as the answer); on
        timeout, abort the connection rather than close it gracefully."""
        conn = self._conn
        self._close_deadline = now() + self.close_timeout
        try:
            with anyio.move_on_after(self.close_timeout) as scope:
                if conn.state is OPEN:
                    conn.close(code, reason)
                    try:
                        await self._flush()
                    except ConnectionClosed:
                        pass
                await self._wait_closed()
            if scope.cancelled_caught:
                self._give_up()  # the peer never took our close frame, or never answered it
            await self._finish(scope.deadline - now())
        except BaseException:
            # Cut short (the caller's cancellation: `async with` left by a timeout; or a
            # broken connection): the connection is closed now, not left open, and
            # the exception goes on.
            if not self._finished.is_set():
                self._give_up()
                with anyio.CancelScope(shield=True):
                    await self._finish(0)
            raise
        finally:
            # Only while close() runs: one cut short by the caller's own cancel scope must
            # not shorten the close that a later next() or close_quietly() finishes.
            self._close_deadline = None

    async def _close_at_once(self, code: int, reason: str) -> None:
        """Our close frame, written only if the stream takes it whole without waiting
        and no writer holds the line (a frame of its own may be on its way); nobody
        waits for the peer's answer: the caller cuts the connection next
        (``Server._close_web_sockets_at_once``). Never raises."""
        conn = self._conn
        if conn.state is not OPEN or self._write_lock.locked() or not self._stream.writes_whole:
            return  # (a stream that may write a part could leave half a frame)
        conn.close(code, reason)
        with anyio.CancelScope() as scope:
            scope.cancel()  # no wait: a stream that cannot take it at once drops it
            try:
                await self._stream.write(conn.data_to_send())
            except TransportError:
                pass

    async def _cut(self) -> None:
        """Close the connection at once, whatever the caller's cancellation: for a close
        cut short, which must not leave the socket open (nor the peer waiting)."""
        self._stream.abort()
        with anyio.CancelScope(shield=True):
            await self._stream.aclose_within(0)

    def _give_up(self) -> None:
        """The closing handshake did not finish in time: 1006 unless our close was out,
        and abort the transport, so that closing it does not wait for the peer again."""
        self._conn_lost()
        self._stream.abort()

    async def _wait_closed(self) -> None:
        """Until the closing handshake is over: read for everyone (until the peer's
        close frame; its data messages are discarded, our close frame is out) when
        nobody else reads, else wait for whichever comes first, the end or the reader
        letting go of the read lock (then read ourselves)."""
        finished = self._finished
        while not finished.is_set():
            if self._read_lock.locked():
                await self._wait_for_change()
                continue
            try:
                async with self._read_lock:
                    while not finished.is_set():
                        await self._pump()
            finally:
                self._notify()

    async def close_quietly(self, code: int = 1000, reason: str = "") -> None:
        """Close if still open, and wait (up to ``close_timeout``, writing our close
        frame included; then the connection is aborted) until the closing handshake is
        over and the connection closed; never raises for a socket already closed or a
        broken connection. What ``async with`` does at the end of its block, and the
        server when a WebSocket handler returns (1000) or raises (1011). A bad ``code``
        or ``reason`` raises :class:`~sansnet.InvalidArgument`, as for :meth:`close`."""
        _check_close_arguments(code, reason)
        await self._close_quietly(code, reason, by_user=True)

    async def _close_quietly(self, code: int, reason: str, *, by_user: bool) -> None:
        """:meth:`close_quietly` for arguments already checked. ``by_user=False`` (the
        server closing the socket: a graceful stop) does not count as the user's
        close(): a close() after it returns quietly, as after the peer's close."""
        if self._conn.state is OPEN:
            if by_user:
                self._closed_by_user = True
            try:
                await self._close(code, reason)
            except (TransportError, LocalProtocolError, ConnectionClosed):
                pass
        if not self._finished.is_set():
            with anyio.move_on_after(self.close_timeout) as scope:
                await self._wait_closed()
            if scope.cancelled_caught:
                self._give_up()
        if not self._transport_closed:
            self._conn_lost()
            await self._finish()

    async def ping(self, payload: bytes | str | None = None) -> float:
        """Send a ping and wait for its pong; returns the round trip in seconds.
        Waits at most ``ping_timeout`` (then :class:`~sansnet.TimeoutError`).

        ``payload``: bytes, or a str (sent as UTF-8, as websockets does), at most 125
        bytes; None (the default) sends 4 random bytes. A bad payload, or one that
        a ping still waiting for its pong carries, raises
        :class:`~sansnet.InvalidArgument` before anything is sent.

        While it waits it reads for everyone, queueing the messages that come before the
        pong for ``next()``: up to 16 of them or 1 MiB (the first whatever its size),
        after which it reads on only as ``next()`` takes them (TCP holds the peer back).
        So ``ping()`` works from the task that reads, after a ``send()`` whose answer
        is on its way; a peer that sends more than that before its pong needs a task
        in ``next()``."""
        if payload is None:
            payload = os.urandom(4)
        elif isinstance(payload, str):
            payload = _utf8(payload, "A ping payload")
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            payload = bytes(payload)
        else:
            raise InvalidArgument(
                f"ping() takes bytes, a str or None, not {type(payload).__name__}."
            )
        if len(payload) > 125:
            raise InvalidArgument(
                f"A ping payload is at most 125 bytes; this one is {len(payload)}."
            )
        if self._conn.state is not OPEN:
            raise self._closed_error()
        if payload in self._pings:
            raise InvalidArgument("A ping with this payload is already waiting for its pong.")
        event = anyio.Event()
        started = now()
        self._pings[payload] = (started, event)
        try:
            self._conn.send_ping(payload)
            await self._flush()
            finished = self._finished
            messages = self._messages
            with anyio.move_on_after(self.ping_timeout) as scope:
                while not event.is_set() and not finished.is_set():
                    if not _room_for_more(messages) or self._read_lock.locked():
                        # The queue for next() is full, or another task reads: wait for
                        # next() to take a message, the reader to let go of the read
                        # lock, the pong, or the end.
                        await self._wait_for_change()
                        continue
                    try:
                        async with self._read_lock:
                            if (
                                not event.is_set()
                                and not finished.is_set()
                                and _room_for_more(messages)
                            ):
                                await self._pump()
                    finally:
                        self._notify()
        except BaseException:
            # Cancelled (or the link failed): nobody waits for this pong any more. Its
            # payload is free again, and a pong that came is not kept.
            if self._pings.get(payload, (0.0, None))[1] is event:
                del self._pings[payload]
            elif event.is_set():
                self._ping_results.pop(payload, None)
            raise
        if scope.cancelled_caught:
            self._pings.pop(payload, None)
            raise TimeoutError(f"No pong within {self.ping_timeout} s.")
        latency = self._ping_results.pop(payload, None)
        if latency is None:  # woken because the connection closed, not by the pong
            self._pings.pop(payload, None)
            raise self._closed_error()
        return latency

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close_quietly()

    def __repr__(self) -> str:
        state = "open" if self._conn.state is OPEN else f"closed ({self.close_code})"
        return f"<WebSocket {self._stream.description} {state}>"


def _room_for_more(messages: deque[str | bytes]) -> bool:
    """Whether ``ping()`` may read on with ``messages`` waiting for ``next()``."""
    if not messages:
        return True
    return len(messages) < _PING_QUEUE_MESSAGES and (
        sum(len(message) for message in messages) < _PING_QUEUE_BYTES
    )


async def socket(
    url: str,
    *,
    headers: Any = None,
    subprotocols: list[str] | tuple[str, ...] = (),
    compression: bool = True,
    timeout: float | None = 10.0,
    max_message_size: int | None = 16 * MiB,
    max_frame_size: int | None = 16 * MiB,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    close_timeout: float = 10.0,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    backend: Backend = "auto",
    open_stream: Callable[[tuple[str, str, int], float | None], Awaitable[NetworkStream]]
    | None = None,
    unix_socket: str | None = None,
    proxy: str | Proxy | FromEnvironment | None = FROM_ENVIRONMENT,
    trust_env: bool = True,
) -> WebSocket:
    """Open a WebSocket to ``url`` (``ws://``, ``wss://``; ``http://`` and ``https://``
    are accepted as aliases). Lune's ``net.socket``.

    ``timeout`` bounds connecting and the opening handshake. Timeouts are positive,
    finite seconds or None (``close_timeout``: a number only), ``max_message_size`` and
    ``max_frame_size`` an int >= 0 or None; anything else raises
    :class:`~sansnet.InvalidArgument` before connecting. A refused handshake raises
    :class:`~sansnet.HandshakeError` with the server's status and headers; network and
    TLS failures raise :class:`~sansnet.ConnectError`, :class:`~sansnet.TLSError` or
    :class:`~sansnet.ConnectTimeout`. Close the socket when done (or use ``async with``).
    Credentials in the URL (``ws://user:password@host/``) are sent, percent-decoded, as
    ``Authorization: Basic ...`` (as websockets and :func:`~sansnet.request` do) unless
    ``headers`` has an ``Authorization`` field; error messages show no password.
    ``open_stream(origin, timeout)`` replaces the network (as for
    :class:`~sansnet.Client`; sansnet.testing uses it to reach a server in memory).
    ``unix_socket``: connect to this Unix domain socket path instead of the URL's host
    and port (the URL still gives the Host field, the path and the TLS name).
    ``proxy``: reach the server through this proxy (``http://`` or ``https://``: a
    ``CONNECT`` tunnel, as websockets does; ``socks5://``, ``socks5h://``,
    ``socks4a://``), ``None`` for none, or by default the environment (``WS_PROXY`` /
    ``WSS_PROXY``, else ``HTTP_PROXY`` / ``HTTPS_PROXY``, else ``ALL_PROXY``;
    ``NO_PROXY``) unless ``trust_env=False``. A proxy's refusal raises
    :class:`~sansnet.ProxyError`.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"socket() takes a URL string, not {type(url).__name__}.")
    _check_socket_options(
        timeout=timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_message_size=max_message_size,
        max_frame_size=max_frame_size,
    )
    split = split_url(url)
    shown = _masked(url)  # for messages: the URL without its password
    scheme_port = _SCHEMES.get(split.scheme.lower())
    if scheme_port is None:
        raise UnsupportedProtocol(
            f"Unsupported WebSocket URL scheme in {shown!r}: use ws:// or wss://."
        )
    scheme, default_port = scheme_port
    port = checked_port(split, url) or default_port
    # The host's IDNA (ASCII) form, the target percent-encoded (UTF-8), as request().
    host = checked_host(split, url)
    path, query = target_parts(split, url)
    target = path + (f"?{query}" if query else "")
    extra_headers = _header_items(headers)
    # user:password@ goes as Basic credentials (as request() and websockets send them),
    # never in the Host field or the target; an Authorization field given wins.
    credentials = basic_authorization(split.username, split.password)
    if credentials is not None and all(
        name.lower() != "authorization" for name, _ in extra_headers
    ):
        extra_headers.append(("Authorization", credentials))
    handshake = ClientHandshake(
        subprotocols=subprotocols,
        compression=compression,
        extra_headers=extra_headers,
    )
    deadline = None if timeout is None else now() + timeout
    context: ssl.SSLContext | None = client_context(verify, cert) if scheme == "wss" else None
    chosen: Proxy | None
    if proxy is FROM_ENVIRONMENT:
        environment = environment_proxies(
            os.environ, trust_env=trust_env, network=open_stream is None and unix_socket is None
        )
        chosen = environment.select(scheme, host, port) if environment is not None else None
    else:
        chosen = given_proxy(proxy, unix_socket)
    if open_stream is not None:
        stream = await open_stream((scheme, host, port), timeout)
    elif unix_socket is not None:
        stream = await open_unix_stream(
            unix_socket, ssl_context=context, server_hostname=host, timeout=timeout, backend=backend
        )
    elif chosen is not None:
        stream = await open_tunnel(
            chosen,
            host,
            port,
            ssl_context=context,
            timeout=timeout,
            backend=backend,
            proxy_context=client_context(verify, cert) if chosen.scheme == "https" else None,
        )
    else:
        stream = await open_tcp_stream(
            host, port, ssl_context=context, timeout=timeout, backend=backend
        )
    try:
        protocol = ClientConnection(host, port, scheme=scheme)
        protocol.send_request("GET", target, handshake.request_headers())
        await stream.write(protocol.data_to_send(), _left(deadline))
        response = await _read_response(stream, protocol, deadline, shown)
        if response.status_code != 101:
            body = await _read_some_body(stream, protocol, deadline)
            handshake.check(response, body)
        agreed = handshake.check(response)
    except BaseException:
        await stream.aclose()
        raise
    engine = engine_after_upgrade(
        "client", agreed, protocol, max_message_size=max_message_size, max_frame_size=max_frame_size
    )
    return WebSocket(
        stream,
        engine,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
    )


def _check_socket_options(
    *,
    timeout: object,
    ping_interval: object,
    ping_timeout: object,
    close_timeout: object,
    max_message_size: object,
    max_frame_size: object,
) -> None:
    """Refuse socket()'s bad timeouts and sizes before any I/O, by ServeConfig's rules:
    timeouts positive and finite (None: no limit, no pings; close_timeout a number
    only), sizes the engine's (an int >= 0, or None)."""
    timeouts = {
        "timeout": timeout,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "close_timeout": close_timeout,
    }
    for name, value in timeouts.items():
        check_seconds(f"socket(): {name}", value, none=name != "close_timeout")
    checked_size("socket(): max_message_size", max_message_size, none=True)
    checked_size("socket(): max_frame_size", max_frame_size, none=True)


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} has no UTF-8 form: a lone surrogate at index {exc.start}."
        ) from None


def _check_close_arguments(code: object, reason: object) -> None:
    """Raise InvalidArgument unless we may close with ``code`` and ``reason``."""
    if not isinstance(code, int) or isinstance(code, bool):
        raise InvalidArgument(f"A close code is an int from 1000 to 4999, not {code!r}.")
    try:
        check_close_code(code)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if not isinstance(reason, str):
        raise InvalidArgument(f"A close reason is a str, not {type(reason).__name__}.")
    if len(_utf8(reason, "The close reason")) > 123:
        raise InvalidArgument("A close reason is at most 123 bytes of UTF-8.")


def engine_after_upgrade(
    role: Literal["client", "server"],
    agreed: Handshake,
    http: ClientConnection | ServerConnection,
    *,
    max_message_size: int | None,
    max_frame_size: int | None,
) -> WebSocketConnection:
    """The frame engine for a connection whose handshake ``agreed`` on its terms,
    seeded with what the HTTP connection ``http`` received past the handshake (the
    peer's first frames may have come with it), as hypercorn's ws_stream does."""
    engine = WebSocketConnection(
        role,
        deflate=agreed.deflate,
        max_message_size=max_message_size,
        max_frame_size=max_frame_size,
        subprotocol=agreed.subprotocol,
    )
    data, eof = http.trailing_data
    if data:
        engine.receive_data(data)
    if eof:
        engine.receive_eof()
    return engine


def _header_items(headers: Any) -> list[tuple[str, str]]:
    if headers is None:
        return []
    from .protocol import Headers

    return Headers(headers).raw_items()


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - now()
    if left <= 0:
        raise TimeoutError("The WebSocket opening handshake did not finish in time.")
    return left


async def _read_response(
    stream: NetworkStream, protocol: ClientConnection, deadline: float | None, url: str
) -> ResponseHead:
    while True:
        try:
            event = await receive_event(stream, protocol, lambda: _left(deadline))
        except RemoteProtocolError as exc:
            raise HandshakeError(
                f"The server at {url} did not answer the WebSocket handshake: {exc}"
            ) from exc
        except ReadTimeout:
            raise TimeoutError(
                f"The server at {url} did not answer the WebSocket handshake in time."
            ) from None
        if isinstance(event, ResponseHead):
            return event
        if isinstance(event, InformationalResponse):
            continue  # an interim 1xx (103 Early Hints): the final answer follows
        raise HandshakeError(
            f"Unexpected {event!r} during the WebSocket handshake."
        )  # pragma: no cover


async def _read_some_body(
    stream: NetworkStream, protocol: ClientConnection, deadline: float | None
) -> bytes:
    """Up to :data:`_BODY_SAMPLE` bytes of a refused handshake's body, for the
    HandshakeError."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < _BODY_SAMPLE:
            event = await receive_event(stream, protocol, lambda: _left(deadline))
            if not isinstance(event, Data):
                break  # EndOfMessage, or the connection ended
            parts.append(event.data)
            size += len(event.data)
    except (RemoteProtocolError, TransportError, TimeoutError):
        pass
    return b"".join(parts)[:_BODY_SAMPLE]
