"""What every listening server shares: bind, report a handle, serve until stopped, drain.

:class:`ListeningServer` is the lifecycle of :class:`sansnet.Server` (HTTP and WebSocket)
and of :class:`sansnet.tcp.TcpServer` (raw byte streams). A subclass says what to do with
one connection (:meth:`ListeningServer._serve_one`) and, if it has more to do than wait,
how to wind its connections down at stop (:meth:`ListeningServer._drain`).

Invariants (tests/server/test_serve_api.py and tests/tcp/test_tcp_serve.py check them):

* ``run`` reports the handle only once the socket is bound, so a client may connect as
  soon as ``async with serve(...)`` or ``task_group.start(server.run)`` returns;
* after ``stop()`` returns, nothing listens on the port and every connection is closed
  (those still busy after ``drain_timeout`` are cancelled; those still in their TLS
  handshake are closed by the listener at once, see
  :class:`~sansnet.transport.listen.Listener`); it returns within about
  ``drain_timeout``: a connection closed during the stop gives its peer only what is left
  of it to take our last bytes (:meth:`ListeningServer._close_stream`), and one whose
  close began before the stop and still waits for its peer when the drain ends is
  aborted (:meth:`ListeningServer._end_connection`);
* ``stop()`` called from one of this server's own connection tasks starts the stop and
  returns at once: waiting would wait for that very task.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import anyio
import anyio.abc

from .errors import InvalidArgument, ServerStoppedError, UsageError
from .transport.connect import Backend
from .transport.listen import Listener, listen_tcp, listen_unix
from .transport.streams import NetworkStream

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "ListeningServer",
    "ServeHandle",
    "is_async_callable",
    "serving",
    "serving_as",
    "unwrap_group",
]


def is_async_callable(handler: Callable[..., Any] | None) -> bool:
    """True for an ``async def`` function or an object with an ``async def __call__``."""
    if handler is None:
        return False
    if inspect.iscoroutinefunction(handler):
        return True
    call = type(handler).__dict__.get("__call__")  # an object with an async __call__
    return not inspect.isfunction(handler) and inspect.iscoroutinefunction(call)


class ServeHandle:
    """A running server (Lune's ServeHandle): ``ip`` and ``port`` of the bound socket
    (port 0 asked -> the port the OS chose), ``url``, and :meth:`stop`. A host name
    that resolves to several addresses (``localhost``: 127.0.0.1 and ::1) has them all
    in ``addresses``, on one port; ``ip`` is the first of them. On a Unix
    socket, ``ip`` is its path, ``port`` 0 and ``url`` ``http+unix://`` and the
    percent-encoded path (the form requests-unixsocket and HTTPie use; a byte of the
    path that is not UTF-8 is written ``%XX`` too)."""

    def __init__(self, server: ListeningServer, addresses: list[tuple[str, int]]) -> None:
        self._server = server
        self.addresses = addresses
        self.ip, self.port = addresses[0]
        if server.uds is not None:  # ip is the socket's path, port 0
            self.url = f"{server.scheme}+unix://{quote(self.ip, safe='', errors='surrogateescape')}"
        else:
            host = f"[{self.ip}]" if ":" in self.ip else self.ip
            self.url = f"{server.scheme}://{host}:{self.port}"

    @property
    def stopped(self) -> bool:
        return self._server.stopping

    async def stop(self) -> None:
        """Stop gracefully: stop accepting at once, let in-flight requests finish
        (within ``drain_timeout``), close connections with no request in progress (idle
        keep-alive ones, and those partway through a request head) at once, close
        WebSockets with 1001. Returns when every connection is closed and the port is free,
        within ``drain_timeout`` (plus a moment): a connection closed during the stop gives
        a peer that does not read only what is left of it to take our last bytes. A
        second call raises :class:`~sansnet.ServerStoppedError`.

        Called from one of this server's own handlers (a script stopping its server
        from a request, as Lune scripts do), it starts the same stop and returns at
        once: the stop cannot finish while the handler that asked for it still runs.
        That request is answered (with ``Connection: close``) when the handler returns,
        then the server finishes stopping; ``async with serve(...)`` exits after it."""
        await self._server.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}{' stopped' if self.stopped else ''}>"


# The server whose connection the current task serves (handlers run in that task):
# stop() called from a handler must not wait for its own connection to end.
_SERVING: contextvars.ContextVar[ListeningServer | None] = contextvars.ContextVar(
    "sansnet_serving", default=None
)


def serving() -> ListeningServer | None:
    """The server whose connection the caller's task serves (None outside a handler)."""
    return _SERVING.get()


@contextlib.contextmanager
def serving_as(server: ListeningServer | None) -> Iterator[None]:
    """Count the code inside as run by a handler of ``server``: how a plain handler run
    in a worker thread keeps its server's mark, so that its ``stop()`` does not wait."""
    token = _SERVING.set(server)
    try:
        yield
    finally:
        _SERVING.reset(token)


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error inside nested exception groups (a failed bind, say), or the
    group itself when there are several."""
    errors: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            errors.append(error)

    collect(group)
    real = [error for error in errors if not isinstance(error, anyio.get_cancelled_exc_class())]
    return real[0] if len(real) == 1 else group


class ListeningServer:
    """A server not yet running. Use ``async with server as handle`` or
    ``handle = await task_group.start(server.run)``.

    Subclasses implement :meth:`_serve_one` and may override :meth:`_drain`; a
    connection they counted with :meth:`_connection_started` ends with
    :meth:`_end_connection`, which closes its stream and then counts it ended.
    """

    handle_class: type[ServeHandle] = ServeHandle

    def __init__(
        self,
        port: int,
        *,
        host: str,
        ssl_context: ssl.SSLContext | None,
        backend: Backend,
        drain_timeout: float,
        half_close: bool = False,
        uds: str | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidArgument(f"port must be an int from 0 to 65535, not {port!r}.")
        self.port = port
        self._host = host
        self._ssl = ssl_context
        self._backend: Backend = backend
        self._drain_timeout = drain_timeout
        self._half_close = half_close
        self.uds = uds
        # Set by sansnet.workers before run(): listen with SO_REUSEPORT, or on a socket
        # the supervisor bound and passed down.
        self.reuse_port = False
        self.inherited_socket: socket.socket | None = None
        self._connections = 0
        # The streams of counted connections, and of refusals being closed, until closed:
        # those left when a stop's drain ends are aborted (see _run).
        self._streams: set[NetworkStream] = set()
        self._all_closed: anyio.Event | None = None  # set when the last connection ends
        self._stopping = False
        self._drain_deadline: float | None = None  # set by stop(): drain_timeout from then
        self._stop_requested: anyio.Event | None = None
        self._finished: anyio.Event | None = None
        self._listener: Listener | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._cm_group: anyio.abc.TaskGroup | None = None
        self._handle: ServeHandle | None = None

    @property
    def scheme(self) -> str:
        """The scheme of the handle's ``url``."""
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        """True once stop() was called (or the server ended)."""
        return self._stopping

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report the handle through ``task_status``, and serve until the
        handle's ``stop()``. Raises :class:`~sansnet.BindError` if the address cannot be
        bound."""
        if self._handle is not None:
            raise UsageError("This server is already running; call serve() again for another.")
        self._stop_requested = anyio.Event()
        self._finished = anyio.Event()
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group_error:
            raise unwrap_group(group_error) from None

    async def _run(self, task_status: anyio.abc.TaskStatus[Any]) -> None:
        assert self._stop_requested is not None
        assert self._finished is not None
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                if self.uds is not None:
                    self._listener = await listen_unix(
                        self.uds,
                        self._serve_connection,
                        group,
                        ssl_context=self._ssl,
                        backend=self._backend,
                        half_close=self._half_close,
                    )
                else:
                    self._listener = await listen_tcp(
                        self._host,
                        self.port,
                        self._serve_connection,
                        group,
                        ssl_context=self._ssl,
                        backend=self._backend,
                        half_close=self._half_close,
                        reuse_port=self.reuse_port,
                        sock=self.inherited_socket,
                    )
                self._handle = self.handle_class(self, self._listener.addresses)
                task_status.started(self._handle)
                await self._stop_requested.wait()
                await self._drain()
                group.cancel_scope.cancel()
                # What is still open outlived the drain: a handler about to be cancelled,
                # or a close waiting for its peer, begun before the stop (by the server
                # or by a TCP handler closing its own stream), which cancelling would not
                # end (a close's wait is shielded). Aborting ends both at once.
                for stream in list(self._streams):
                    stream.abort()
        finally:
            self._stopping = True
            if self._listener is not None:
                await self._listener.close()
            self._finished.set()

    async def __aenter__(self) -> Any:
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            handle = await group.start(self.run)
        except BaseException as exc:
            try:
                await group.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group_error:
                raise unwrap_group(group_error) from None
            raise
        self._cm_group = group
        return handle

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        if not self._stopping:
            await self.stop()
        group = self._cm_group
        assert group is not None
        return await group.__aexit__(*exc_info)

    async def stop(self) -> None:
        await self.start_stop()
        if _SERVING.get() is self:
            return  # from our own handler: waiting would wait for this very connection
        assert self._finished is not None
        with anyio.CancelScope(shield=True):
            await self._finished.wait()

    async def start_stop(self) -> None:
        """Begin a graceful stop and return without waiting for it to finish: stop
        accepting and let :meth:`run` drain. What :meth:`stop` does first; called alone
        by a caller that must not wait (a handler of this server running in a worker
        thread, see :mod:`sansnet.blocking`). Raises
        :class:`~sansnet.ServerStoppedError` if the server is already stopping."""
        if self._stopping:
            where = self._handle.url if self._handle else f"port {self.port}"
            raise ServerStoppedError(f"The server at {where} is already stopped.")
        self._drain_deadline = anyio.current_time() + self._drain_timeout
        self._stopping = True
        if self._listener is not None:
            await self._listener.close()
        assert self._stop_requested is not None
        self._stop_requested.set()

    async def _drain(self) -> None:
        """Graceful stop: wait up to ``drain_timeout`` for the connections still open
        to end; what is left is then cancelled. Subclasses that can hurry their
        connections along (close idle ones) do so first, then call this."""
        if self._connections:
            self._all_closed = anyio.Event()
            with anyio.CancelScope(deadline=self._deadline()):
                await self._all_closed.wait()

    def _deadline(self) -> float:
        """When the drain ends: ``drain_timeout`` after stop() was called (or after the
        server began to stop otherwise: its run was cancelled)."""
        if self._drain_deadline is None:
            self._drain_deadline = anyio.current_time() + self._drain_timeout
        return self._drain_deadline

    def _time_left(self) -> float:
        """Once the server is stopping, what is left of ``drain_timeout`` (maybe less
        than nothing): a connection closed now gives its peer that long to take our last
        bytes, then is aborted, not the seconds
        :meth:`~sansnet.transport.streams.NetworkStream.aclose` would wait, for stop()
        returns only when every connection is closed."""
        return self._deadline() - anyio.current_time()

    async def _close_stream(self, stream: NetworkStream) -> None:
        """Close a connection's stream once the server is stopping, within
        :meth:`_time_left`."""
        await stream.aclose_within(self._time_left())

    async def _close_ended(
        self,
        stream: NetworkStream,
        close: Callable[[], Awaitable[None]],
        close_within: Callable[[float], Awaitable[None]],
    ) -> None:
        """Close the stream of a connection that ended. While the server runs,
        ``close()``, which may wait up to :data:`~sansnet.transport.streams.CLOSE_WAIT`
        for the peer to take our last bytes; a close still waiting when a stop's drain
        ends is aborted (:meth:`_run`), so stop() keeps to ``drain_timeout``. Once the
        server is stopping, ``close_within(what is left of drain_timeout)``.
        ``close`` and ``close_within`` close ``stream`` (or what wraps it)."""
        self._streams.add(stream)  # (already there for a counted connection)
        try:
            if self._stopping:
                await close_within(self._time_left())
            else:
                await close()
        finally:
            self._streams.discard(stream)

    async def _end_connection(
        self,
        stream: NetworkStream,
        close: Callable[[], Awaitable[None]],
        close_within: Callable[[float], Awaitable[None]],
    ) -> None:
        """The end of a connection counted with :meth:`_connection_started`: close its
        stream (:meth:`_close_ended`), then count it ended. The drain waits for the
        close too: a connection is open until its socket is."""
        try:
            await self._close_ended(stream, close, close_within)
        finally:
            self._connection_ended()

    def _connection_started(self, stream: NetworkStream) -> None:
        """Count a connection open (stop() waits for it); end it with
        :meth:`_end_connection`."""
        self._connections += 1
        self._streams.add(stream)

    def _connection_ended(self) -> None:
        self._connections -= 1
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    # ---------------------------------------------------------------- one connection

    async def serve_stream(self, stream: NetworkStream) -> None:
        """Serve one connection that is already open, until it ends: how a custom
        transport (or :mod:`sansnet.testing`, over memory) hands connections to this
        server without a listening socket. Closes ``stream`` at the end."""
        await self._serve_connection(stream)

    async def _serve_connection(self, stream: NetworkStream) -> None:
        serving = _SERVING.set(self)
        try:
            await self._serve_one(stream)
        finally:
            _SERVING.reset(serving)

    async def _serve_one(self, stream: NetworkStream) -> None:
        raise NotImplementedError
