"""WebSocket frames (RFC 6455 section 5) and close codes (section 7.4).

This module only builds frames and knows the code tables; parsing lives in the
connection, where it can stream payloads and fail fast.
"""

from __future__ import annotations

import struct
from typing import Final

from ._mask import apply_mask

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "check_close_code",
    "encode_frame",
    "is_valid_received_close_code",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
DATA_OPCODES: Final = frozenset([OP_CONTINUATION, OP_TEXT, OP_BINARY])
CONTROL_OPCODES: Final = frozenset([OP_CLOSE, OP_PING, OP_PONG])

# Close codes (RFC 6455 section 7.4.1 and the IANA registry).
NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
PROTOCOL_ERROR: Final = 1002
UNSUPPORTED_DATA: Final = 1003
NO_STATUS_RCVD: Final = 1005  # never sent: "the peer sent no code"
ABNORMAL_CLOSURE: Final = 1006  # never sent: "the connection died without a close frame"
INVALID_PAYLOAD: Final = 1007
POLICY_VIOLATION: Final = 1008
MESSAGE_TOO_BIG: Final = 1009
MANDATORY_EXTENSION: Final = 1010
INTERNAL_ERROR: Final = 1011
TLS_HANDSHAKE: Final = 1015  # never sent

# Codes a peer may send in a close frame: the defined ones, and 3000-4999 for
# registered and private use. 1004, 1005, 1006, 1015 and undefined 1xxx are invalid.
_VALID_RECEIVED: Final = frozenset(
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
)
_RESERVED: Final = frozenset([1004, 1005, 1006, 1015])


def is_valid_received_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` (else we fail the connection with 1002)."""
    return code in _VALID_RECEIVED or 3000 <= code <= 4999


def check_close_code(code: int) -> None:
    """Raise ``ValueError`` unless we may send ``code``: 1000-4999 but 1004, 1005, 1006
    and 1015, which are reserved and never sent."""
    if not isinstance(code, int) or isinstance(code, bool) or not 1000 <= code <= 4999:
        raise ValueError(f"Close code {code!r} is out of range: use 1000 to 4999.")
    if code in _RESERVED:
        raise ValueError(
            f"Close code {code} is reserved and must not be sent (1004, 1005, 1006, 1015)."
        )


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """One frame. ``mask`` (4 bytes) is required from clients and absent from servers."""
    first = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
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
    return header + mask + apply_mask(payload, mask)
