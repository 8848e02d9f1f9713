"""Reaching a server through a proxy: HTTP ``CONNECT`` tunnels and SOCKS5 / SOCKS4a.

:func:`open_tunnel` opens a connection to the proxy (TLS to it for an ``https://``
proxy), asks it for a tunnel to ``host``:``port``, and, for an https or wss origin,
runs the TLS handshake with the origin inside the tunnel, verified against the
origin's name. The result is an ordinary :class:`NetworkStream` to the origin, which
the pool keeps and reuses like a direct one. A plain ``http://`` request through an
HTTP proxy needs no tunnel: the client sends it in absolute form on a connection to
the proxy (:func:`open_proxy_stream`), as curl and httpx do.

The HTTP ``CONNECT`` exchange goes through :class:`~sansnet.protocol.ClientConnection`
(h11 underneath): h11 switches protocols on the proxy's 2xx answer and hands back what
came after it. SOCKS goes through ``socksio`` (the ``socks`` extra), the sans-IO SOCKS
library httpx uses; its replies have fixed or self-describing lengths, so we read
exactly one reply at a time and never read into the origin's bytes.

Every failure here is a :class:`~sansnet.ProxyError` (the proxy could not be reached,
refused, or could not reach the origin), a :class:`~sansnet.TLSError` (the origin's
certificate, checked inside the tunnel) or a :class:`~sansnet.ConnectTimeout`.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, NoReturn, cast

import anyio

from sansnet.errors import (
    ConnectError,
    ConnectTimeout,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    WriteError,
    WriteTimeout,
)
from sansnet.protocol import ClientConnection, InformationalResponse, ResponseHead
from sansnet.protocol.headers import without_zone

from .clock import now
from .connect import Backend, _connect_error, current_backend, is_ip_literal, open_tcp_stream
from .receive import receive_event
from .streams import NetworkStream

if TYPE_CHECKING:
    from sansnet.proxies import Proxy

__all__ = ["open_proxy_stream", "open_tunnel"]


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - now())


async def open_proxy_stream(
    proxy: Proxy,
    *,
    timeout: float | None,
    backend: Backend = "auto",
    proxy_context: ssl.SSLContext | None = None,
) -> NetworkStream:
    """A connection to the proxy itself (TLS for an ``https://`` proxy, verified with
    ``proxy_context`` against the proxy's name). A failure to connect is a
    :class:`~sansnet.ProxyError` naming the proxy; a timeout stays a
    :class:`~sansnet.ConnectTimeout`."""
    tls = proxy_context if proxy.scheme == "https" else None
    try:
        return await open_tcp_stream(
            proxy.host, proxy.port, ssl_context=tls, timeout=timeout, backend=backend
        )
    except ConnectTimeout:
        raise ConnectTimeout(
            f"Could not connect to the proxy {proxy.description} within {timeout} s "
            "(connect timeout); check that it is up, or raise the connect timeout."
        ) from None
    except ConnectError as exc:
        raise ProxyError(
            f"Could not connect to the proxy {proxy.description}: {exc} Check the proxy "
            "URL (proxy= or the *_PROXY environment variables), or pass proxy=None to "
            "connect directly.",
            proxy=proxy.description,
        ) from exc


async def open_tunnel(
    proxy: Proxy,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float | None,
    backend: Backend = "auto",
    proxy_context: ssl.SSLContext | None = None,
) -> NetworkStream:
    """A stream to ``host``:``port`` through ``proxy``: an HTTP ``CONNECT`` tunnel or a
    SOCKS connection, then TLS with the origin when ``ssl_context`` is given (checked
    against ``host``). ``timeout`` bounds all of it together, as it bounds a direct
    connection. The caller owns the stream; on any failure nothing is left open.
    An IPv6 address's zone (``fe80::1%eth0``) names one of our interfaces: it means
    nothing to the proxy or to a certificate, and is left out."""
    host = without_zone(host)
    deadline = None if timeout is None else now() + timeout
    if (
        proxy.scheme == "https"
        and ssl_context is not None
        and current_backend(backend) == "asyncio"
    ):
        # TLS inside TLS: anyio's TLS stream nests over any stream, on every Python;
        # asyncio's start_tls only nests from Python 3.11 and not on uvloop.
        backend = "anyio"
    stream = await open_proxy_stream(
        proxy, timeout=timeout, backend=backend, proxy_context=proxy_context
    )
    try:
        await _open_the_way(stream, proxy, host, port, deadline, timeout)
        if ssl_context is None:
            return stream
        return await _origin_tls(stream, proxy, host, port, ssl_context, deadline, timeout)
    except BaseException:
        stream.abort()
        await stream.aclose()
        raise


async def _open_the_way(
    stream: NetworkStream,
    proxy: Proxy,
    host: str,
    port: int,
    deadline: float | None,
    timeout: float | None,
) -> None:
    """The proxy's handshake (CONNECT or SOCKS); a stream failing meanwhile is the
    proxy's failure (ProxyError), a stream timing out the connect timeout."""
    try:
        if proxy.scheme in ("http", "https"):
            await _http_connect(stream, proxy, host, port, deadline)
        elif proxy.scheme == "socks4a":
            await _socks4a(stream, proxy, host, port, deadline)
        else:
            await _socks5(stream, proxy, host, port, deadline)
    except (ReadTimeout, WriteTimeout):
        raise ConnectTimeout(
            f"The proxy {proxy.description} did not open a tunnel to "
            f"{_authority(host, port)} within {timeout} s (connect timeout)."
        ) from None
    except (ReadError, WriteError) as exc:
        raise ProxyError(
            f"The connection to the proxy {proxy.description} broke while it opened a "
            f"tunnel to {_authority(host, port)}: {exc}",
            proxy=proxy.description,
        ) from exc


async def _origin_tls(
    stream: NetworkStream,
    proxy: Proxy,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    deadline: float | None,
    timeout: float | None,
) -> NetworkStream:
    """TLS with the origin inside the tunnel, its failures named as a direct
    connection's are (TLSError, ConnectError, ConnectTimeout)."""
    try:
        return await stream.start_tls(ssl_context, host, _left(deadline))
    except TimeoutError:
        raise ConnectTimeout(
            f"The TLS handshake with {_authority(host, port)} through the proxy "
            f"{proxy.description} took longer than {timeout} s (connect timeout)."
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise _connect_error(
            exc, host, port, f"{_authority(host, port)} (through {proxy.description})"
        ) from exc


# ---------------------------------------------------------------------- HTTP CONNECT


async def _http_connect(
    stream: NetworkStream, proxy: Proxy, host: str, port: int, deadline: float | None
) -> None:
    """``CONNECT host:port`` (RFC 9110 section 9.3.6) with Basic credentials from the
    proxy URL; a 2xx answer opens the tunnel, anything else is a ProxyError."""
    authority = _authority(host, port)
    fields = [("Host", authority)]
    if proxy.authorization is not None:
        fields.append(("Proxy-Authorization", proxy.authorization))
    protocol = ClientConnection(host, port, default_headers=())
    protocol.send_request("CONNECT", authority, fields)
    await stream.write(protocol.data_to_send(), _left(deadline))
    try:
        while True:
            event = await receive_event(stream, protocol, lambda: _left(deadline))
            if type(event) is not InformationalResponse:
                break
    except RemoteProtocolError as exc:
        raise ProxyError(
            f"The proxy {proxy.description} did not answer CONNECT {authority} with HTTP: {exc}",
            proxy=proxy.description,
        ) from exc
    assert isinstance(event, ResponseHead)
    status = event.status_code
    if 200 <= status < 300:
        if protocol.trailing_data[0]:
            raise ProxyError(
                f"The proxy {proxy.description} sent data into the tunnel to {authority} "
                "before we did; it is not a tunnel we can use.",
                status=status,
                proxy=proxy.description,
            )
        return
    raise ProxyError(
        _refusal(proxy, authority, status, event.reason), status=status, proxy=proxy.description
    )


def _refusal(proxy: Proxy, authority: str, status: int, reason: str) -> str:
    said = f"The proxy {proxy.description} answered {status} {reason}".rstrip() + (
        f" to CONNECT {authority}"
    )
    if status in (401, 407):  # tinyproxy answers wrong credentials with 401
        if proxy.authorization is None:
            return (
                f"{said}: it requires credentials. Put them in the proxy URL "
                "(http://user:password@host:port)."
            )
        return f"{said}: it refused the credentials in the proxy URL. Check them."
    if status == 403:
        return (
            f"{said}: its rules forbid this destination. Ask its administrator, or "
            "reach the host directly (NO_PROXY, or proxy=None)."
        )
    if status in (502, 503, 504):
        return f"{said}: it could not reach the server. Check the host and port."
    return f"{said}."


# ----------------------------------------------------------------------------- SOCKS


def _require_socksio() -> None:
    """socksio is the ``socks`` extra: say so when it is missing."""
    try:
        import socksio  # noqa: F401
    except ImportError:
        raise ProxyError(
            "SOCKS proxies need the socksio package: pip install 'sansnet[socks]'."
        ) from None


async def _read_exactly(stream: NetworkStream, size: int, deadline: float | None) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.read(size - len(data), _left(deadline))
        if not chunk:
            raise ReadError(f"{stream.description} closed the connection mid-handshake.")
        data += chunk
    return data


_SOCKS5_ERRORS = {
    1: "general SOCKS server failure",
    2: "connection not allowed by its rules",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


async def _socks5(
    stream: NetworkStream, proxy: Proxy, host: str, port: int, deadline: float | None
) -> None:
    """RFC 1928 CONNECT, with RFC 1929 username/password when the URL has them.
    ``socks5://`` resolves the name here, ``socks5h://`` lets the proxy resolve it."""
    _require_socksio()
    from socksio import ProtocolError, socks5

    authority = _authority(host, port)
    address = host
    if proxy.scheme == "socks5" and not is_ip_literal(host):
        address = await _resolve(host, port, proxy, deadline)
    conn = socks5.SOCKS5Connection()
    methods = [socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED]
    if proxy.username is not None:
        methods.append(socks5.SOCKS5AuthMethod.USERNAME_PASSWORD)
    conn.send(socks5.SOCKS5AuthMethodsRequest(methods))
    try:
        await stream.write(conn.data_to_send(), _left(deadline))
        auth = cast(
            "socks5.SOCKS5AuthReply", conn.receive_data(await _read_exactly(stream, 2, deadline))
        )
        method = auth.method
        if method not in methods and method != socks5.SOCKS5AuthMethod.NO_ACCEPTABLE_METHODS:
            raise ProtocolError(
                f"it chose the login method {method[0]:#04x}, which we did not offer"
            )
        if method == socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
            assert proxy.username is not None  # offered only with a username
            username, password = proxy.username.encode(), (proxy.password or "").encode()
            if len(username) > 255 or len(password) > 255:
                raise ProxyError(
                    f"The SOCKS5 proxy {proxy.description} wants a username and password, "
                    "and SOCKS5 carries at most 255 bytes (UTF-8) of each; the proxy URL's "
                    "are longer.",
                    proxy=proxy.description,
                )
            conn.send(socks5.SOCKS5UsernamePasswordRequest(username, password))
            await stream.write(conn.data_to_send(), _left(deadline))
            verdict = cast(
                "socks5.SOCKS5UsernamePasswordReply",
                conn.receive_data(await _read_exactly(stream, 2, deadline)),
            )
            if not verdict.success:
                raise ProxyError(
                    f"The SOCKS5 proxy {proxy.description} refused the username and "
                    "password in the proxy URL. Check them.",
                    proxy=proxy.description,
                )
        elif method == socks5.SOCKS5AuthMethod.NO_ACCEPTABLE_METHODS:
            wanted = "credentials" if proxy.username is None else "another way to log in"
            raise ProxyError(
                f"The SOCKS5 proxy {proxy.description} requires {wanted}"
                + (
                    ": put them in the proxy URL (socks5://user:password@host:port)."
                    if proxy.username is None
                    else " than a username and password."
                ),
                proxy=proxy.description,
            )
        conn.send(
            socks5.SOCKS5CommandRequest.from_address(socks5.SOCKS5Command.CONNECT, (address, port))
        )
        await stream.write(conn.data_to_send(), _left(deadline))
        head = await _read_exactly(stream, 2, deadline)
        if head[0] == 5 and head[1] != 0:
            # A failure: its reason is REP. What follows (the bound address) tells
            # nothing more, and proxies cut it short and close (or wait): don't read it.
            _socks5_failure(proxy, authority, head[1])
        head += await _read_exactly(stream, 3, deadline)
        # VER REP RSV ATYP, then the bound address: 4 or 16 bytes, or a length-prefixed
        # name; then 2 bytes of port.
        size = {1: 4 - 1, 4: 16 - 1, 3: head[4]}.get(head[3], 0) + 2
        reply = cast(
            "socks5.SOCKS5Reply",
            conn.receive_data(head + await _read_exactly(stream, size, deadline)),
        )
    except ProtocolError as exc:
        raise ProxyError(
            f"The proxy {proxy.description} does not speak SOCKS5: {exc}.",
            proxy=proxy.description,
        ) from exc
    code = reply.reply_code[0]
    if code != 0:
        _socks5_failure(proxy, authority, code)


def _socks5_failure(proxy: Proxy, authority: str, code: int) -> NoReturn:
    raise ProxyError(
        f"The SOCKS5 proxy {proxy.description} could not connect to {authority}: "
        f"{_SOCKS5_ERRORS.get(code, f'error {code}')}.",
        proxy=proxy.description,
    )


async def _socks4a(
    stream: NetworkStream, proxy: Proxy, host: str, port: int, deadline: float | None
) -> None:
    """SOCKS4a CONNECT: the proxy resolves the name; the username is the user id
    ("sansnet" when the URL has none)."""
    _require_socksio()
    from socksio import ProtocolError, socks4

    authority = _authority(host, port)
    if ":" in host:
        raise ProxyError(
            f"The SOCKS4a proxy {proxy.description} cannot reach the IPv6 address "
            f"{authority} (SOCKS4 has no IPv6); use a socks5h:// proxy.",
            proxy=proxy.description,
        )
    if proxy.username is not None and "\0" in proxy.username:
        # The user id ends at the first NUL: the rest would be read as the host name.
        raise ProxyError(
            f"The SOCKS4a proxy {proxy.description} cannot take a username containing "
            "NUL (%00): SOCKS4 ends the user id at the first NUL byte.",
            proxy=proxy.description,
        )
    # SOCKS4's user id: the URL's username, else "sansnet" (socksio wants one).
    conn = socks4.SOCKS4Connection(user_id=(proxy.username or "sansnet").encode())
    # An IPv4 address goes as SOCKS4 has it; a name as SOCKS4a's extension (socksio's
    # SOCKS4ARequest would send an address's 4 bytes as if they were a name).
    kind = socks4.SOCKS4Request if is_ip_literal(host) else socks4.SOCKS4ARequest
    conn.send(kind.from_address(socks4.SOCKS4Command.CONNECT, (host, port)))
    try:
        await stream.write(conn.data_to_send(), _left(deadline))
        reply = conn.receive_data(await _read_exactly(stream, 8, deadline))
    except ProtocolError as exc:
        raise ProxyError(
            f"The proxy {proxy.description} does not speak SOCKS4a: {exc}.",
            proxy=proxy.description,
        ) from exc
    if reply.reply_code != socks4.SOCKS4ReplyCode.REQUEST_GRANTED:
        raise ProxyError(
            f"The SOCKS4a proxy {proxy.description} refused to connect to {authority} "
            f"(reply {reply.reply_code.name.lower().replace('_', ' ')}).",
            proxy=proxy.description,
        )


async def _resolve(host: str, port: int, proxy: Proxy, deadline: float | None) -> str:
    """The first address of ``host`` (``socks5://``: names are resolved here)."""
    try:
        with anyio.fail_after(_left(deadline)):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise ConnectTimeout(f"Resolving {host!r} took longer than the connect timeout.") from None
    except OSError as exc:
        raise ConnectError(
            f"Could not resolve host name {host!r}: {exc.strerror or exc}. With "
            f"{proxy.description} you may let the proxy resolve it: use socks5h://."
        ) from exc
    return str(infos[0][4][0])
