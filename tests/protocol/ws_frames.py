"""Raw WebSocket frames as a peer sends them, valid or not, for the tests to feed in.

wsproto only builds valid frames, and always with a random masking key; these tests
need reserved bits, reserved opcodes, oversized control frames and known keys.
"""

from __future__ import annotations

import struct


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """One frame (RFC 6455 section 5.2); ``rsv`` is OR-ed into the first byte and
    ``mask`` (4 bytes) masks the payload, as a client must."""
    first = opcode | (0x80 if fin else 0) | rsv
    size = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask is None:
        return header + payload
    masked = bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))
    return header + mask + masked


def frame_headers(data: bytes) -> list[tuple[bool, int, int, int]]:
    """The frames in ``data`` as (fin, rsv bits, opcode, payload length), in order:
    how a sender split its messages on the wire (payloads are skipped, masked or not)."""
    frames = []
    position = 0
    while position < len(data):
        first, second = data[position], data[position + 1]
        length, position = second & 0x7F, position + 2
        if length == 126:
            (length,) = struct.unpack("!H", data[position : position + 2])
            position += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[position : position + 8])
            position += 8
        if second & 0x80:
            position += 4  # the masking key
        frames.append((bool(first & 0x80), first & 0x70, first & 0x0F, length))
        position += length
    assert position == len(data), "a frame is cut short"
    return frames
