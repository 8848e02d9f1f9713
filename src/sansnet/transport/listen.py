"""Listening for connections: bind, accept, hand each connection to a handler task.

:func:`listen_tcp` binds (every address a host name resolves to), reports the real
addresses (port 0 becomes the port the OS chose), and starts one task per accepted
connection in the caller's task group, calling ``handler(stream)`` with a
:class:`~sansnet.transport.streams.NetworkStream`. On asyncio the native transport is
used (accepting happens in the event loop's own callback, no accept task); elsewhere
anyio's listeners.

Failures to bind raise :class:`~sansnet.BindError` naming the address.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener

from sansnet.errors import BindError

from .connect import Backend, current_backend
from .streams import AnyioStream, AsyncioStream, NetworkStream, _StreamProtocol

__all__ = ["Listener", "listen_tcp"]

Handler = Callable[[NetworkStream], Coroutine[Any, Any, None]]


class Listener:
    """A bound listening socket (or several, for a host name). :meth:`close` stops
    accepting at once; connections already accepted are not touched."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.addresses = addresses
        self.closed = False

    async def close(self) -> None:
        raise NotImplementedError


class _AsyncioListener(Listener):
    def __init__(self, server: asyncio.Server, scope: anyio.CancelScope) -> None:
        super().__init__([_address(sock.getsockname()) for sock in server.sockets])
        self._server = server
        self._scope = scope

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._server.close()  # stops accepting; open connections are ours to close
            self._scope.cancel()  # the hand-off task (connections it handed on go on)


class _AnyioListener(Listener):
    def __init__(
        self,
        listener: anyio.abc.Listener[anyio.abc.ByteStream],
        scope: anyio.CancelScope,
        done: anyio.Event,
        addresses: list[tuple[str, int]],
    ) -> None:
        super().__init__(addresses)
        self._listener = listener
        self._scope = scope
        self._done = done

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._done.wait()  # the accept loop has stopped accepting
                await self._listener.aclose()


def _address(sockname: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    return str(sockname[0]), int(sockname[1])


def _bind_error(exc: OSError, host: str, port: int) -> BindError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return BindError(
            f"Can't listen on {where}: {host!r} is not an address or a known host name ({exc.strerror or exc})."
        )
    if exc.errno == errno.EADDRINUSE:
        return BindError(
            f"Can't listen on {where}: the address is already in use. Stop the other server or pick another port (0 lets the OS choose)."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BindError(
            f"Can't listen on {where}: permission denied (ports below 1024 need privileges)."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return BindError(f"Can't listen on {where}: this machine has no such address.")
    return BindError(f"Can't listen on {where}: {exc.strerror or exc}.")


async def listen_tcp(
    host: str,
    port: int,
    handler: Handler,
    task_group: anyio.abc.TaskGroup,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_handshake_timeout: float = 10.0,
    backlog: int = 2048,
    backend: Backend = "auto",
    half_close: bool = False,
) -> Listener:
    """Bind ``host``:``port`` and serve each connection with ``handler`` in
    ``task_group``. Returns once listening; the caller stops it with
    :meth:`Listener.close`. ``half_close``: a peer's EOF leaves our sending side open
    (raw TCP; HTTP closes both)."""
    try:
        if current_backend(backend) == "asyncio":
            loop = asyncio.get_running_loop()
            # asyncio accepts in a callback, outside any task, where anyio cannot always
            # tell which event loop runs (it asks sniffio, which needs a task). So the
            # callback queues the connection and a task in the group hands it on.
            arrived: deque[AsyncioStream] = deque()
            wake = asyncio.Event()
            scope = anyio.CancelScope()

            def on_connected(protocol: _StreamProtocol) -> None:
                arrived.append(AsyncioStream(protocol))
                wake.set()

            async def hand_off() -> None:
                with scope:
                    while True:
                        await wake.wait()
                        wake.clear()
                        while arrived:
                            task_group.start_soon(handler, arrived.popleft())

            def factory() -> _StreamProtocol:
                return _StreamProtocol(on_connected, half_close)

            server = await loop.create_server(
                factory,
                host,
                port,
                ssl=ssl_context,
                ssl_handshake_timeout=tls_handshake_timeout if ssl_context else None,
                backlog=backlog,
                reuse_address=True,
            )
            task_group.start_soon(hand_off)
            return _AsyncioListener(server, scope)
        listener: anyio.abc.Listener[anyio.abc.ByteStream] = await anyio.create_tcp_listener(
            local_host=host, local_port=port, backlog=backlog
        )
    except OSError as exc:
        raise _bind_error(exc, host, port) from None
    addresses = _anyio_addresses(listener)
    if ssl_context is not None:
        listener = TLSListener(
            listener,
            ssl_context,
            standard_compatible=False,
            handshake_timeout=tls_handshake_timeout,
        )
    scope = anyio.CancelScope()
    done = anyio.Event()

    async def wrap(stream: anyio.abc.ByteStream) -> None:
        await handler(AnyioStream(stream))

    async def accept_loop() -> None:
        try:
            with scope:
                await listener.serve(wrap, task_group)
        finally:
            done.set()

    task_group.start_soon(accept_loop)
    return _AnyioListener(listener, scope, done, addresses)


def _anyio_addresses(listener: anyio.abc.Listener[anyio.abc.ByteStream]) -> list[tuple[str, int]]:
    listeners = getattr(listener, "listeners", [listener])
    return [_address(item.extra(anyio.abc.SocketAttribute.local_address)) for item in listeners]
