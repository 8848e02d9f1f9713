"""Fuzz harness: ContentDecoder over gzip, deflate, br, zstd and stacked codings.

Run: ``python fuzz/content_decoders.py [libFuzzer flags] [corpus dirs]`` (see
fuzz/README.md).

Input: byte 0 the Content-Encoding (an index into ``CODINGS``), byte 1 the mode and
the piece size, byte 2 ``max_size``, byte 3 where to cut the body into pieces (and,
bit 7, whether ``decode(b"")`` comes before ``finish()``), byte 4
a position and a repeat count, then the data. Modes (byte 1, low 2 bits):

* 0 ``raw``: the data is the encoded body, as a hostile server would send it
* 1 ``damaged``: the data is encoded with the codings, then damaged at the position
  of byte 4: cut short, one byte flipped, junk appended, or a second member appended
* 2, 3 ``round trip``: the data, repeated (byte 4) so that bodies can outgrow
  ``max_size``, is encoded, decoded in pieces and must come back unchanged

Properties checked, any breach being a crash:

1. ``decode`` and ``finish`` raise nothing but :class:`~sansnet.DecodingError`.
2. The decoded output never exceeds ``max_size``; each piece is at most
   ``piece_size`` (br's output limit is soft: 64 KiB of slack, see ``_BrotliDecoder``).
3. Round trip: a body within ``max_size`` decodes to the original data, in any cuts;
   a bigger one raises DecodingError.
4. Damaged: what decodes before the error is a prefix of the original data (a flipped
   byte may go unnoticed by br and deflate-raw, which have no checksum: then only
   the size bound holds).
"""

from __future__ import annotations

import gzip
import sys
import zlib

import _common
from _common import check

with _common.instrumented():
    from sansnet.errors import DecodingError
    from sansnet.protocol.decoding import ContentDecoder

import brotli
from backports import zstd

CODINGS = [
    "gzip",
    "x-gzip",
    "deflate",
    "br",
    "zstd",
    "identity",
    "gzip, br",
    "deflate, zstd",
    "br, gzip",
    "zstd, deflate",
    "gzip, gzip",
    "GZIP , identity",
    "br, br, zstd",
    "",
]
MAX_SIZES = [0, 1, 10, 100, 1000, 4096, 65536, None]
PIECE_SIZES = [1, 7, 100, 65536]
BR_SLACK = 65536


def encode(name: str, data: bytes, variant: int) -> bytes:
    """One coding. ``variant`` picks deflate's form: zlib-wrapped or raw."""
    name = name.strip().lower()
    if name in ("gzip", "x-gzip"):
        return gzip.compress(data, mtime=0)
    if name == "deflate":
        if variant & 1:
            raw = zlib.compressobj(6, zlib.DEFLATED, -15)
            return raw.compress(data) + raw.flush()
        return zlib.compress(data)
    if name == "br":
        return bytes(brotli.compress(data, quality=4))
    if name == "zstd":
        return bytes(zstd.compress(data))
    assert name == "identity", name
    return data


def encode_all(coding: str, data: bytes, variant: int) -> bytes:
    for name in coding.split(","):
        if name.strip():
            data = encode(name, data, variant)
    return data


def decode(coding: str, body: bytes, max_size: int | None, piece_size: int, seed: int) -> bytes:
    """Decode in pieces, checking the bounds; DecodingError passes through."""
    decoder = ContentDecoder(coding, max_size=max_size, piece_size=piece_size)
    slack = BR_SLACK if "br" in coding else 0
    out = bytearray()
    # Callers call finish() right after the last piece (the client does); b"" first is
    # allowed too. Bit 7 of the cut seed chooses.
    for chunk in [*_common.split(body, seed), *([b""] if seed & 128 else [])]:
        for piece in decoder.decode(chunk):
            check(isinstance(piece, bytes) and piece, f"piece {piece!r}")
            check(len(piece) <= piece_size + slack, f"a {len(piece)}-byte piece")
            out += piece
            check(max_size is None or len(out) <= max_size, f"{len(out)} bytes > {max_size}")
    decoder.finish()
    return bytes(out)


def test_one_input(data: bytes) -> None:
    if len(data) < 5:
        return
    coding = CODINGS[data[0] % len(CODINGS)]
    mode = data[1] & 3
    piece_size = PIECE_SIZES[(data[1] >> 2) % len(PIECE_SIZES)]
    variant = data[1] >> 4
    max_size = MAX_SIZES[data[2] % len(MAX_SIZES)]
    seed = data[3]
    position = data[4]
    payload = data[5:]
    if mode == 0:
        try:
            decode(coding, payload, max_size, piece_size, seed)
        except DecodingError:
            pass
        return
    if mode == 1:
        body = encode_all(coding, payload, variant)
        how = variant >> 1
        at = position * len(body) // 256
        if how == 0:
            body = body[:at]
        elif how == 1 and body:
            body = body[:at] + bytes([body[at] ^ (1 << (position & 7))]) + body[at + 1 :]
        elif how == 2:
            body += payload[:at]
        elif how == 3:
            body += encode_all(coding, payload, variant)
        try:
            out = decode(coding, body, max_size, piece_size, seed)
        except DecodingError:
            return
        identity = ContentDecoder(coding).identity
        if identity:
            check(out == body, "identity changed the body")
        elif how in (0, 2):
            # Cut short: a prefix came out, or (cut at a block end) all of it. Junk after
            # the end marker is ignored by every coding but gzip's multi-member rule.
            check(payload.startswith(out), "a truncated body decoded to something else")
        elif how == 3 and coding.strip().lower() in ("gzip", "x-gzip", "zstd"):
            check(out == payload + payload, "two members did not decode to both")
        return
    # round trip
    repeat = 1 + (position & 63)
    original = payload * repeat
    body = encode_all(coding, original, variant)
    try:
        out = decode(coding, body, max_size, piece_size, seed)
    except DecodingError as error:
        check(
            max_size is not None and len(original) > max_size,
            f"a valid {coding!r} body of {len(original)} bytes was refused: {error}",
        )
        return
    check(max_size is None or len(original) <= max_size, "a body beyond max_size decoded")
    check(out == original, f"round trip through {coding!r} changed the data")


if __name__ == "__main__":
    _common.main(test_one_input)
    sys.exit(0)
