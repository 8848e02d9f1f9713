"""The request and response models of ``net.serve``, shared by the HTTP server and the
WebSocket driver (a WebSocket handler sees its upgrade request as a ServeRequest)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from .codecs import json_decode
from .protocol import Headers, RequestHead

__all__ = ["Body", "ServeRequest", "ServeResponse"]


class ServeRequest:
    """A request as a handler sees it (Lune's ServeRequest).

    ``method``; ``path`` (raw, not percent-decoded, ``"/"`` when empty); ``query`` (a
    dict: percent-decoded, ``+`` is a space, a key given several times maps to a list);
    ``headers`` (:class:`~sansnet.Headers`); ``body`` (bytes, decoded when the request
    had Content-Encoding gzip, deflate, br or zstd); ``ip`` and ``port`` of the peer.
    Also ``target`` (the raw request-target), ``raw_query`` and ``http_version``.
    """

    __slots__ = ("_head", "_query", "body", "headers", "ip", "method", "port")

    def __init__(
        self, head: RequestHead, body: bytes, ip: str, port: int, headers: Headers | None = None
    ) -> None:
        self._head = head
        self.method = head.method
        self.headers = head.headers if headers is None else headers
        self.body = body
        self.ip = ip
        self.port = port
        self._query: dict[str, str | list[str]] | None = None

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
    def query(self) -> dict[str, str | list[str]]:
        query = self._query
        if query is None:
            query = {}
            for key, value in parse_qsl(self._head.query_string, keep_blank_values=True):
                existing = query.get(key)
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
    values become repeated fields, so several Set-Cookie work), ``body`` (str, bytes, or
    an iterable or async iterable of bytes to stream it)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, headers: Any = None, body: Body = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<ServeResponse {self.status}>"
