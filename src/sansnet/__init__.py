"""sansnet: the ``net`` library of the Lune runtime, rebuilt for Python.

HTTP requests, an HTTP server, WebSocket client and server, raw TCP streams and a TCP
listener, JSON and URL codecs, on pure
sans-IO protocol engines (:mod:`sansnet.protocol`) driven by anyio transports
(:mod:`sansnet.transport`), so the same code runs on asyncio and trio.

Use it as ``import sansnet as net``. Lune 0.10's submodules are here too:
``net.http`` (``request``, ``serve``), ``net.ws`` (``connect``) and ``net.tcp``
(``connect``, ``serve``); the top-level names stay.
"""

from __future__ import annotations

from . import http, tcp, ws
from ._version import __version__
from .client import (
    Client,
    FetchOptions,
    FetchParams,
    FetchResponse,
    PoolLimits,
    Request,
    StreamingResponse,
    Timeout,
    request,
    stream,
    use_client,
)
from .codecs import json_decode, json_encode, url_decode, url_encode
from .errors import (
    BindError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    DecodingError,
    HandshakeError,
    InvalidArgument,
    InvalidURL,
    JSONDecodeError,
    JSONEncodeError,
    LocalProtocolError,
    NetError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RedirectError,
    RemoteProtocolError,
    ServerError,
    ServerStoppedError,
    TimeoutError,
    TLSError,
    TooManyRedirects,
    TransportError,
    UnsafeRedirect,
    UnsupportedProtocol,
    URLDecodeError,
    URLEncodeError,
    UsageError,
    WriteError,
    WriteTimeout,
)
from .models import QueryParams
from .protocol import Headers, Limits
from .proxies import Proxy
from .server import ServeConfig, ServeHandle, Server, ServeRequest, ServeResponse, serve
from .websocket import WebSocket, socket

__all__ = [
    "BindError",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DecodingError",
    "FetchOptions",
    "FetchParams",
    "FetchResponse",
    "HandshakeError",
    "Headers",
    "InvalidArgument",
    "InvalidURL",
    "JSONDecodeError",
    "JSONEncodeError",
    "Limits",
    "LocalProtocolError",
    "NetError",
    "PoolLimits",
    "PoolTimeout",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "QueryParams",
    "ReadError",
    "ReadTimeout",
    "RedirectError",
    "RemoteProtocolError",
    "Request",
    "ServeConfig",
    "ServeHandle",
    "ServeRequest",
    "ServeResponse",
    "Server",
    "ServerError",
    "ServerStoppedError",
    "StreamingResponse",
    "TLSError",
    "Timeout",
    "TimeoutError",
    "TooManyRedirects",
    "TransportError",
    "URLDecodeError",
    "URLEncodeError",
    "UnsafeRedirect",
    "UnsupportedProtocol",
    "UsageError",
    "WebSocket",
    "WriteError",
    "WriteTimeout",
    "__version__",
    "http",
    "json_decode",
    "json_encode",
    "request",
    "serve",
    "socket",
    "stream",
    "tcp",
    "url_decode",
    "url_encode",
    "use_client",
    "ws",
]
