"""Parsing HTTP/1.1 from bytes: message heads (RFC 9112 sections 2-5) and bodies
(section 6 and 7).

Strict by design: lines end in CRLF only; no obs-fold; no whitespace between a field
name and its colon; no control characters but HTAB in field values; every limit of
:class:`~sansnet.protocol.Limits` enforced while bytes arrive, not after. Each rule
raises :class:`~sansnet.RemoteProtocolError` with the status a server should answer.

The functions work on a ``bytearray`` receive buffer and consume what they parse.
"""

from __future__ import annotations

import re
from typing import Final

from sansnet.errors import RemoteProtocolError

from .events import Data, EndOfMessage
from .headers import Headers
from .limits import Limits

__all__ = [
    "ChunkedReader",
    "ContentLengthReader",
    "Fields",
    "UntilCloseReader",
    "parse_content_length",
    "read_head",
]

Fields = list[tuple[str, str, str]]  # (lowercase name, name as received, value)

TOKEN: Final = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")

# Bytes allowed anywhere in a head besides the CRLF line ends: HTAB, visible ASCII,
# space, and obs-text (0x80-0xFF). Deleting them leaves exactly the CRLFs of a valid head.
_ALLOWED_IN_HEAD: Final = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])

# Validated field names -> lowercase. Names repeat across requests, so most lookups hit
# and validation costs one dict lookup. Bounded so random names cannot grow it forever.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_SIZE: Final = 2048


def _field_name(name: str, line: str) -> str:
    """Validate a field name not seen before; return it in lowercase."""
    if not name or name[0] in " \t":
        if line[:1] in (" ", "\t"):
            raise RemoteProtocolError(
                "Obsolete line folding (a header line starting with whitespace) is not "
                "allowed; send each field on one line."
            )
        raise RemoteProtocolError(f"Header line without a field name: {line[:80]!r}.")
    if TOKEN.fullmatch(name) is None:
        if name.rstrip(" \t") != name:
            raise RemoteProtocolError(
                f"Whitespace between the field name {name.rstrip()!r} and its colon is "
                "not allowed (RFC 9112 section 5.1)."
            )
        raise RemoteProtocolError(f"Invalid header field name {name[:80]!r}.")
    lower = name.lower()
    if len(_NAME_CACHE) < _NAME_CACHE_SIZE:
        _NAME_CACHE[name] = lower
    return lower


def parse_fields(lines: list[str], first: int, limits: Limits) -> Fields:
    """Parse ``lines[first:]`` as ``name: value`` header lines."""
    if len(lines) - first > limits.max_header_fields:
        raise RemoteProtocolError(
            f"Too many header fields ({len(lines) - first}; the limit is "
            f"{limits.max_header_fields}).",
            status_hint=431,
        )
    fields: Fields = []
    append = fields.append
    cache = _NAME_CACHE
    for line in lines[first:] if first else lines:
        name, colon, value = line.partition(":")
        if not colon:
            _field_name(line, line)  # explains obs-fold and bad names
            raise RemoteProtocolError(f"Header line without a colon: {line[:80]!r}.")
        lower = cache.get(name)
        if lower is None:
            lower = _field_name(name, line)
        append((lower, name, value.strip(" \t")))
    return fields


def _describe_bad_bytes(head: bytes) -> str:
    for index, byte in enumerate(head):
        if byte == 0x0A and (index == 0 or head[index - 1] != 0x0D):
            return "a line ending in a bare LF (lines must end in CRLF)"
        if byte == 0x0D and head[index + 1 : index + 2] != b"\n":
            return "a bare CR (lines must end in CRLF)"
        if byte == 0x00:
            return "a NUL byte"
        if (byte < 0x20 and byte not in (0x09, 0x0A, 0x0D)) or byte == 0x7F:
            return f"the control character 0x{byte:02X}"
    raise AssertionError("unreachable: the head had no forbidden byte")  # pragma: no cover


def read_head(buf: bytearray, limits: Limits, *, request: bool) -> list[str] | None:
    """Take one complete head off the front of ``buf``; return its lines, or None.

    Returns None (consuming nothing but leading empty lines) while the head is
    incomplete, after checking that what has arrived cannot already be rejected.
    The first returned line is the start line; the rest are field lines, not yet split.
    """
    # RFC 9112 section 2.2: ignore empty lines before the start line.
    while buf[:2] == b"\r\n":
        del buf[:2]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        _check_incomplete_head(buf, limits, request=request)
        return None
    if end + 4 > limits.max_header_bytes:
        _check_first_line(buf, end, limits, request=request)
        raise RemoteProtocolError(
            f"The header section is larger than {limits.max_header_bytes} bytes.",
            status_hint=431,
        )
    head = bytes(buf[:end])
    del buf[: end + 4]
    breaks = head.count(b"\r\n")
    if len(head.translate(None, _ALLOWED_IN_HEAD)) != 2 * breaks:
        raise RemoteProtocolError(
            f"Invalid bytes in the message head: {_describe_bad_bytes(head)}."
        )
    lines = head.decode("latin-1").split("\r\n")
    if len(lines[0]) > limits.max_request_line:
        _check_first_line(head, len(head), limits, request=request)
    return lines


def _check_first_line(buf: bytes | bytearray, end: int, limits: Limits, *, request: bool) -> None:
    line_end = buf.find(b"\r\n", 0, end)
    length = line_end if line_end >= 0 else end
    if length > limits.max_request_line:
        what = "request line" if request else "status line"
        raise RemoteProtocolError(
            f"The {what} is longer than {limits.max_request_line} bytes.",
            status_hint=414 if request else 400,
        )


def _check_incomplete_head(buf: bytearray, limits: Limits, *, request: bool) -> None:
    size = len(buf)
    if size > limits.max_request_line and buf.find(b"\r\n", 0, limits.max_request_line + 2) < 0:
        _check_first_line(buf, size, limits, request=request)
    if size >= limits.max_header_bytes:
        raise RemoteProtocolError(
            f"The header section is larger than {limits.max_header_bytes} bytes.",
            status_hint=431,
        )
    if b"\n\n" in buf or buf[:1] == b"\n":
        raise RemoteProtocolError(
            "Invalid bytes in the message head: a line ending in a bare LF "
            "(lines must end in CRLF)."
        )


def parse_content_length(values: list[str]) -> int:
    """RFC 9110 section 8.6 and RFC 9112 section 6.3: one non-negative decimal integer.

    Several fields or a comma list are accepted only when every member is the same
    valid number; anything else is an error (a request smuggling vector otherwise).
    """
    members = [member.strip(" \t") for value in values for member in value.split(",")]
    first = members[0]
    for member in members:
        if member != first:
            raise RemoteProtocolError(
                f"Conflicting Content-Length values {', '.join(values)!r}.",
            )
    if not (first.isascii() and first.isdigit()):
        raise RemoteProtocolError(f"Invalid Content-Length value {first[:40]!r}.")
    length = int(first)
    if length >= 2**63:
        raise RemoteProtocolError(f"Content-Length {first[:40]} is too large.")
    return length


class ContentLengthReader:
    """A body of exactly ``length`` bytes."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: bytearray) -> Data | EndOfMessage | None:
        remaining = self.remaining
        if remaining == 0:
            return EndOfMessage()
        size = len(buf)
        if size == 0:
            return None
        if size <= remaining:
            data = bytes(buf)
            buf.clear()
            self.remaining = remaining - size
        else:
            data = bytes(buf[:remaining])
            del buf[:remaining]
            self.remaining = 0
        return Data(data)

    def read_eof(self) -> EndOfMessage:
        raise RemoteProtocolError(
            f"The peer closed the connection before the body was complete "
            f"({self.remaining} of the announced bytes missing).",
        )


class UntilCloseReader:
    """A response body that ends when the server closes the connection."""

    __slots__ = ()

    def read(self, buf: bytearray) -> Data | None:
        if not buf:
            return None
        data = bytes(buf)
        buf.clear()
        return Data(data)

    def read_eof(self) -> EndOfMessage:
        return EndOfMessage()


_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)


class ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1)."""

    __slots__ = ("limits", "remaining", "state")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.state = _SIZE
        self.remaining = 0

    def read(self, buf: bytearray) -> Data | EndOfMessage | None:
        while True:
            state = self.state
            if state == _DATA:
                if not buf:
                    return None
                remaining = self.remaining
                if len(buf) <= remaining:
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = bytes(buf[:remaining])
                    del buf[:remaining]
                self.remaining = remaining - len(data)
                if self.remaining == 0:
                    self.state = _DATA_END
                return Data(data)
            if state == _SIZE:
                if not self._read_size_line(buf):
                    return None
            elif state == _DATA_END:
                if len(buf) < 2:
                    return None
                if buf[:2] != b"\r\n":
                    raise RemoteProtocolError("A chunk's data is not followed by CRLF.")
                del buf[:2]
                self.state = _SIZE
            else:
                return self._read_trailers(buf)

    def _read_size_line(self, buf: bytearray) -> bool:
        end = buf.find(b"\r\n", 0, self.limits.max_chunk_line + 2)
        if end < 0:
            if len(buf) > self.limits.max_chunk_line:
                raise RemoteProtocolError(
                    f"A chunk-size line is longer than {self.limits.max_chunk_line} bytes."
                )
            if b"\n" in buf:
                raise RemoteProtocolError("A chunk-size line ends in a bare LF, not CRLF.")
            return False
        line = bytes(buf[:end])
        del buf[: end + 2]
        size, semicolon, extensions = line.partition(b";")
        if semicolon:
            size = size.rstrip(b" \t")
            if len(extensions.translate(None, _ALLOWED_IN_HEAD)) != 0:
                raise RemoteProtocolError("Invalid bytes in a chunk extension.")
        if _HEX.fullmatch(size) is None:
            raise RemoteProtocolError(
                f"Invalid chunk size {size[:20]!r}: expected 1 to 16 hex digits."
            )
        length = int(size, 16)
        if length >= 2**63:
            raise RemoteProtocolError(f"Chunk size {size.decode()} is too large.")
        if length == 0:
            self.state = _TRAILERS
        else:
            self.remaining = length
            self.state = _DATA
        return True

    def _read_trailers(self, buf: bytearray) -> EndOfMessage | None:
        if buf[:2] == b"\r\n":
            del buf[:2]
            return EndOfMessage()
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) >= self.limits.max_header_bytes:
                raise RemoteProtocolError(
                    f"The trailer section is larger than {self.limits.max_header_bytes} bytes.",
                    status_hint=431,
                )
            if b"\n\n" in buf or buf[:1] == b"\n":
                raise RemoteProtocolError("A trailer line ends in a bare LF, not CRLF.")
            return None
        block = bytes(buf[:end])
        del buf[: end + 4]
        if len(block.translate(None, _ALLOWED_IN_HEAD)) != 2 * block.count(b"\r\n"):
            raise RemoteProtocolError(
                f"Invalid bytes in the trailers: {_describe_bad_bytes(block)}."
            )
        fields = parse_fields(block.decode("latin-1").split("\r\n"), 0, self.limits)
        # Framing and routing fields are not allowed in trailers (RFC 9110 section 6.5.1).
        kept = [field for field in fields if field[0] not in _NOT_IN_TRAILERS]
        return EndOfMessage(Headers._from_fields(kept))

    def read_eof(self) -> EndOfMessage:
        raise RemoteProtocolError("The peer closed the connection in the middle of a chunked body.")


_NOT_IN_TRAILERS: Final = frozenset(
    [
        "content-length",
        "transfer-encoding",
        "host",
        "content-encoding",
        "content-type",
        "content-range",
        "trailer",
        "authorization",
        "set-cookie",
        "connection",
        "te",
    ]
)
