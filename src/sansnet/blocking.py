"""The ``net`` API without ``await``: for scripts, notebooks and the command line.

Same names as :mod:`sansnet`, called like plain functions::

    from sansnet import blocking as net

    response = net.request("https://example.com/")      # connections stay pooled
    handle = net.serve(8080, lambda request: "hi")       # returns at once; serves in the background
    ws = net.socket("ws://127.0.0.1:8080/")              # ws.send(...), ws.next(), ws.close()
    handle.stop()

Lune 0.10's groupings are here too: ``net.http.request``, ``net.http.serve``,
``net.ws.connect`` and ``net.tcp.connect`` / ``net.tcp.serve`` (a blocking
:class:`BlockingTcpStream`; a plain ``def`` TCP handler runs in a worker thread).

One event loop runs in a background thread (anyio's blocking portal on asyncio), started
on the first call and reused by every later call from any thread, so connection pools
survive between calls. It is shut down when the interpreter exits, closing the TCP
streams, WebSockets, streamed responses and pooled connections still open and stopping
servers still running. Calling these functions, or the methods of what they return,
from inside a running event loop (also from an ``async def`` handler running on the
background loop) raises :class:`~sansnet.UsageError` (a ``RuntimeError``): there, await
the functions of :mod:`sansnet` instead.

An interrupted call cancels its task on the loop: each call runs as a task there while
the caller's thread waits for it, and an exception raised in that thread during the
wait (``KeyboardInterrupt`` from Ctrl-C, or one raised by a signal handler) cancels the
task, waits a moment (at most a few seconds) for it to end, and then reaches the caller
unchanged, as with httpx's sync client. So an interrupted ``request()`` or ``stream()``
has closed its connection and freed its pool slot (the request does not run on to
completion after the caller gave up); an interrupted read of a streamed body, a TCP
stream or a WebSocket is no longer waiting (what arrives next goes to the next read;
leaving a ``stream()`` block then closes the connection); an interrupted ``socket()``,
``tcp.connect()`` or ``serve()`` leaves nothing open behind. An interrupted ``stop()``
is the exception: the server still stops (it stopped accepting at once) and drains in
the background, and interpreter exit waits for it; only the wait is given up.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal

from . import client as _client
from . import server as _server
from . import tcp as _tcp
from . import websocket as _websocket
from ._lifecycle import ListeningServer, is_async_callable, serving, serving_as
from .client import FetchParams, FetchResponse, StreamingResponse
from .codecs import json_decode, json_encode, url_decode, url_encode
from .errors import (
    ConnectionClosed,
    InvalidArgument,
    NetError,
    ReadError,
    ReadTimeout,
    ServerStoppedError,
    UsageError,
    WriteError,
)
from .models import ServeRequest, ServeResponse
from .server import ServeConfig
from .transport.streams import READ_SIZE

__all__ = [
    "BlockingServeHandle",
    "BlockingStreamingResponse",
    "BlockingTcpStream",
    "BlockingWebSocket",
    "FetchResponse",
    "ServeConfig",
    "ServeRequest",
    "ServeResponse",
    "http",
    "json_decode",
    "json_encode",
    "request",
    "serve",
    "shutdown",
    "socket",
    "stream",
    "tcp",
    "url_decode",
    "url_encode",
    "ws",
]

T = TypeVar("T")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_thread: threading.Thread | None = None
_servers: set[BlockingServeHandle] = set()
# The streams, sockets and streamed responses open on the current loop, which
# shutdown() closes.
_open: weakref.WeakSet[_Closable] = weakref.WeakSet()


def _check_not_in_event_loop() -> None:
    """Raise UsageError if this thread runs an event loop, which a blocking call would
    block (and, on the background loop's own thread, deadlock). Called by every blocking
    function and method, so it must stay cheap: no exception when all is well."""
    if asyncio._get_running_loop() is not None:
        if threading.current_thread().name == _THREAD_NAME:
            raise UsageError(
                "sansnet.blocking was called on its own event loop's thread (from an async "
                "def handler or callback running there), where it would wait for itself; "
                "await the functions of sansnet (sansnet.request, ...) there, or make the "
                "handler a plain def (it then runs in a worker thread)."
            )
        raise UsageError(
            "sansnet.blocking was called from inside a running event loop, which it would "
            "block; await the functions of sansnet (sansnet.request, ...) instead."
        )
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        raise UsageError(
            "sansnet.blocking was called from inside a running trio event loop, which it "
            "would block; await the functions of sansnet instead."
        )


_THREAD_NAME = "sansnet-blocking"


def _start() -> tuple[BlockingPortal, threading.Thread]:
    """Run an event loop with a blocking portal in a daemon thread (so interpreter exit
    never waits for it; :func:`shutdown` stops it cleanly from ``atexit``)."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        # This loop's default client is closed here, not by the async generator that
        # closes it on other loops (see _client._own_default_client).
        client = _client.Client()
        _client._own_default_client(client)
        try:
            async with BlockingPortal() as new_portal:
                holder["portal"] = new_portal
                ready.set()
                await new_portal.sleep_until_stopped()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def run() -> None:
        try:
            anyio.run(main)
        except BaseException as exc:  # pragma: no cover - reported to the caller below
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name=_THREAD_NAME, daemon=True)
    thread.start()
    ready.wait()
    if "error" in holder:  # pragma: no cover
        raise RuntimeError("sansnet.blocking could not start its event loop.") from holder["error"]
    return holder["portal"], thread


def portal() -> BlockingPortal:
    """The background event loop every blocking call runs on (started on first use)."""
    global _portal, _thread
    _check_not_in_event_loop()
    current = _portal
    if current is not None:
        return current
    with _lock:
        if _portal is None:
            _portal, _thread = _start()
        return _portal


# How long an interrupted call waits for its cancelled task to end before the
# interrupt reaches the caller (cancelling a request closes its socket at once).
_CANCEL_WAIT = 5.0


class _Abandoned(Exception):
    """Ends a task whose caller gave up waiting (nobody reads it)."""


class _Cancellable:
    """A task on the loop that the caller's thread can cancel, also before it started:
    ``run`` runs ``function`` in a cancel scope of its own, which :meth:`cancel` (from
    the caller's thread) cancels on the loop."""

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self.finished = threading.Event()  # set when run() ends, however it ends

    async def run(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            with anyio.CancelScope() as self._scope:
                if self._cancelled:  # cancelled before it started
                    self._scope.cancel()
                return await function(*args, **kwargs)
            raise _Abandoned  # cancelled by cancel(): the scope swallowed the cancellation
        finally:
            self.finished.set()

    def _cancel_on_the_loop(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    def cancel(self, portal: BlockingPortal) -> None:
        """From the caller's thread: cancel the task and wait (at most ``_CANCEL_WAIT``
        seconds) for it to end. Nothing to do once it ended (or the loop stopped)."""
        if self.finished.is_set():
            return
        try:
            portal.start_task_soon(self._cancel_on_the_loop)
        except RuntimeError:  # the portal is not running: shutdown() cancelled everything
            return
        self.finished.wait(_CANCEL_WAIT)


def _cut_by_shutdown(portal: BlockingPortal, exc: BaseException) -> bool:
    """Whether ``exc`` is what a call on ``portal`` gets once :func:`shutdown` stopped
    that loop under it (or before it started): its task or future cancelled, or anyio's
    "This portal is not running". shutdown() forgets the portal before it stops it."""
    if portal is _portal:
        return False
    if isinstance(exc, CancelledError | asyncio.CancelledError):
        return True
    return isinstance(exc, RuntimeError) and not isinstance(exc, NetError)


def _cut_short() -> UsageError:
    return UsageError(
        "blocking.shutdown() was called while this call ran: it closed the connections "
        "and stopped the event loop the call ran on. Call again to start a new loop."
    )


def _wait_for(
    portal: BlockingPortal,
    function: Callable[..., Awaitable[T]],
    *args: Any,
    discard: Callable[[T], Awaitable[Any]] | None = None,
    gone: Callable[[], Exception] = _cut_short,
) -> T:
    """``function(*args)`` as a task on the loop; its result, or its exception. An
    exception raised in the caller's thread while it waits (KeyboardInterrupt, one from
    a signal handler) cancels the task, waits a moment for it to end and propagates
    unchanged; if the task had its result already, ``discard(result)`` (run on the loop)
    closes what nobody will. If :func:`shutdown` stopped the loop under the call, it
    raises ``gone()`` (not a bare ``CancelledError``)."""
    task = _Cancellable()
    future: Future[T] | None = None
    try:
        future = portal.start_task_soon(task.run, function, *args)
        return future.result()
    except BaseException as exc:
        if _cut_by_shutdown(portal, exc):
            raise gone() from None
        task.cancel(portal)
        if (  # it had its result already: close what nobody will use
            discard is not None
            and future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            try:
                portal.start_task_soon(discard, future.result()).result(_CANCEL_WAIT)
            except Exception:  # best effort: the caller's exception is the one to see
                pass
        raise


def _call(function: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    bound: Callable[[], Coroutine[Any, Any, T]] = functools.partial(function, *args, **kwargs)
    return _wait_for(portal(), bound)


def shutdown() -> None:
    """Close the TCP streams, WebSockets (with code 1001) and streamed responses still
    open, stop servers still running (gracefully), close pooled connections and stop
    the background event loop. Called at interpreter exit; a later call to any function
    starts a new loop. A stream or socket it closed acts as one closed by its
    ``close()``; reading a streamed response it closed raises
    :class:`~sansnet.ReadError`, and its ``with`` block ends quietly. A call still
    running in another thread ends at once: a function raises
    :class:`~sansnet.UsageError` (saying shutdown() was called), a method of a stream,
    socket or streamed response acts as on a closed one, and ``stop()`` returns."""
    global _portal, _thread
    if _portal is not None:  # else nothing to shut down (also in a forked child)
        _check_not_in_event_loop()
    with _lock:
        current, thread = _portal, _thread
        _portal = _thread = None
        still_open = list(_open)
        _open.clear()
    if current is None:
        return
    for item in still_open:
        item._gone = True  # from now on without the loop: it is closed
    try:
        current.call(_close_all, still_open)
    except Exception:  # pragma: no cover - closing at exit is best effort
        pass
    for handle in list(_servers):
        try:
            if not handle.stopped:
                handle._stop_on(current)
            else:  # stopping since a stop() from one of its handlers: let it drain
                handle._done.result(timeout=60)
        except Exception:  # pragma: no cover - stopping at exit is best effort
            pass
    _servers.clear()
    current.call(current.stop, True)
    if thread is not None:
        thread.join(30)


atexit.register(shutdown)


def _forget_the_parents_loop() -> None:
    """In a child forked after a blocking call: the background loop's thread was not
    copied, so a call on its portal (and shutdown() at the child's exit) would wait
    forever. Forget that loop: the child's next call starts one of its own. What the
    child inherited acts as shutdown() leaves it: servers stopped (they serve in the
    parent), streams and sockets closed (their connections are the parent's)."""
    global _lock, _portal, _thread
    _lock = threading.Lock()  # another thread may have held it at fork time
    _portal = _thread = None
    for item in list(_open):
        item._gone = True
    _open.clear()
    for handle in list(_servers):
        handle._orphaned = True
    _servers.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_the_parents_loop)


async def _close_all(items: list[_Closable]) -> None:
    async with anyio.create_task_group() as group:
        for item in items:
            group.start_soon(item._close_at_shutdown)


class _OnTheLoop:
    """What runs its calls on the background loop until :func:`shutdown` closes it: it
    then sets ``_gone``, and every call raises what ``error`` makes (the object acts
    closed, rather than raise "this portal is not running")."""

    _portal: BlockingPortal
    _gone: bool

    def _attach(self, portal: BlockingPortal) -> None:
        self._portal = portal
        self._gone = False  # shutdown() closed it and stopped its loop
        with _lock:
            _open.add(self)  # type: ignore[arg-type]  # each subclass is a _Closable

    def _on_loop(
        self, error: Callable[[], Exception], function: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        """``function(*args)`` on the loop; ``error()`` raised once shutdown() ran."""
        _check_not_in_event_loop()
        if self._gone:
            raise error()
        return _wait_for(self._portal, function, *args, gone=error)


# ============================================================================ requests


def request(url_or_params: str | FetchParams, **options: Any) -> FetchResponse:
    """:func:`sansnet.request` without ``await``: send a request, return the whole
    response. Never raises for an HTTP status."""
    return _call(_client.request, url_or_params, **options)


class BlockingStreamingResponse(_OnTheLoop):
    """A response whose body is read piece by piece (see :func:`stream`). Once
    :func:`shutdown` closed it, reading it raises :class:`~sansnet.ReadError`."""

    def __init__(self, response: StreamingResponse, portal: BlockingPortal) -> None:
        self._response = response
        self._attach(portal)
        self.status_code = response.status_code
        self.status_message = response.status_message
        self.headers = response.headers
        self.url = response.url
        self.ok = response.ok

    def _run(self, function: Callable[[], Awaitable[T]]) -> T:
        """``function()`` on the loop; ReadError once shutdown() closed this response."""
        return self._on_loop(self._gone_error, function)

    def _gone_error(self) -> ReadError:
        return ReadError(
            f"The response from {self.url} is closed: blocking.shutdown() closed its "
            "connection and stopped its event loop; request it again."
        )

    async def _close_at_shutdown(self) -> None:
        try:
            await self._response.aclose(complete=False)
        except Exception:  # pragma: no cover - closing at exit is best effort
            pass

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, decoded per Content-Encoding, in pieces of at most 64 KiB."""
        _check_not_in_event_loop()
        if self._gone:  # before aiter_bytes(), which says "read it inside the block"
            raise self._gone_error()
        iterator = self._response.aiter_bytes()
        while True:
            try:
                yield self._run(iterator.__anext__)
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        """The whole (decoded) body."""
        return self._run(self._response.aread)

    def _exit(self, held: _Held[Any], *exc_info: Any) -> bool | None:
        """Leave ``stream()``'s block: release the connection, unless shutdown() closed
        it already (the loop is gone: nothing left to release)."""
        _check_not_in_event_loop()
        if not self._gone:
            try:
                return held.exit(*exc_info)
            except BaseException as exc:
                if not _cut_by_shutdown(self._portal, exc):
                    raise
        return False


class _Held(Generic[T]):
    """An async context manager entered and left by one task on the loop (as anyio's
    ``wrap_async_context_manager``), which a caller interrupted while entering or
    leaving it cancels."""

    def __init__(self, manager: AbstractAsyncContextManager[T], portal: BlockingPortal) -> None:
        self._manager = manager
        self._portal = portal
        self._task = _Cancellable()
        self._entered: Future[T] = Future()
        self._leave: anyio.Event | None = None
        self._exc_info: tuple[Any, Any, Any] = (None, None, None)
        self._done: Future[bool | None] | None = None

    async def _hold(self) -> bool | None:
        self._leave = anyio.Event()
        try:
            value = await self._manager.__aenter__()
        except BaseException as exc:
            self._entered.set_exception(exc)
            raise
        self._entered.set_result(value)
        try:
            await self._leave.wait()
        finally:  # also when cancelled: with the caller's exception, if it left one
            result = await self._manager.__aexit__(*self._exc_info)
        return result

    def enter(self) -> T:
        try:
            self._done = self._portal.start_task_soon(self._task.run, self._hold)
            return self._entered.result()
        except BaseException as exc:
            # Interrupted (or the enter failed: its task has ended). If it was entered
            # meanwhile, the cancelled task leaves the manager with this exception.
            self._exc_info = sys.exc_info()
            self._task.cancel(self._portal)
            if _cut_by_shutdown(self._portal, exc):
                raise _cut_short() from None
            raise

    def exit(self, *exc_info: Any) -> bool | None:
        assert self._done is not None
        assert self._leave is not None
        self._exc_info = exc_info
        try:
            self._portal.call(self._leave.set)
            return self._done.result()
        except BaseException:
            self._task.cancel(self._portal)  # interrupted while leaving: stop leaving
            raise


@contextmanager
def stream(url_or_params: str | FetchParams, **options: Any) -> Iterator[BlockingStreamingResponse]:
    """:func:`sansnet.stream` without ``await``::

    with blocking.stream(url) as response:
        for chunk in response.iter_bytes():
            ...
    """
    current = portal()
    held = _Held(_client.stream(url_or_params, **options), current)
    response = BlockingStreamingResponse(held.enter(), current)
    try:
        yield response
    except BaseException:
        if not response._exit(held, *sys.exc_info()):
            raise
    else:
        response._exit(held, None, None, None)


# ============================================================================== server


class BlockingServeHandle:
    """A server running in the background thread; :meth:`stop` stops it."""

    def __init__(self, handle: _server.ServeHandle, done: Any, portal: BlockingPortal) -> None:
        self._handle = handle
        self._done = done
        self._portal = portal
        self._orphaned = False  # inherited by a forked child: the parent's server
        self.ip = handle.ip
        self.port = handle.port
        self.url = handle.url

    @property
    def stopped(self) -> bool:
        return self._orphaned or self._handle.stopped

    def stop(self) -> None:
        """Stop gracefully (see :meth:`sansnet.ServeHandle.stop`) and return once the
        server has stopped. Called from one of this server's own plain ``def`` handlers
        (in its worker thread), it starts the stop and returns at once: that request
        (or TCP connection) is answered when the handler returns, then the server
        finishes stopping (:func:`shutdown`, at interpreter exit, waits for that, as for
        any server still running). A second call raises
        :class:`~sansnet.ServerStoppedError`, also after :func:`shutdown` stopped it.
        Called inside a running event loop (also an ``async def`` handler on the
        background loop), it raises :class:`~sansnet.UsageError`."""
        _check_not_in_event_loop()
        if self.stopped:  # without the portal: shutdown() may have stopped it for good
            raise ServerStoppedError(f"The server at {self.url} is already stopped.")
        server = self._handle._server
        if serving() is server:  # waiting would wait for the handler calling us
            # Kept in _servers until it has stopped: shutdown() at exit waits for the
            # drain to finish.
            self._done.add_done_callback(lambda _: _servers.discard(self))
            try:
                self._portal.call(server.start_stop)
            except BaseException as exc:
                if not _cut_by_shutdown(self._portal, exc):
                    raise
            return
        self._stop_on(self._portal)

    def _stop_on(self, portal: BlockingPortal) -> None:
        _servers.discard(self)
        try:
            portal.call(self._handle.stop)
            self._done.result(timeout=60)
        except BaseException as exc:
            if _cut_by_shutdown(portal, exc):
                return  # shutdown() stopped the loop, and the server with it
            # Interrupted while it drains: the stop is not cancelled (it drains on, as
            # after a stop() from one of its handlers), and shutdown() at exit waits
            # for it.
            if (
                not isinstance(exc, TimeoutError)
                and portal is _portal
                and self.stopped
                and not self._done.done()
            ):
                _servers.add(self)
                self._done.add_done_callback(lambda _: _servers.discard(self))
            raise

    def __enter__(self) -> BlockingServeHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _check_not_in_event_loop()
        if not self.stopped:
            self.stop()

    def __repr__(self) -> str:
        return f"<BlockingServeHandle {self.url}{' stopped' if self.stopped else ''}>"


DEFAULT_MAX_THREADS = 40  # anyio's default thread limit, and Starlette's


def serve(
    port: int, handler_or_config: Any, *, max_threads: int = DEFAULT_MAX_THREADS, **options: Any
) -> BlockingServeHandle:
    """:func:`sansnet.serve` without ``await``: start serving and return at once; the
    server runs in the background until ``handle.stop()`` (or interpreter exit).

    A plain ``def`` request handler runs in a worker thread, as uvicorn and Starlette
    run sync endpoints: it may call this module's functions (``blocking.request`` in a
    proxy), and a slow one (``time.sleep``) stalls no other request and no other
    thread's calls. At most ``max_threads`` such handlers run at once per server; more
    requests wait for a free thread. ``async def`` handlers run on the background
    event loop, as with :func:`sansnet.serve`. At ``stop()``, a handler still running
    after ``drain_timeout`` is abandoned (its thread finishes on its own; its answer is
    dropped with the connection).
    """
    _check_max_threads(max_threads)
    config = _server._config(handler_or_config, options)
    handler = config.handle_request
    if handler is not None and not is_async_callable(handler):
        config = replace(config, handle_request=_in_worker_threads(handler, max_threads))
    return _start_server(_server.Server(port, config))


def _start_server(server: ListeningServer) -> BlockingServeHandle:
    current = portal()
    task = _Cancellable()
    try:
        done, handle = current.start_task(task.run, server.run)
    except BaseException as exc:  # interrupted while it starts: it stops listening
        task.cancel(current)
        if _cut_by_shutdown(current, exc):
            raise _cut_short() from None
        raise
    blocking_handle = BlockingServeHandle(handle, done, current)
    _servers.add(blocking_handle)
    return blocking_handle


def _check_max_threads(max_threads: object) -> int:
    if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
        raise InvalidArgument(f"max_threads must be an int of at least 1, not {max_threads!r}.")
    return max_threads


def _in_worker_threads(
    handler: Callable[[Any], Any], limit: int, wrap: Callable[[Any], Any] | None = None
) -> Any:
    """``handler`` as an async handler that runs it in a worker thread, at most
    ``limit`` at once; ``wrap`` turns the async handler's argument into the one the
    plain handler takes."""
    limiter: anyio.CapacityLimiter | None = None

    async def run_in_thread(argument: Any) -> Any:
        nonlocal limiter
        if limiter is None:  # made on the event loop that uses it
            limiter = anyio.CapacityLimiter(limit)
        if wrap is not None:
            argument = wrap(argument)
        # The thread runs the handler as one of this server's (whose stop() must then
        # not wait for it), whether or not anyio copies the context into it.
        server = serving()

        def as_handler() -> Any:
            with serving_as(server):
                return handler(argument)

        result = await anyio.to_thread.run_sync(as_handler, limiter=limiter, abandon_on_cancel=True)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    return run_in_thread


# =========================================================================== websocket


class BlockingWebSocket(_OnTheLoop):
    """A WebSocket with blocking ``send``, ``next`` and ``close`` (see
    :class:`sansnet.WebSocket` for the rules); iterate over it for each message."""

    def __init__(self, socket: _websocket.WebSocket, portal: BlockingPortal) -> None:
        self._socket = socket
        self._attach(portal)

    @property
    def close_code(self) -> int | None:
        return self._socket.close_code

    @property
    def close_reason(self) -> str:
        return self._socket.close_reason

    @property
    def subprotocol(self) -> str | None:
        return self._socket.subprotocol

    def _run(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """``function(*args)`` on the loop; ConnectionClosed once shutdown() closed this
        socket."""
        return self._on_loop(self._gone_error, function, *args)

    def _gone_error(self) -> ConnectionClosed:
        return ConnectionClosed(
            "The WebSocket is closed: blocking.shutdown() closed it and stopped its event "
            "loop; open a new one.",
            code=self.close_code,
            reason=self.close_reason,
        )

    async def _close_at_shutdown(self) -> None:
        try:
            await self._socket.close_quietly(1001, "going away")
        except Exception:  # pragma: no cover - closing at exit is best effort
            pass

    def send(self, message: str | bytes, binary: bool | None = None) -> None:
        self._run(self._socket.send, message, binary)

    def next(self, timeout: float | None = None) -> str | bytes | None:
        """The next message, or None once closed. With ``timeout``, raise
        :class:`~sansnet.ReadTimeout` (a ``TimeoutError``) if nothing arrives in time
        (the socket stays open)."""
        _check_not_in_event_loop()
        _tcp._check_timeout(timeout)
        if self._gone:
            return None  # closed by shutdown()
        if timeout is None:
            return self._call_next(self._socket.next)

        async def bounded() -> str | bytes | None:
            try:
                with anyio.fail_after(timeout):
                    return await self._socket.next()
            except TimeoutError:  # anyio's, the built-in one
                raise ReadTimeout(f"No message within {timeout} s.") from None

        return self._call_next(bounded)

    def _call_next(
        self, function: Callable[[], Coroutine[Any, Any, str | bytes | None]]
    ) -> str | bytes | None:
        try:
            return self._run(function)
        except ConnectionClosed:  # shutdown() closed it: the end, as for any close
            return None

    def close(self, code: int = 1000, reason: str = "") -> None:
        _check_not_in_event_loop()
        if self._gone:
            return  # shutdown() closed it, as a peer's close would have
        self._run(self._socket.close, code, reason)

    def ping(self) -> float:
        return self._run(self._socket.ping)

    def __iter__(self) -> Iterator[str | bytes]:
        while (message := self.next()) is not None:
            yield message

    def __enter__(self) -> BlockingWebSocket:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _check_not_in_event_loop()
        if not self._gone:
            try:
                self._run(self._socket.close_quietly)
            except ConnectionClosed:  # shutdown() closed it meanwhile
                pass


def socket(url: str, **options: Any) -> BlockingWebSocket:
    """:func:`sansnet.socket` without ``await``."""
    current = portal()

    async def open_socket() -> _websocket.WebSocket:
        return await _websocket.socket(url, **options)

    async def discard(socket: _websocket.WebSocket) -> None:
        await socket.close_quietly(1001, "going away")

    return BlockingWebSocket(_wait_for(current, open_socket, discard=discard), current)


# ================================================================================= tcp


class BlockingTcpStream(_OnTheLoop):
    """A :class:`sansnet.tcp.TcpStream` with blocking methods (see it for the rules):
    ``read``, ``write``, ``send_eof``, ``close``; ``with`` closes it; iterating yields
    the chunks the peer sends until it finishes."""

    def __init__(self, stream: _tcp.TcpStream, portal: BlockingPortal) -> None:
        self._stream = stream
        self._attach(portal)
        self.local_ip = stream.local_ip
        self.local_port = stream.local_port
        self.remote_ip = stream.remote_ip
        self.remote_port = stream.remote_port

    @property
    def closed(self) -> bool:
        return self._stream.closed

    @property
    def tls(self) -> Any:
        return self._stream.tls

    @property
    def ttl(self) -> int | None:
        """See :attr:`sansnet.tcp.TcpStream.ttl`."""
        return self._stream.ttl

    def _run(self, function: Callable[[], Coroutine[Any, Any, T]], error: type[Exception]) -> T:
        """``function()`` on the loop; ``error`` once shutdown() closed this stream."""
        return self._on_loop(
            lambda: error(
                f"The TCP stream to {self.remote_ip}:{self.remote_port} is closed: "
                "blocking.shutdown() closed it and stopped its event loop; connect again."
            ),
            function,
        )

    async def _close_at_shutdown(self) -> None:
        await self._stream.close()

    def read(self, max_bytes: int = READ_SIZE, *, timeout: float | None = None) -> bytes:
        return self._run(
            functools.partial(self._stream.read, max_bytes, timeout=timeout), ReadError
        )

    def write(
        self, data: bytes | bytearray | memoryview | str, *, timeout: float | None = None
    ) -> None:
        self._run(functools.partial(self._stream.write, data, timeout=timeout), WriteError)

    def send_eof(self) -> None:
        _check_not_in_event_loop()
        if not self._gone:  # else closed by shutdown(): nothing to finish
            self._run(self._stream.send_eof, WriteError)

    def close(self) -> None:
        _check_not_in_event_loop()
        if not self._gone:  # else closed by shutdown() already
            self._run(self._stream.close, WriteError)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def __enter__(self) -> BlockingTcpStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._stream).replace("<TcpStream", "<BlockingTcpStream", 1)


def tcp_connect(host: str, port: int, **options: Any) -> BlockingTcpStream:
    """:func:`sansnet.tcp.connect` without ``await``."""
    current = portal()
    stream = _wait_for(
        current,
        functools.partial(_tcp.connect, host, port, **options),
        discard=_tcp.TcpStream.close,
    )
    return BlockingTcpStream(stream, current)


def tcp_serve(
    port: int,
    handler: Callable[[Any], Any],
    *,
    max_threads: int = DEFAULT_MAX_THREADS,
    **options: Any,
) -> BlockingServeHandle:
    """:func:`sansnet.tcp.serve` without ``await``: listen and return at once. A plain
    ``def handler(stream)`` gets a :class:`BlockingTcpStream` and runs in a worker
    thread (at most ``max_threads`` at once; more connections wait for a thread); an
    ``async def`` handler gets a :class:`sansnet.tcp.TcpStream` on the background loop.
    """
    _check_max_threads(max_threads)
    if not is_async_callable(handler):
        if not callable(handler):
            raise InvalidArgument(f"tcp.serve() needs a handler function, not {handler!r}.")
        current = portal()
        handler = _in_worker_threads(
            handler, max_threads, lambda stream: BlockingTcpStream(stream, current)
        )
    return _start_server(_tcp.TcpServer(port, handler, **options))


_Closable = BlockingTcpStream | BlockingWebSocket | BlockingStreamingResponse


class http:
    """Lune 0.10's ``net.http`` without ``await``: ``request``, ``stream``, ``serve``."""

    request = staticmethod(request)
    stream = staticmethod(stream)
    serve = staticmethod(serve)


class ws:
    """Lune 0.10's ``net.ws`` without ``await``: ``connect`` (= :func:`socket`)."""

    connect = staticmethod(socket)


class tcp:
    """Lune 0.10's ``net.tcp`` without ``await``: ``connect`` -> a
    :class:`BlockingTcpStream`, and ``serve`` (a TCP listener)."""

    connect = staticmethod(tcp_connect)
    serve = staticmethod(tcp_serve)
    TcpStream = BlockingTcpStream
