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


class _Decoder:
    """One coding. ``decode`` may be called with b"" to drain pending output."""

    name = ""

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


class _ZlibDecoder(_Decoder):
    """gzip (possibly several members) and deflate (zlib-wrapped or raw)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._wbits = 16 + zlib.MAX_WBITS if name in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        # deflate: the first bytes, kept until the zlib header is known to be right, so
        # they can be replayed as raw deflate (some servers omit the zlib wrapper).
        self._head: bytes | None = b"" if name == "deflate" else None
        self._started = False
        self._filled = False  # the last call stopped at its output limit
        # Bytes after the end of the stream (or member). For gzip, a next member may
        # start there, its two-byte magic split across calls; anything else is ignored.
        self._rest = b""

    @property
    def has_pending(self) -> bool:
        if self._obj.eof:
            # The stream ended (zlib may still show its last input as unconsumed_tail):
            # pending only if another gzip member has begun in the bytes after it.
            return self._next_member(self._rest)
        # zlib can hold output back without holding input: the rest of a long match cut
        # by the limit, once its input is all read. A call that filled the limit may
        # have more to give even when unconsumed_tail is empty.
        return self._filled or bool(self._obj.unconsumed_tail)

    def _next_member(self, tail: bytes) -> bool:
        return self.name != "deflate" and tail[:2] == b"\x1f\x8b"

    def decode(self, data: bytes, limit: int) -> bytes:
        obj = self._obj
        if obj.eof:
            tail = self._rest + data
            if not self._next_member(tail):
                # Ignored, but a lone 0x1f may be the start of a member's magic: keep
                # up to two bytes, which stay a non-magic prefix once they are junk.
                self._rest = tail[:2]
                return b""
            # gzip allows several members one after another (RFC 1952 section 2.2).
            self._obj = obj = zlib.decompressobj(self._wbits)
            data = tail
        elif obj.unconsumed_tail:
            data = obj.unconsumed_tail + data
        if data:
            self._started = True
        try:
            out = obj.decompress(data, limit)
        except zlib.error as error:
            if self._head is not None:
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
                data, self._head = self._head + data, None
                return self.decode(data, limit)
            raise DecodingError(f"The {self.name} body is corrupt: {error}.") from None
        self._filled = len(out) >= limit and not obj.eof
        if obj.eof:
            self._rest = obj.unused_data
        if self._head is not None:
            self._head += data
            if len(self._head) >= 2:
                self._head = None  # the two-byte zlib header checked out
        return out

    def finish(self) -> None:
        if self._started and not self._obj.eof:
            raise DecodingError(f"The {self.name} body ended before its end marker.")


class _BrotliDecoder(_Decoder):
    """br. brotli's output limit is soft (it may return more: ContentDecoder cuts the
    pieces to size) and its
    ``can_accept_more_data()`` does not report pending output, so a call that filled
    the limit is taken to mean more output may be waiting."""

    name = "br"

    def __init__(self) -> None:
        assert _brotli is not None
        self._obj: Any = _brotli.Decompressor()
        self._started = False
        self._maybe_more = False

    @property
    def has_pending(self) -> bool:
        return self._maybe_more

    def decode(self, data: bytes, limit: int) -> bytes:
        obj = self._obj
        if data:
            self._started = True
        if obj.is_finished():
            self._maybe_more = False
            return b""  # data after the end of the stream is ignored
        try:
            out = bytes(obj.process(data, output_buffer_limit=limit))
        except _brotli.error as error:
            raise DecodingError(f"The br body is corrupt: {error}.") from None
        self._maybe_more = len(out) >= limit and not obj.is_finished()
        return out

    def finish(self) -> None:
        if self._started and not self._obj.is_finished():
            raise DecodingError("The br body ended before its end marker.")


class _ZstdDecoder(_Decoder):
    name = "zstd"

    def __init__(self) -> None:
        assert _zstd is not None
        self._obj: Any = _zstd.ZstdDecompressor()
        self._pending = b""
        self._started = False

    @property
    def has_pending(self) -> bool:
        obj = self._obj
        return (not obj.eof and not obj.needs_input) or bool(self._pending)

    def decode(self, data: bytes, limit: int) -> bytes:
        if data:
            self._started = True
        obj = self._obj
        if self._pending:
            data, self._pending = self._pending + data, b""
        try:
            if obj.eof:
                if not data:
                    return b""
                # Several frames one after another form one stream (RFC 8878 section 3).
                self._obj = obj = _zstd.ZstdDecompressor()
            out: bytes = obj.decompress(data, limit)
        except _zstd.ZstdError as error:
            raise DecodingError(f"The zstd body is corrupt: {error}.") from None
        if obj.eof and obj.unused_data:
            self._pending = obj.unused_data
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
