"""The request and response models of ``net.serve``, shared by the HTTP server and the
WebSocket driver (a WebSocket handler sees its upgrade request as a ServeRequest)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from .codecs import json_decode
from .protocol import Headers, RequestHead

__all__ = ["Body", "QueryParams", "ServeRequest", "ServeResponse"]


class QueryParams(dict[str, "str | list[str]"]):
    """A request's query, as Lune gives it: a dict of percent-decoded strings, where a
    key given several times maps to the list of its values (``?a=1&a=2`` ->
    ``{"a": ["1", "2"]}``). Two methods make repeated keys easy to handle either way:

    * :meth:`get` always returns one ``str`` (the first value) or the default, as
      aiohttp's and Werkzeug's ``get`` do, so ``query.get("page", "1")`` is a string
      whatever the client sent;
    * :meth:`get_all` returns every value as a list (``[]`` when the key is absent).
    """

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key``, or ``default`` when it is absent."""
        value = dict.get(self, key)
        if value is None:
            return default
        return value[0] if isinstance(value, list) else value

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key``, in order (``[]`` when it is absent)."""
        value = dict.get(self, key)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]


class ServeRequest:
    """A request as a handler sees it (Lune's ServeRequest).

    ``method``; ``path`` (raw, not percent-decoded, ``"/"`` when empty); ``query`` (a
    :class:`QueryParams` dict: percent-decoded, ``+`` is a space, a key given several
    times maps to a list; ``query.get(key)`` is always one str, ``query.get_all(key)``
    a list);
    ``headers`` (:class:`~sansnet.Headers`); ``body`` (bytes, decoded when the request
    had Content-Encoding gzip, deflate, br or zstd); ``ip`` and ``port`` of the client.
    Also ``target`` (the raw request-target), ``raw_query``, ``http_version``, and
    ``scheme``, ``host`` and ``url`` (the URL the client asked for; without a Host
    field, its host is the server's own address, see :attr:`url`).

    ``ip``, ``port``, ``scheme`` and ``host`` are the connection's own (the peer's
    address, ``https`` on TLS, the Host field) unless the peer is one of the server's
    ``trusted_proxies``: then they are what its ``Forwarded`` or ``X-Forwarded-*``
    fields say (``port`` 0 when the proxy did not say; ``ip`` "" on a Unix socket).
    """

    __slots__ = (
        "_head",
        "_host",
        "_query",
        "_server",
        "body",
        "headers",
        "ip",
        "method",
        "port",
        "scheme",
    )

    def __init__(
        self,
        head: RequestHead,
        body: bytes,
        ip: str,
        port: int,
        headers: Headers | None = None,
        scheme: str = "http",
        host: str | None = None,
        server: tuple[str, int] | Callable[[], tuple[str, int]] | None = None,
    ) -> None:
        self._head = head
        self.method = head.method
        self.headers = head.headers if headers is None else headers
        self.body = body
        self.ip = ip
        self.port = port
        self.scheme = scheme
        self._host = host
        # The server's own (host, port) the request came in on, or a function that reads
        # it (only a URL without Host needs it); a Unix socket's has port 0.
        self._server = server
        self._query: QueryParams | None = None

    @property
    def host(self) -> str:
        """The host the client asked for: the Host field, or the authority of an
        absolute-form target (``GET http://host/p``), which wins over Host as RFC 9112
        section 3.2.2 requires, or CONNECT's target (``host:port``, RFC 9112 section
        3.3); what a trusted proxy forwarded; "" when there is none."""
        host = self._host
        if host is not None:
            return host
        return self._head.authority or ""

    @property
    def url(self) -> str:
        """The full URL the client asked for: ``scheme://host/path?query``.

        Without a Host field (HTTP/1.0 may leave it out) or with an empty one, the host
        is the server's own address the request came in on (the connection's local
        address; the port left out when it is the scheme's default), as Starlette makes
        it from the ASGI scope's ``server``: ``http://127.0.0.1:8080/path``. Where there
        is no such address (a Unix socket), the URL is ``/path?query`` alone.
        :attr:`host` stays "" in both cases.

        ``OPTIONS *`` and ``CONNECT host:port`` have no path: their URL is the origin
        alone (``http://host``, ``http://host:port``), as RFC 9112 section 3.3 rebuilds
        the target URI; :attr:`path` is still the target (``*``, ``host:port``). Where
        there is no host either, the URL is ``*``. (Starlette, on uvicorn's scope, makes
        ``http://host*`` and ``http://host:porthost:port`` of them.)
        """
        head = self._head
        target = head.target
        if target == "*" or (head.method == "CONNECT" and target[:1] != "/"):
            path = ""  # asterisk-form or authority-form: no path, no query
        else:
            query = head.query_string
            path = head.path + (f"?{query}" if query else "")
        host = self.host or self._server_authority()
        return f"{self.scheme}://{host}{path}" if host else (path or target)

    def _server_authority(self) -> str:
        """``ip[:port]`` of the server's own address, "" when there is none."""
        server = self._server
        if callable(server):
            try:
                server = server()
            except OSError:  # pragma: no cover - the socket is gone already
                server = None
        if server is None:
            return ""
        ip, port = server
        if not ip or ip == "?" or not port:  # a Unix socket's (path, 0), or unknown
            return ""
        if ":" in ip:  # IPv6 (a zone's "%" is "%25" in a URL, RFC 6874)
            ip = "[" + ip.replace("%", "%25") + "]"
        if port == {"http": 80, "https": 443}.get(self.scheme):
            return ip
        return f"{ip}:{port}"

    @property
    def path(self) -> str:
        return self._head.path

    @property
    def target(self) -> str:
        return self._head.target

    @property
    def raw_query(self) -> str:
        return self._head.query_string

    @property
    def http_version(self) -> str:
        return self._head.http_version

    @property
    def query(self) -> QueryParams:
        query = self._query
        if query is None:
            query = QueryParams()
            for key, value in parse_qsl(self._head.query_string, keep_blank_values=True):
                existing = dict.get(query, key)  # not QueryParams.get: the first value only
                if existing is None:
                    query[key] = value
                elif isinstance(existing, list):
                    existing.append(value)
                else:
                    query[key] = [existing, value]
            self._query = query
        return query

    @property
    def text(self) -> str:
        """The body as UTF-8 text (undecodable bytes become U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json_decode(self.body)

    def __repr__(self) -> str:
        return f"<ServeRequest {self.method} {self.target} from {self.ip}:{self.port}>"


Body = str | bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes] | None


class ServeResponse:
    """A handler's answer: ``status`` (default 200), ``headers`` (a mapping whose list
    values become repeated fields, so several Set-Cookie work; a ``Date`` or ``Server``
    given here replaces the server's own), ``body`` (str, bytes, or an iterable or async
    iterable of bytes to stream it). A streamed body is iterated as it is sent; a
    response that carries none (to HEAD, a 204, 205 or 304) closes it unread."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, headers: Any = None, body: Body = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<ServeResponse {self.status}>"
