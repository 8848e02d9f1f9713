"""Opening client connections: TCP (happy eyeballs, TCP_NODELAY) and TLS, on any backend.

:func:`open_tcp_stream` picks the fastest implementation for the running event loop:
a native asyncio transport on asyncio and uvloop, anyio's sockets on trio (or anywhere
with ``backend="anyio"``). Failures are :class:`~sansnet.ConnectError`,
:class:`~sansnet.TLSError` or :class:`~sansnet.ConnectTimeout`, naming host and port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import ssl
import sys
from collections.abc import Sequence
from typing import Any, Literal

import anyio
import anyio.abc

from sansnet.errors import ConnectError, ConnectTimeout, TLSError
from sansnet.protocol.headers import without_zone

from .streams import (
    AsyncioStream,
    NetworkStream,
    _closed_during_handshake,
    _StreamProtocol,
    anyio_stream,
)

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

__all__ = ["Backend", "current_backend", "open_tcp_stream", "open_unix_stream"]

Backend = Literal["auto", "asyncio", "anyio"]
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305 section 8


def current_backend(backend: Backend = "auto") -> Literal["asyncio", "anyio"]:
    """The implementation to use: native asyncio under asyncio, else anyio."""
    if backend != "auto":
        return backend
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio (or another anyio backend) is running this thread
        return "anyio"
    return "asyncio"


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address, not a name to look up."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _root_cause(exc: BaseException) -> BaseException:
    """anyio reports failed attempts as ``OSError("All connection attempts failed")``
    caused by the attempts' own errors: the first of those says more."""
    cause = exc.__cause__
    while cause is not None and exc.args == ("All connection attempts failed",):
        if isinstance(cause, ExceptionGroup):
            cause = cause.exceptions[0]
        exc, cause = cause, cause.__cause__
    return exc


def _connect_error(
    exc: BaseException, host: str, port: int, where: str | None = None
) -> ConnectError:
    where = where or _describe(host, port)
    exc = _root_cause(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(
            f"TLS certificate of {where} could not be verified: {exc.verify_message or exc}. "
            "Pass verify= a CA bundle that trusts it, or verify=False to skip the check."
        )
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS handshake with {where} failed: {exc}.")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"Could not resolve host name {host!r}: {exc.strerror or exc}.")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"Could not connect to {where}: connection refused.")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return ConnectError(f"Could not connect to {where}: {reason}.")
    return ConnectError(f"Could not connect to {where}: {exc!r}.")  # pragma: no cover


async def open_tcp_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    backend: Backend = "auto",
    half_close: bool = False,
) -> NetworkStream:
    """Connect to ``host``:``port`` (IPv4, IPv6 or a name), optionally with TLS.

    ``timeout`` bounds name resolution, the TCP connect and the TLS handshake together.
    ``half_close``: the peer's EOF leaves our sending side open (raw TCP streams; the
    HTTP drivers close both sides).
    """
    description = _describe(host, port)
    hostname = without_zone(server_hostname or host) if ssl_context is not None else None
    try:
        if current_backend(backend) == "asyncio":
            return await _open_asyncio(
                host, port, ssl_context, hostname, timeout, description, half_close
            )
        with anyio.fail_after(timeout):
            if ssl_context is None:
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                    host, port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
            else:
                stream = await anyio.connect_tcp(
                    host,
                    port,
                    ssl_context=ssl_context,
                    tls_hostname=hostname,
                    tls_standard_compatible=False,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                )
        return anyio_stream(stream, description)
    except TimeoutError:
        raise ConnectTimeout(
            f"Could not connect to {description} within {timeout} s (connect timeout); "
            "check that the server is up, or raise the connect timeout."
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise _connect_error(exc, host, port) from exc
    except UnicodeError as exc:
        # asyncio's resolver encodes a name with the "idna" codec, which refuses an
        # empty label ("a..b") or one over 63 characters before DNS is asked; trio's
        # reports the same names as unresolvable, and so do we.
        unresolvable = socket.gaierror(
            socket.EAI_NONAME, "it has an empty label or one longer than 63 characters"
        )
        raise _connect_error(unresolvable, host, port) from exc
    except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:  # anyio's TLS handshake
        raise _connect_error(_closed_during_handshake(), host, port) from exc
    except ExceptionGroup as group:  # pragma: no cover - anyio reports happy eyeballs this way
        raise _connect_error(group.exceptions[0], host, port) from group


async def _open_asyncio(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    hostname: str | None,
    timeout: float | None,
    description: str,
    half_close: bool,
) -> NetworkStream:
    loop = asyncio.get_running_loop()

    def factory() -> _StreamProtocol:
        return _StreamProtocol(half_close=half_close)

    transport: asyncio.Transport | None = None
    try:
        with anyio.fail_after(timeout):
            # Our own happy eyeballs (RFC 8305), on asyncio and uvloop alike: uvloop has
            # none (it tries a name's addresses in turn, each until the OS gives up), and
            # asyncio's create_connection(happy_eyeballs_delay=...) loses the connected
            # socket to the garbage collector when it is cancelled just as it wins
            # (CPython 3.11 to 3.13). The socket then belongs to create_connection,
            # which closes it if it fails.
            sock = await _connect_socket(loop, host, port)
            transport, protocol = await loop.create_connection(
                factory, sock=sock, ssl=ssl_context, server_hostname=hostname
            )
    except BaseException:
        if transport is not None:  # connected, but the timeout struck as it returned
            transport.abort()
        raise
    return AsyncioStream(protocol, description)


async def _connect_socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected, non-blocking TCP socket to ``host``:``port``: happy eyeballs (RFC
    8305) over its addresses, families interleaved, a new attempt every
    :data:`HAPPY_EYEBALLS_DELAY` seconds or as soon as the previous one failed. Every
    socket but the one returned is closed, whenever the caller is cancelled; failing,
    the first attempt's ``OSError`` is raised."""
    numeric = _numeric_address(host, port)
    if numeric is not None:
        return await _attempt(loop, numeric)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = _interleave(infos)
    if not addresses:  # as getaddrinfo itself fails for a name without one
        raise socket.gaierror(socket.EAI_NONAME, "the name has no address")
    if len(addresses) == 1:
        return await _attempt(loop, addresses[0])
    winner: socket.socket | None = None
    errors: list[OSError] = []

    async def attempt(info: _AddressInfo, failed: anyio.Event, group: anyio.abc.TaskGroup) -> None:
        nonlocal winner
        try:
            sock = await _attempt(loop, info)
        except OSError as exc:
            errors.append(exc)
            failed.set()
            return
        if winner is None:
            winner = sock
            group.cancel_scope.cancel()
        else:  # pragma: no cover - two attempts connected in the same loop iteration
            sock.close()

    try:
        async with anyio.create_task_group() as group:
            for info in addresses:
                failed = anyio.Event()
                group.start_soon(attempt, info, failed, group)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await failed.wait()
    except BaseException:
        if winner is not None:  # connected, but the caller was cancelled meanwhile
            winner.close()
        raise
    if winner is None:
        raise errors[0]
    return winner


_AddressInfo = tuple[int, int, int, str, tuple[Any, ...]]


def _numeric_address(host: str, port: int) -> _AddressInfo | None:
    """The one address of an IP literal, as ``getaddrinfo`` gives it; None for a name
    (or a form only ``getaddrinfo`` reads: a zone index, ``127.1``). asyncio's
    ``loop.getaddrinfo`` asks a worker thread even for an IP literal (its
    ``create_connection`` does not): a thread handoff, and the GIL shared with that
    thread, for every new connection, which is what a burst of connections paid."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):  # ValueError: a NUL in it (getaddrinfo decides)
            continue
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)
    return None


def _interleave(infos: Sequence[_AddressInfo]) -> list[_AddressInfo]:
    """The addresses with their families alternating, the first family first (RFC 8305
    section 4, as asyncio orders them)."""
    by_family: dict[int, list[_AddressInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    rounds = itertools.zip_longest(*by_family.values())
    return [info for infos_of_round in rounds for info in infos_of_round if info is not None]


async def _attempt(loop: asyncio.AbstractEventLoop, info: _AddressInfo) -> socket.socket:
    """One connection attempt; its socket is closed unless it is returned connected."""
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def open_unix_stream(
    path: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    backend: Backend = "auto",
) -> NetworkStream:
    """Connect to the Unix domain socket ``path`` (a server behind it, as httpx's
    ``uds=`` and curl's ``--unix-socket`` reach one), optionally with TLS checked
    against ``server_hostname``. Failures are :class:`~sansnet.ConnectError` (no such
    socket, nobody listening, permission denied) or :class:`~sansnet.ConnectTimeout`."""
    description = f"unix:{path}"
    if server_hostname is not None:
        server_hostname = without_zone(server_hostname)
    try:
        with anyio.fail_after(timeout):
            if current_backend(backend) == "asyncio":
                loop = asyncio.get_running_loop()
                _, protocol = await loop.create_unix_connection(
                    _StreamProtocol,
                    path,
                    ssl=ssl_context,
                    server_hostname=server_hostname if ssl_context else None,
                )
                return AsyncioStream(protocol, description)
            stream: anyio.abc.ByteStream = await anyio.connect_unix(path)
            if ssl_context is not None:
                from anyio.streams.tls import TLSStream

                try:
                    stream = await TLSStream.wrap(
                        stream,
                        hostname=server_hostname,
                        ssl_context=ssl_context,
                        standard_compatible=False,
                    )
                except BaseException:
                    await anyio.aclose_forcefully(stream)  # the socket, left open before
                    raise
            return anyio_stream(stream, description)
    except TimeoutError:
        raise ConnectTimeout(
            f"Could not connect to {description} within {timeout} s (connect timeout)."
        ) from None
    except ssl.SSLError as exc:
        raise _connect_error(exc, path, 0, where=description) from exc
    except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:  # anyio's TLS handshake
        raise _connect_error(_closed_during_handshake(), path, 0, where=description) from exc
    except OSError as exc:
        if ssl_context is not None and isinstance(exc, ConnectionResetError):
            # asyncio's handshake: a server that closed or reset the connection
            raise _connect_error(_closed_during_handshake(), path, 0, where=description) from exc
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(
            f"Could not connect to the Unix socket {path}: {reason}. Check that the server "
            "listens there and that you may open the file."
        ) from exc
