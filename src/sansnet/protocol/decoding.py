"""Content codings (RFC 9110 section 8.4): incremental decoders for gzip, deflate, br and
zstd, stacked in the order a ``Content-Encoding`` field lists them.

Used by the client for response bodies and by the server for request bodies. Decoding
is bounded twice over: each call yields the output in pieces of at most ``piece_size``
bytes (so a streamed body never sits in memory whole), and the total output is capped
by ``max_size`` (so a decompression bomb raises :class:`~sansnet.DecodingError` instead
of eating memory).

``br`` needs the ``brotli`` package and ``zstd`` needs ``backports.zstd`` before Python
3.14 (``pip install 'sansnet[compression]'``); :func:`supported_encodings` lists what
this interpreter can decode, which is what clients should offer in Accept-Encoding.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Final

from sansnet.errors import DecodingError, InvalidArgument

__all__ = [
    "ContentDecoder",
    "accept_encoding",
    "is_supported",
    "supported_encodings",
]

try:
    import brotli as _brotli
except ImportError:  # pragma: no cover - the dev extra installs it
    _brotli = None

try:
    from compression import zstd as _zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # before Python 3.14
    try:
        from backports import zstd as _zstd
    except ImportError:  # pragma: no cover - the dev extra installs it
        _zstd = None

PIECE_SIZE: Final = 64 * 1024

FEED_MAX: Final = 64 * 1024
FEED_MIN: Final = 512
"""The input handed to a decompressor in one call: at most :data:`FEED_MAX` bytes, and
after the end of a gzip member or zstd frame :data:`FEED_MIN`, doubling at each call.
A call copies the input it leaves over (zlib's ``unconsumed_tail`` and
``unused_data``, zstd's ``unused_data``), so handing a decompressor a whole body at
once made decoding quadratic: at each of many tiny members the rest of the body was
copied (2 MiB of 9-byte zstd frames took 22 s). So bounded, a call copies at most what
it was handed, and a member a few bytes long costs about :data:`FEED_MIN`."""

MAX_CODINGS: Final = 5
"""The most codings one Content-Encoding may list (as urllib3 and curl): each is a
decoder, and one coding more is no more compression, only more work."""


class _Decoder:
    """One coding. ``decode`` may be called with b"" to drain pending output.

    The input is queued here (``_buffer`` from ``_position``) and handed to the
    decompressor a feed at a time (:data:`FEED_MAX`); what a call leaves unconsumed is
    given back to the queue, not kept in the decompressor."""

    name = ""

    def __init__(self) -> None:
        self._buffer = b""
        self._position = 0
        self._feed = FEED_MAX
        self._started = False

    def decode(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit`` bytes of output for ``data`` (plus what is pending)."""
        raise NotImplementedError

    @property
    def has_pending(self) -> bool:
        """Whether output is waiting that a ``decode(b"", ...)`` call would give."""
        raise NotImplementedError

    def finish(self) -> None:
        """The input is complete: raise if the stream was cut short."""
        raise NotImplementedError

    def _queue(self, data: bytes) -> None:
        if data:
            self._started = True
            data = data if type(data) is bytes else bytes(data)  # the caller may reuse it
            if self._position < len(self._buffer):  # not drained first: keep the rest
                data = self._buffer[self._position :] + data
            self._buffer, self._position = data, 0

    @property
    def _queued(self) -> int:
        return len(self._buffer) - self._position

    def _next_feed(self) -> bytes:
        start = self._position
        feed = self._buffer[start : start + self._feed]  # all of it: not copied
        self._position = start + len(feed)
        self._feed = min(2 * self._feed, FEED_MAX)
        return feed

    def _give_back(self, unconsumed: int, *, ended: bool = False) -> None:
        """The decompressor left the last ``unconsumed`` bytes it was handed; ``ended``:
        its stream (a member, a frame) ended there, so feeds start small again."""
        self._position -= unconsumed
        if ended:
            self._feed = FEED_MIN


class _ZlibDecoder(_Decoder):
    """gzip (possibly several members) and deflate (zlib-wrapped or raw)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._wbits = 16 + zlib.MAX_WBITS if name in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        # deflate: the first bytes, kept until the zlib header is known to be right, so
        # they can be replayed as raw deflate (some servers omit the zlib wrapper).
        self._head: bytes | None = b"" if name == "deflate" else None
        self._filled = False  # the last call stopped at its output limit
        # Bytes after the end of the stream that start no gzip member: those and all
        # that follow are ignored (as browsers and Python's gzip module do).
        self._junk = False

    @property
    def has_pending(self) -> bool:
        if self._junk:
            return False
        if self._obj.eof:
            # Another gzip member: its magic is queued (_member_follows sorted the rest).
            return self._queued >= 2
        # zlib can hold output back without holding input: the rest of a long match cut
        # by the limit, once its input is all read. A call that filled the limit may
        # have more to give even when nothing is queued.
        return self._filled or self._queued > 0

    def _member_follows(self) -> bool:
        """At the end of the stream: whether a gzip member (RFC 1952 section 2.2) starts
        in the queued bytes. Anything else is junk, ignored with all that follows; a
        lone first byte of the magic stays queued until the next one tells."""
        start = self._position
        magic = self._buffer[start : start + 2]
        if not magic:
            return False
        if self.name != "deflate" and b"\x1f\x8b".startswith(magic):
            return len(magic) == 2
        self._junk = True
        self._buffer, self._position = b"", 0
        return False

    def decode(self, data: bytes, limit: int) -> bytes:
        self._queue(data)
        if self._junk:
            self._buffer, self._position = b"", 0
            return b""
        obj = self._obj
        if obj.eof:
            if not self._member_follows():
                return b""
            self._obj = obj = zlib.decompressobj(self._wbits)
        feed = self._next_feed()
        try:
            out = obj.decompress(feed, limit)
        except zlib.error as error:
            if self._head is not None:
                # No zlib header: replay what came so far as raw deflate.
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
                rest = self._buffer[self._position - len(feed) :]
                self._buffer, self._position, self._head = self._head + rest, 0, None
                return self.decode(b"", limit)
            raise DecodingError(f"The {self.name} body is corrupt: {error}.") from None
        if obj.eof:
            unconsumed = len(obj.unused_data)
            self._give_back(unconsumed, ended=True)
            self._filled = False
            self._member_follows()  # junk is dropped at once
        else:
            unconsumed = len(obj.unconsumed_tail)
            self._give_back(unconsumed)
            self._filled = len(out) >= limit
        if self._head is not None:
            self._head += feed[: len(feed) - unconsumed]
            if len(self._head) >= 2:
                self._head = None  # the two-byte zlib header checked out
        return out

    def finish(self) -> None:
        if self._started and not self._obj.eof:
            raise DecodingError(f"The {self.name} body ended before its end marker.")


class _BrotliDecoder(_Decoder):
    """br. brotli's output limit is soft (it may return more: ContentDecoder cuts the
    pieces to size) and its ``can_accept_more_data()`` does not report pending output,
    so a call that filled the limit is taken to mean more output may be waiting. A br
    stream is one stream: bytes after its end are an error, however they arrive (in
    the call that ends it brotli itself refuses them)."""

    name = "br"

    def __init__(self) -> None:
        super().__init__()
        assert _brotli is not None
        self._obj: Any = _brotli.Decompressor()
        self._maybe_more = False

    @property
    def has_pending(self) -> bool:
        return self._maybe_more or self._queued > 0

    def decode(self, data: bytes, limit: int) -> bytes:
        self._queue(data)
        obj = self._obj
        if obj.is_finished():
            if self._queued:
                raise DecodingError("The br body is corrupt: data after the end of its stream.")
            self._maybe_more = False
            return b""
        feed = self._next_feed() if obj.can_accept_more_data() else b""
        try:
            out = bytes(obj.process(feed, output_buffer_limit=limit))
        except _brotli.error as error:
            raise DecodingError(f"The br body is corrupt: {error}.") from None
        self._maybe_more = (len(out) >= limit or not obj.can_accept_more_data()) and not (
            obj.is_finished()
        )
        return out

    def finish(self) -> None:
        if self._started and not self._obj.is_finished():
            raise DecodingError("The br body ended before its end marker.")


class _ZstdDecoder(_Decoder):
    """zstd, several frames one after another (RFC 8878 section 3), each with a window
    of at most 8 MiB, as RFC 9659 has HTTP's zstd coding (browsers refuse more): a
    body of a few KB cannot make the decoder hold 128 MiB, libzstd's own limit."""

    name = "zstd"

    def __init__(self) -> None:
        super().__init__()
        self._obj: Any = self._decompressor()

    @staticmethod
    def _decompressor() -> Any:
        assert _zstd is not None
        return _zstd.ZstdDecompressor(options={_zstd.DecompressionParameter.window_log_max: 23})

    @property
    def has_pending(self) -> bool:
        obj = self._obj
        return (not obj.eof and not obj.needs_input) or self._queued > 0

    def decode(self, data: bytes, limit: int) -> bytes:
        self._queue(data)
        obj = self._obj
        try:
            if obj.eof:
                if not self._queued:
                    return b""
                self._obj = obj = self._decompressor()  # the next frame
            # Fed only once it has used what it holds (it keeps input a limit cut short).
            out: bytes = obj.decompress(self._next_feed() if obj.needs_input else b"", limit)
        except _zstd.ZstdError as error:
            raise DecodingError(f"The zstd body is corrupt: {error}.") from None
        if obj.eof:
            self._give_back(len(obj.unused_data), ended=True)
        return out

    def finish(self) -> None:
        if self._started and not self._obj.eof:
            raise DecodingError("The zstd body ended before its end marker.")


def _make(name: str) -> _Decoder:
    if name in ("gzip", "x-gzip", "deflate"):
        return _ZlibDecoder(name)
    if name == "br" and _brotli is not None:
        return _BrotliDecoder()
    if name == "zstd" and _zstd is not None:
        return _ZstdDecoder()
    raise DecodingError(  # pragma: no cover - callers check is_supported() first
        f"Content-Encoding {name!r} is not supported here.", status_hint=415
    )


def supported_encodings() -> list[str]:
    """The codings this interpreter can decode, best first."""
    names = []
    if _zstd is not None:
        names.append("zstd")
    if _brotli is not None:
        names.append("br")
    names += ["gzip", "deflate"]
    return names


def accept_encoding() -> str:
    """The value a client should send in Accept-Encoding."""
    return ", ".join(supported_encodings())


def _codings(content_encoding: str) -> list[str]:
    return [
        name
        for name in (part.strip(" \t").lower() for part in content_encoding.split(","))
        if name and name != "identity"
    ]


def is_supported(content_encoding: str) -> bool:
    """Whether every coding listed in a Content-Encoding value can be decoded."""
    names = [*supported_encodings(), "x-gzip"]
    return all(name in names for name in _codings(content_encoding))


class ContentDecoder:
    """Decodes a body whose Content-Encoding is ``content_encoding`` (e.g. ``"gzip"``
    or ``"gzip, br"``: codings are undone last first).

    Feed the body with :meth:`decode` as it arrives and iterate over the pieces it
    yields; call :meth:`finish` at the end of the body. Check :func:`is_supported`
    first: an unknown coding raises :class:`~sansnet.DecodingError`.

    ``max_size`` caps the total decoded size (None: no cap, else an int >= 0);
    ``piece_size`` bounds each yielded piece and is at least 1. Arguments of the wrong
    type or value raise :class:`~sansnet.InvalidArgument` naming them.
    """

    __slots__ = ("_decoders", "_remaining", "max_size", "piece_size")

    def __init__(
        self,
        content_encoding: str,
        *,
        max_size: int | None = None,
        piece_size: int = PIECE_SIZE,
    ) -> None:
        if type(piece_size) is not int or piece_size < 1:
            # zlib takes a max_length of 0 for "no limit": the bound would be gone.
            raise InvalidArgument(f"piece_size must be a positive int, not {piece_size!r}.")
        if not isinstance(content_encoding, str):
            raise InvalidArgument(
                "content_encoding must be a str (a Content-Encoding value such as 'gzip'), "
                f"not {type(content_encoding).__name__}."
            )
        if max_size is not None and (type(max_size) is not int or max_size < 0):
            raise InvalidArgument(
                f"max_size must be None (no cap) or an int >= 0, not {max_size!r}."
            )
        names = _codings(content_encoding)
        if len(names) > MAX_CODINGS:
            raise DecodingError(
                f"Can't decode Content-Encoding {content_encoding[:200]!r}: it lists "
                f"{len(names)} codings, more than the {MAX_CODINGS} accepted (as urllib3 "
                "and curl).",
                status_hint=415,
            )
        unknown = [name for name in names if not is_supported(name)]
        if unknown:
            raise DecodingError(
                f"Can't decode Content-Encoding {content_encoding!r}: {', '.join(unknown)} "
                f"is not supported (supported: {accept_encoding()}; br and zstd need "
                "'pip install sansnet[compression]').",
                status_hint=415,
            )
        self._decoders = [_make(name) for name in reversed(names)]
        self.max_size = max_size
        self.piece_size = piece_size
        self._remaining = max_size

    @property
    def identity(self) -> bool:
        """True when there is nothing to decode (no coding, or only ``identity``)."""
        return not self._decoders

    def decode(self, data: bytes) -> Iterator[bytes]:
        """Yield the decoded pieces of ``data`` (each at most ``piece_size`` bytes).

        Raises :class:`~sansnet.DecodingError` for corrupt data or when the total
        passes ``max_size``, and :class:`~sansnet.InvalidArgument` for ``data`` that is
        not bytes, bytearray or memoryview, whatever the coding.
        """
        given: object = data  # typed bytes; checked as anything
        if type(given) is not bytes and not isinstance(given, (bytearray, memoryview)):
            raise InvalidArgument(
                "decode() takes the body as bytes, bytearray or memoryview (what Data "
                f"events carry), not {type(given).__name__}."
            )
        if not self._decoders:
            if data:
                self._count(len(data))
                size = self.piece_size
                if type(data) is not bytes:  # pieces are bytes, never views of the caller's
                    data = bytes(data)
                # Slicing all of a bytes object returns it, so a small body is not copied.
                for start in range(0, len(data), size):
                    yield data[start : start + size]
            return
        yield from self._run(0, data)

    def _run(self, index: int, data: bytes) -> Iterator[bytes]:
        decoder = self._decoders[index]
        last = index == len(self._decoders) - 1
        limit = self.piece_size
        while True:
            out = decoder.decode(data, limit)
            data = b""
            if out:
                if last:
                    # brotli's limit is soft (up to 32752 bytes for a smaller one, 98272
                    # for 64 KiB): cut its output to size. Slicing all of a bytes object
                    # returns it, so output within the limit is not copied.
                    for start in range(0, len(out), limit):
                        piece = out[start : start + limit]
                        self._count(len(piece))
                        yield piece
                else:
                    yield from self._run(index + 1, out)
            if not decoder.has_pending:
                return

    def _count(self, size: int) -> None:
        if self._remaining is not None:
            self._remaining -= size
            if self._remaining < 0:
                raise DecodingError(
                    f"The decoded body is larger than {self.max_size} bytes; refusing to "
                    "decode more (a decompression bomb?).",
                    status_hint=413,
                )

    def finish(self) -> None:
        """The encoded body is complete: raise :class:`~sansnet.DecodingError` if a
        coding's stream was cut short."""
        for decoder in self._decoders:
            decoder.finish()

    def decode_all(self, data: bytes) -> bytes:
        """Decode a whole body at once (then :meth:`finish`)."""
        out = b"".join(self.decode(data))
        self.finish()
        return out
