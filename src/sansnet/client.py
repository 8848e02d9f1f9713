"""``net.request``: the HTTP client, on the sans-IO engine and a keep-alive pool.

``await sansnet.request(url_or_params, **options)`` sends one request and returns a
:class:`FetchResponse`; it never raises for an HTTP status, only for usage errors
(``ValueError``/``TypeError``), the network (:class:`~sansnet.TransportError`), TLS,
protocol violations and content decoding. ``sansnet.stream(...)`` yields the response
before its body. A :class:`Client` holds a connection pool and default options; the
module-level functions use one default client per event loop, closed with the loop.

Defaults (all documented in docs/limits.md): timeouts connect 10 s, read 30 s, write
30 s, pool 10 s, total 300 s; redirects followed, at most 10; gzip/deflate/br/zstd
decoded; TLS verified against certifi's roots.
"""

from __future__ import annotations

import contextvars
import email.message
import os
import re
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypedDict
from urllib.parse import urljoin

import anyio
import anyio.lowlevel

from ._exchange import HTTP11Exchange, PooledBody, Trace, Unanswered, closed_mid_request
from ._transport_api import (
    PHASE_TIMEOUTS,
    Deadlines,
    Request,
    ResponseBody,
    StreamedBody,
    Timeout,
)
from ._urls import ParsedURL, parse_url, with_query
from ._version import __version__
from .codecs import json_decode, json_encode
from .errors import (
    InvalidArgument,
    NetError,
    RemoteProtocolError,
    TooManyRedirects,
    UnsafeRedirect,
    UsageError,
)
from .protocol import (
    ClientConnection,
    ContentDecoder,
    Headers,
    Limits,
    ResponseHead,
    accept_encoding,
    is_supported,
    reason_phrase,
)
from .protocol.headers import HeadersLike
from .protocol.http11 import check_fields
from .proxies import (
    FROM_ENVIRONMENT,
    FromEnvironment,
    Proxy,
    ProxyEnvironment,
    _masked,
    _masked_in,
    environment_proxies,
    given_proxy,
)
from .transport.connect import Backend, open_tcp_stream, open_unix_stream
from .transport.pool import ConnectionPool, Origin, PoolLimits
from .transport.proxy import open_proxy_stream, open_tunnel
from .transport.streams import NetworkStream
from .transport.tls import CertTypes, VerifyTypes, check_client_tls, client_context

__all__ = [
    "Client",
    "Deadlines",
    "FetchOptions",
    "FetchParams",
    "FetchResponse",
    "PoolLimits",
    "Request",
    "ResponseBody",
    "StreamingResponse",
    "Timeout",
    "Trace",
    "Transport",
    "request",
    "stream",
]

USER_AGENT = f"sansnet/{__version__}"
MiB = 1024 * 1024
_REDIRECTS = frozenset([301, 302, 303, 307, 308])
_IDEMPOTENT = frozenset(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
_MAX_TRANSPORTS = 32  # TLS settings, Unix sockets and proxies a client remembers at once


# ============================================================================ options


class FetchOptions(TypedDict, total=False):
    """The ``options`` of :class:`FetchParams` (also accepted as keyword arguments)."""

    decompress: bool
    timeout: Timeout | float | None
    follow_redirects: bool
    max_redirects: int
    allow_insecure_redirects: bool
    verify: VerifyTypes
    cert: CertTypes | None
    max_decoded_size: int | None
    expect_continue: bool
    unix_socket: str | None
    proxy: str | Proxy | None


class FetchParams(TypedDict, total=False):
    """Lune's FetchParams: everything but ``url`` is optional.

    ``method`` (default GET, any token, case-insensitive), ``query`` (a mapping whose
    values may be lists; form-encoded and appended to the URL's own query), ``headers``
    (a mapping whose values may be lists), ``body`` (str, bytes, or an iterable or async
    iterable of bytes, sent chunked), ``json`` (a value sent as JSON), ``options``.
    """

    url: str
    method: str
    query: Mapping[str, Any]
    headers: HeadersLike
    body: str | bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes] | None
    json: Any
    options: FetchOptions


_OPTION_NAMES = frozenset(FetchOptions.__annotations__)
_PARAM_NAMES = frozenset(FetchParams.__annotations__) - {"options"}


# ============================================================================ models


class _Head:
    """What every response has: status, reason, headers, URL."""

    __slots__ = ()

    status_code: int
    status_message: str
    headers: Headers
    url: str
    http_version: str

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code <= 299

    @property
    def charset(self) -> str | None:
        """The charset parameter of Content-Type, if any."""
        content_type = self.headers.get("content-type")
        if not content_type:
            return None
        if '"' in content_type:  # a quoted parameter may hold ";" or "charset="
            message = email.message.Message()
            message["content-type"] = content_type
            return message.get_content_charset() or None
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None


class FetchResponse(_Head):
    """A complete response: Lune's FetchResponse.

    ``ok``, ``status_code``, ``status_message`` (the canonical reason phrase; the
    server's own text when the code has none), ``headers`` (Content-Encoding and
    Content-Length are removed when the body was decoded), ``body`` (bytes), ``text``,
    ``json()``, and ``url`` (after redirects).
    """

    __slots__ = ("body", "headers", "http_version", "status_code", "status_message", "url")

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        body: bytes,
        *,
        status_message: str | None = None,
        url: str = "",
        http_version: str = "1.1",
    ) -> None:
        self.status_code = status_code
        self.status_message = (
            status_message if status_message is not None else reason_phrase(status_code)
        )
        self.headers = headers
        self.body = body
        self.url = url
        self.http_version = http_version

    @property
    def text(self) -> str:
        """The body decoded with the charset of Content-Type (UTF-8 by default);
        undecodable bytes become U+FFFD."""
        charset = self.charset or "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except (LookupError, UnicodeError):
            # LookupError: no such codec. UnicodeError: one that cannot replace (idna)
            # or refuses everything (undefined).
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (:class:`~sansnet.JSONDecodeError` if it is not)."""
        return json_decode(self.body)

    def __repr__(self) -> str:
        return f"<FetchResponse {self.status_code} {self.status_message} ({len(self.body)} bytes)>"


def _status_message(head: ResponseHead) -> str:
    return reason_phrase(head.status_code) or head.reason


# ========================================================================== transports


class Transport:
    """Sends one request and returns its response, body not yet read.

    The default transport speaks HTTP/1.1 through a connection pool;
    :class:`sansnet.testing.MockTransport` answers from a function. A transport's
    :meth:`send` returns a :class:`StreamingResponse` whose body the caller reads and
    then closes.
    """

    async def send(self, request: Request, timeout: Deadlines) -> StreamingResponse:
        """Send ``request`` and return its response before the body is read.
        ``timeout`` holds the request's :class:`Timeout` per phase and its total
        deadline: bound each wait with ``timeout.bound(timeout.timeout.read)`` (and the
        like) inside ``with timeout:``, which reports a wait cut short by the deadline
        as the total timeout. The body is a :class:`ResponseBody`."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release everything the transport holds."""


StreamOpener = Callable[[Origin, "float | None"], Awaitable[NetworkStream]]
"""Opens the stream for an origin (scheme, host, port) within a timeout: how a client
reaches something other than the network (sansnet.testing connects to a server in
memory this way)."""


class _PoolTransport(Transport):
    """HTTP/1.1 over pooled connections, direct or through one ``proxy``.

    Through an HTTP proxy, an http:// request goes in absolute form on a connection to
    the proxy, with the proxy's ``Proxy-Authorization`` as a field of that connection
    only; an https:// request goes through a ``CONNECT`` tunnel, TLS with the origin
    inside it; a SOCKS proxy tunnels both. Connections are pooled per origin either way,
    and a transport serves one proxy (or none), so a proxied and a direct connection to
    the same origin are never mixed.

    A request that fails on a reused connection before any byte of the response
    arrived (the server closed the idle connection as we sent) is retried once on a
    fresh connection when it is idempotent and its body can be replayed: GET, HEAD,
    OPTIONS, PUT, DELETE or TRACE with a bytes body (or none), as RFC 9110 section
    9.2.2 allows. POST, PATCH and other methods are never retried (the server may have
    applied the request before closing), nor is a streamed body, nor a failure on a
    new connection.
    """

    def __init__(
        self,
        *,
        limits: PoolLimits,
        verify: VerifyTypes,
        cert: CertTypes | None,
        backend: Backend,
        http_limits: Limits | None,
        trace: Trace | None = None,
        open_stream: StreamOpener | None = None,
        unix_socket: str | None = None,
        proxy: Proxy | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        self._unix_socket = unix_socket
        self._proxy = proxy
        # Plain http:// requests go to an HTTP proxy in absolute form (not when the
        # streams come from open_stream=, which proxies do not apply to).
        self._forward = (
            proxy is not None and proxy.scheme in ("http", "https") and open_stream is None
        )
        self._ssl_context: ssl.SSLContext | None = None
        self._verify = verify
        self._cert = cert
        self._backend = backend
        self._http_limits = http_limits
        self._trace = trace
        self._open_stream = open_stream
        # The client's transports share its pool; this connector names our connections.
        self._connector = self._connect
        self.pool = pool if pool is not None else ConnectionPool(None, limits)

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = client_context(self._verify, self._cert)
        return self._ssl_context

    async def _connect(
        self, origin: Origin, deadlines: Deadlines
    ) -> tuple[NetworkStream, ClientConnection]:
        scheme, host, port = origin
        default_headers: tuple[tuple[str, str], ...] = ()
        proxy = self._proxy
        # An https:// proxy is checked with the request's own TLS settings.
        proxy_context = self._context() if proxy is not None and proxy.scheme == "https" else None
        with deadlines:
            if self._open_stream is not None:
                stream = await self._open_stream(origin, deadlines.bound(deadlines.timeout.connect))
            elif self._unix_socket is not None:
                stream = await open_unix_stream(
                    self._unix_socket,
                    ssl_context=self._context() if scheme == "https" else None,
                    server_hostname=host,
                    timeout=deadlines.bound(deadlines.timeout.connect),
                    backend=self._backend,
                )
            elif proxy is None:
                stream = await open_tcp_stream(
                    host,
                    port,
                    ssl_context=self._context() if scheme == "https" else None,
                    timeout=deadlines.bound(deadlines.timeout.connect),
                    backend=self._backend,
                )
            elif self._forward and scheme == "http":
                stream = await open_proxy_stream(
                    proxy,
                    timeout=deadlines.bound(deadlines.timeout.connect),
                    backend=self._backend,
                    proxy_context=proxy_context,
                )
                if proxy.authorization is not None:
                    default_headers = (("Proxy-Authorization", proxy.authorization),)
            else:
                stream = await open_tunnel(
                    proxy,
                    host,
                    port,
                    ssl_context=self._context() if scheme == "https" else None,
                    timeout=deadlines.bound(deadlines.timeout.connect),
                    backend=self._backend,
                    proxy_context=proxy_context,
                )
        return stream, ClientConnection(
            host,
            port,
            scheme=scheme,
            limits=self._http_limits,
            default_headers=default_headers,
        )

    async def send(self, request: Request, timeout: Deadlines) -> StreamingResponse:
        url = request._split or parse_url(request.url)
        target = url.absolute_form if self._forward and url.scheme == "http" else url.target
        times = timeout.timeout
        for attempt in (1, 2):
            try:
                conn = await self.pool.acquire(
                    url.origin,
                    timeout=timeout.bound(times.pool),
                    context=timeout,
                    connector=self._connector,
                    fresh=attempt == 2,  # the stale one's idle siblings may be stale too
                )
            except PHASE_TIMEOUTS:  # `with timeout:`, for less (see Deadlines.cut_short)
                timeout.cut_short()
                raise
            try:
                head = await HTTP11Exchange(conn, self._trace).send(request, target, timeout)
            except Unanswered as unanswered:
                await self.pool.release(conn, reusable=False)
                if conn.dropped:
                    raise closed_mid_request() from unanswered.error
                if (
                    attempt == 1
                    and conn.reused
                    and request.replayable
                    and request.method in _IDEMPOTENT
                ):
                    continue  # the server had closed the idle connection: retry once
                error = unanswered.error
            except BaseException as exc:
                await self.pool.release(conn, reusable=False)
                if conn.dropped and isinstance(exc, NetError):
                    raise closed_mid_request() from exc
                raise
            else:
                return StreamingResponse(
                    head, request.url, PooledBody(self.pool, conn, timeout), decompress=False
                )
            raise error  # outside the except clause: the error's own context stays
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.pool.aclose()


class StreamingResponse(_Head):
    """A response whose body has not been read yet (from :func:`stream`).

    Read it with ``async for chunk in response.aiter_bytes()`` (decoded) or
    :meth:`aiter_raw` (as sent), or all at once with :meth:`aread`; the body can be
    read once. The connection is released when the ``async with`` block ends: back to
    the pool if the body was read to the end, else closed. Reading the body after that
    (or after :meth:`aclose`) raises :class:`~sansnet.UsageError` (a ``RuntimeError``).
    """

    __slots__ = (
        "_body",
        "_closed",
        "_consumed",
        "_decoder",
        "headers",
        "http_version",
        "raw_headers",
        "status_code",
        "status_message",
        "url",
    )

    def __init__(
        self,
        head: ResponseHead,
        url: str,
        body: ResponseBody,
        *,
        decompress: bool = True,
        max_decoded_size: int | None = None,
    ) -> None:
        self.status_code = head.status_code
        self.status_message = _status_message(head)
        self.http_version = head.http_version
        self.url = url
        self.raw_headers = head.headers
        self.headers = head.headers
        self._body = body
        self._decoder: ContentDecoder | None = None
        self._consumed = False
        self._closed = False
        self.set_decoding(decompress, max_decoded_size)

    def set_decoding(self, decompress: bool, max_decoded_size: int | None) -> None:
        """Decode the body per Content-Encoding (when ``decompress`` and the coding is
        supported), at most ``max_decoded_size`` bytes; adjusts :attr:`headers`."""
        headers = self.raw_headers
        self._decoder = None
        self.headers = headers
        if not decompress:
            return
        encoding = headers.get("content-encoding")
        if encoding and is_supported(encoding):
            decoder = ContentDecoder(encoding, max_size=max_decoded_size)
            if not decoder.identity:
                self._decoder = decoder
                self.headers = headers.copy()
                for name in ("content-encoding", "content-length"):
                    if name in self.headers:
                        del self.headers[name]

    def _take(self) -> ResponseBody:
        if self._consumed:
            raise UsageError("The response body was already read; it can be read once.")
        if self._closed:
            raise UsageError(_CLOSED)
        self._consumed = True
        return self._body

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it came over the wire (still compressed), piece by piece."""
        return _BodyIterator(self, self._take(), None)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decoded per Content-Encoding, in pieces of at most 64 KiB."""
        return _BodyIterator(self, self._take(), self._decoder)

    async def aread(self) -> bytes:
        """The whole (decoded) body."""
        body = self._take()
        decoder = self._decoder
        parts = []
        while True:
            chunk = await body.read()
            if not chunk:
                break
            if decoder is None:
                parts.append(chunk)
            else:
                parts.extend(decoder.decode(chunk))
        if decoder is not None:
            decoder.finish()
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    async def aclose(self, *, complete: bool = True) -> None:
        """Release the connection: back to the pool if ``complete`` and the body was
        read to the end, else closed. Called by ``stream()`` when its block ends; later
        calls do nothing."""
        if not self._closed:
            self._closed = True
            await self._body.release(complete=complete)

    def __repr__(self) -> str:
        return f"<StreamingResponse {self.status_code} {self.status_message}>"


_CLOSED = "The response is closed; read its body inside the async with block, before aclose()."


class _BodyIterator:
    """Iterates over the body of ``response``, decoding it when ``decoder`` is given. A
    class, not an async generator: leaving the loop early leaves nothing for the event
    loop to finalize."""

    __slots__ = ("_body", "_decoder", "_done", "_pieces", "_response")

    def __init__(
        self, response: StreamingResponse, body: ResponseBody, decoder: ContentDecoder | None
    ) -> None:
        self._response = response
        self._body = body
        self._decoder = decoder
        self._pieces: Iterator[bytes] | None = None
        self._done = False

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        pieces = self._pieces
        if pieces is not None:
            piece = next(pieces, None)
            if piece is not None:
                return piece
            self._pieces = None
        decoder = self._decoder
        while not self._done:
            if self._response._closed:
                raise UsageError(_CLOSED)
            chunk = await self._body.read()
            if not chunk:
                self._done = True
                if decoder is not None:
                    decoder.finish()
                break
            if decoder is None:
                return chunk
            pieces = decoder.decode(chunk)
            piece = next(pieces, None)
            if piece is not None:
                self._pieces = pieces
                return piece
        raise StopAsyncIteration


# ============================================================================= client


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])


def _method(method: object) -> str:
    """The method in uppercase; ``ValueError`` if it is not an HTTP token."""
    if not isinstance(method, str):
        raise InvalidArgument(f"method must be a str, not {type(method).__name__}.")
    upper = method.upper()
    if upper not in _METHODS and _TOKEN.fullmatch(upper) is None:
        raise InvalidArgument(
            f"Invalid method {method!r}: a method is a token (letters, digits and "
            "!#$%&'*+-.^_`|~, no spaces)."
        )
    return upper


def _add_defaults(headers: Headers, decompress: bool) -> Headers:
    if "user-agent" not in headers:
        headers.add("User-Agent", USER_AGENT)
    if "accept" not in headers:
        headers.add("Accept", "*/*")
    if decompress and "accept-encoding" not in headers:
        headers.add("Accept-Encoding", accept_encoding())
    return headers


_NO_OPTIONS: dict[str, Any] = {}  # shared; never changed


def _check_headers(headers: Headers) -> None:
    """Refuse, before any I/O, a field name that is not a token or a value with CR,
    LF, NUL or another control character (header injection)."""
    check_fields(headers.raw_items())  # LocalProtocolError, a ValueError


def _split_options(
    url_or_params: str | FetchParams, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge a FetchParams dict and keyword arguments into (params, options)."""
    if isinstance(url_or_params, str):
        params: dict[str, Any] = {"url": url_or_params}
    elif isinstance(url_or_params, Mapping):
        params = dict(url_or_params)
        if "url" not in params:
            raise InvalidArgument("FetchParams needs a 'url'.")
    else:
        raise InvalidArgument(
            f"request() takes a URL string or a FetchParams dict, not {type(url_or_params).__name__}."
        )
    nested = params.pop("options", None) or {}
    opts: dict[str, Any] = dict(nested)
    for name, value in options.items():
        if name in _PARAM_NAMES:
            params[name] = value
        elif name in _OPTION_NAMES:
            opts[name] = value
        else:
            raise InvalidArgument(f"request() got an unknown option {name!r}.")
    for name in list(params):
        if name not in _PARAM_NAMES:
            raise InvalidArgument(f"FetchParams has an unknown field {name!r}.")
    for name in opts:
        if name not in _OPTION_NAMES:
            raise InvalidArgument(f"FetchOptions has an unknown field {name!r}.")
    return params, opts


def _check_max_redirects(value: object) -> int:
    """``max_redirects``, checked: an int >= 0 (a bool is refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"max_redirects must be an int >= 0, not {value!r}.")
    return value


def _check_max_decoded_size(value: object) -> int | None:
    """``max_decoded_size``, checked: None or an int >= 0 (a bool is refused)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidArgument(
            f"max_decoded_size must be None (no cap) or an int >= 0, not {value!r}."
        )
    return value


def _body(params: Mapping[str, Any]) -> tuple[bytes | AsyncIterable[bytes], str | None]:
    """The body to send and the Content-Type it implies (None: none)."""
    body = params.get("body")
    value = params.get("json")
    if value is not None:  # (json=None is no JSON body, as in httpx and requests)
        if body is not None:
            raise InvalidArgument("Pass body or json, not both.")
        return json_encode(value).encode("utf-8"), "application/json"
    if body is None:
        return b"", None
    if isinstance(body, str):
        try:
            return body.encode("utf-8"), "text/plain; charset=utf-8"
        except UnicodeEncodeError as exc:
            raise InvalidArgument(
                f"The str body has a lone surrogate at index {exc.start}, which has no "
                "UTF-8 form: pass bytes to send other bytes."
            ) from None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), None
    if isinstance(body, (Iterable, AsyncIterable)) and not isinstance(body, Mapping):
        return StreamedBody(body), None
    raise InvalidArgument(
        f"body must be str, bytes, or an iterable of bytes, not {type(body).__name__}."
    )


def _check_tls_options(verify: VerifyTypes, cert: CertTypes | None) -> None:
    """The TLS options' mistakes that can be seen without loading anything (the shape
    is checked first, by :func:`check_client_tls`, before they are a dict key)."""
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise InvalidArgument(
                "Pass the client certificate in your own SSLContext, not as cert=."
            )
    elif not isinstance(verify, bool):
        path = os.fspath(verify)
        if not os.path.exists(path):
            raise InvalidArgument(f"verify={path!r} is neither a CA bundle file nor a directory.")


class Client:
    """An HTTP client with a connection pool and default options.

    ``async with sansnet.Client(timeout=5) as client: response = await
    client.request(url)``. Options given here are defaults for every request; each
    request may override them. ``transport`` replaces the network (see
    :class:`sansnet.testing.MockTransport`). ``limits`` sizes the pool; ``http_limits``
    bounds response heads and bodies (:class:`~sansnet.protocol.Limits`).
    ``unix_socket``: send every request to the server on this Unix domain socket path
    (httpx's ``uds=``, curl's ``--unix-socket``); the URL still gives the Host field,
    the path and, for https, the TLS name. Also a per-request option.

    ``proxy``: a proxy URL (``http://``, ``https://``, ``socks5://``, ``socks5h://``,
    ``socks4a://``, credentials in the userinfo) for every request, ``None`` for none,
    or by default the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``; see :class:`sansnet.proxies.ProxyEnvironment`), read once, here,
    unless ``trust_env=False``. A proxy given here or per request is used for every URL
    (``NO_PROXY`` is not consulted, as with httpx); the environment's is chosen per URL,
    redirects included. The environment does not apply with ``unix_socket``,
    ``transport`` or ``open_stream``. Also a per-request option.
    """

    def __init__(
        self,
        *,
        headers: HeadersLike | None = None,
        timeout: Timeout | float | None = Timeout(),
        follow_redirects: bool = True,
        max_redirects: int = 10,
        allow_insecure_redirects: bool = False,
        decompress: bool = True,
        max_decoded_size: int | None = 256 * MiB,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        limits: PoolLimits | None = None,
        http_limits: Limits | None = None,
        transport: Transport | None = None,
        backend: Backend = "auto",
        trace: Trace | None = None,
        open_stream: StreamOpener | None = None,
        unix_socket: str | None = None,
        proxy: str | Proxy | FromEnvironment | None = FROM_ENVIRONMENT,
        trust_env: bool = True,
    ) -> None:
        self.headers = Headers(headers) if headers is not None else Headers()
        self._trace = trace
        self._open_stream = open_stream
        _check_headers(self.headers)
        self._base_fields = list(self.headers._fields)
        self._base: dict[bool, Headers] = {}  # the fields of requests without their own
        self._default_transport: Transport | None = None
        self.defaults: dict[str, Any] = {
            "timeout": Timeout.of(timeout),
            "follow_redirects": follow_redirects,
            "max_redirects": _check_max_redirects(max_redirects),
            "allow_insecure_redirects": allow_insecure_redirects,
            "decompress": decompress,
            "max_decoded_size": _check_max_decoded_size(max_decoded_size),
        }
        self._verify = verify
        self._cert = cert
        self._unix_socket = unix_socket
        # A fixed proxy (or None), or the environment's, chosen per URL (_proxy_env).
        self._proxy: Proxy | None = None
        self._proxy_env: ProxyEnvironment | None = None
        if proxy is FROM_ENVIRONMENT:
            self._proxy_env = environment_proxies(
                os.environ,
                trust_env=trust_env,
                network=transport is None and open_stream is None and unix_socket is None,
            )
        else:
            self._proxy = given_proxy(proxy, unix_socket)
        self._transports: dict[
            tuple[VerifyTypes, CertTypes | None, str | None, Proxy | None], Transport
        ] = {}
        self._custom_transport = transport
        self._limits = limits if limits is not None else PoolLimits()
        self._pool = ConnectionPool(None, self._limits)  # shared by the transports below
        self._http_limits = http_limits
        self._backend = backend
        self.closed = False

    def _transport_for(
        self,
        verify: VerifyTypes,
        cert: CertTypes | None,
        unix_socket: str | None = None,
        proxy: Proxy | None = None,
    ) -> Transport:
        if self._custom_transport is not None:
            return self._custom_transport
        unix_socket = unix_socket or self._unix_socket
        check_client_tls(verify, cert)  # verify=None was a TypeError, cert=[...] unhashable
        key = (verify, cert, unix_socket, proxy)  # an SSLContext hashes by identity
        transport = self._transports.get(key)
        if transport is None:
            if self.closed:
                raise UsageError("The client is closed; make a new one.")
            _check_tls_options(verify, cert)
            if len(self._transports) >= _MAX_TRANSPORTS:
                # Settings that come and go (a new SSLContext per request): forget the
                # oldest, but never the default. Its idle connections stay in the shared
                # pool until others need their room (the oldest idle go first).
                for old in self._transports:
                    if self._transports[old] is not self._default_transport:
                        del self._transports[old]
                        break
            transport = _PoolTransport(
                pool=self._pool,
                limits=self._limits,
                verify=verify,
                cert=cert,
                backend=self._backend,
                http_limits=self._http_limits,
                trace=self._trace,
                open_stream=self._open_stream,
                unix_socket=unix_socket,
                proxy=proxy,
            )
            self._transports[key] = transport
            if (
                verify is self._verify
                and cert is self._cert
                and unix_socket == self._unix_socket
                and proxy == self._proxy
            ):
                self._default_transport = transport
        return transport

    def _route(self, url: ParsedURL, opts: Mapping[str, Any]) -> Transport:
        """The transport for a request to ``url`` with per-request options ``opts``:
        its TLS settings, Unix socket and proxy (the environment's is chosen here, per
        URL, so a redirect to another host is re-checked against NO_PROXY)."""
        unix_socket = opts.get("unix_socket")
        given = opts.get("proxy", FROM_ENVIRONMENT)
        if given is not FROM_ENVIRONMENT:
            proxy = given_proxy(given, unix_socket or self._unix_socket)
        elif unix_socket is not None:
            proxy = None
        elif self._proxy_env is not None:
            proxy = self._proxy_env.select(url.scheme, url.host, url.port)
        else:
            proxy = self._proxy
        if url.scheme == "http" and (proxy is None or proxy.scheme != "https"):
            return self._transport_for(self._verify, self._cert, unix_socket, proxy)  # no TLS
        return self._transport_for(
            opts.get("verify", self._verify), opts.get("cert", self._cert), unix_socket, proxy
        )

    @property
    def pool(self) -> ConnectionPool:
        """The client's connection pool, shared by every TLS setting, Unix socket and
        proxy its requests use (for inspection and tests)."""
        return self._pool

    async def request(self, url_or_params: str | FetchParams, **options: Any) -> FetchResponse:
        """Send a request and read the whole response. See :func:`sansnet.request`."""
        response = await self._send(url_or_params, options, cover_body=True)
        complete = False
        try:
            body = await response.aread()
            complete = True
        finally:
            await response.aclose(complete=complete)
        return FetchResponse(
            response.status_code,
            response.headers,
            body,
            status_message=response.status_message,
            url=response.url,
            http_version=response.http_version,
        )

    @asynccontextmanager
    async def stream(
        self, url_or_params: str | FetchParams, **options: Any
    ) -> AsyncIterator[StreamingResponse]:
        """Send a request; yield the response before its body. See :func:`sansnet.stream`."""
        response = await self._send(url_or_params, options, cover_body=False)
        complete = False
        try:
            yield response
            complete = True
        finally:
            await response.aclose(complete=complete)

    async def _send(
        self, url_or_params: str | FetchParams, options: dict[str, Any], *, cover_body: bool
    ) -> StreamingResponse:
        transport: Transport | None
        if not options and type(url_or_params) is str:  # the common case, made cheap
            params: dict[str, Any] = {"url": url_or_params}
            opts: dict[str, Any] = _NO_OPTIONS
            settings = self.defaults
            transport = None
            if self._proxy_env is None:
                transport = self._default_transport or self._transport_for(
                    self._verify, self._cert, None, self._proxy
                )
        else:
            params, opts = _split_options(url_or_params, options)
            settings = {**self.defaults, **opts} if opts else self.defaults
            transport = None
            if "max_redirects" in opts:
                _check_max_redirects(opts["max_redirects"])
            if "max_decoded_size" in opts:
                _check_max_decoded_size(opts["max_decoded_size"])
        timeout = Deadlines(Timeout.of(settings["timeout"]), cover_body=cover_body)
        method = _method(params.get("method") or "GET")
        parsed = parse_url(with_query(params["url"], params.get("query")))
        if transport is None:
            transport = self._route(parsed, opts)
        decompress = bool(settings["decompress"])
        headers, shared = self._headers_for(params.get("headers"), decompress)
        body, content_type = _body(params)
        if content_type is not None and "content-type" not in headers:
            if shared:
                headers = headers.copy()
                shared = False
            headers.add("Content-Type", content_type)
        if opts.get("expect_continue") and body and "expect" not in headers:
            if shared:
                headers = headers.copy()
                shared = False
            headers.add("Expect", "100-continue")  # the transport then waits for 100
        credentials = parsed.authorization  # from user:password@ in the URL
        if credentials is not None and "authorization" not in headers:
            if shared:
                headers = headers.copy()
            headers.add("Authorization", credentials)
        else:
            credentials = None
        request = Request(method, parsed.url, headers, body)
        request._split = parsed
        request._credentials = credentials
        follow = settings["follow_redirects"]
        max_redirects = settings["max_redirects"]
        for hop in range(max_redirects + 2):
            response = await transport.send(request, timeout)
            if (
                response.status_code not in _REDIRECTS
                or not follow
                or "location" not in response.raw_headers
            ):
                if (  # no body (HEAD, 204, 304): nothing decoded, headers kept as sent
                    decompress
                    and request.method != "HEAD"
                    and response.status_code not in (204, 304)
                ):  # cannot raise: only supported codings are decoded
                    response.set_decoding(True, settings["max_decoded_size"])
                return response
            await _discard(response)
            if hop >= max_redirects:
                raise TooManyRedirects(
                    f"Exceeded {max_redirects} redirects (last: {response.status_code} from "
                    f"{request.url}); raise max_redirects or pass follow_redirects=False."
                )
            request = _redirect(request, response, settings["allow_insecure_redirects"])
            if request._split is not None and request._split.origin != parsed.origin:
                parsed = request._split
                transport = self._route(parsed, opts)  # NO_PROXY, for the new host
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers_for(self, given: HeadersLike | None, decompress: bool) -> tuple[Headers, bool]:
        """The request's fields: the client's, replaced by the request's own of the same
        name, then User-Agent, Accept and Accept-Encoding unless set. The second value
        is True when the result is shared between requests and must be copied before
        any change (the request has no fields of its own)."""
        if self.headers._fields != self._base_fields:  # the caller changed client.headers
            _check_headers(self.headers)
            self._base_fields = list(self.headers._fields)
            self._base.clear()
        if given is None:
            base = self._base.get(decompress)
            if base is None:
                base = self._base[decompress] = _add_defaults(self.headers.copy(), decompress)
            return base, True
        own = Headers(given)
        _check_headers(own)
        headers = self.headers.copy()
        for name in own:
            if name in headers:
                del headers[name]  # the request's own fields replace the client's
        headers.update_multi(own)
        return _add_defaults(headers, decompress), False

    async def aclose(self) -> None:
        """Close every connection, idle or in use (as httpx does): a request still in
        flight on another task fails with :class:`~sansnet.UsageError` instead of
        waiting on a socket nobody will close. The client cannot be used afterwards."""
        self.closed = True
        transports = list(self._transports.values())
        self._transports.clear()
        self._default_transport = None
        if self._custom_transport is not None:
            transports.append(self._custom_transport)
        for transport in transports:
            await transport.aclose()
        await self._pool.aclose()  # the idle connections of forgotten transports too

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _discard(response: StreamingResponse) -> None:
    """Read and drop a redirect's body (up to 1 MiB) so the connection can be reused."""
    size = 0
    complete = False
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > MiB:
                break
        else:
            complete = True
    finally:
        await response.aclose(complete=complete)


def _redirect(request: Request, response: StreamingResponse, allow_insecure: bool) -> Request:
    """The request that follows a redirect (RFC 9110 section 15.4, as browsers do it)."""
    location = response.raw_headers["location"]
    status = response.status_code
    if not location.isascii():
        # Received bytes, read as Latin-1; servers send UTF-8 there (browsers and
        # requests read it so): percent-encode the characters, not their Latin-1 mojibake.
        try:
            location = location.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    try:
        parsed = parse_url(urljoin(request.url, location.strip()))
    except ValueError as exc:  # urljoin's, or InvalidURL
        raise RemoteProtocolError(
            f"Can't follow the {status} redirect from {request.url}: its Location "
            f"{_masked(location)!r} is not a valid http(s) URL ({_masked_in(str(exc), location).rstrip('.')}). "
            f"Pass follow_redirects=False to get the {status} response itself."
        ) from None
    old = request._split or parse_url(request.url)
    if old.scheme == "https" and parsed.scheme == "http" and not allow_insecure:
        raise UnsafeRedirect(
            f"Refusing to follow a redirect from {request.url} to {parsed.url}: it downgrades "
            "https to http. Pass allow_insecure_redirects=True to follow it."
        )
    method = request.method
    body: bytes | AsyncIterable[bytes] = request.body
    headers = request.headers.copy()
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        body = b""
        for name in ("content-length", "content-type", "transfer-encoding", "content-encoding"):
            if name in headers:
                del headers[name]
    elif not request.replayable:
        raise UnsafeRedirect(
            f"Can't follow the {status} redirect to {parsed.url}: it must resend the body, which "
            "was streamed and cannot be replayed. Send the body as bytes to allow it."
        )
    if parsed.origin != old.origin:
        for name in ("authorization", "cookie", "proxy-authorization", "host"):
            if name in headers:
                del headers[name]
    credentials = request._credentials if "authorization" in headers else None
    if parsed.authorization is not None:  # the Location's own user:password@
        if credentials is not None:
            del headers["authorization"]  # the previous URL's: the Location's replace them
        if "authorization" not in headers:  # a field the caller set still wins
            credentials = parsed.authorization
            headers.add("Authorization", credentials)
    new = Request(method, parsed.url, headers, body)
    new._split = parsed
    new._credentials = credentials
    return new


# =================================================================== module-level API

# The event loop's default client, and the async generator that closes it when the
# loop shuts down (None for a loop whose owner closes it: sansnet.blocking's).
_default_client: anyio.lowlevel.RunVar[tuple[Client, AsyncIterator[None] | None]] = (
    anyio.lowlevel.RunVar("sansnet_default_client")
)


def _own_default_client(client: Client) -> None:
    """Make ``client`` the running event loop's default client, closed by the caller
    (who owns the loop) instead of by an async generator finalized with the loop: one
    whose loop never runs again (a loop inherited by a forked child, or abandoned at
    interpreter exit) would be finalized during interpreter teardown and print
    "Exception ignored in: <async_generator object _lifetime>"."""
    _default_client.set((client, None))


_client_override: contextvars.ContextVar[Client | None] = contextvars.ContextVar(
    "sansnet_client_override", default=None
)


@contextmanager
def use_client(client: Client) -> Iterator[Client]:
    """Make :func:`request`, :func:`stream` (and code that calls them, however deep)
    use ``client`` inside the ``with`` block, in this task and the tasks it starts.
    The way to put a test double under code you do not control, without patching::

        async with sansnet.Client(transport=MockTransport(handler)) as client:
            with sansnet.use_client(client):
                await code_that_calls_sansnet_request()
    """
    token = _client_override.set(client)
    try:
        yield client
    finally:
        _client_override.reset(token)


async def _lifetime(client: Client) -> AsyncIterator[None]:
    """An async generator the event loop finalizes when it shuts down, closing the
    default client with it (asyncio's shutdown_asyncgens, trio's asyncgen hooks)."""
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()


async def default_client() -> Client:
    """The client that :func:`request` and :func:`stream` use in this event loop.

    It lives as long as the event loop: when the loop shuts down (``asyncio.run`` or
    ``trio.run`` returning) its connections are closed.
    """
    override = _client_override.get()
    if override is not None:
        return override
    try:
        return _default_client.get()[0]
    except LookupError:
        pass
    client = Client()
    keeper = _lifetime(client)
    await keeper.__anext__()  # registers the generator with the running loop
    _default_client.set((client, keeper))  # the run variable keeps both alive
    return client


async def request(url_or_params: str | FetchParams, **options: Any) -> FetchResponse:
    """Send an HTTP request and return the whole response (Lune's ``net.request``).

    ``url_or_params`` is a URL or a :class:`FetchParams` dict; the same fields and the
    :class:`FetchOptions` are accepted as keywords: ``method``, ``query``, ``headers``,
    ``body``, ``json``, ``decompress``, ``timeout``, ``follow_redirects``,
    ``max_redirects``, ``allow_insecure_redirects``, ``verify``, ``cert``,
    ``max_decoded_size``.

    Never raises for an HTTP status: check ``response.ok``. Raises
    :class:`~sansnet.InvalidArgument` (a ``ValueError`` and ``TypeError``) for bad arguments (before any I/O), and :class:`~sansnet.NetError`
    subclasses for network, TLS, protocol and decoding failures.
    """
    client = await default_client()
    return await client.request(url_or_params, **options)


@asynccontextmanager
async def stream(
    url_or_params: str | FetchParams, **options: Any
) -> AsyncIterator[StreamingResponse]:
    """Like :func:`request`, but yield the response before reading its body::

    async with sansnet.stream(url) as response:
        async for chunk in response.aiter_bytes():
            ...
    """
    client = await default_client()
    async with client.stream(url_or_params, **options) as response:
        yield response
