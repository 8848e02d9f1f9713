"""``net.http`` (Lune 0.10): HTTP requests and the HTTP server.

The same objects as the top-level names (``sansnet.http.request is sansnet.request``),
grouped the way Lune 0.10 groups them: ``net.http.request`` -> :func:`request`,
``net.http.serve`` -> :func:`serve`. Both spellings stay supported.
"""

from __future__ import annotations

from .client import Client, FetchResponse, StreamingResponse, request, stream
from .server import ServeConfig, ServeHandle, ServeRequest, ServeResponse, serve

__all__ = [
    "Client",
    "FetchResponse",
    "ServeConfig",
    "ServeHandle",
    "ServeRequest",
    "ServeResponse",
    "StreamingResponse",
    "request",
    "serve",
    "stream",
]
