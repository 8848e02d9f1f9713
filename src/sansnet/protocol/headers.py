"""``Headers``: the case-insensitive, ordered, multi-valued header collection.

RFC 9110 section 5: field names are case-insensitive, the order of fields with the same
name matters, and a recipient may combine repeated fields into one value separated by
", " (except Set-Cookie, which is why :meth:`Headers.get_all` exists).

The same type serves requests and responses, client and server, the protocol layer and
the public API. Keys are reported in lowercase; the spelling a field was given or
received with is kept for sending (:meth:`Headers.raw_items`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Final, TypeAlias, overload

from sansnet.errors import InvalidArgument

__all__ = ["HeaderValue", "Headers", "HeadersLike", "Latin1Text"]

# Several values of one field: a list or a tuple (not any iterable: a str is one too).
HeaderValue: TypeAlias = (
    "str | bytes | int | list[str | bytes | int] | tuple[str | bytes | int, ...]"
)
HeadersLike: TypeAlias = (
    "Headers | Mapping[str, HeaderValue] | Iterable[tuple[str | bytes, str | bytes | int]]"
)

_MISSING: Any = object()


class Latin1Text(str):
    """Text that stands for bytes: a field value given (or received) as bytes that are
    not ASCII, decoded as Latin-1. It is sent as those same bytes, whereas a plain
    ``str`` that is not ASCII is refused (HTTP/1.1 fields are bytes; h11 and httpx
    refuse such text too)."""

    __slots__ = ()


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("latin-1")
        return text if text.isascii() else Latin1Text(text)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidArgument(
        f"Header names and values must be str, bytes or int, not {type(value).__name__}"
        " (several values of one field: a list or a tuple of them)."
    )


def _key(name: object) -> str | None:
    """The lowercase form of a name looked up: given as str or, like the names stored,
    as bytes or an int (stored as its digits, see :func:`_text`); None for anything
    else, which names no field."""
    if isinstance(name, str):
        return name.lower()
    if isinstance(name, (bytes, bytearray)):
        return bytes(name).decode("latin-1").lower()
    if isinstance(name, int) and not isinstance(name, bool):
        return str(name)
    return None


class Headers(MutableMapping[str, str]):
    """Case-insensitive ordered multi-dict of HTTP fields.

    ``Headers({"Set-Cookie": ["a=1", "b=2"], "X-Id": "7"})``, ``Headers([("a", "1")])``
    or ``Headers(other_headers)``. A list or tuple value gives repeated fields.

    * ``h["set-cookie"]`` joins repeated fields with ``", "``; :meth:`get_all` returns
      them one by one. A missing name raises ``KeyError``; :meth:`get` returns a default.
      Names are looked up as they may be given, ``str`` or ``bytes``.
    * Iteration, ``keys()``, ``items()`` give each distinct name once, lowercase, in
      order of first appearance; :meth:`multi_items` gives every field.
    * ``h[name] = value`` replaces every field of that name (a list value gives
      repeated fields), :meth:`add` appends one, ``del h[name]`` removes them all.

    Values are not validated here: the protocol connection that sends them refuses
    CR, LF, NUL and other control characters with a
    :class:`~sansnet.LocalProtocolError`.
    """

    __slots__ = ("_fields",)

    _fields: list[tuple[str, str, str]]  # (lowercase name, name as given, value)

    def __init__(self, headers: HeadersLike | None = None) -> None:
        self._fields = []
        if headers is not None:
            self.update_multi(headers)

    @classmethod
    def _from_fields(cls, fields: list[tuple[str, str, str]]) -> Headers:
        """Wrap already-validated (lowercase, raw, value) triples without copying."""
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    def update_multi(self, headers: HeadersLike) -> None:
        """Append every field of ``headers`` (list values give repeated fields)."""
        fields = self._fields
        if isinstance(headers, Headers):
            fields.extend(headers._fields)
            return
        pairs: Iterable[tuple[Any, Any]]
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for pair in pairs:
            if isinstance(pair, (str, bytes, bytearray)):
                # A string unpacks into its characters: "ab" would be the field a: b.
                raise InvalidArgument(f"Header fields are (name, value) pairs, not {pair!r}.")
            try:
                name, value = pair
            except (TypeError, ValueError):
                raise InvalidArgument(
                    f"Header fields are (name, value) pairs, not {pair!r}."
                ) from None
            raw = _text(name)
            lower = raw.lower()
            if isinstance(value, (list, tuple)):
                fields.extend((lower, raw, _text(item)) for item in value)
            else:
                fields.append((lower, raw, _text(value)))

    # ------------------------------------------------------------------ reading

    def __getitem__(self, name: str) -> str:
        key = name.lower() if type(name) is str else _key(name)
        values = [value for lower, _, value in self._fields if lower == key]
        if not values:
            raise KeyError(name)
        return values[0] if len(values) == 1 else ", ".join(values)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: Any) -> Any: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name`` (repeats joined with ", "), or ``default``."""
        key = name.lower() if type(name) is str else _key(name)
        found: str | None = None
        for lower, _, value in self._fields:
            if lower == key:
                found = value if found is None else f"{found}, {value}"
        return default if found is None else found

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, one per field, in order (empty list if absent)."""
        key = name.lower() if type(name) is str else _key(name)
        return [value for lower, _, value in self._fields if lower == key]

    def __contains__(self, name: object) -> bool:
        key = _key(name)
        return any(lower == key for lower, _, _ in self._fields)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(lower for lower, _, _ in self._fields))

    def __len__(self) -> int:
        return len({lower for lower, _, _ in self._fields})

    def multi_items(self) -> list[tuple[str, str]]:
        """Every field as (lowercase name, value), repeats included, in order."""
        return [(lower, value) for lower, _, value in self._fields]

    def raw_items(self) -> list[tuple[str, str]]:
        """Every field as (name as given or received, value), in order."""
        return [(raw, value) for _, raw, value in self._fields]

    # ------------------------------------------------------------------ writing

    def __setitem__(self, name: str, value: HeaderValue) -> None:
        raw = _text(name)
        key = raw.lower()
        fields = self._fields
        # The new fields take the place of the first old one (or go last).
        position = next((i for i, field in enumerate(fields) if field[0] == key), len(fields))
        kept = [field for field in fields if field[0] != key]
        values = value if isinstance(value, (list, tuple)) else [value]
        kept[position:position] = [(key, raw, _text(item)) for item in values]
        self._fields = kept

    def __delitem__(self, name: str) -> None:
        key = name.lower() if type(name) is str else _key(name)
        kept = [field for field in self._fields if field[0] != key]
        if len(kept) == len(self._fields):
            raise KeyError(name)
        self._fields = kept

    def add(self, name: str, value: str | bytes | int) -> None:
        """Append one field, keeping any existing fields of the same name."""
        raw = _text(name)
        self._fields.append((raw.lower(), raw, _text(value)))

    def setdefault(self, name: str, default: str = "") -> str:
        """Return the value of ``name``, adding it with ``default`` first if absent."""
        found = self.get(name)
        if found is None:
            self.add(name, default)
            return default
        return found

    def copy(self) -> Headers:
        """A shallow copy that can be changed without touching this one."""
        return Headers._from_fields(list(self._fields))

    def clear(self) -> None:
        self._fields = []

    # ------------------------------------------------------------------ misc

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.multi_items() == other.multi_items()
        if isinstance(other, Mapping):
            try:
                return self.multi_items() == Headers(other).multi_items()
            except TypeError:
                return False
        if isinstance(other, list):
            try:
                return self.multi_items() == Headers(other).multi_items()
            except (TypeError, ValueError):
                return False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.raw_items()!r})"


# RFC 9112 section 3.2: Host = uri-host [ ":" port ]; RFC 3986 section 3.2.2: a reg-name
# (maybe empty) or an IPv4 address, or an IP literal in brackets (IPv6, maybe with an
# RFC 6874 zone, or IPvFuture); port = *DIGIT.
_HOST_FIELD: Final = re.compile(
    r"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*|\[([^\]]*)\])(?::([0-9]*))?"
)
_IP_FUTURE: Final = re.compile(r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")
_ZONE: Final = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})+")


def host_field_parts(value: str) -> tuple[str, str | None] | None:
    """``value`` as a Host field reads it, ``(host, port)`` (port None without a colon,
    "" after a bare one), or None when it is no ``uri-host [":" port]`` (RFC 9112
    section 3.2): a "/", "@", "?" or space in it, a port past 65535 (which no URL
    parser takes), a bracketed literal that is no IPv6 address (with or without a
    ``%25`` zone) or IPvFuture. The Host field's check and X-Forwarded-Host's and
    Forwarded's ``host=`` share it."""
    match = _HOST_FIELD.fullmatch(value)
    if match is None:
        return None
    literal, port = match.groups()
    if port:
        significant = port.lstrip("0")
        if len(significant) > 5 or (significant and int(significant) > 65535):
            return None
    if literal is not None and _IP_FUTURE.fullmatch(literal) is None:
        address, zoned, zone = literal.partition("%25")
        if "%" in address or (zoned and _ZONE.fullmatch(zone) is None):
            return None  # (ipaddress takes a zone after a bare "%", a URI does not)
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return None
    colon = value.rfind(":") if port is not None else -1
    return (value, None) if colon < 0 else (value[:colon], port)


def without_zone(host: str) -> str:
    """``host`` without an IPv6 address's zone (``fe80::1%eth0`` gives ``fe80::1``): the
    zone names one of our interfaces, which is for connecting only; the Host field, a
    certificate's name, a proxy and NO_PROXY never see it. A name (no colon) is
    returned as it is."""
    return host.partition("%")[0] if ":" in host else host
