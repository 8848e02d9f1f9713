"""``Limits``: every size bound the HTTP/1.1 engine enforces, in one object.

Each limit stops a way of making a server (or a client) hold unbounded memory or work;
the server answers a breach with the status in brackets and closes the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from sansnet.errors import InvalidArgument

__all__ = ["Limits"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for one HTTP/1.1 connection. Pass ``None`` to disable a body limit.

    =====================  ==========  =====================================================
    field                  default     breach
    =====================  ==========  =====================================================
    ``max_request_line``   8 KiB       request line too long [414]; client: status line
    ``max_header_bytes``   16 KiB      whole head, first line included, too long [431];
                                       also bounds a chunk line and the trailer section
    ``max_header_fields``  100         too many header (or trailer) fields [431]
    ``max_body_bytes``     16 MiB      body longer than this [413]; None: no limit
    ``max_chunk_line``     4 KiB       kept for compatibility: h11 parses chunk lines and
                                       bounds them by ``max_header_bytes`` [431]
    =====================  ==========  =====================================================

    The defaults suit a server. :class:`~sansnet.protocol.ClientConnection` uses
    ``Limits.client()``, which has no body limit (a client asked for the body).
    """

    max_request_line: int = 8 * KiB
    max_header_bytes: int = 16 * KiB  # h11's own default
    max_header_fields: int = 100
    max_body_bytes: int | None = 16 * MiB
    max_chunk_line: int = 4 * KiB

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_bytes", "max_header_fields", "max_chunk_line"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"Limits.{name} must be a positive int, not {value!r}.")
        body = self.max_body_bytes
        if body is not None and (not isinstance(body, int) or body < 0):
            raise InvalidArgument(
                f"Limits.max_body_bytes must be None or an int >= 0, not {body!r}."
            )

    @classmethod
    def client(cls) -> Limits:
        """The client's defaults: the server's, without a body limit."""
        return cls(max_body_bytes=None)
