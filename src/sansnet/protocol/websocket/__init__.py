"""The sans-IO WebSocket engine (RFC 6455, RFC 7692 permessage-deflate).

* :mod:`.handshake`: :class:`ClientHandshake` and :func:`accept` run the opening
  handshake over the HTTP/1.1 engine.
* :class:`WebSocketConnection`: messages, pings, limits and the closing handshake, for
  either role, after the handshake, over wsproto's frame-level ``Connection``.
* :mod:`.deflate`: permessage-deflate negotiation and its bounded wsproto extension;
  :mod:`.closing`: the close-code rules; :mod:`.sizes`: the size limits.
"""

from sansnet.errors import HandshakeError

from .closing import check_close_code, is_valid_received_close_code
from .connection import (
    CLOSED,
    CLOSING,
    FRAGMENT_SIZE,
    MAX_UNSENT_PONGS,
    OPEN,
    BinaryMessage,
    Closed,
    Pong,
    TextMessage,
    WebSocketConnection,
)
from .deflate import DeflateParameters
from .handshake import ClientHandshake, Handshake, accept, accept_key, is_upgrade_request

__all__ = [
    "CLOSED",
    "CLOSING",
    "FRAGMENT_SIZE",
    "MAX_UNSENT_PONGS",
    "OPEN",
    "BinaryMessage",
    "ClientHandshake",
    "Closed",
    "DeflateParameters",
    "Handshake",
    "HandshakeError",
    "Pong",
    "TextMessage",
    "WebSocketConnection",
    "accept",
    "accept_key",
    "check_close_code",
    "is_upgrade_request",
    "is_valid_received_close_code",
]
