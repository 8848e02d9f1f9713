"""permessage-deflate (RFC 7692): negotiation for both roles, and the wsproto extension
that compresses and (boundedly) inflates.

Negotiation is expressed with :class:`DeflateParameters`, the agreed values of one
connection, seen from one side ("ours" is the direction we send, "theirs" the direction
we receive). Offers and responses are parsed strictly: an unknown parameter, a repeated
one, or a value out of range makes the offer unusable (server) or the handshake fail
(client).

zlib cannot compress with a 256-byte window (it silently uses 512), so a window of 8
bits is never agreed for our own direction: a server skips such an offer, a client
refuses such a response (and compresses with 9 bits when it hinted 8 and the answer
left its window free).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from sansnet.errors import HandshakeError

from .sizes import SizeLimits

__all__ = [
    "DeflateExtension",
    "DeflateParameters",
    "client_accept",
    "client_offer",
    "parse_extension_header",
    "server_accept",
]

EXTENSION: Final = "permessage-deflate"
_TAIL: Final = b"\x00\x00\xff\xff"
_WINDOWS: Final = range(8, 16)
_NO_RSV: Final = RsvBits(False, False, False)
_RSV1: Final = RsvBits(True, False, False)
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


ExtensionItem = tuple[str, dict[str, str | None]]


def parse_extension_header(values: list[str]) -> list[ExtensionItem]:
    """Sec-WebSocket-Extensions fields -> [(name, {param: value or None})], in order.

    Raises ``ValueError`` for a repeated parameter or a malformed item.
    """
    extensions: list[ExtensionItem] = []
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
    # Unbound by the answer, our window is our own hint; zlib compresses with 9 bits at
    # least, which a server that did not limit our window accepts (it takes up to 15).
    our_window = client_window or max(client_max_window_bits or 15, 9)
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


class DeflateExtension(Extension):
    """permessage-deflate for one connection, as a wsproto extension, with a bounded
    inflate.

    wsproto calls it for every frame in both directions once the connection is built
    with it (``Connection(..., extensions=[DeflateExtension(...)])``); the negotiation
    is done beforehand by :func:`client_accept` / :func:`server_accept`. Unlike wsproto's
    own ``PerMessageDeflate``:

    * Inflating never produces more than the frame and message may still hold
      (:class:`~sansnet.protocol.websocket.sizes.SizeLimits`) plus one byte, so a small
      compressed payload that inflates past the limit fails with 1009 without the rest
      being inflated (wsproto's inflates all of it in one call).
    * Control frames never touch the inflate state: a ping between the fragments of a
      compressed message is a ping, and the message goes on (wsproto 1.3.2 forgets the
      message is compressed after the control frame and hands over raw DEFLATE bytes or
      fails with 1007; the fix, wsproto pull request #205, is not merged in 1.3.2).
    * A message may end its DEFLATE stream with a BFINAL block (RFC 7692 section
      7.2.3.4; the next message starts a new stream); data after the end fails with 1007.
    * Windows are those agreed (``DeflateParameters``; the inflate window bounds the
      memory kept between messages); the peer's window of 8 bits is
      inflated with 9, since zlib-based senders compress with 512 bytes when 8 is agreed.

    When a hook refuses a frame it returns the close code for wsproto to fail the
    connection with, and keeps the sentence saying why in :attr:`failure`.
    """

    name = EXTENSION

    def __init__(
        self,
        params: DeflateParameters,
        limits: SizeLimits,
        *,
        compress_threshold: int = 0,
        level: int = 6,
    ) -> None:
        self.params = params
        self.limits = limits
        self.compress_threshold = compress_threshold
        """Messages shorter than this many bytes are sent uncompressed."""
        self.level = level
        self.failure: str | None = None
        """Why a hook refused the peer's frame, if one did."""
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._control = False  # the frame being received is a control frame
        self._compressed = False  # the message being received is compressed
        self._frame_size = 0  # inflated bytes of the frame and message being received
        self._message_size = 0

    # wsproto's negotiation hooks: unused, handshake.py negotiates; a connection is only
    # ever built with an agreed extension.

    def enabled(self) -> bool:
        return True

    def offer(self) -> str:
        """The parameters we offer as a client (see :func:`client_offer`)."""
        return client_offer().partition("; ")[2]

    # ------------------------------------------------------------------ receiving

    def _refuse(self, code: CloseReason, reason: str) -> CloseReason:
        self.failure = reason
        return code

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        """RFC 7692 section 6: RSV1 marks the first frame of a compressed message."""
        if opcode.iscontrol():
            self._control = True
            if rsv.rsv1:
                return self._refuse(CloseReason.PROTOCOL_ERROR, "A control frame has RSV1 set.")
            return _NO_RSV
        self._control = False
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1:
                return self._refuse(
                    CloseReason.PROTOCOL_ERROR, "A continuation frame has RSV1 set."
                )
        else:
            self._compressed = rsv.rsv1
            self._message_size = 0
        self._frame_size = 0
        return _RSV1

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control or not self._compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._control or not self._compressed or not fin:
            return None
        # RFC 7692 section 7.2.2: the sender removed 00 00 FF FF from the message's end.
        out = self._inflate(_TAIL, tail=True)
        self._compressed = False
        decompressor = self._decompressor
        assert decompressor is not None
        # A message that ended its DEFLATE stream with BFINAL (section 7.2.3.4) is followed
        # by a new stream; otherwise the window is kept unless the peer resets it.
        if decompressor.eof or self.params.their_no_context_takeover:
            self._decompressor = None
        return out

    def _inflate(self, data: bytes, *, tail: bool = False) -> bytes | CloseReason:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(
                -max(self.params.their_window_bits, 9)
            )
        room = self.limits.room(self._frame_size, self._message_size)
        try:
            # max_length 0 means unlimited; room + 1 >= 1 shows a breach without
            # inflating more than one byte past the limit.
            out = decompressor.decompress(data, 0 if room is None else room + 1)
        except zlib.error as error:
            return self._corrupt(str(error))
        if decompressor.unused_data and not tail:
            # After a BFINAL block zlib sets every byte aside and inflates nothing: only
            # our own tail may follow the end of the stream.
            return self._corrupt("data follows the end of the compressed stream")
        size = len(out)
        if room is not None and size > room:
            reason = self.limits.breach(
                self._frame_size + size, self._message_size + size, inflated=True
            )
            assert reason is not None
            return self._refuse(CloseReason.MESSAGE_TOO_BIG, reason)
        self._frame_size += size
        self._message_size += size
        return out

    def _corrupt(self, why: str) -> CloseReason:
        return self._refuse(
            CloseReason.INVALID_FRAME_PAYLOAD_DATA, f"A compressed message is corrupt: {why}."
        )

    # ------------------------------------------------------------------ sending

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        """Compress one whole message (the connection sends compressed messages whole)."""
        if opcode.iscontrol() or len(data) < self.compress_threshold:
            return rsv, data
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, -self.params.our_window_bits)
            if not self.params.our_no_context_takeover:
                self._compressor = compressor
        # A sync flush always ends in 00 00 FF FF, which RFC 7692 section 7.2.1 drops.
        out = (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        return RsvBits(True, rsv.rsv2, rsv.rsv3), out or b"\x00"  # an empty message: one block
