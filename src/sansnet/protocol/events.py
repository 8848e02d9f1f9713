"""The events an HTTP/1.1 connection produces and consumes.

A message is a head (:class:`RequestHead` or :class:`ResponseHead`), zero or more
:class:`Data` chunks, and one :class:`EndOfMessage`. :class:`PeerClosed` says the
peer closed its side. :data:`NEED_DATA` and :data:`PAUSED` are what
``next_event()`` returns when it has no event to give (see the connection classes).

These are plain, mutable-free value objects; build them with keyword or positional
arguments, compare them with ``==``.
"""

from __future__ import annotations

import warnings
from typing import Final

from .headers import Headers

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Data",
    "EndOfMessage",
    "Event",
    "InformationalResponse",
    "PeerClosed",
    "RequestHead",
    "ResponseHead",
    "Sentinel",
]


class Sentinel:
    """A named marker value (``NEED_DATA``, ``PAUSED``, the connection states)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")
"""``next_event()`` needs more bytes: read from the peer and call ``receive_data()``."""

PAUSED: Final = Sentinel("PAUSED")
"""``next_event()`` will not parse further until our side has finished its message
(a server answering a request, or a protocol switch being decided). Finish the
response, then call ``next_event()`` again: pipelined requests may be waiting."""


class Event:
    """Base class of the HTTP/1.1 events."""

    __slots__ = ()

    _fields: tuple[str, ...] = ()  # every slot, the bases' included

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._fields = tuple(
            name for klass in reversed(cls.__mro__) for name in klass.__dict__.get("__slots__", ())
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class RequestHead(Event):
    """The request line and header fields of a request.

    ``method`` is as sent (methods are case-sensitive; clients send uppercase),
    ``target`` the raw request-target, ``http_version`` ``"1.1"`` or ``"1.0"``.
    """

    __slots__ = ("headers", "http_version", "method", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers | None = None,
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers if headers is not None else Headers()
        self.http_version = http_version

    @property
    def path(self) -> str:
        """The path of the target, raw (not percent-decoded), ``"/"`` when empty.

        For an absolute-form target (``http://host/p?q``, RFC 9112 section 3.2.2) this is
        the path part; for ``*`` and CONNECT's ``host:port`` it is the target itself.
        """
        target = self.target
        if target[:1] == "/":
            path = target.partition("?")[0]
            return path or "/"
        rest = _after_authority(target)
        if rest is None:
            return target
        return rest.partition("?")[0] or "/"

    @property
    def query_string(self) -> str:
        """The raw query of the target (without ``?``), ``""`` when there is none."""
        return self.target.partition("?")[2]

    @property
    def authority(self) -> str | None:
        """The host (and port) the request is for: from an absolute-form target, or
        CONNECT's authority-form target (RFC 9112 section 3.3: the target URI's authority
        is then the target itself), else from the Host field; None when neither says."""
        target = self.target
        if target[:1] != "/":
            if _after_authority(target) is not None:
                return target.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
            if self.method == "CONNECT":
                return target
        return self.headers.get("host")


def _after_authority(target: str) -> str | None:
    """What follows ``scheme://authority`` in an absolute-form target, or None."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme.isalpha():
        return None
    for index, char in enumerate(rest):
        if char in "/?":
            return rest[index:] if char == "/" else "/" + rest[index:]
    return ""


class _StatusHead(Event):
    """A status line and header fields: what responses, final or interim, carry."""

    __slots__ = ("headers", "http_version", "reason", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: Headers | None = None,
        reason: str = "",
        http_version: str = "1.1",
    ) -> None:
        self.status_code = status_code
        self.headers = headers if headers is not None else Headers()
        self.reason = reason
        self.http_version = http_version


class ResponseHead(_StatusHead):
    """The status line and header fields of a response (``reason`` may be empty):
    ``status_code``, ``headers``, ``reason``, ``http_version``."""

    __slots__ = ()


class InformationalResponse(_StatusHead):
    """An interim 1xx response (100 Continue, 103 Early Hints, ...) that a client
    receives before the final response, with the fields of :class:`ResponseHead` (but
    not an instance of it); never 101, which ends the HTTP exchange and comes as a
    :class:`ResponseHead`. A driver with no use for it calls ``next_event`` again: the
    final response follows."""

    __slots__ = ()


class Data(Event):
    """A piece of a message body, in order. Pieces are not aligned with chunks."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfMessage(Event):
    """The message body is complete. ``trailers`` holds chunked trailer fields."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers if trailers is not None else Headers()


class PeerClosed(Event):
    """The peer closed its side of the connection cleanly between messages.

    (h11 calls this event ``ConnectionClosed``; sansnet did too until 0.2, when the name
    went to the WebSocket exception :class:`sansnet.ConnectionClosed` alone. The old
    name still works here, with a ``DeprecationWarning``.)
    """

    __slots__ = ()


def _renamed(module: str, name: str) -> object:
    """The deprecated names of this package's modules (see :class:`PeerClosed`)."""
    if name == "ConnectionClosed":
        warnings.warn(
            f"{module}.ConnectionClosed is now PeerClosed (sansnet.ConnectionClosed is the "
            "WebSocket exception, an unrelated thing); the old name will be removed.",
            DeprecationWarning,
            stacklevel=3,
        )
        return PeerClosed
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str) -> object:
    return _renamed(__name__, name)
