"""Sans-IO protocol engines: bytes in, events out; no I/O, no event loop, no clock.

HTTP/1.1 runs on h11, WebSocket on wsproto; this package is the policy layer around
them (strictness, limits, decoding, bounded compression, one event API).
:data:`H11_BUILD` says which h11 build is in use: ``"h11_mypyc"`` (the
``sansnet[speedups]`` extra) or ``"h11"`` (also when ``SANSNET_PURE_H11=1``).

HTTP/1.1: :class:`ClientConnection` and :class:`ServerConnection` with the events of
:mod:`sansnet.protocol.events`, :class:`Headers`, :class:`Limits`, and
:class:`ContentDecoder` for Content-Encoding. Drive them from any loop: feed received
bytes to ``receive_data()``, take events from ``next_event()``, write what
``data_to_send()`` returns. Nothing here imports an event loop, a socket or a clock
(an import-linter contract enforces it).
"""

from sansnet.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

from ._h11 import BUILD as H11_BUILD
from .decoding import ContentDecoder, accept_encoding, is_supported, supported_encodings
from .events import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    PeerClosed,
    RequestHead,
    ResponseHead,
    Sentinel,
    _renamed,
)
from .headers import Headers
from .http11 import (
    CLIENT,
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    MIGHT_SWITCH_PROTOCOL,
    MUST_CLOSE,
    SEND_BODY,
    SEND_RESPONSE,
    SERVER,
    SWITCHED_PROTOCOL,
    USER_AGENT,
    ClientConnection,
    HTTPConnection,
    ServerConnection,
    check_fields,
    reason_phrase,
)
from .limits import Limits

__all__ = [
    "CLIENT",
    "CLOSED",
    "DONE",
    "ERROR",
    "H11_BUILD",
    "IDLE",
    "MIGHT_SWITCH_PROTOCOL",
    "MUST_CLOSE",
    "NEED_DATA",
    "PAUSED",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SERVER",
    "SWITCHED_PROTOCOL",
    "USER_AGENT",
    "ClientConnection",
    "ContentDecoder",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTPConnection",
    "Headers",
    "InformationalResponse",
    "Limits",
    "LocalProtocolError",
    "PeerClosed",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestHead",
    "ResponseHead",
    "Sentinel",
    "ServerConnection",
    "accept_encoding",
    "check_fields",
    "is_supported",
    "reason_phrase",
    "supported_encodings",
]


def __getattr__(name: str) -> object:
    return _renamed(__name__, name)
