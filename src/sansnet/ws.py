"""``net.ws`` (Lune 0.10): WebSocket client connections.

``net.ws.connect`` -> :func:`connect`, the same function as :func:`sansnet.socket`
(Lune 0.9's ``net.socket``); both spellings stay supported. WebSocket *servers* are
part of :func:`sansnet.http.serve` (``handle_web_socket``), as in Lune.
"""

from __future__ import annotations

from .websocket import WebSocket
from .websocket import socket as connect

__all__ = ["WebSocket", "connect"]
