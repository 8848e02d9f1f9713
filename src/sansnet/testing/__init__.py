"""Testing networked code with sansnet, without sockets.

* :func:`serve` runs a handler (or a :class:`~sansnet.ServeConfig`) and hands you a
  :class:`TestClient` connected to it **in memory**: every request and WebSocket goes
  through the real protocol engines as real bytes, on both sides, in your event loop.
* :class:`MockTransport` answers a client's requests from a function, and :func:`mock`
  installs one under code that calls :func:`sansnet.request` however deep, without
  monkeypatching (it swaps the default client for the current task and its children).
* :class:`WireRecorder` keeps the exact bytes each side sent; ``print(recorder)``
  shows them readably.
* :meth:`TestClient.connect` opens a :class:`RawConnection`: you write the bytes,
  to play a client that misbehaves.
* :class:`Faults` makes the in-memory link misbehave deterministically: deliver
  byte by byte, delay, cut the stream after N bytes, or close it abruptly.
* Virtual time: every delay and timeout follows the event loop's clock, so on trio's
  ``MockClock(autojump_threshold=0)`` or on asyncio's :class:`VirtualTimeEventLoop`
  a test of a 30-second timeout runs at once, the same way every time.

A pytest plugin (installed with sansnet, module ``sansnet_pytest``) adds the fixtures
``net_recorder`` and ``net_mock`` and the marker ``net_virtual_time``.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from math import inf
from typing import Any
from urllib.parse import urlsplit

import anyio

from sansnet._lifecycle import unwrap_group
from sansnet._server_session import close_body, response_parts
from sansnet._urls import parse_url
from sansnet.client import (
    Client,
    Deadlines,
    FetchResponse,
    Request,
    ResponseBody,
    StreamingResponse,
    Transport,
    use_client,
)
from sansnet.errors import InvalidArgument, ReadTimeout, WriteError
from sansnet.models import ServeResponse
from sansnet.protocol import Headers, ResponseHead
from sansnet.server import RequestHandler, ServeConfig, Server
from sansnet.server import serve as _serve
from sansnet.testing.virtual_time import VirtualTimeEventLoop
from sansnet.transport.pool import Origin
from sansnet.transport.streams import (
    READ_SIZE,
    MemoryStream,
    NetworkStream,
    TLSInfo,
    memory_stream_pair,
)
from sansnet.websocket import WebSocket
from sansnet.websocket import socket as _socket

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "Faults",
    "MockRouter",
    "MockTransport",
    "RawConnection",
    "TestClient",
    "VirtualTimeEventLoop",
    "WireRecorder",
    "mock",
    "serve",
]


# ============================================================================ recorder


class WireRecorder:
    """The bytes each side of in-memory connections wrote, in order.

    ``entries`` is a list of (side, bytes) with side ``"client"`` or ``"server"``, one
    entry per turn: consecutive writes of one side on one connection (a head, then its
    body) are one entry, as a reader of the exchange sees them. :attr:`client_bytes` and
    :attr:`server_bytes` join each side's bytes. ``str()`` shows every turn with ``-->``
    (client) or ``<--`` (server), CR LF shown as ``\\r\\n`` at the end of each line and
    other unprintable bytes as ``\\xNN``.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.writes: dict[str, int] = {"client": 0, "server": 0}
        """How many writes (pieces, with ``Faults(chunk_size=...)``) each side made."""
        self._last: tuple[str, object] | None = None  # (side, connection) of the last entry

    def record(self, side: str, data: bytes, connection: object = None) -> None:
        """Add what ``side`` wrote on ``connection`` (any object naming it)."""
        if not data:
            return
        self.writes[side] = self.writes.get(side, 0) + 1
        if self._last == (side, connection) and self.entries:
            self.entries[-1] = (side, self.entries[-1][1] + bytes(data))
        else:
            self.entries.append((side, bytes(data)))
            self._last = (side, connection)

    @property
    def client_bytes(self) -> bytes:
        return b"".join(data for side, data in self.entries if side == "client")

    @property
    def server_bytes(self) -> bytes:
        return b"".join(data for side, data in self.entries if side == "server")

    def clear(self) -> None:
        self.entries.clear()
        self.writes = {"client": 0, "server": 0}
        self._last = None

    def __str__(self) -> str:
        blocks = []
        for side, data in self.entries:
            arrow = "-->" if side == "client" else "<--"
            blocks.append(f"{arrow} {side} ({len(data)} bytes)\n{_readable(data)}")
        return "\n".join(blocks)

    def __repr__(self) -> str:
        return f"<WireRecorder {len(self.entries)} writes>"


def _readable(data: bytes) -> str:
    lines = []
    for line in data.split(b"\r\n"):
        text = "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in line)
        lines.append(f"    {text}\\r\\n")
    lines[-1] = lines[-1][: -len("\\r\\n")]  # the last piece had no CR LF after it
    if lines[-1].strip() == "":
        lines.pop()
    return "\n".join(lines)


# ============================================================================== faults


@dataclass(frozen=True)
class Faults:
    """How an in-memory link misbehaves, for the bytes one side writes.

    ``chunk_size``: deliver writes in pieces of at most this many bytes (1: byte by
    byte). ``delay``: seconds to wait before delivering each piece. ``truncate_after``:
    deliver only this many bytes in all, then end the stream (the reader sees a clean
    end of stream; a later write raises :class:`~sansnet.WriteError`).
    ``close_after``: after this many bytes, break the connection (the writer gets
    :class:`~sansnet.WriteError`, the reader an end of stream). Given both, the one
    with fewer bytes acts and the other never comes; given the same number, the
    connection breaks (``close_after``).
    """

    chunk_size: int | None = None
    delay: float = 0.0
    truncate_after: int | None = None
    close_after: int | None = None

    def __post_init__(self) -> None:
        for name, least in (("chunk_size", 1), ("truncate_after", 0), ("close_after", 0)):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < least):
                raise InvalidArgument(
                    f"Faults.{name} must be None or an int of at least {least}, not {value!r}."
                )
        delay = self.delay
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay < inf:
            raise InvalidArgument(
                f"Faults.delay must be a finite number of seconds, not negative, not {delay!r}."
            )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _LinkStream(NetworkStream):
    """One end of an in-memory connection, recording and misbehaving as told."""

    def __init__(
        self,
        inner: MemoryStream,
        side: str,
        faults: Faults | None,
        recorder: WireRecorder | None,
        link: object = None,
    ) -> None:
        self._inner = inner
        self._link = link  # what both ends of one connection share, for the recorder
        self._side = side
        self._faults = faults
        self._recorder = recorder
        self._written = 0
        self._ended = False
        self.description = inner.description

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        if self._ended:
            raise WriteError(
                f"The in-memory connection to {self.description} was cut (fault injection)."
            )
        faults = self._faults
        if faults is None:
            if self._recorder is not None:
                self._recorder.record(self._side, data, self._link)
            await self._inner.write(data, timeout)
            return
        # Whichever of truncate_after and close_after comes first ends the link.
        limits = [n for n in (faults.truncate_after, faults.close_after) if n is not None]
        limit = min(limits) if limits else None
        if limit is not None and self._written + len(data) > limit:
            data = data[: max(0, limit - self._written)]
        size = faults.chunk_size or max(1, len(data))
        for start in range(0, len(data), size):
            if faults.delay:
                await anyio.sleep(faults.delay)
            piece = data[start : start + size]
            if self._recorder is not None:
                self._recorder.record(self._side, piece, self._link)
            await self._inner.write(piece, timeout)
            self._written += len(piece)
        if limit is not None and self._written >= limit:
            self._ended = True
            if faults.close_after != limit:  # truncate_after came first: a clean end
                await self._inner.send_eof()
            else:
                await self._inner.aclose()
                raise WriteError(
                    f"The in-memory connection to {self.description} was broken (fault injection)."
                )

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def aclose_within(self, timeout: float) -> None:
        await self._inner.aclose_within(timeout)

    async def wait_writable(self) -> None:
        await self._inner.wait_writable()

    @property
    def writes_whole(self) -> bool:
        # With faults a write goes out in pieces: a cancelled one may leave a part sent.
        return self._faults is None

    @property
    def closing_wakes_reader(self) -> bool:
        return self._inner.closing_wakes_reader

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    @property
    def peer(self) -> tuple[str, int]:
        return self._inner.peer

    @property
    def local(self) -> tuple[str, int]:
        return self._inner.local

    @property
    def tls(self) -> TLSInfo | None:
        return None

    def is_readable(self) -> bool:
        return self._inner.is_readable()


# ============================================================================== serve


# A full URL starts with a scheme (RFC 3986: a letter, then letters, digits, "+", "-"
# or ".") and "://"; anything else is a path on the test host.
_ABSOLUTE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_WS_SCHEMES = {"http": "ws", "https": "wss"}


class TestClient:
    """A client wired in memory to a server; made by :func:`serve`.

    ``await client.request("/path", **options)`` and ``client.stream(...)`` take a path
    (or a full URL on the test host) and the options of :func:`sansnet.request`;
    ``await client.socket("/ws")`` opens a :class:`~sansnet.WebSocket`. :attr:`http` is
    the underlying :class:`~sansnet.Client` (pass it to :func:`sansnet.use_client` to
    put code that calls :func:`sansnet.request` in front of the server).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        http: Client,
        base_url: str,
        opener: Callable[..., Awaitable[NetworkStream]],
        recorder: WireRecorder | None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder
        self._opener = opener

    def url(self, path_or_url: str) -> str:
        """A full URL for ``path_or_url`` on the test host: a path (``"/items?x=1"``)
        goes after :attr:`base_url`; only a string that starts with a scheme and
        ``://`` (``"http://testserver/items"``) is taken as a full URL, so a query may
        hold one (``"/login?next=https://example.com/"``)."""
        if _ABSOLUTE_URL.match(path_or_url):
            return path_or_url
        return self.base_url + ("" if path_or_url.startswith("/") else "/") + path_or_url

    async def request(self, path_or_url: str = "/", **options: Any) -> FetchResponse:
        return await self.http.request(self.url(path_or_url), **options)

    def stream(self, path_or_url: str = "/", **options: Any) -> Any:
        return self.http.stream(self.url(path_or_url), **options)

    async def socket(self, path_or_url: str = "/", **options: Any) -> WebSocket:
        url = self.url(path_or_url)
        scheme, colon, rest = url.partition(":")
        ws_scheme = _WS_SCHEMES.get(scheme.lower())
        if colon and ws_scheme is not None:  # only the scheme: http -> ws, https -> wss
            url = ws_scheme + colon + rest
        return await _socket(url, open_stream=self._opener, **options)

    async def connect(self) -> RawConnection:
        """Open a raw in-memory connection to the server: you send the bytes and read
        what the server answers, to play a client that misbehaves (a slow or truncated
        head, garbage, a half-sent body). ``faults`` and ``recorder`` apply to it."""
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        stream = await self._opener((parts.scheme, parts.hostname or "", port), None)
        return RawConnection(stream)


class RawConnection:
    """Bytes to and from the server, made by :meth:`TestClient.connect`; use it as
    ``async with await client.connect() as conn:`` (or call :meth:`aclose`).

    ``await conn.send(data)``; ``await conn.receive()`` returns the next bytes the server
    wrote, ``b""`` once it closed the connection (or ended its side);
    ``await conn.receive_until_closed()`` everything until then. A ``timeout`` (seconds)
    raises :class:`~sansnet.ReadTimeout` when nothing comes in time.
    """

    def __init__(self, stream: NetworkStream) -> None:
        self._stream = stream

    async def send(self, data: bytes, timeout: float | None = None) -> None:
        """Write ``data``; raises :class:`~sansnet.WriteError` once the server closed."""
        await self._stream.write(data, timeout)

    async def receive(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        """The next bytes the server sent (at most ``max_bytes``); ``b""`` at the end."""
        return await self._stream.read(max_bytes, timeout)

    async def receive_until_closed(self, timeout: float | None = None) -> bytes:
        """Everything the server sends until it closes; ``timeout`` bounds each wait."""
        received = bytearray()
        while chunk := await self._stream.read(READ_SIZE, timeout):
            received += chunk
        return bytes(received)

    async def send_eof(self) -> None:
        """End what this side sends (a half close); the server may still answer."""
        await self._stream.send_eof()

    async def aclose(self) -> None:
        """Close the connection (the server reads the end of the stream)."""
        await self._stream.aclose()

    async def __aenter__(self) -> RawConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@asynccontextmanager
async def serve(
    handler_or_config: RequestHandler | ServeConfig,
    *,
    faults: Faults | None = None,
    response_faults: Faults | None = None,
    recorder: WireRecorder | None = None,
    base_url: str = "http://testserver",
    client_address: tuple[str, int] = ("127.0.0.1", 50000),
    **client_options: Any,
) -> AsyncIterator[TestClient]:
    """Run a handler or :class:`~sansnet.ServeConfig` in memory; yield a
    :class:`TestClient` connected to it.

    ``faults`` apply to what the client sends, ``response_faults`` to what the server
    sends; ``recorder`` keeps both sides' bytes; ``client_options`` go to the
    :class:`~sansnet.Client` (timeouts, redirects...). Each connection the client opens
    is a fresh in-memory pair served by the real server code; keep-alive and pooling
    work as over TCP. Everything is stopped when the block ends.
    """
    server: Server = _serve(0, handler_or_config)
    counter = iter(range(client_address[1], client_address[1] + 1_000_000))
    try:
        async with anyio.create_task_group() as group:

            async def open_stream(
                origin: tuple[str, str, int], timeout: float | None
            ) -> NetworkStream:
                _, host, port = origin
                link = object()  # one connection: both ends record under it
                client_end, server_end = memory_stream_pair(
                    client=(client_address[0], next(counter)), server=(host, port)
                )
                group.start_soon(
                    server.serve_stream,
                    _LinkStream(server_end, "server", response_faults, recorder, link),
                )
                return _LinkStream(client_end, "client", faults, recorder, link)

            async with Client(open_stream=open_stream, **client_options) as http:
                yield TestClient(http, base_url, open_stream, recorder)
            # A WebSocket still open hears that the server goes away (1001, as from a
            # stopping server), not a dropped connection (1006); nobody waits for it.
            await server._close_web_sockets_at_once()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        # An error of the block (a failed assert) or of the server comes out as
        # itself, as from sansnet.serve and mock(), not wrapped by our task group.
        raise unwrap_group(group_error) from None


# ============================================================================== mocks


Handler = Callable[[Request], Any]


class _BytesBody(ResponseBody):
    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    async def read(self) -> bytes:
        data, self._data = self._data, None
        return data or b""

    async def release(self, *, complete: bool) -> None:
        self._data = None


class MockTransport(Transport):
    """Answers requests from ``handler(request)`` (sync or async) instead of the network.

    The handler gets a :class:`~sansnet.Request` (``method``, ``url``, ``headers``,
    ``content``) and returns what a :func:`sansnet.serve` handler may return: str,
    bytes, None, a :class:`~sansnet.ServeResponse` or a dict with status, headers and
    body. It may raise a :class:`~sansnet.NetError` (say, :class:`~sansnet.ConnectError`)
    to play a network failure. Redirects, decompression and timeouts of the client still
    apply. As from a real server, the answer to ``HEAD`` and a 204, 205 or 304 has no
    body: the handler's is dropped (a streamed one closed unread), its head kept.
    ``requests`` lists every request seen, for assertions.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request, timeout: Deadlines) -> StreamingResponse:
        if not isinstance(request.body, bytes):
            chunks = [chunk async for chunk in request.body]
            request = Request(request.method, request.url, request.headers, b"".join(chunks))
        self.requests.append(request)
        # The answer is awaited as a server's would be: within the read timeout (and
        # the total deadline, which `with timeout` reports when it was the shorter).
        limit = timeout.bound(timeout.timeout.read)
        with timeout:
            with anyio.move_on_after(limit):
                return await self._answer(request)
            raise ReadTimeout(
                f"The mock handler did not answer {request.method} {request.url} "
                f"within {limit} s (read timeout)."
            )

    async def _answer(self, request: Request) -> StreamingResponse:
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        body: bytes
        if isinstance(result, FetchResponse):
            status, headers, body = result.status_code, result.headers, result.body
        else:
            status, headers, content = response_parts(result)
            if isinstance(content, bytes):
                body = content
            elif request.method == "HEAD" or status in (204, 205, 304):
                await close_body(content)  # as the server does: closed, never iterated
                body = b""
            elif isinstance(content, AsyncIterable):
                body = b"".join([bytes(chunk) async for chunk in content])
            else:
                body = b"".join(bytes(chunk) for chunk in content)
        if request.method == "HEAD" or status in (204, 205, 304):
            body = b""  # a sansnet server sends none here, whatever was given
        head = ResponseHead(
            status, Headers(headers) if not isinstance(headers, Headers) else headers, ""
        )
        return StreamingResponse(head, request.url, _BytesBody(body), decompress=False)


@asynccontextmanager
async def mock(
    handler: Handler | MockTransport, **client_options: Any
) -> AsyncIterator[MockTransport]:
    """Make :func:`sansnet.request` and :func:`sansnet.stream` answer from ``handler``
    inside the block, in this task and the tasks it starts; yield the
    :class:`MockTransport` (its ``requests`` list records what was sent)::

        async with sansnet.testing.mock(lambda request: {"status": 503}) as transport:
            await code_that_fetches()          # calls sansnet.request(...) somewhere
        assert transport.requests[0].url == "https://api.example.com/items"
    """
    transport = handler if isinstance(handler, MockTransport) else MockTransport(handler)
    async with Client(transport=transport, **client_options) as client:
        with use_client(client):
            yield transport


class MockRouter(MockTransport):
    """A :class:`MockTransport` answering from routes you add, for the ``net_mock``
    fixture: ``router.add("GET", "https://api.example.com/items", json=[...])``.

    A route matches on the method and the URL without its query (a URL of ``"*"``
    matches any; a route whose URL has a query matches that query only); the last
    added route that matches wins. URLs are compared as the client sends them: an
    empty path is ``/``, the scheme and host match in any case, the default port
    (``:443``, ``:80``) may be written or not, and a space or non-ASCII character
    matches its percent-encoded form. A request no route matches fails the test with
    an ``AssertionError`` naming it.
    """

    def __init__(self) -> None:
        super().__init__(self._dispatch)
        self.routes: list[tuple[str, str, Handler]] = []

    def add(
        self,
        method: str,
        url: str,
        handler: Handler | None = None,
        *,
        status: int = 200,
        headers: Any = None,
        body: Any = b"",
        json: Any = None,
    ) -> None:
        """Answer ``method url`` with ``handler(request)``, or with the given status,
        headers and body (``json``: a value sent as JSON).

        A route answers every request it matches alike, so ``body`` is str, bytes or a
        re-iterable of chunks (a list): a one-shot iterator (a generator, sync or async,
        or ``iter(...)``) would answer the first request only and the next with an empty
        body, so it raises :class:`~sansnet.InvalidArgument`; return a fresh one from a
        ``handler`` instead (``lambda request: ServeResponse(body=chunks())``).

        ``url`` is ``"*"`` or an http(s) URL the client could send to: one it could not
        (no scheme, no host) raises :class:`~sansnet.InvalidURL` or
        :class:`~sansnet.UnsupportedProtocol` here, as the request would."""
        if url != "*":
            _route_key(url)  # a route no request could match: say so now
        if handler is None:
            from sansnet.codecs import json_encode

            if isinstance(body, (Iterator, AsyncIterator)):
                raise InvalidArgument(
                    f"The body of the route {method.upper()} {url} is a one-shot "
                    f"{type(body).__name__}: it would answer the first request only. Pass "
                    "bytes or a list of chunks, or a handler that returns a fresh one "
                    "(lambda request: ServeResponse(body=chunks()))."
                )

            fields = Headers(headers) if headers is not None else Headers()
            content: Any = body
            if json is not None:
                content = json_encode(json)
                if "content-type" not in fields:
                    fields.add("Content-Type", "application/json")
            answer = ServeResponse(status, fields, content)

            def handler(request: Request) -> ServeResponse:
                return answer

        self.routes.append((method.upper(), url, handler))

    def _dispatch(self, request: Request) -> Any:
        bare = request.url.partition("?")[0]
        origin, path, query = _route_key(request.url)
        for method, url, handler in reversed(self.routes):
            if method not in (request.method, "*"):
                continue
            if url == "*":
                return handler(request)
            route_origin, route_path, route_query = _route_key(url)
            if (route_origin, route_path) == (origin, path) and route_query in ("", query):
                return handler(request)
        raise AssertionError(
            f"No mock route for {request.method} {request.url}; add one with "
            f"net_mock.add({request.method!r}, {bare!r}, ...)."
        )


def _route_key(url: str) -> tuple[Origin, str, str]:
    """``url`` as the client sends it, to compare routes with requests: its origin
    (scheme and host lowercased, the default port filled in), and its path and query
    percent-encoded (an empty path is ``/``). Raises what the client raises for a URL
    it cannot send."""
    parsed = parse_url(url)
    path, _, query = parsed.target.partition("?")
    return parsed.origin, path, query
