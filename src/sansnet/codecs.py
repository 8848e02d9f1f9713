"""The JSON and URL codecs of the ``net`` API: ``json_encode``, ``json_decode``,
``url_encode`` and ``url_decode``.

JSON goes through orjson. The rules, and where they differ from the standard library:

* ``json_encode`` sorts keys, writes ``NaN`` and the infinities as ``null`` (as Lune does;
  the standard library writes invalid JSON), keeps integral floats as floats (``1.0``),
  and raises :class:`~sansnet.JSONEncodeError` naming the type it could not encode
  (non-string keys, sets, integers beyond 64 bits, arbitrary objects). Dataclasses, enums,
  datetimes and UUIDs are encoded as orjson does.
* ``json_decode`` accepts str, bytes, bytearray and memoryview, and raises
  :class:`~sansnet.JSONDecodeError` carrying the line and column of the error. An
  integer outside -2**63 to 2**64-1 becomes a float, as in orjson and Lune
  (docs/api/json.md says why and what to do).

URL coding follows RFC 3986: every byte but the unreserved ``A-Z a-z 0-9 - _ . ~`` is
written as ``%XX`` with uppercase hex; ``url_decode`` accepts either case, leaves ``+``
alone (it is form encoding's space, not URL encoding's), and keeps malformed ``%``
sequences as they are.

This module is pure (no I/O); the protocol layer may use it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal, overload
from urllib.parse import quote_from_bytes, unquote_to_bytes

import orjson

from .errors import (
    InvalidArgument,
    JSONDecodeError,
    JSONEncodeError,
    URLDecodeError,
    URLEncodeError,
)

__all__ = ["json_decode", "json_encode", "url_decode", "url_encode"]

_COMPACT = orjson.OPT_SORT_KEYS
_PRETTY = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
_MAX_DEPTH = 254  # orjson refuses a 255th nested list, dict or dataclass


def json_encode(
    value: Any,
    pretty: bool = False,
    _dumps: Any = orjson.dumps,
    _compact: int = _COMPACT,
    _pretty: int = _PRETTY,
) -> str:
    """Encode ``value`` as JSON text, keys sorted; ``pretty`` indents by two spaces.

    Raises :class:`~sansnet.JSONEncodeError` (a ``TypeError``) naming the type that
    cannot be encoded. The two trailing parameters are private speed-ups; do not pass
    them.
    """
    try:
        return _dumps(value, option=_pretty if pretty else _compact).decode()  # type: ignore[no-any-return]
    except orjson.JSONEncodeError as exc:
        raise JSONEncodeError(_describe_encode_failure(value, exc)) from exc


def _describe_encode_failure(value: Any, exc: Exception) -> str:
    """Find the first value orjson refused and say what it is and where it sits."""
    found = _find_unencodable(value, "value", set())
    if found is None:  # pragma: no cover - orjson refused something we consider valid
        return f"Cannot encode the value as JSON: {exc}."
    where, what = found
    return f"Cannot encode {where} as JSON: {what}."


def _find_unencodable(value: Any, where: str, ancestors: set[int]) -> tuple[str, str] | None:
    """Walk ``value`` like orjson does; return (where, what) for the first refused item."""
    # orjson takes subclasses of str, int, dict and list, but not of float or tuple.
    if value is None or isinstance(value, (str, bool)) or type(value) is float:
        return None
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return None
        return where, "integer outside the 64-bit range; encode it as a string"
    if isinstance(value, enum.Enum):
        return _find_unencodable(value.value, where, ancestors)
    children: list[tuple[str, Any]]
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str:  # orjson refuses str subclasses (a StrEnum) as keys
                kind = type(key).__name__
                return where, f"dict key {key!r} is of type {kind}, only str keys are allowed"
        children = [(f"{where}[{key!r}]", item) for key, item in value.items()]
    elif isinstance(value, list) or type(value) is tuple:
        children = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        children = [  # orjson skips a field never set (init=False, no default)
            (f"{where}.{field.name}", getattr(value, field.name))
            for field in fields
            if hasattr(value, field.name)
        ]
    else:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            name = f"{type(value).__module__}.{type(value).__qualname__}"
            return where, f"type {name} is not supported"
        return None
    if id(value) in ancestors:
        return where, f"{type(value).__name__} contains itself (a reference cycle)"
    if len(ancestors) >= _MAX_DEPTH:  # ancestors is the path of containers down to here
        return "value", f"it nests containers more than {_MAX_DEPTH} deep, orjson's limit"
    ancestors.add(id(value))
    try:
        for child_where, child in children:
            found = _find_unencodable(child, child_where, ancestors)
            if found is not None:
                return found
        return None
    finally:
        ancestors.discard(id(value))


def json_decode(text: str | bytes | bytearray | memoryview, _loads: Any = orjson.loads) -> Any:
    """Decode JSON text (str or UTF-8 bytes) into Python values; ``null`` becomes None.

    Raises :class:`~sansnet.JSONDecodeError` with ``lineno`` and ``colno`` set. The
    trailing parameter is a private speed-up; do not pass it.
    """
    try:
        return _loads(text)
    except orjson.JSONDecodeError as exc:
        if not isinstance(text, (str, bytes, bytearray, memoryview)):
            raise InvalidArgument(
                "json_decode() takes str, bytes, bytearray or memoryview, "
                f"not {type(text).__name__}"
            ) from None
        if isinstance(text, str) and type(text) is not str:
            return json_decode(str(text))  # orjson takes the exact types only
        if isinstance(text, (bytes, bytearray)) and type(text) not in (bytes, bytearray):
            return json_decode(bytes(text))
        if isinstance(text, (bytes, bytearray, memoryview)) and "UTF-8" in exc.msg:
            try:
                bytes(text).decode("utf-8")
            except UnicodeDecodeError as bad:
                error = JSONDecodeError("The input bytes are not UTF-8", "", bad.start)
                error.args = (
                    f"json_decode() got bytes that are not UTF-8 (byte {bad.start}, "
                    f"0x{bad.object[bad.start]:02X}): JSON text is UTF-8; decode text in "
                    "another encoding to str first.",
                )
                raise error from None
        doc = exc.doc if isinstance(exc.doc, str) else ""
        error = JSONDecodeError(exc.msg, doc, exc.pos)
        # orjson knows the position in the original document even when it was bytes.
        error.lineno, error.colno = exc.lineno, exc.colno
        error.args = (f"{exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})",)
        raise error from None


def url_encode(s: str | bytes, binary: bool = False) -> str:
    """Percent-encode every byte of ``s`` except ``A-Z a-z 0-9 - _ . ~``.

    A str is encoded as UTF-8 first. Bytes must be UTF-8 unless ``binary`` is true,
    as in Lune, where only binary mode accepts arbitrary bytes; a
    :class:`~sansnet.URLEncodeError` (a ``ValueError``) says so otherwise.
    """
    if isinstance(s, str):
        try:
            data = s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise URLEncodeError(
                f"url_encode() got a str with a lone surrogate at index {exc.start}; "
                "it has no UTF-8 form"
            ) from None
    elif isinstance(s, (bytes, bytearray, memoryview)):
        data = bytes(s)
        if not binary:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise URLEncodeError(
                    f"url_encode() got bytes that are not UTF-8 (byte {exc.start}); "
                    "pass binary=True to encode arbitrary bytes"
                ) from None
    else:
        raise InvalidArgument(f"url_encode() takes str or bytes, not {type(s).__name__}")
    return quote_from_bytes(data, safe="")


@overload
def url_decode(s: str | bytes, binary: Literal[False] = False) -> str: ...
@overload
def url_decode(s: str | bytes, binary: Literal[True]) -> bytes: ...
@overload
def url_decode(s: str | bytes, binary: bool) -> str | bytes: ...
def url_decode(s: str | bytes, binary: bool = False) -> str | bytes:
    """Decode ``%XX`` escapes (hex in either case); ``+`` and malformed ``%`` stay as is.

    Returns str, or bytes when ``binary`` is true. Raises
    :class:`~sansnet.URLDecodeError` when ``binary`` is false and the decoded bytes are
    not UTF-8, and in both modes for a str with a lone surrogate (it has no UTF-8 form).
    """
    if isinstance(s, str):
        try:
            raw = s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise URLDecodeError(
                f"url_decode() got a str with a lone surrogate at index {exc.start}; "
                "it has no UTF-8 form"
            ) from None
    elif isinstance(s, (bytes, bytearray, memoryview)):
        raw = bytes(s)
    else:
        raise InvalidArgument(f"url_decode() takes str or bytes, not {type(s).__name__}")
    data = unquote_to_bytes(raw)
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise URLDecodeError(
            f"url_decode() result is not UTF-8 (decoded byte {exc.start} is "
            f"0x{data[exc.start]:02X}); pass binary=True to get the bytes"
        ) from None
