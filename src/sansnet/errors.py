"""Every exception sansnet raises, in one hierarchy rooted at :class:`NetError`.

Catch :class:`NetError` to handle anything sansnet raises on purpose. Each class also
derives from the built-in exception a Python user would expect (``ValueError`` for bad
input, ``TimeoutError`` for timeouts, ...), so existing ``except`` clauses keep working.

::

    NetError
    ├── JSONEncodeError        (also TypeError)   json_encode got a value JSON cannot hold
    ├── JSONDecodeError        (also json.JSONDecodeError, a ValueError)
    ├── URLEncodeError         (also ValueError)  url_encode input has no UTF-8 form
    ├── URLDecodeError         (also ValueError)  url_decode result is not UTF-8
    ├── InvalidURL             (also ValueError)  a URL that cannot be requested
    │   └── UnsupportedProtocol                   its scheme is not http(s) / ws(s)
    ├── InvalidArgument        (also ValueError and TypeError)  a call's argument is wrong
    ├── UsageError             (also RuntimeError) a call the object's state does not allow
    ├── ProtocolError                             HTTP/1.1 or WebSocket rules were broken
    │   ├── LocalProtocolError (also ValueError)  you asked a protocol object for something illegal
    │   └── RemoteProtocolError                   the peer sent something illegal
    ├── DecodingError          (also ValueError)  a Content-Encoding could not be decoded
    ├── HandshakeError                            the WebSocket opening handshake failed
    ├── ConnectionClosed                          the WebSocket is closed; nothing more can be sent
    ├── RedirectError                             a redirect could not be followed
    │   ├── TooManyRedirects                      the chain was longer than max_redirects
    │   └── UnsafeRedirect                        https -> http, or a streamed body to resend
    ├── TransportError                            the network failed
    │   ├── ConnectError                          could not open a connection
    │   │   ├── TLSError                          the TLS handshake or certificate check failed
    │   │   └── ProxyError                        the proxy refused or failed the connection
    │   ├── ReadError                             the connection broke while reading
    │   ├── WriteError                            the connection broke while writing
    │   └── TimeoutError       (also TimeoutError)
    │       ├── ConnectTimeout
    │       ├── ReadTimeout
    │       ├── WriteTimeout
    │       └── PoolTimeout
    └── ServerError                               serve() could not start or stop
        ├── BindError          (also OSError)     the address could not be bound
        └── ServerStoppedError (also RuntimeError) stop() on a server already stopped

This module is pure: it imports nothing that does I/O, so the protocol layer may use it.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence

__all__ = [
    "BindError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DecodingError",
    "HandshakeError",
    "InvalidArgument",
    "InvalidURL",
    "JSONDecodeError",
    "JSONEncodeError",
    "LocalProtocolError",
    "NetError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RedirectError",
    "RemoteProtocolError",
    "ServerError",
    "ServerStoppedError",
    "TLSError",
    "TimeoutError",
    "TooManyRedirects",
    "TransportError",
    "URLDecodeError",
    "URLEncodeError",
    "UnsafeRedirect",
    "UnsupportedProtocol",
    "UsageError",
    "WriteError",
    "WriteTimeout",
]


class NetError(Exception):
    """Base class of every error sansnet raises on purpose."""


# ----------------------------------------------------------------------------- codecs


class JSONEncodeError(NetError, TypeError):
    """:func:`sansnet.json_encode` was given a value that JSON cannot represent.

    The message names the offending type (``set``, a non-string dict key, an integer
    beyond 64 bits, ...). Convert the value to str, int, float, bool, None, list or a
    dict with string keys first.
    """


class JSONDecodeError(NetError, json.JSONDecodeError):
    """:func:`sansnet.json_decode` was given text that is not valid JSON.

    Carries ``msg``, ``doc``, ``pos``, ``lineno`` and ``colno`` like the standard
    library's :class:`json.JSONDecodeError`, which it subclasses.
    """


class URLEncodeError(NetError, ValueError):
    """:func:`sansnet.url_encode` was given text with no UTF-8 form.

    A str with a lone surrogate, or bytes that are not UTF-8 while ``binary`` is false.
    Pass ``binary=True`` to encode arbitrary bytes.
    """


class URLDecodeError(NetError, ValueError):
    """:func:`sansnet.url_decode` produced bytes that are not UTF-8.

    Pass ``binary=True`` to get the raw bytes instead of text.
    """


# --------------------------------------------------------------------------- protocol


class ProtocolError(NetError):
    """The rules of HTTP/1.1 or WebSocket were broken, by us or by the peer."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked a protocol object for something the protocol forbids.

    For example a header value containing CR or LF, a body longer than the
    Content-Length it announced, or a second response to one request. This is a bug
    in the calling code; the message says which rule was broken.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol.

    ``status_hint`` is the HTTP status a server should answer with (400 by default;
    413, 414, 431, 505 for the limit and version rules). A protocol object that raises
    this has usually queued that answer already: write ``data_to_send()`` and close.
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class DecodingError(NetError, ValueError):
    """A body's Content-Encoding could not be decoded.

    The data is corrupt, uses a coding whose package is not installed (``br`` needs
    ``brotli``, ``zstd`` needs ``backports.zstd`` before Python 3.14: install
    ``sansnet[compression]``), or decodes to more than the configured size cap.

    ``status_hint`` is the HTTP status a server answers a request body that fails so
    with: 413 when the decoded body is over the size cap, 415 for a coding that cannot
    be decoded here, 400 for a corrupt one (the default).
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class HandshakeError(NetError):
    """The WebSocket opening handshake failed.

    ``status`` and ``headers`` hold the server's answer when it did not agree to
    switch protocols (``status`` is 0 when the failure was not an HTTP answer, such as a
    wrong ``Sec-WebSocket-Accept``); ``body`` holds the start of its body, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers if headers is not None else {}
        self.body = body


class ConnectionClosed(NetError):
    """The WebSocket is closed: no more messages can be sent on it.

    ``code`` and ``reason`` tell why (see :attr:`sansnet.WebSocket.close_code`).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class RedirectError(NetError):
    """A redirect could not be followed. Pass ``follow_redirects=False`` to get the 3xx
    response itself."""


class TooManyRedirects(RedirectError):
    """A redirect chain was longer than ``max_redirects``.

    Raise the limit, or pass ``follow_redirects=False`` to get the 3xx response itself.
    """


class UnsafeRedirect(RedirectError):
    """A redirect would downgrade https to http (pass ``allow_insecure_redirects=True``
    to follow it anyway), or would resend a streamed body that cannot be replayed."""


# -------------------------------------------------------------------------- transport


class TransportError(NetError):
    """The network failed: connecting, reading, writing or waiting took too long."""


class ConnectError(TransportError):
    """A connection could not be opened (refused, unreachable, unknown host name)."""


class TLSError(ConnectError):
    """The TLS handshake failed or the peer's certificate could not be verified."""


class ProxyError(ConnectError):
    """The proxy between us and the server did not open the way to it: it could not be
    reached, refused our credentials (``status`` 407), refused the destination (403),
    could not reach the server itself (502, 504, or a SOCKS reply), or broke the
    handshake. ``status`` is the proxy's HTTP status (0 when the failure was not an HTTP
    answer: SOCKS, or no answer at all); ``proxy`` names the proxy (no credentials).
    The message says what to do: fix the credentials in the proxy URL, ask the proxy's
    administrator, or exclude the host with ``NO_PROXY`` / ``proxy=None``.
    """

    def __init__(self, message: str, *, status: int = 0, proxy: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.proxy = proxy


class ReadError(TransportError):
    """The connection broke while reading from it."""


class WriteError(TransportError):
    """The connection broke while writing to it."""


class TimeoutError(TransportError, builtins.TimeoutError):
    """An operation took longer than its timeout. Also a built-in ``TimeoutError``."""


class ConnectTimeout(TimeoutError):
    """Opening the connection (including the TLS handshake) took too long."""


class ReadTimeout(TimeoutError):
    """The peer sent nothing for longer than the read timeout."""


class WriteTimeout(TimeoutError):
    """The peer did not take our data for longer than the write timeout."""


class PoolTimeout(TimeoutError):
    """No connection of the pool became free within the pool timeout.

    Raise ``max_connections`` or the pool timeout, or send fewer requests at once.
    """


# ----------------------------------------------------------------------------- usage


class InvalidURL(NetError, ValueError):
    """A URL that cannot be requested: malformed, without a scheme or a host, with a
    port out of range (or 0), or an invalid host name. Fix the URL; percent-encode what
    it carries (:func:`sansnet.url_encode`). Raised before any I/O.
    """


class UnsupportedProtocol(InvalidURL):
    """The URL's scheme is not one this call speaks: ``http``/``https`` for requests,
    ``ws``/``wss`` for :func:`sansnet.socket`."""


class InvalidArgument(NetError, ValueError, TypeError):
    """An argument has the wrong value or type: an invalid method, ``body`` together
    with ``json``, a timeout that is not a positive number, a body of the wrong type,
    an unknown option, an invalid server setting. Raised before any I/O; the message
    says which argument and what it accepts. Also a ``ValueError`` and a ``TypeError``
    (what these mistakes raised before), so existing ``except`` clauses keep working.
    """


class UsageError(NetError, RuntimeError):
    """A call the object's state does not allow now: a response body read twice, or
    after its ``async with`` block; a request on a closed client; ``run()`` on a server
    already running; :mod:`sansnet.blocking` inside a running event loop. The message
    says what to do instead. Also a ``RuntimeError`` (what these mistakes raised before,
    as in httpx), so existing ``except`` clauses keep working.
    """


# ----------------------------------------------------------------------------- server


class ServerError(NetError):
    """:func:`sansnet.serve` could not start, or was used wrongly."""


class BindError(ServerError, OSError):
    """The server could not listen on the address (in use, not permitted, unknown)."""


class ServerStoppedError(ServerError, RuntimeError):
    """``stop()`` was called on a server that is already stopped."""
