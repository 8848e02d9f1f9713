"""sansnet: the ``net`` library of the Lune runtime, rebuilt for Python.

HTTP requests, an HTTP server, WebSocket client and server, JSON and URL codecs, on pure
sans-IO protocol engines (:mod:`sansnet.protocol`) driven by anyio transports
(:mod:`sansnet.transport`), so the same code runs on asyncio and trio.

Use it as ``import sansnet as net``.
"""

from __future__ import annotations

from ._version import __version__
from .codecs import json_decode, json_encode, url_decode, url_encode
from .errors import (
    BindError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    DecodingError,
    HandshakeError,
    JSONDecodeError,
    JSONEncodeError,
    LocalProtocolError,
    NetError,
    PoolTimeout,
    ProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ServerError,
    ServerStoppedError,
    TimeoutError,
    TLSError,
    TooManyRedirects,
    TransportError,
    URLDecodeError,
    URLEncodeError,
    WriteError,
    WriteTimeout,
)

__all__ = [
    "BindError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DecodingError",
    "HandshakeError",
    "JSONDecodeError",
    "JSONEncodeError",
    "LocalProtocolError",
    "NetError",
    "PoolTimeout",
    "ProtocolError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "ServerError",
    "ServerStoppedError",
    "TLSError",
    "TimeoutError",
    "TooManyRedirects",
    "TransportError",
    "URLDecodeError",
    "URLEncodeError",
    "WriteError",
    "WriteTimeout",
    "__version__",
    "json_decode",
    "json_encode",
    "url_decode",
    "url_encode",
]
