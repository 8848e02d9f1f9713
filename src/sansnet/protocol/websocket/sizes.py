"""The size limits on what a peer sends (RFC 6455 section 10.4), counted after
decompression, as the bytes arrive.

One :class:`SizeLimits` per connection, shared by the connection (which counts the bytes
of every message wsproto hands over) and the permessage-deflate extension (which must
know, before it inflates, how many bytes it may still produce). wsproto has no limit of
its own (wsproto#86).
"""

from __future__ import annotations

__all__ = ["SizeLimits"]


class SizeLimits:
    """``max_message_size`` and ``max_frame_size`` in bytes; None is unlimited."""

    __slots__ = ("max_frame_size", "max_message_size")

    def __init__(self, max_message_size: int | None, max_frame_size: int | None) -> None:
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size

    def room(self, frame_size: int, message_size: int) -> int | None:
        """How many more bytes the current frame and message may grow by (None: no limit),
        ``frame_size`` and ``message_size`` bytes having arrived."""
        frame_limit, message_limit = self.max_frame_size, self.max_message_size
        if frame_limit is None:
            return None if message_limit is None else message_limit - message_size
        if message_limit is None:
            return frame_limit - frame_size
        return min(frame_limit - frame_size, message_limit - message_size)

    def breach(self, frame_size: int, message_size: int, *, inflated: bool = False) -> str | None:
        """The reason to close with 1009 once a frame or a message has grown too big."""
        how = " once inflated" if inflated else ""
        limit = self.max_frame_size
        if limit is not None and frame_size > limit:
            return f"A frame exceeds the {limit}-byte limit{how}."
        limit = self.max_message_size
        if limit is not None and message_size > limit:
            return f"A message exceeds the {limit}-byte limit{how}."
        return None
