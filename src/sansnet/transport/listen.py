"""Listening for connections: bind, accept, hand each connection to a handler task.

:func:`listen_tcp` binds (every address a host name resolves to), reports the real
addresses (port 0 becomes the port the OS chose), and starts one task per accepted
connection in the caller's task group, calling ``handler(stream)`` with a
:class:`~sansnet.transport.streams.NetworkStream`. On asyncio the native transport is
used (accepting happens in the event loop's own callback, no accept task; a TLS
handshake runs in the connection's task, through ``loop.start_tls``); elsewhere anyio's
listeners.

:func:`listen_unix` does the same on a Unix domain socket (a reverse proxy on the same
machine talks to the server through a file, with no TCP port open).

Failures to bind raise :class:`~sansnet.BindError` naming the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import stat
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, cast

import anyio
import anyio.abc
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSStream

from sansnet.errors import BindError

from .connect import Backend, current_backend, is_ip_literal
from .streams import AsyncioStream, NetworkStream, _StreamProtocol, anyio_stream

__all__ = ["UNIX_SOCKET_MODE", "Listener", "listen_tcp", "listen_unix"]

Handler = Callable[[NetworkStream], Coroutine[Any, Any, None]]

logger = logging.getLogger("sansnet.transport")


class Listener:
    """A bound listening socket (or several, for a host name). :meth:`close` stops
    accepting at once and closes the connections not yet handed to the handler (those
    still in their TLS handshake); connections already handed on are not touched.

    Invariant: a connection is the listener's from its accept until it is handed to the
    handler, and the listener knows it all that time, so that a server's stop can
    leave none open: on asyncio and uvloop the TLS handshake is run by
    :class:`_AsyncioAccepts`, not by the event loop's server, which would keep it out
    of sight until it ended (or timed out)."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.addresses = addresses
        self.closed = False

    async def close(self) -> None:
        raise NotImplementedError


class _AsyncioListener(Listener):
    """One asyncio server, or several (one per address of a host name that
    :func:`listen_tcp` bound itself), sharing one hand-off task."""

    def __init__(
        self,
        servers: Sequence[asyncio.Server],
        accepts: _AsyncioAccepts,
        addresses: list[tuple[str, int]] | None = None,
    ) -> None:
        super().__init__(
            addresses
            or [_address(sock.getsockname()) for server in servers for sock in server.sockets]
        )
        self._servers = list(servers)
        self._accepts = accepts

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            for server in self._servers:
                server.close()  # stops accepting; open connections are ours to close
            self._accepts.close()  # the hand-off task, and handshakes still under way


class _AnyioListener(Listener):
    def __init__(
        self,
        listener: anyio.abc.Listener[anyio.abc.ByteStream],
        scope: anyio.CancelScope,
        done: anyio.Event,
        addresses: list[tuple[str, int]],
        handshakes: set[anyio.CancelScope],
    ) -> None:
        super().__init__(addresses)
        self._listener = listener
        self._scope = scope
        self._done = done
        self._handshakes = handshakes

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._scope.cancel()
            for handshake in list(self._handshakes):
                handshake.cancel()  # each closes its connection
            with anyio.CancelScope(shield=True):
                await self._done.wait()  # the accept loop has stopped accepting
                await self._listener.aclose()


def _address(sockname: tuple[str, int] | tuple[str, int, int, int] | str) -> tuple[str, int]:
    if isinstance(sockname, str):  # a Unix socket inherited from a supervisor
        return sockname, 0
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


class _AsyncioAccepts:
    """The protocol factory for an asyncio server, and the task that hands accepted
    connections to ``handler``. asyncio accepts in a callback, outside any task, where
    anyio cannot always tell which event loop runs (it asks sniffio, which needs a
    task). So the callback queues the connection and a task in the group hands it on.

    With ``ssl_context``, the server is created without ``ssl=`` and each connection's
    TLS handshake runs here, in its own task, through ``loop.start_tls``. Invariant:
    until a connection is handed to ``handler``, it is the listener's, and the
    listener knows it (queued, or in :attr:`handshaking`): :meth:`close` aborts every
    such connection at once, so a stop leaves none open. (Given ``ssl=``, asyncio and
    uvloop would run the handshake inside their own protocol, out of our sight until
    it ends: a peer that never finishes it kept its connection open for up to the
    handshake timeout after the server had stopped.)"""

    def __init__(
        self,
        handler: Handler,
        task_group: anyio.abc.TaskGroup,
        half_close: bool,
        ssl_context: ssl.SSLContext | None,
        tls_handshake_timeout: float,
    ) -> None:
        self._handler = handler
        self._task_group = task_group
        self._half_close = half_close
        self._ssl_context = ssl_context
        self._tls_handshake_timeout = tls_handshake_timeout
        self._arrived: deque[_StreamProtocol] = deque()
        self._wake = asyncio.Event()
        self._scope = anyio.CancelScope()
        # The plain transports of connections in their TLS handshake.
        self.handshaking: set[asyncio.Transport] = set()

    def factory(self) -> _StreamProtocol:
        return _StreamProtocol(self._on_connected, self._half_close)

    def _on_connected(self, protocol: _StreamProtocol) -> None:
        assert protocol.transport is not None
        if self._scope.cancel_called:
            # The listener is closed (a connection accepted as it closed): nobody will
            # serve this connection.
            protocol.transport.abort()
            return
        self._arrived.append(protocol)
        self._wake.set()

    async def hand_off(self) -> None:
        arrived = self._arrived
        try:
            with self._scope:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    while arrived:
                        protocol = arrived.popleft()
                        if self._ssl_context is None:
                            self._task_group.start_soon(self._handler, AsyncioStream(protocol))
                        else:
                            self._task_group.start_soon(self._serve_tls, protocol)
        finally:
            while arrived:  # accepted, never handed on: close them with the listener
                transport = arrived.popleft().transport
                assert transport is not None
                transport.abort()

    def close(self) -> None:
        """Stop handing connections on, and abort those still in their TLS handshake."""
        self._scope.cancel()
        for transport in list(self.handshaking):
            transport.abort()

    async def _serve_tls(self, protocol: _StreamProtocol) -> None:
        assert self._ssl_context is not None
        transport = protocol.transport
        assert transport is not None
        if transport.is_closing() or protocol.eof or self._scope.cancel_called:
            transport.abort()  # the peer left, or the listener closed, before our turn
            return
        self.handshaking.add(transport)
        try:
            tls_transport = await _start_tls_server(
                transport, protocol, self._ssl_context, self._tls_handshake_timeout
            )
        except Exception as exc:
            transport.abort()
            logger.debug("TLS handshake failed: %r", exc)
            return
        except BaseException:  # cancelled (the server stops): close it, go on
            transport.abort()
            raise
        finally:
            self.handshaking.discard(transport)
        if tls_transport is None or self._scope.cancel_called:
            # Closed during the handshake, or the listener closed as it ended: nobody
            # will serve this connection. (A TLS transport already closing is served:
            # a client that sends its data and close_notify with its Finished, all in
            # one write, has them waiting in the protocol, then the end of the stream.)
            transport.abort()
            return
        # The same protocol now hears the decrypted bytes (as the client's start_tls).
        protocol.transport = tls_transport
        await self._handler(AsyncioStream(protocol))


async def _start_tls_server(
    transport: asyncio.Transport,
    protocol: _StreamProtocol,
    ssl_context: ssl.SSLContext,
    handshake_timeout: float,
) -> asyncio.Transport | None:
    """The server's side of a TLS handshake over ``transport``, whose protocol is
    ``protocol``: ``loop.start_tls``, with the bytes that came before it.

    The peer sends its ClientHello at once, and the loop reads before we can start the
    handshake (uvloop starts reading right after ``connection_made``, whatever the
    protocol asked; Python 3.10's selector loop too), so ``protocol`` may hold the
    start of the handshake. ``start_tls`` pauses reading and puts its TLS protocol in
    place in its first step, and schedules that protocol's ``connection_made`` and the
    resumption of reading (``call_soon``, both loops, Python 3.10 to 3.13). Right after
    that step, before the loop runs anything else, a callback is scheduled that feeds
    the TLS protocol those early bytes: it runs after ``connection_made`` and before the
    loop reads again, so the TLS layer sees every byte once and in order. Returns the
    TLS transport, or None when the connection closed during the handshake."""
    loop = asyncio.get_running_loop()

    def replay() -> None:
        early = protocol.take_buffered()
        if not early or transport.is_closing():
            return
        tls_protocol = transport.get_protocol()
        if tls_protocol is protocol:  # pragma: no cover - start_tls changed
            transport.abort()
            return
        _feed(tls_protocol, early)

    handshake = loop.start_tls(
        transport,
        protocol,
        ssl_context,
        server_side=True,
        ssl_handshake_timeout=handshake_timeout,
    )
    tls_transport = await _after_first_step(handshake, lambda: loop.call_soon(replay))
    return cast("asyncio.Transport | None", tls_transport)


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as its transport would: through ``get_buffer`` and
    ``buffer_updated`` (asyncio's TLS protocol from Python 3.11, uvloop's), else
    ``data_received`` (Python 3.10's)."""
    if hasattr(protocol, "get_buffer"):
        buffered = cast("asyncio.BufferedProtocol", protocol)
        view = memoryview(data)
        while view:
            buffer = memoryview(buffered.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            buffered.buffer_updated(size)
            view = view[size:]
    else:
        cast("asyncio.Protocol", protocol).data_received(data)


@types.coroutine
def _after_first_step(
    awaitable: Awaitable[Any], callback: Callable[[], object]
) -> Generator[Any, Any, Any]:
    """Await ``awaitable``, calling ``callback()`` right after its first step: in the
    same turn of the event loop, before the loop runs any callback that step scheduled."""
    steps = awaitable.__await__()
    try:
        yielded = steps.send(None)
    except StopIteration as done:
        return done.value
    callback()
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:
            try:
                yielded = steps.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                yielded = steps.send(sent)
            except StopIteration as done:
                return done.value


_RESOURCE_ERRNOS = frozenset(
    code
    for code in (getattr(errno, name, None) for name in ("EMFILE", "ENFILE", "ENOMEM", "ENOBUFS"))
    if code is not None
)
"""accept() failures that mean "out of descriptors or memory for now", not a broken
listener: wait a moment and accept again (what asyncio and trio's own serve loops do)."""

ACCEPT_RETRY_DELAY = 0.1
"""Seconds the accept loop waits after an out-of-resources failure before it tries again."""


def _out_of_resources(exc: BaseException) -> OSError | None:
    """The OSError behind an accept failure (anyio wraps it in BrokenResourceError) when
    it is one of :data:`_RESOURCE_ERRNOS`, else None."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in _RESOURCE_ERRNOS:
        return cause
    return None


def _serve_anyio(
    listener: anyio.abc.Listener[Any],
    addresses: list[tuple[str, int]],
    handler: Handler,
    task_group: anyio.abc.TaskGroup,
    ssl_context: ssl.SSLContext | None,
    tls_handshake_timeout: float,
) -> Listener:
    """The accept loop on anyio's listeners (trio). Invariant: nothing a peer does and no
    passing shortage ends it; only :meth:`Listener.close` (or a broken listening socket)
    does. So it is written here rather than taken from ``Listener.serve``: an accept that
    fails for lack of descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS) is logged
    and retried after :data:`ACCEPT_RETRY_DELAY`, and a failed TLS handshake (a scanner,
    plain HTTP on the TLS port) closes that connection with a debug line, not a
    traceback at error level."""
    scope = anyio.CancelScope()
    done = anyio.Event()
    handshakes: set[anyio.CancelScope] = set()  # of connections in their TLS handshake

    async def serve_one(stream: anyio.abc.ByteStream) -> None:
        if ssl_context is not None:
            try:
                with anyio.CancelScope() as handshake:  # cancelled by Listener.close()
                    handshakes.add(handshake)
                    with anyio.fail_after(tls_handshake_timeout):
                        stream = await TLSStream.wrap(
                            stream, ssl_context=ssl_context, standard_compatible=False
                        )
            except Exception as exc:
                await anyio.aclose_forcefully(stream)
                logger.debug("TLS handshake failed: %r", exc)
                return
            except BaseException:  # cancelled (the server stops): close it, go on
                await anyio.aclose_forcefully(stream)
                raise
            finally:
                handshakes.discard(handshake)
            if handshake.cancel_called:  # the listener closed: nobody will serve it
                await anyio.aclose_forcefully(stream)
                return
        await handler(anyio_stream(stream))

    async def accept_loop(one: anyio.abc.SocketListener) -> None:
        while True:
            try:
                stream = await one.accept()
            except (anyio.BrokenResourceError, OSError) as exc:
                cause = _out_of_resources(exc)
                if cause is None:
                    raise
                logger.error(
                    "Accepting a connection failed (%s); retrying in %s s. Raise the "
                    "open-file limit (ulimit -n) or lower max_connections.",
                    cause.strerror or cause,
                    ACCEPT_RETRY_DELAY,
                )
                await anyio.sleep(ACCEPT_RETRY_DELAY)
                continue
            task_group.start_soon(serve_one, stream)

    async def accept_loops() -> None:
        # A host name may resolve to several addresses: one listener, one loop each.
        listeners = cast(
            "Sequence[anyio.abc.SocketListener]",
            listener.listeners if isinstance(listener, MultiListener) else [listener],
        )
        try:
            with scope:
                async with anyio.create_task_group() as loops:
                    for one in listeners:
                        loops.start_soon(accept_loop, one)
        finally:
            done.set()

    task_group.start_soon(accept_loops)
    return _AnyioListener(listener, scope, done, addresses, handshakes)


_BIND_ATTEMPTS = 10
"""How many times :func:`_bind_one_port` starts again with a fresh port 0 when the port
the OS chose for the first address is taken on another (as anyio's listener does)."""


_ADDRESS_MISSING = frozenset((errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT))
"""Bind failures that ``create_server`` takes as "this machine lacks that address or
family" and skips the address for (bpo-30945)."""


def _bound_socket(
    family: int, proto: int, address: tuple[Any, ...], reuse_port: bool
) -> socket.socket:
    """A TCP socket bound to ``address`` with the options asyncio's ``create_server``
    sets (SO_REUSEADDR; IPV6_V6ONLY, so that an IPv6 socket leaves IPv4 to its own;
    SO_REUSEPORT if asked), closed again if any step fails."""
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _bind_one_port(
    loop: asyncio.AbstractEventLoop, host: str, reuse_port: bool
) -> list[socket.socket]:
    """Bind every address ``host`` resolves to on one port the OS chooses (asyncio's
    ``create_server`` would give each address its own): the first to port 0, the others
    to the port it got. If that port is taken on a later address, close them all and
    start again, up to :data:`_BIND_ATTEMPTS` times. As ``create_server``, an empty host
    means every interface, and an address this machine does not have
    (:data:`_ADDRESS_MISSING`: ``::1`` listed for a host with IPv6 off) is left out,
    unless none is left. The sockets are bound, not listening; failures are OSErrors,
    as from ``create_server``, and leave no socket open."""
    infos = await loop.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    # Each address once (glibc repeats one listed twice in /etc/hosts), in a fixed
    # order: IPv4 first, as anyio's listener on trio reports them.
    unique = sorted({(family, proto, address) for family, _, proto, _, address in infos})
    last = OSError(errno.EADDRNOTAVAIL, f"{host!r} resolves to no address")
    for _ in range(_BIND_ATTEMPTS):
        sockets: list[socket.socket] = []
        chosen = 0
        try:
            for family, proto, address in unique:
                try:
                    one = _bound_socket(
                        family, proto, (address[0], chosen, *address[2:]), reuse_port
                    )
                except OSError as exc:
                    if exc.errno not in _ADDRESS_MISSING:
                        raise
                    last = exc
                    continue
                sockets.append(one)
                chosen = chosen or one.getsockname()[1]
        except BaseException as exc:
            for one in sockets:
                one.close()
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and chosen:
                last = exc  # the port the first address got is taken on another: again
                continue
            raise
        if sockets:
            return sockets
        break
    raise last


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
    reuse_port: bool = False,
    sock: socket.socket | None = None,
) -> Listener:
    """Bind ``host``:``port`` and serve each connection with ``handler`` in
    ``task_group``. Returns once listening; the caller stops it with
    :meth:`Listener.close`. ``half_close``: a peer's EOF leaves our sending side open
    (raw TCP; HTTP closes both). ``reuse_port``: bind with SO_REUSEPORT, so that several
    processes listen on one port and the kernel spreads connections among them
    (workers). ``sock``: listen on this already bound socket instead (inherited from a
    supervisor); ``host`` and ``port`` then only name it in errors."""
    try:
        if current_backend(backend) == "asyncio":
            accepts = _AsyncioAccepts(
                handler, task_group, half_close, ssl_context, tls_handshake_timeout
            )
            loop = asyncio.get_running_loop()
            # No ssl=: _AsyncioAccepts runs the TLS handshakes (see there why).
            servers: list[asyncio.Server] = []
            if sock is None and port == 0 and not is_ip_literal(host):
                # A host name may resolve to several addresses; asyncio would bind each
                # to its own ephemeral port. Bind them ourselves, to one port.
                sockets = await _bind_one_port(loop, host, reuse_port)
                try:
                    for one in sockets:
                        server = await loop.create_server(
                            accepts.factory, sock=one, backlog=backlog
                        )
                        servers.append(server)  # one by one: closed if a later one fails
                except BaseException:
                    for server in servers:
                        server.close()
                    for one in sockets:
                        one.close()  # a no-op on those the servers closed
                    raise
            elif sock is not None:
                servers.append(
                    await loop.create_server(accepts.factory, sock=sock, backlog=backlog)
                )
            else:
                servers.append(
                    await loop.create_server(
                        accepts.factory,
                        host,
                        port,
                        backlog=backlog,
                        reuse_address=True,
                        reuse_port=reuse_port or None,
                    )
                )
            task_group.start_soon(accepts.hand_off)
            return _AsyncioListener(servers, accepts)
        listener: anyio.abc.Listener[anyio.abc.ByteStream]
        if sock is not None:
            sock.listen(backlog)
            listener = await anyio.abc.SocketListener.from_socket(sock)
            addresses = [_address(sock.getsockname())]
        else:
            listener = await anyio.create_tcp_listener(
                local_host=host, local_port=port, backlog=backlog, reuse_port=reuse_port
            )
            addresses = _anyio_addresses(listener)
    except OSError as exc:
        raise _bind_error(exc, host, port) from None
    return _serve_anyio(
        listener,
        addresses,
        handler,
        task_group,
        ssl_context,
        tls_handshake_timeout,
    )


UNIX_SOCKET_MODE = 0o666  # as uvicorn: any local user may connect (a proxy as www-data)


_PROBE_TIMEOUT = 1.0  # seconds to wait for a server on a Unix socket path to answer


def _claim_unix_path(path: str) -> None:
    """Make room for a Unix socket at ``path``: a stale socket file (connecting to it
    is refused: nobody listens) is removed; a live one (it answers, or is too busy to
    within :data:`_PROBE_TIMEOUT`), one that cannot be checked, or any other file is a
    :class:`~sansnet.BindError` and stays."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"Can't listen on {path}: a file that is not a socket is in the way.")
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(_PROBE_TIMEOUT)  # a live server with a full queue makes us wait
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by a server that died: nobody answers
            return
        except FileNotFoundError:
            return  # removed meanwhile
        except (TimeoutError, BlockingIOError):
            pass  # someone listens, its queue full (EAGAIN), too busy to take us: live
        except OSError as exc:  # permission denied...: not known to be stale, keep it
            raise BindError(
                f"Can't listen on {path}: a socket file is there and could not be checked "
                f"({exc.strerror or exc}); remove it if no server uses it."
            ) from None
    raise BindError(
        f"Can't listen on {path}: another server is listening there. Stop it or pick another path."
    )


class _UnixListener(Listener):
    """A Unix socket listener that removes its socket file when closed (if the file is
    still the one it created)."""

    def __init__(self, inner: Listener, path: str) -> None:
        super().__init__([(path, 0)])
        self._inner = inner
        self._path = path
        self._inode = os.stat(path).st_ino

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._inner.close()
        try:
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        except FileNotFoundError:
            pass


async def listen_unix(
    path: str,
    handler: Handler,
    task_group: anyio.abc.TaskGroup,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_handshake_timeout: float = 10.0,
    backlog: int = 2048,
    backend: Backend = "auto",
    mode: int = UNIX_SOCKET_MODE,
    half_close: bool = False,
) -> Listener:
    """Listen on the Unix domain socket ``path`` as :func:`listen_tcp` listens on TCP.
    The socket file gets permissions ``mode`` (0o666 by default, as uvicorn: any local
    user may connect) and is removed when the listener closes; a stale one left by a
    server that died is replaced. ``half_close`` as for :func:`listen_tcp`."""
    path = os.fspath(path)
    _claim_unix_path(path)
    try:
        if current_backend(backend) == "asyncio":
            accepts = _AsyncioAccepts(
                handler, task_group, half_close, ssl_context, tls_handshake_timeout
            )
            server = await asyncio.get_running_loop().create_unix_server(
                accepts.factory, path, backlog=backlog
            )
            os.chmod(path, mode)
            task_group.start_soon(accepts.hand_off)
            return _UnixListener(_AsyncioListener([server], accepts, [(path, 0)]), path)
        listener = await anyio.create_unix_listener(path, mode=mode, backlog=backlog)
    except OSError as exc:
        raise BindError(f"Can't listen on {path}: {exc.strerror or exc}.") from None
    inner = _serve_anyio(
        listener, [(path, 0)], handler, task_group, ssl_context, tls_handshake_timeout
    )
    return _UnixListener(inner, path)


def _anyio_addresses(listener: anyio.abc.Listener[anyio.abc.ByteStream]) -> list[tuple[str, int]]:
    listeners = getattr(listener, "listeners", [listener])
    return [_address(item.extra(anyio.abc.SocketAttribute.local_address)) for item in listeners]
