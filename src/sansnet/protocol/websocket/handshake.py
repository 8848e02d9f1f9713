"""The WebSocket opening handshake (RFC 6455 section 4), over the HTTP/1.1 engine.

Client: :class:`ClientHandshake` builds the upgrade request's header fields and checks
the server's answer. Server: :func:`accept` checks an upgrade request received by a
:class:`~sansnet.protocol.ServerConnection` and returns the 101 answer's fields, or
raises :class:`~sansnet.HandshakeError` whose ``status`` and ``headers`` are the answer to
send instead (400 for a malformed handshake, 426 with ``Sec-WebSocket-Version: 13`` for
another version).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sansnet.errors import HandshakeError, InvalidArgument
from sansnet.protocol.events import RequestHead, ResponseHead
from sansnet.protocol.headers import Headers

from . import deflate

__all__ = [
    "ClientHandshake",
    "Handshake",
    "accept",
    "accept_key",
    "is_upgrade_request",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2), an ASCII
    str (else :class:`~sansnet.InvalidArgument`)."""
    try:
        data = (key + GUID).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        raise InvalidArgument(
            f"accept_key() takes a Sec-WebSocket-Key, an ASCII str, not {key!r}."
        ) from None
    digest = hashlib.sha1(data).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(headers: Headers, name: str) -> set[str]:
    return {
        token.strip(" \t").lower()
        for value in headers.get_all(name)
        for token in value.split(",")
        if token.strip(" \t")
    }


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a completed handshake agreed: the subprotocol (or None), the
    permessage-deflate parameters (or None), and the response fields (server side)."""

    subprotocol: str | None
    deflate: deflate.DeflateParameters | None
    headers: list[tuple[str, str]]


def _check_subprotocols(subprotocols: object) -> None:
    """Refuse one str where a list of subprotocol names goes: as a sequence, "chat"
    would be the names "c", "h", "a" and "t"."""
    if isinstance(subprotocols, str):
        raise InvalidArgument(
            f"subprotocols is a list of names ([{subprotocols!r}]), not a str: a str would "
            "offer or accept each of its letters as a subprotocol."
        )


def _subprotocol_names(subprotocols: object, also: str = "") -> list[str]:
    """The names in a list of subprotocols; :class:`~sansnet.InvalidArgument` for
    anything else (``also``: what else the caller takes)."""
    _check_subprotocols(subprotocols)
    names: list[Any]
    try:
        names = list(subprotocols)  # type: ignore[call-overload]
    except TypeError:
        names = [None]
    if not all(isinstance(name, str) for name in names):
        raise InvalidArgument(
            f"subprotocols must be a list of names (str){also}, not {subprotocols!r}."
        )
    return names


def _extra_fields(extra_headers: object) -> list[tuple[str, str]]:
    """The (name, value) pairs of ``extra_headers``; InvalidArgument for anything else."""
    fields: list[Any]
    try:
        fields = list(extra_headers)  # type: ignore[call-overload]
    except TypeError:
        fields = [None]
    if isinstance(extra_headers, (str, bytes)) or not all(
        isinstance(field, tuple)
        and len(field) == 2
        and isinstance(field[0], str)
        and isinstance(field[1], str)
        for field in fields
    ):
        raise InvalidArgument(
            f"extra_headers must be a list of (name, value) pairs of str, not {extra_headers!r}."
        )
    return fields


def is_upgrade_request(request: RequestHead) -> bool:
    """Whether a request asks for a WebSocket (``Upgrade: websocket``), valid or not."""
    headers = request.headers
    if not headers.get_all("upgrade"):  # the common case: no Upgrade field at all
        return False
    return "websocket" in _tokens(headers, "upgrade")


def accept(
    request: RequestHead,
    *,
    subprotocols: Sequence[str] | Callable[[list[str]], str | None] | None = None,
    compression: bool = True,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Handshake:
    """Check a client's opening handshake; return what to answer with 101.

    ``subprotocols`` is the list this server speaks, in preference order, or a function
    that picks one of the client's (or None). Raises :class:`~sansnet.HandshakeError`
    with the ``status`` and ``headers`` to answer instead.
    """
    if not isinstance(request, RequestHead):
        raise InvalidArgument(
            "accept() takes the RequestHead of the upgrade request (the event "
            f"ServerConnection.next_event() returned), not {type(request).__name__}."
        )
    if subprotocols is not None and not callable(subprotocols):
        subprotocols = _subprotocol_names(subprotocols, ", a function or None")
    extra = _extra_fields(extra_headers)
    headers = request.headers

    def refuse(
        reason: str, status: int = 400, extra: Sequence[tuple[str, str]] = ()
    ) -> HandshakeError:
        return HandshakeError(
            f"Invalid WebSocket handshake: {reason}",
            status=status,
            headers=[("Content-Type", "text/plain; charset=utf-8"), *extra],
            body=f"Invalid WebSocket handshake: {reason}\n".encode(),
        )

    if request.method != "GET":
        raise refuse(f"the method is {request.method}, not GET.")
    if request.http_version != "1.1":
        raise refuse("the request is not HTTP/1.1.")
    if "websocket" not in _tokens(headers, "upgrade"):
        raise refuse("the Upgrade header does not name websocket.")
    if "upgrade" not in _tokens(headers, "connection"):
        raise refuse("the Connection header does not contain upgrade.")
    versions = headers.get_all("sec-websocket-version")
    if versions != ["13"]:
        raise refuse(
            f"Sec-WebSocket-Version is {', '.join(versions) or 'missing'}; only 13 is supported.",
            426 if versions else 400,
            [("Sec-WebSocket-Version", "13")],
        )
    keys = headers.get_all("sec-websocket-key")
    if len(keys) != 1:
        raise refuse("there must be exactly one Sec-WebSocket-Key.")
    key = keys[0]
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:  # binascii.Error, or a key that is not ASCII (obs-text from the peer)
        raw = b""
    if len(raw) != 16:
        raise refuse("Sec-WebSocket-Key is not 16 bytes in base64.")

    response: list[tuple[str, str]] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    offered = [
        token.strip(" \t")
        for value in headers.get_all("sec-websocket-protocol")
        for token in value.split(",")
        if token.strip(" \t")
    ]
    chosen: str | None = None
    if offered and subprotocols is not None:
        if callable(subprotocols):
            chosen = subprotocols(offered)
            if chosen is not None and chosen not in offered:
                raise InvalidArgument(
                    f"The subprotocol chooser returned {chosen!r}, which the client did not offer."
                )
        else:
            chosen = next((p for p in subprotocols if p in offered), None)
    if chosen is not None:
        response.append(("Sec-WebSocket-Protocol", chosen))
    params = None
    if compression:
        agreed = deflate.server_accept(headers.get_all("sec-websocket-extensions"))
        if agreed is not None:
            value, params = agreed
            response.append(("Sec-WebSocket-Extensions", value))
    response.extend(extra)
    return Handshake(chosen, params, response)


class ClientHandshake:
    """The client side: build the upgrade request, then check the answer.

    ``request_headers()`` gives the fields to send with ``GET target HTTP/1.1``;
    ``check(response)`` validates a 101 answer and returns the agreed
    :class:`Handshake`, or raises :class:`~sansnet.HandshakeError` (carrying the status
    and headers when the server answered something other than 101).

    ``subprotocols`` is a list of names, ``extra_headers`` a list of (name, value) pairs
    of str, and ``key`` None (a random one) or a Sec-WebSocket-Key, the base64 of 16
    bytes: anything else raises :class:`~sansnet.InvalidArgument` naming the argument,
    as ``check()`` does for anything but a :class:`~sansnet.protocol.ResponseHead`.
    """

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] = (),
        compression: bool = True,
        extra_headers: Sequence[tuple[str, str]] = (),
        key: str | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.subprotocols = _subprotocol_names(subprotocols)
        self.compression = compression
        self.extra_headers = _extra_fields(extra_headers)
        if key is not None:
            try:
                ok = isinstance(key, str) and len(base64.b64decode(key, validate=True)) == 16
            except ValueError:  # not base64, or not ASCII
                ok = False
            if not ok:
                raise InvalidArgument(
                    f"key must be None (a random key) or a Sec-WebSocket-Key, the base64 of "
                    f"16 bytes (base64.b64encode(os.urandom(16)).decode()), not {key!r}."
                )
        self.key = key if key is not None else base64.b64encode(random(16)).decode("ascii")

    def request_headers(self) -> list[tuple[str, str]]:
        """The upgrade request's fields (Host and the defaults are added by the
        :class:`~sansnet.protocol.ClientConnection`)."""
        fields = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.subprotocols:
            fields.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        if self.compression:
            fields.append(("Sec-WebSocket-Extensions", deflate.client_offer()))
        fields.extend(self.extra_headers)
        return fields

    def check(self, response: ResponseHead, body: bytes = b"") -> Handshake:
        """Validate the server's answer; ``body`` is what a non-101 answer carried."""
        if not isinstance(response, ResponseHead):
            raise InvalidArgument(
                "check() takes the ResponseHead of the server's answer (the event "
                f"ClientConnection.next_event() returned), not {type(response).__name__}."
            )
        headers = response.headers
        if response.status_code != 101:
            raise HandshakeError(
                f"The server refused the WebSocket handshake with {response.status_code} "
                f"{response.reason}".rstrip()
                + ".",
                status=response.status_code,
                headers=headers,
                body=body,
            )
        if "websocket" not in _tokens(headers, "upgrade"):
            raise HandshakeError(
                "The server's 101 answer lacks Upgrade: websocket.", status=101, headers=headers
            )
        if "upgrade" not in _tokens(headers, "connection"):
            raise HandshakeError(
                "The server's 101 answer lacks Connection: upgrade.", status=101, headers=headers
            )
        if headers.get_all("sec-websocket-accept") != [accept_key(self.key)]:
            raise HandshakeError(
                "The server's Sec-WebSocket-Accept does not match our key.",
                status=101,
                headers=headers,
            )
        protocols = headers.get_all("sec-websocket-protocol")
        subprotocol = None
        if protocols:
            if len(protocols) > 1 or protocols[0] not in self.subprotocols:
                raise HandshakeError(
                    f"The server chose subprotocol {', '.join(protocols)!r}, which we did not offer.",
                    status=101,
                    headers=headers,
                )
            subprotocol = protocols[0]
        extensions = headers.get_all("sec-websocket-extensions")
        params = None
        if extensions:
            if not self.compression:
                raise HandshakeError(
                    "The server accepted an extension we did not offer.",
                    status=101,
                    headers=headers,
                )
            try:
                params = deflate.client_accept(extensions)
            except HandshakeError as error:
                raise HandshakeError(str(error), status=101, headers=headers) from None
        return Handshake(subprotocol, params, [])
