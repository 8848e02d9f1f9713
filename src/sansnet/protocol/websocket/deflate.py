"""permessage-deflate (RFC 7692): negotiation for both roles, and the codec.

Negotiation is expressed with :class:`DeflateParameters`, the agreed values of one
connection, seen from one side ("ours" is the direction we send, "theirs" the direction
we receive). Offers and responses are parsed strictly: an unknown parameter, a repeated
one, or a value out of range makes the offer unusable (server) or the handshake fail
(client).

zlib cannot compress with a 256-byte window (it silently uses 512), so a window of 8
bits is never agreed for our own direction: a server skips such an offer, a client
refuses such a response.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from sansnet.errors import HandshakeError

__all__ = [
    "DeflateCodec",
    "DeflateParameters",
    "client_accept",
    "client_offer",
    "parse_extension_header",
    "server_accept",
]

EXTENSION: Final = "permessage-deflate"
_TAIL: Final = b"\x00\x00\xff\xff"
_WINDOWS: Final = range(8, 16)
_PARAMETERS: Final = frozenset(
    [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    ]
)


@dataclass(frozen=True, slots=True)
class DeflateParameters:
    """The agreed permessage-deflate settings, from one side's point of view.

    ``our_window_bits``/``our_no_context_takeover`` govern what we compress;
    ``their_window_bits``/``their_no_context_takeover`` what the peer compresses.
    """

    our_window_bits: int = 15
    our_no_context_takeover: bool = False
    their_window_bits: int = 15
    their_no_context_takeover: bool = False


Extension = tuple[str, dict[str, str | None]]


def parse_extension_header(values: list[str]) -> list[Extension]:
    """Sec-WebSocket-Extensions fields -> [(name, {param: value or None})], in order.

    Raises ``ValueError`` for a repeated parameter or a malformed item.
    """
    extensions: list[Extension] = []
    for value in values:
        for item in value.split(","):
            parts = [part.strip(" \t") for part in item.split(";")]
            name = parts[0].lower()
            if not name:
                if len(parts) == 1:
                    continue
                raise ValueError("An extension item has parameters but no name.")
            params: dict[str, str | None] = {}
            for part in parts[1:]:
                key, eq, raw = part.partition("=")
                key = key.strip(" \t").lower()
                if not key:
                    raise ValueError(f"Empty parameter in the {name} extension.")
                if key in params:
                    raise ValueError(f"Parameter {key} is repeated in the {name} extension.")
                raw = raw.strip(" \t")
                if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                    raw = raw[1:-1]
                params[key] = raw if eq else None
            extensions.append((name, params))
    return extensions


def _window(value: str | None, *, optional: bool) -> int | None:
    """A max_window_bits value: 8 to 15 in decimal without leading zero."""
    if value is None:
        if optional:
            return None
        raise ValueError("a window size needs a value")
    if not value.isdigit() or value[0] == "0" or int(value) not in _WINDOWS:
        raise ValueError(f"window size {value!r} is not 8 to 15")
    return int(value)


def client_offer(
    *,
    client_max_window_bits: int | None = None,
    server_max_window_bits: int | None = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> str:
    """The Sec-WebSocket-Extensions value a client sends. By default it lets the server
    limit our window (``client_max_window_bits`` without a value) and asks nothing."""
    parts = [EXTENSION]
    if client_no_context_takeover:
        parts.append("client_no_context_takeover")
    if server_no_context_takeover:
        parts.append("server_no_context_takeover")
    if client_max_window_bits is None:
        parts.append("client_max_window_bits")
    else:
        parts.append(f"client_max_window_bits={client_max_window_bits}")
    if server_max_window_bits is not None:
        parts.append(f"server_max_window_bits={server_max_window_bits}")
    return "; ".join(parts)


def client_accept(
    values: list[str],
    *,
    client_max_window_bits: int | None = None,
    server_max_window_bits: int | None = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> DeflateParameters | None:
    """Check the server's Sec-WebSocket-Extensions answer to our :func:`client_offer`
    (made with the same arguments). Returns the agreed parameters, or None when the
    server declined compression. Raises :class:`~sansnet.HandshakeError` otherwise."""
    try:
        extensions = parse_extension_header(values)
    except ValueError as error:
        raise HandshakeError(f"Invalid Sec-WebSocket-Extensions answer: {error}") from None
    if not extensions:
        return None
    if len(extensions) > 1 or extensions[0][0] != EXTENSION:
        names = ", ".join(name for name, _ in extensions)
        raise HandshakeError(f"The server accepted extensions we did not offer: {names}.")
    params = extensions[0][1]
    unknown = set(params) - _PARAMETERS
    if unknown:
        raise HandshakeError(
            f"The server's permessage-deflate answer has unknown parameters: {sorted(unknown)}."
        )
    try:
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            if flag in params and params[flag] is not None:
                raise ValueError(f"{flag} takes no value")
        server_window = (
            _window(params.get("server_max_window_bits"), optional=True)
            if ("server_max_window_bits" in params)
            else None
        )
        if "server_max_window_bits" in params and server_window is None:
            raise ValueError("server_max_window_bits needs a value")
        client_window = None
        if "client_max_window_bits" in params:
            client_window = _window(params["client_max_window_bits"], optional=False)
    except ValueError as error:
        raise HandshakeError(f"Invalid permessage-deflate answer: {error}.") from None
    if server_max_window_bits is not None and (
        server_window is None or server_window > server_max_window_bits
    ):
        raise HandshakeError(
            f"The server did not honour server_max_window_bits={server_max_window_bits}."
        )
    if server_no_context_takeover and "server_no_context_takeover" not in params:
        raise HandshakeError("The server did not honour server_no_context_takeover.")
    if client_window is not None:
        if client_max_window_bits is not None and client_window > client_max_window_bits:
            raise HandshakeError("The server asked for a larger client window than offered.")
        if client_window == 8:
            raise HandshakeError(
                "The server asked for client_max_window_bits=8, which zlib cannot produce."
            )
    our_window = client_window or client_max_window_bits or 15
    return DeflateParameters(
        our_window_bits=our_window,
        our_no_context_takeover=client_no_context_takeover
        or "client_no_context_takeover" in params,
        their_window_bits=server_window or 15,
        their_no_context_takeover="server_no_context_takeover" in params,
    )


def server_accept(
    values: list[str],
    *,
    server_max_window_bits: int | None = None,
    server_no_context_takeover: bool = False,
    client_no_context_takeover: bool = False,
) -> tuple[str, DeflateParameters] | None:
    """Pick the first permessage-deflate offer we can honour from a client's
    Sec-WebSocket-Extensions fields. Returns (the response value, the parameters), or
    None to decline compression. The keyword arguments are what this server wants in
    any case (a smaller window saves memory per connection)."""
    try:
        extensions = parse_extension_header(values)
    except ValueError:
        return None
    for name, params in extensions:
        if name != EXTENSION or set(params) - _PARAMETERS:
            continue
        try:
            for flag in ("server_no_context_takeover", "client_no_context_takeover"):
                if flag in params and params[flag] is not None:
                    raise ValueError(f"{flag} takes no value")
            asked_server = (
                _window(params["server_max_window_bits"], optional=False)
                if "server_max_window_bits" in params
                else None
            )
            client_limit_allowed = "client_max_window_bits" in params
            asked_client = (
                _window(params["client_max_window_bits"], optional=True)
                if client_limit_allowed
                else None
            )
        except ValueError:
            continue
        our_window = min(w for w in (asked_server, server_max_window_bits, 15) if w is not None)
        if our_window == 8:
            continue  # zlib cannot compress within a 256-byte window
        response = [EXTENSION]
        no_takeover = server_no_context_takeover or "server_no_context_takeover" in params
        if no_takeover:
            response.append("server_no_context_takeover")
        if client_no_context_takeover:
            response.append("client_no_context_takeover")
        if asked_server is not None or our_window != 15:
            response.append(f"server_max_window_bits={our_window}")
        their_window = asked_client if asked_client is not None else 15
        return "; ".join(response), DeflateParameters(
            our_window_bits=our_window,
            our_no_context_takeover=no_takeover,
            their_window_bits=their_window,
            # Only our response binds the client: a client_no_context_takeover in
            # the offer says the client *accepts* being asked, not that it will
            # reset (Autobahn 12.* / 13.* compress with context unless answered).
            their_no_context_takeover=client_no_context_takeover,
        )
    return None


class DeflateCodec:
    """Compresses our messages and decompresses the peer's for one connection.

    Decompression is bounded: :meth:`decompress` never returns more than ``limit``
    bytes plus one, so the caller can refuse a message that inflates past its size limit.
    """

    __slots__ = ("_compressor", "_decompressor", "level", "params")

    def __init__(self, params: DeflateParameters, *, level: int = 6) -> None:
        self.params = params
        self.level = level
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def compress(self, data: bytes) -> bytes:
        """The compressed payload of one whole message (without the 00 00 FF FF tail)."""
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, -self.params.our_window_bits)
            if not self.params.our_no_context_takeover:
                self._compressor = compressor
        # A sync flush always ends in 00 00 FF FF, which RFC 7692 section 7.2.1 drops.
        out = (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        return out or b"\x00"  # an empty message still needs one empty block

    def decompress(self, data: bytes, limit: int, *, final: bool) -> bytes:
        """Inflate one piece of a message's payload; ``final`` on its last piece.

        Returns at most ``limit + 1`` bytes: more than ``limit`` means the message is too
        big. Raises ``zlib.error`` for corrupt data.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(
                -15  # a full window inflates any smaller one
            )
        if final:
            data += _TAIL
        out = decompressor.decompress(data, limit + 1)
        if final:
            if decompressor.eof:
                # The peer ended its DEFLATE stream in a block with BFINAL set (RFC 7692
                # section 7.2.3.4 allows it): only our appended tail may follow, and its
                # next message starts a new stream. (zlib would otherwise hand every
                # later byte to unused_data and inflate nothing, silently.)
                if decompressor.unused_data != _TAIL:
                    raise zlib.error("data follows the end of the compressed stream")
                self._decompressor = None
            elif self.params.their_no_context_takeover:
                self._decompressor = None
        return out
