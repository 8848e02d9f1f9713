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
