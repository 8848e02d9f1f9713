"""permessage-deflate (RFC 7692) as a wsproto extension: negotiated through wsproto's
extension hooks, compressing, and inflating within the connection's size limits.

The negotiation is wsproto's: :func:`wsproto.handshake.server_extensions_handshake` hands
each permessage-deflate offer to :meth:`DeflateExtension.accept`, and
:func:`wsproto.handshake.client_extensions_handshake` hands the server's answer to
:meth:`DeflateExtension.finalize`. wsproto leaves the parameters of an offer to the
extension (its own ``PerMessageDeflate`` reads them too); this one reads them strictly: an
unknown parameter, a repeated one, or a value out of range makes the offer unusable
(server) or the handshake fail (client). :func:`server_accept`, :func:`client_offer` and
:func:`client_accept` are the same negotiation for callers holding header values rather
than a wsproto handshake (sansnet's own :mod:`~sansnet.protocol.websocket.handshake`).

The agreed values of one connection are a :class:`DeflateParameters`, seen from one side
("ours" is the direction we send, "theirs" the direction we receive).

zlib cannot compress with a 256-byte window (it silently uses 512), so a window of 8
bits is never agreed for our own direction: a server skips such an offer, a client
refuses such a response (and compresses with 9 bits when it hinted 8 and the answer
left its window free).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from wsproto.events import RejectConnection
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.handshake import client_extensions_handshake, server_extensions_handshake
from wsproto.utilities import RemoteProtocolError

from sansnet.errors import HandshakeError, InvalidArgument

from .sizes import SizeLimits

__all__ = [
    "DeflateExtension",
    "DeflateParameters",
    "client_accept",
    "client_offer",
    "server_accept",
]

EXTENSION: Final = "permessage-deflate"
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
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


def _parameters(item: str) -> dict[str, str | None]:
    """The parameters of one extension item, ``name; key=value; flag`` (RFC 6455 section
    9.1), as wsproto hands it to an extension hook: {key: value or None}. Keys are
    lower-cased, a quoted value is unquoted. Raises ``ValueError`` for an empty or a
    repeated parameter."""
    params: dict[str, str | None] = {}
    for part in item.split(";")[1:]:
        key, eq, raw = part.partition("=")
        key = key.strip(" \t").lower()
        if not key:
            raise ValueError("an empty parameter")
        if key in params:
            raise ValueError(f"parameter {key} is repeated")
        raw = raw.strip(" \t")
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        params[key] = raw if eq else None
    return params


def _window(value: str | None, *, optional: bool) -> int | None:
    """A max_window_bits value: 8 to 15 in decimal without leading zero."""
    if value is None:
        if optional:
            return None
        raise ValueError("a window size needs a value")
    if not (value.isascii() and value.isdigit()) or value[0] == "0" or int(value) not in _WINDOWS:
        raise ValueError(f"window size {value!r} is not 8 to 15")
    return int(value)


def _check_flags(params: dict[str, str | None]) -> None:
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in params and params[flag] is not None:
            raise ValueError(f"{flag} takes no value")


def _items(values: Iterable[str]) -> list[str]:
    """The items of Sec-WebSocket-Extensions fields, empty ones dropped."""
    return [item.strip(" \t") for value in values for item in value.split(",") if item.strip(" \t")]


class _AnswerRefused(RemoteProtocolError):
    """A server's permessage-deflate answer our offer does not allow: wsproto's own error
    for a bad handshake answer, so that ``WSConnection.receive_data`` raises what it
    raises for any other (:func:`client_accept` makes it a HandshakeError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, event_hint=RejectConnection())


def _check_window_wish(name: str, value: object) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value not in _WINDOWS
    ):
        raise InvalidArgument(f"{name} must be 8 to 15 or None, not {value!r}.")


class DeflateExtension(Extension):
    """permessage-deflate for one connection, as a wsproto extension, with a bounded
    inflate.

    **Negotiating.** Built without ``params``, it negotiates through wsproto's hooks:
    as a client it makes the offer (:meth:`offer`) and checks the server's answer
    (:meth:`finalize`); as a server it agrees on the first offer it can honour
    (:meth:`accept`). It is :meth:`enabled` once agreed, so it fits wsproto's own
    handshake (``WSConnection``, with ``extensions=[DeflateExtension(limits=limits)]`` on the
    ``Request`` or the ``AcceptConnection``). The keyword arguments are what this side
    wants in any case: for a client, what it offers; for a server, limits it sets on any
    offer it accepts (``client_max_window_bits`` only binds a client that offered it).
    Built with the ``params`` a negotiation agreed, it is enabled at once (what
    :class:`~sansnet.protocol.websocket.WebSocketConnection` does).

    A new extension is needed for each connection: it keeps the connection's
    compression state.

    **Inflating.** wsproto calls it for every frame in both directions. Unlike wsproto's
    own ``PerMessageDeflate``:

    * Inflating never produces more than the frame and message may still hold
      (``limits``, a :class:`~sansnet.protocol.websocket.sizes.SizeLimits`; 16 MiB each
      when not given) plus one byte, so a small compressed payload that inflates past the
      limit fails with 1009 without the rest being inflated (wsproto's inflates all of it
      in one call).
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
        params: DeflateParameters | None = None,
        limits: SizeLimits | None = None,
        *,
        compress_threshold: int = 0,
        level: int = 6,
        client_max_window_bits: int | None = None,
        server_max_window_bits: int | None = None,
        client_no_context_takeover: bool = False,
        server_no_context_takeover: bool = False,
    ) -> None:
        if params is not None and not isinstance(params, DeflateParameters):
            raise InvalidArgument(
                f"params must be the DeflateParameters a negotiation agreed or None, not {params!r}."
            )
        _check_window_wish("client_max_window_bits", client_max_window_bits)
        _check_window_wish("server_max_window_bits", server_max_window_bits)
        self.params = params
        """The agreed parameters; None until a negotiation agrees."""
        self.limits = (
            limits if limits is not None else SizeLimits(DEFAULT_MAX_SIZE, DEFAULT_MAX_SIZE)
        )
        self.compress_threshold = compress_threshold
        """Messages shorter than this many bytes are sent uncompressed."""
        self.level = level
        self.failure: str | None = None
        """Why a hook refused the peer's frame, if one did."""
        self._client_max_window_bits = client_max_window_bits
        self._server_max_window_bits = server_max_window_bits
        self._client_no_context_takeover = client_no_context_takeover
        self._server_no_context_takeover = server_no_context_takeover
        self._compressor: zlib._Compress | None = None
        self._sending_compressed = False  # the message being sent is compressed
        self._decompressor: zlib._Decompress | None = None
        self._control = False  # the frame being received is a control frame
        self._compressed = False  # the message being received is compressed
        self._frame_size = 0  # inflated bytes of the frame and message being received
        self._message_size = 0

    # ------------------------------------------------------------------ negotiating

    def enabled(self) -> bool:
        """Whether a negotiation agreed (wsproto only drives enabled extensions)."""
        return self.params is not None

    def offer(self) -> str:
        """The parameters a client offers (wsproto puts the name before them). By
        default it lets the server limit our window (``client_max_window_bits`` without
        a value) and asks nothing."""
        parts = []
        if self._client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self._server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self._client_max_window_bits is None:
            parts.append("client_max_window_bits")
        else:
            parts.append(f"client_max_window_bits={self._client_max_window_bits}")
        if self._server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self._server_max_window_bits}")
        return "; ".join(parts)

    def accept(self, offer: str) -> str | None:
        """The server's hook, called with each permessage-deflate offer in the client's
        order: agree on the first one we can honour and return our answer's parameters
        (``""`` for none); None declines this offer, and every offer after an agreement.
        """
        if self.params is not None:
            return None
        try:
            params = _parameters(offer)
            if set(params) - _PARAMETERS:
                return None
            _check_flags(params)
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
            return None
        wanted = self._server_max_window_bits
        our_window = min(w for w in (asked_server, wanted, 15) if w is not None)
        if our_window == 8:
            return None  # zlib cannot compress within a 256-byte window
        response = []
        no_takeover = self._server_no_context_takeover or "server_no_context_takeover" in params
        if no_takeover:
            response.append("server_no_context_takeover")
        if self._client_no_context_takeover:
            response.append("client_no_context_takeover")
        if asked_server is not None or our_window != 15:
            response.append(f"server_max_window_bits={our_window}")
        their_window = asked_client if asked_client is not None else 15
        if client_limit_allowed and self._client_max_window_bits is not None:
            # zlib cannot compress within 8 bits, so zlib-based clients (sansnet's and
            # wsproto's among them) refuse to be asked for 8: 9 is the least we ask.
            limit = min(their_window, max(self._client_max_window_bits, 9))
            if limit >= 9:  # (a client's own hint of 8 binds it already)
                their_window = limit
                response.append(f"client_max_window_bits={limit}")
        self.params = DeflateParameters(
            our_window_bits=our_window,
            our_no_context_takeover=no_takeover,
            their_window_bits=their_window,
            # Only our response binds the client: a client_no_context_takeover in
            # the offer says the client *accepts* being asked, not that it will
            # reset (Autobahn 12.* / 13.* compress with context unless answered).
            their_no_context_takeover=self._client_no_context_takeover,
        )
        return "; ".join(response)

    def finalize(self, offer: str) -> None:
        """The client's hook, called with the server's permessage-deflate answer: agree
        on it, or raise wsproto's ``RemoteProtocolError`` (hinting ``RejectConnection``,
        as wsproto does for any bad answer) when it is not one our :meth:`offer`
        allows; :func:`client_accept` reports that as a :class:`~sansnet.HandshakeError`."""
        if self.params is not None:
            raise _AnswerRefused("The server accepted permessage-deflate twice.")
        try:
            params = _parameters(offer)
        except ValueError as error:
            raise _AnswerRefused(f"Invalid permessage-deflate answer: {error}.") from None
        unknown = set(params) - _PARAMETERS
        if unknown:
            raise _AnswerRefused(
                f"The server's permessage-deflate answer has unknown parameters: {sorted(unknown)}."
            )
        try:
            _check_flags(params)
            server_window = None
            if "server_max_window_bits" in params:
                server_window = _window(params["server_max_window_bits"], optional=False)
            client_window = None
            if "client_max_window_bits" in params:
                client_window = _window(params["client_max_window_bits"], optional=False)
        except ValueError as error:
            raise _AnswerRefused(f"Invalid permessage-deflate answer: {error}.") from None
        wanted_server = self._server_max_window_bits
        if wanted_server is not None and (server_window is None or server_window > wanted_server):
            raise _AnswerRefused(
                f"The server did not honour server_max_window_bits={wanted_server}."
            )
        if self._server_no_context_takeover and "server_no_context_takeover" not in params:
            raise _AnswerRefused("The server did not honour server_no_context_takeover.")
        wanted_client = self._client_max_window_bits
        if client_window is not None:
            if wanted_client is not None and client_window > wanted_client:
                raise _AnswerRefused("The server asked for a larger client window than offered.")
            if client_window == 8:
                raise _AnswerRefused(
                    "The server asked for client_max_window_bits=8, which zlib cannot produce."
                )
        # Unbound by the answer, our window is our own hint; zlib compresses with 9 bits at
        # least, which a server that did not limit our window accepts (it takes up to 15).
        self.params = DeflateParameters(
            our_window_bits=client_window or max(wanted_client or 15, 9),
            our_no_context_takeover=self._client_no_context_takeover
            or "client_no_context_takeover" in params,
            their_window_bits=server_window or 15,
            their_no_context_takeover="server_no_context_takeover" in params,
        )

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
        if decompressor.eof or self._agreed.their_no_context_takeover:
            self._decompressor = None
        return out

    def _inflate(self, data: bytes, *, tail: bool = False) -> bytes | CloseReason:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(
                -max(self._agreed.their_window_bits, 9)
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
        """Compress a message, whole or frame by frame: the first frame decides (a
        message starting shorter than ``compress_threshold`` goes uncompressed) and alone
        carries RSV1; the last one flushes."""
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            self._sending_compressed = len(data) >= self.compress_threshold
            if self._sending_compressed:
                rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        if not self._sending_compressed:
            return rsv, data
        compressor = self._compressor
        if compressor is None:
            params = self._agreed
            compressor = self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -params.our_window_bits
            )
        out = compressor.compress(data)
        if fin:
            # A sync flush always ends in 00 00 FF FF, which RFC 7692 section 7.2.1 drops;
            # before it comes at least the byte holding an empty stored block's header, so
            # even an empty message keeps one byte (section 7.2.3.6).
            out = (out + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
            if self._agreed.our_no_context_takeover:
                self._compressor = None
        return rsv, out

    @property
    def _agreed(self) -> DeflateParameters:
        params = self.params
        assert params is not None, "wsproto drives an extension only once it is enabled"
        return params


def client_offer(
    *,
    client_max_window_bits: int | None = None,
    server_max_window_bits: int | None = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> str:
    """The Sec-WebSocket-Extensions value a client sends (see
    :meth:`DeflateExtension.offer`)."""
    extension = DeflateExtension(
        client_max_window_bits=client_max_window_bits,
        server_max_window_bits=server_max_window_bits,
        client_no_context_takeover=client_no_context_takeover,
        server_no_context_takeover=server_no_context_takeover,
    )
    return f"{EXTENSION}; {extension.offer()}"


def client_accept(
    values: list[str],
    *,
    client_max_window_bits: int | None = None,
    server_max_window_bits: int | None = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> DeflateParameters | None:
    """Check the server's Sec-WebSocket-Extensions answer to our :func:`client_offer`
    (made with the same arguments), through wsproto's client extension handshake.
    Returns the agreed parameters, or None when the server declined compression. Raises
    :class:`~sansnet.HandshakeError` otherwise."""
    extension = DeflateExtension(
        client_max_window_bits=client_max_window_bits,
        server_max_window_bits=server_max_window_bits,
        client_no_context_takeover=client_no_context_takeover,
        server_no_context_takeover=server_no_context_takeover,
    )
    answers = _items(values)
    try:
        client_extensions_handshake(answers, [extension])
    except _AnswerRefused as refused:
        raise HandshakeError(str(refused)) from None
    except RemoteProtocolError:
        names = ", ".join(
            name
            for name in dict.fromkeys(item.split(";", 1)[0].strip() for item in answers)
            if name != EXTENSION
        )
        raise HandshakeError(f"The server accepted extensions we did not offer: {names}.") from None
    return extension.params


def server_accept(
    values: list[str],
    *,
    server_max_window_bits: int | None = None,
    server_no_context_takeover: bool = False,
    client_no_context_takeover: bool = False,
    client_max_window_bits: int | None = None,
) -> tuple[str, DeflateParameters] | None:
    """Pick the first permessage-deflate offer we can honour from a client's
    Sec-WebSocket-Extensions fields, through wsproto's server extension handshake.
    Returns (the response value, the parameters), or None to decline compression. The
    keyword arguments are what this server wants in any case (a smaller window saves
    memory per connection; see :meth:`DeflateExtension.accept`)."""
    extension = DeflateExtension(
        client_max_window_bits=client_max_window_bits,
        server_max_window_bits=server_max_window_bits,
        client_no_context_takeover=client_no_context_takeover,
        server_no_context_takeover=server_no_context_takeover,
    )
    response = server_extensions_handshake(_items(values), [extension])
    if response is None or extension.params is None:
        return None
    return response.decode("ascii"), extension.params
