"""Close codes (RFC 6455 section 7.4) and the reasons we give when we fail a connection
(section 7.1.7).

The code table is wsproto's :class:`~wsproto.frame_protocol.CloseReason`: wsproto parses
the peer's close frames and refuses the codes it does not know, so the rule of what a peer
may send (:func:`is_valid_received_close_code`) is derived from that table and cannot
disagree with it. What we may send (:func:`check_close_code`) is our own, stricter rule:
wsproto would silently turn 1005, 1006 and 1015 into 1000 and cut a long reason short,
and would send 1016-2999, which RFC 6455 section 7.4.2 reserves for future versions of
the protocol and which peers (websockets, and our own receiving side) refuse with 1002.
1014 (registered by IANA after wsproto's table) may be sent, but our receiving side
refuses it (see below).
"""

from __future__ import annotations

from typing import Final

from wsproto.frame_protocol import LOCAL_ONLY_CLOSE_REASONS, CloseReason

from sansnet.errors import InvalidArgument

__all__ = ["check_close_code", "explain", "is_valid_received_close_code"]

NORMAL_CLOSURE: Final = int(CloseReason.NORMAL_CLOSURE)
NO_STATUS_RCVD: Final = int(CloseReason.NO_STATUS_RCVD)  # never sent: "the peer sent none"
ABNORMAL_CLOSURE: Final = int(CloseReason.ABNORMAL_CLOSURE)  # never sent: the link died
PROTOCOL_ERROR: Final = int(CloseReason.PROTOCOL_ERROR)
INVALID_PAYLOAD: Final = int(CloseReason.INVALID_FRAME_PAYLOAD_DATA)
MESSAGE_TOO_BIG: Final = int(CloseReason.MESSAGE_TOO_BIG)
INTERNAL_ERROR: Final = int(CloseReason.INTERNAL_ERROR)

# Codes a peer may send: the defined ones but the local-only 1005, 1006 and 1015, and
# 3000-4999 for registered and private use. (wsproto's table lacks 1014, registered by
# IANA in 2016, so a peer's 1014 fails the connection with 1002; Autobahn does not test it.)
_VALID_RECEIVED: Final = frozenset(
    int(code) for code in CloseReason if code not in LOCAL_ONLY_CLOSE_REASONS
)
# Codes we must never send: 1004 (reserved) and the local-only ones; and past the last
# code RFC 6455 and IANA define (1015) up to 2999, those kept for future versions.
_RESERVED: Final = frozenset([1004, *(int(code) for code in LOCAL_ONLY_CLOSE_REASONS)])
_LAST_DEFINED: Final = 1015


def is_valid_received_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` (else the connection fails with 1002)."""
    return code in _VALID_RECEIVED or 3000 <= code <= 4999


def check_close_code(code: int) -> None:
    """Raise :class:`~sansnet.InvalidArgument` (a ``ValueError``) unless we may send ``code``: 1000-4999 but 1004, 1005, 1006
    and 1015, which are reserved and never sent, and 1016-2999, which are reserved for
    future versions of the protocol (RFC 6455 section 7.4.2)."""
    if not isinstance(code, int) or isinstance(code, bool) or not 1000 <= code <= 4999:
        raise InvalidArgument(f"Close code {code!r} is out of range: use 1000 to 4999.")
    if code in _RESERVED:
        raise InvalidArgument(
            f"Close code {code} is reserved and must not be sent (1004, 1005, 1006, 1015)."
        )
    if _LAST_DEFINED < code < 3000:
        raise InvalidArgument(
            f"Close code {code} is reserved for future versions of the protocol "
            f"({_LAST_DEFINED + 1} to 2999): use a defined code, or one from 3000 to 4999."
        )


# wsproto's words for the peer's violations (the messages of its ParseFailed), and ours:
# the reason in our close frame and in Closed.reason. "{detail}" is the rest of wsproto's
# message. A message not listed here is passed on as wsproto wrote it.
_EXPLANATIONS: Final = (
    # RFC 6455 section 5.2
    (
        "Reserved bit set unexpectedly",
        "A frame has a reserved bit set: RSV2 or RSV3, or RSV1 with no compression agreed.",
    ),
    ("Invalid opcode", "A frame has the reserved opcode {detail}."),
    ("8-byte payload length with non-zero MSB", "The frame length has its top bit set."),
    ("Payload length used", "A frame length is not in its shortest form."),
    ("client received unexpected masked frame", "A frame from the server is masked."),
    ("server received unexpected unmasked frame", "A frame from the client is not masked."),
    # section 5.4
    ("unexpected CONTINUATION", "A continuation frame continues nothing."),
    ("expected CONTINUATION", "A new message started before the last one ended."),
    # section 5.5
    ("Invalid attempt to fragment control frame", "A control frame is fragmented."),
    ("Control frame with payload len > 125", "A control frame is longer than 125 bytes."),
    # section 5.5.1 and 7.4
    ("CLOSE with 1 byte payload", "A close frame has a 1-byte payload."),
    ("CLOSE with invalid code", "The peer sent an invalid close code (out of range)."),
    ("remote CLOSE with local-only reason", "The peer sent an invalid close code (local-only)."),
    ("CLOSE with unknown reserved code", "The peer sent an invalid close code (reserved)."),
    ("Error decoding CLOSE reason", "A close reason is not valid UTF-8."),
    # section 8.1
    ("'utf-8' codec can't decode", "A text message is not valid UTF-8."),
)


def explain(reason: str) -> str:
    """Our sentence for the reason wsproto gave when it refused the peer's bytes."""
    for prefix, sentence in _EXPLANATIONS:
        if reason.startswith(prefix):
            return sentence.format(detail=reason[len(prefix) :].strip())
    return reason
