"""Serializing HTTP/1.1: message heads and body framing (RFC 9112 sections 2-7).

Everything we send is validated here, once, on the assembled bytes: field names must
be tokens, and no name, value, method, target or reason may contain CR, LF, NUL or
another control character (that would let a caller's data inject headers or a second
message). A breach raises :class:`~sansnet.LocalProtocolError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

from sansnet.errors import LocalProtocolError

from ._readers import _ALLOWED_IN_HEAD, TOKEN

__all__ = [
    "ChunkedWriter",
    "CloseDelimitedWriter",
    "ContentLengthWriter",
    "NoBodyWriter",
    "Writer",
    "reason_phrase",
    "write_head",
]

_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}
_REASONS[413] = "Content Too Large"  # RFC 9110 names
_REASONS[422] = "Unprocessable Content"

_VALID_NAMES: set[str] = set()
_VALID_NAMES_SIZE: Final = 2048


def reason_phrase(status: int) -> str:
    """The canonical reason phrase of ``status`` (RFC 9110), ``""`` if it has none."""
    return _REASONS.get(status, "")


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        # Characters beyond latin-1 cannot go on the wire as themselves; send UTF-8.
        return text.encode("utf-8")


def write_head(start_line: str, fields: Iterable[tuple[str, str]], count: int) -> bytes:
    """The bytes of a head: ``start_line``, then ``name: value`` lines, then CRLF.

    ``count`` is the number of fields (used to check that no value smuggled in a line
    break). Raises :class:`~sansnet.LocalProtocolError` for an invalid name or value.
    """
    parts = [start_line, "\r\n"]
    extend = parts.extend
    valid = _VALID_NAMES
    for name, value in fields:
        if name not in valid:
            _check_name(name)
        extend((name, ": ", value, "\r\n"))
    parts.append("\r\n")
    text = "".join(parts)
    data = _encode(text)
    if len(data.translate(None, _ALLOWED_IN_HEAD)) != 2 * (count + 2):
        _explain_bad_head(start_line, fields)
    return data


def _check_name(name: str) -> None:
    if not isinstance(name, str) or TOKEN.fullmatch(name) is None:
        raise LocalProtocolError(
            f"Invalid header field name {name!r}: names are tokens (letters, digits and "
            "!#$%&'*+-.^_`|~), with no spaces or colons."
        )
    if len(_VALID_NAMES) < _VALID_NAMES_SIZE:
        _VALID_NAMES.add(name)


def _has_bad_bytes(text: str) -> bool:
    data = _encode(text)
    return len(data.translate(None, _ALLOWED_IN_HEAD)) != 0


def _explain_bad_head(start_line: str, fields: Iterable[tuple[str, str]]) -> None:
    if _has_bad_bytes(start_line):
        raise LocalProtocolError(
            f"The start line {start_line[:80]!r} contains CR, LF, NUL or another control character."
        )
    for name, value in fields:
        if _has_bad_bytes(value):
            raise LocalProtocolError(
                f"The value of header {name!r} contains CR, LF, NUL or another control "
                "character; refusing to send it (it could inject headers)."
            )
    raise AssertionError("unreachable: no bad byte found")  # pragma: no cover


class Writer:
    """Frames body data for the wire; ``end`` returns the bytes that close the body."""

    __slots__ = ()

    def write(self, data: bytes) -> bytes:
        raise NotImplementedError

    def end(self, trailers: list[tuple[str, str]] | None) -> bytes:
        raise NotImplementedError


class ContentLengthWriter(Writer):
    """Exactly ``length`` bytes, as the Content-Length field promised."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def write(self, data: bytes) -> bytes:
        if len(data) > self.remaining:
            raise LocalProtocolError(
                f"Too much body data: {len(data)} bytes given with only {self.remaining} "
                "left of the announced Content-Length."
            )
        self.remaining -= len(data)
        return data

    def end(self, trailers: list[tuple[str, str]] | None) -> bytes:
        if self.remaining:
            raise LocalProtocolError(
                f"The body ended {self.remaining} bytes short of its Content-Length."
            )
        if trailers:
            raise LocalProtocolError("Trailers need a chunked body; drop the Content-Length.")
        return b""


class ChunkedWriter(Writer):
    """``Transfer-Encoding: chunked``: each write is one chunk."""

    __slots__ = ()

    def write(self, data: bytes) -> bytes:
        if not data:
            return b""  # an empty chunk would end the body
        return b"%x\r\n%b\r\n" % (len(data), data)

    def end(self, trailers: list[tuple[str, str]] | None) -> bytes:
        if not trailers:
            return b"0\r\n\r\n"
        return write_head("0", trailers, len(trailers))


class CloseDelimitedWriter(Writer):
    """A body that ends when the connection closes (HTTP/1.0 peers, streamed)."""

    __slots__ = ()

    def write(self, data: bytes) -> bytes:
        return data

    def end(self, trailers: list[tuple[str, str]] | None) -> bytes:
        return b""


class NoBodyWriter(Writer):
    """Responses that have no body on the wire: HEAD, 1xx, 204, 304.

    For HEAD the data is dropped silently (the handler may produce the GET body); for
    the others a non-empty body is an error.
    """

    __slots__ = ("why",)

    def __init__(self, why: str | None) -> None:
        self.why = why  # None: drop data silently (HEAD)

    def write(self, data: bytes) -> bytes:
        if data and self.why is not None:
            raise LocalProtocolError(f"A {self.why} response cannot have a body.")
        return b""

    def end(self, trailers: list[tuple[str, str]] | None) -> bytes:
        return b""
