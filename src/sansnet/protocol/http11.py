"""Sans-IO HTTP/1.1 connections on h11: :class:`ServerConnection` and :class:`ClientConnection`.

h11 parses and writes HTTP/1.1 and owns the state machine: head parsing, body framing
(Content-Length, chunked, close-delimited), keep-alive and pipelining, ``Expect:
100-continue`` and protocol switches. Each connection object here drives one
``h11.Connection`` (``h11_mypyc`` when installed, see :mod:`sansnet.protocol._h11`) and
adds what h11 leaves out, on its public API only:

* **Strictness.** Before h11 sees a head, one pass over its raw bytes (a ``translate``
  and two ``find`` calls, at C speed) refuses bare LF and bare CR line ends, obs-fold and
  control characters in values, which h11 accepts; a regular expression then only words
  the refusal. On h11's events we refuse
  Content-Length with Transfer-Encoding (a smuggling vector h11 resolves silently),
  Transfer-Encoding on HTTP/1.0, a second Host, HTTP versions other than 1.0 and 1.1
  (505, also for HTTP/2 prefaces and HTTP/0.9 lines), and request targets that are not
  origin-, absolute-, authority- (CONNECT) or asterisk-form (OPTIONS), or that carry
  userinfo (``http://user@host/``, RFC 9110 section 4.2.4).
* **Limits before buffering** (:class:`~sansnet.protocol.Limits`): a head is held by us,
  not h11, until it is complete, so its request line (414), size and field count (431)
  are checked as bytes arrive; a declared body over the limit is refused before it is
  read (413), a chunked one as it arrives. Chunk lines and trailers are bounded by h11's
  incomplete-event limit, which is ``max_header_bytes``.
* **Events in sansnet's shape** (:mod:`sansnet.protocol.events`, :class:`Headers` with
  ``str`` values), automatic start of the next keep-alive cycle, a server that queues
  its own error response, and typed errors with a status hint.

The contract, for both roles:

1. Bytes from the peer go in with :meth:`~HTTPConnection.receive_data`; the end of the
   stream with :meth:`~HTTPConnection.receive_eof`.
2. :meth:`~HTTPConnection.next_event` then returns the next event
   (:class:`~.events.RequestHead`, :class:`~.events.ResponseHead`, :class:`~.events.Data`,
   :class:`~.events.EndOfMessage`, :class:`~.events.PeerClosed`) or a sentinel:
   :data:`~.events.NEED_DATA` (read more and call ``receive_data``) or
   :data:`~.events.PAUSED` (finish sending your message first).
3. Our messages go out through the ``send_*`` / ``start_*`` methods; after calling any
   of them, write :meth:`~HTTPConnection.data_to_send` to the peer.
4. A peer's violation raises :class:`~sansnet.RemoteProtocolError`. A server connection
   has then already queued the error response: write ``data_to_send()`` and close.
   Our own misuse raises :class:`~sansnet.LocalProtocolError` and changes nothing.
5. When a cycle is complete on both sides and both want keep-alive, the connection
   starts the next cycle by itself; :attr:`~HTTPConnection.our_state` and
   :attr:`~HTTPConnection.their_state` are then ``IDLE`` again. Otherwise one of them is
   ``MUST_CLOSE`` and the driver must close the transport.

Invariant of the head hold-back: while the peer's next message head is awaited
(``_head_wait``), every received byte stays in ``_pending`` and h11 is given exactly
one complete, scanned head; whatever follows it reaches h11 only after the head passed
every check. Bytes h11 already holds when a new cycle starts (pipelining) are taken
back with ``trailing_data`` into a fresh ``h11.Connection``, so no head is ever parsed
unscanned.

Invariant of the body hand-over: once a head passed, h11 is given the bytes of its body
and, when the body's length is known and the connection stays open after it (a
keep-alive request with a Content-Length or none; ``_owed`` counts what the body still
needs), nothing past that: what follows, pipelined requests, stays in ``_pending`` for
the next cycle's head. So outside the head wait ``_pending`` holds bytes only when
``_owed`` is 0, and the end of the stream is given to h11 only when ``_pending`` is
empty (it comes after those bytes). Pipelined requests then cost one head scan each,
not a copy of the whole backlog into h11 and back, nor a fresh ``h11.Connection``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from sansnet._version import __version__
from sansnet.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError

from ._h11 import h11
from .events import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    PeerClosed,
    RequestHead,
    ResponseHead,
    Sentinel,
)
from .headers import Headers, HeadersLike, Latin1Text, host_field_parts, without_zone
from .limits import Limits

__all__ = [
    "CLIENT",
    "CLOSED",
    "DONE",
    "ERROR",
    "IDLE",
    "MIGHT_SWITCH_PROTOCOL",
    "MUST_CLOSE",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SERVER",
    "SWITCHED_PROTOCOL",
    "USER_AGENT",
    "ClientConnection",
    "HTTPConnection",
    "ServerConnection",
    "check_fields",
    "reason_phrase",
]

USER_AGENT: Final = f"sansnet/{__version__}"

# Roles and states: sansnet's names for h11's (one sentinel each, whichever h11 build).
CLIENT: Final = Sentinel("CLIENT")
SERVER: Final = Sentinel("SERVER")
IDLE: Final = Sentinel("IDLE")
SEND_RESPONSE: Final = Sentinel("SEND_RESPONSE")
SEND_BODY: Final = Sentinel("SEND_BODY")
DONE: Final = Sentinel("DONE")
MUST_CLOSE: Final = Sentinel("MUST_CLOSE")
CLOSED: Final = Sentinel("CLOSED")
MIGHT_SWITCH_PROTOCOL: Final = Sentinel("MIGHT_SWITCH_PROTOCOL")
SWITCHED_PROTOCOL: Final = Sentinel("SWITCHED_PROTOCOL")
ERROR: Final = Sentinel("ERROR")

_STATES: Final[dict[Any, Sentinel]] = {
    getattr(h11, state.name): state
    for state in (
        IDLE,
        SEND_RESPONSE,
        SEND_BODY,
        DONE,
        MUST_CLOSE,
        CLOSED,
        MIGHT_SWITCH_PROTOCOL,
        SWITCHED_PROTOCOL,
        ERROR,
    )
}

_H11_MIGHT_SWITCH: Final = next(k for k, v in _STATES.items() if v is MIGHT_SWITCH_PROTOCOL)

_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}
_REASONS[413] = "Content Too Large"  # RFC 9110 names
_REASONS[422] = "Unprocessable Content"

TOKEN: Final = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_VERSION: Final = re.compile(r"HTTP/([0-9])\.([0-9])")
_STATUS_LINE: Final = re.compile(r"HTTP/[0-9]\.[0-9] [0-9]{3}( |$)")
_TOKEN_START: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789" + bytes(range(65, 91)) + bytes(range(97, 123))
)

# One scan of a complete head, before h11 parses it: what h11 accepts and we refuse.
_HEAD_PROBLEM: Final = re.compile(
    rb"(?P<ctl>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f])"  # control characters but HTAB, CR, LF
    rb"|(?P<cr>\r(?!\n))"  # a bare CR
    rb"|(?P<lf>(?<!\r)\n)"  # a bare LF
    rb"|(?P<fold>\n[ \t])"  # obs-fold: a line starting with whitespace
    rb"|(?P<ws>\n[^:\r\n]*[ \t]:)"  # whitespace between a field name and its colon
)
# Bytes allowed in a head besides its CRLF line ends: HTAB, visible ASCII, space, and
# obs-text. Deleting them from a valid head leaves exactly its CRLFs: a C-speed check.
_ALLOWED_IN_HEAD: Final = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_NO_CONTENT: Final = frozenset([204, 205, 304])
"""Statuses whose response carries no content (RFC 9110 sections 15.3.5, 15.3.6, 15.4.5):
a server sends none. A client frames a 205 as any response, so a 205 says so:
``Content-Length: 0``, or the caller's ``Transfer-Encoding: chunked`` and one empty chunk."""
_HEAD_END_LF: Final = re.compile(rb"\n\r?\n")  # how h11 finds a head's end, bare LF too
_PROBLEMS: Final = {
    "cr": "a bare CR (lines must end in CRLF)",
    "lf": "a line ending in a bare LF (lines must end in CRLF)",
    "fold": "obsolete line folding (a header line starting with whitespace); send each "
    "field on one line",
    "ws": "whitespace between a field name and its colon (RFC 9112 section 5.1)",
}

# Received field names (bytes) -> (lowercase, as received), bounded: names repeat.
_NAMES: dict[bytes, tuple[str, str]] = {}
_NAMES_SIZE: Final = 2048
_MAX_LENGTH: Final = 2**63 - 1
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # but HTAB


def reason_phrase(status: int) -> str:
    """The canonical reason phrase of ``status`` (RFC 9110), ``""`` if it has none."""
    return _REASONS.get(status, "")


# ------------------------------------------------------------------ fields we send


def _encode(text: str, what: str, field: object = None) -> bytes:
    """A name or value we send, as bytes: ASCII ``str`` (h11's and httpx's rule), text
    that came from bytes (:class:`~.headers.Latin1Text`) as those bytes, or ``bytes``
    (:func:`check_fields` takes them) as they are."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        if isinstance(text, Latin1Text):
            data = text.encode("latin-1")
            if _CONTROL.search(data) is not None:
                _control_character(text, _what(what, field))
            return data
        raise LocalProtocolError(
            f"The {_what(what, field)} {text!r} is not ASCII: HTTP/1.1 fields are bytes. Pass "
            "bytes to send them as they are, or encode the text (percent-encoding, or "
            "RFC 8187 for parameters)."
        ) from None
    except AttributeError:
        given: object = text
        if type(given) is bytes:
            if _CONTROL.search(given) is not None:
                _control_character(given, _what(what, field))
            return given
        raise LocalProtocolError(
            f"The {_what(what, field)} must be str or bytes, not {type(text).__name__}."
        ) from None
    if not text.isprintable() and _CONTROL.search(data) is not None:
        _control_character(text, _what(what, field))
    return data


def _what(what: str, field: object) -> str:
    return what if field is None else f"{what} {field!r}"


def _control_character(text: str | bytes, what: str) -> None:
    """h11 refuses CR, LF and NUL; we also refuse the other control characters (but
    HTAB) that peers read differently."""
    raise LocalProtocolError(
        f"The {what} {text!r} contains a control character: send no CR, LF, NUL "
        "or other control character (they could inject fields or messages)."
    )


def _as_items(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """Header input of any accepted shape -> (name, value) pairs, names as given."""
    if type(headers) is list:  # first: isinstance() with Headers, an ABC, costs more
        for item in headers:
            if not (
                type(item) is tuple
                and len(item) == 2
                and type(item[0]) is str
                and type(item[1]) is str
            ):
                break
        else:
            return headers  # already (str, str) pairs: the common, fast case
    elif headers is None:
        return []
    elif isinstance(headers, Headers):
        return headers.raw_items()
    try:
        return Headers(headers).raw_items()
    except TypeError as error:
        raise LocalProtocolError(str(error)) from None


_Body = bytes | bytearray | memoryview  # what a body (or a piece of one) may be


def _check_body(data: Any) -> bytes:
    """A body (or a piece of one) we are asked to send: bytes-like. h11 would fail on
    anything else half-way through writing it, leaving the head queued and the
    connection broken. Returns it as bytes (h11's type): a memoryview of wider items
    (an ``array('I')``) is measured in bytes, not in items."""
    if type(data) is bytes:
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(
            f"A body is bytes, not {type(data).__name__}: encode text before sending it."
        )
    return bytes(data)


def _h11_error(error: Exception) -> LocalProtocolError:
    """h11 refused fields we were asked to send."""
    return LocalProtocolError(
        f"{error} (refused by h11): a field name must be a token; a value must have no CR, "
        "LF, NUL or other control character and no whitespace at either end."
    )


def check_fields(items: Sequence[tuple[str | bytes, str | bytes]]) -> None:
    """Raise :class:`~sansnet.LocalProtocolError` unless every (name, value) could be
    sent: names are tokens, values ASCII text or bytes without CR, LF, NUL or other
    control characters (what would inject a field or a message), with no whitespace
    around them. h11 decides. Changes nothing. A Host field among them is checked as
    the request's own (h11 wants one: a stand-in is added only when there is none).
    ``items`` that are not a list or tuple of (name, value) pairs of str or bytes raise
    :class:`~sansnet.InvalidArgument`."""
    problem = _not_pairs(items, (str, bytes))
    if problem is not None:
        raise InvalidArgument(
            f"check_fields() takes a list of (name, value) pairs of str or bytes, {problem}."
        )
    fields = _fields_for_h11(items)  # type: ignore[arg-type]  # bytes: see _encode
    if not any(name.lower() == b"host" for name, _ in fields):
        fields.insert(0, (b"host", b"x"))
    try:
        h11.Request(method="GET", target="/", headers=fields)
    except h11.LocalProtocolError as error:
        raise _h11_error(error) from None


def _not_pairs(fields: object, kinds: tuple[type, ...]) -> str | None:
    """Why ``fields`` is not a list or tuple of (name, value) pairs (a list of two is a
    pair too) whose name and value are ``kinds``, as "not ..."; None when it is one."""
    if not isinstance(fields, (list, tuple)):
        if isinstance(fields, Mapping):
            return f"not a {type(fields).__name__}: pass list(mapping.items())"
        return f"not {type(fields).__name__}"
    for index, field in enumerate(fields):
        if not (
            isinstance(field, (tuple, list))
            and len(field) == 2
            and isinstance(field[0], kinds)
            and isinstance(field[1], kinds)
        ):
            return f"not {field!r} (item {index})"
    return None


def _check_default_headers(fields: object, *, later: bool = False) -> None:
    """Raise unless ``fields`` is a list or tuple of (name, value) pairs of str:
    :class:`~sansnet.InvalidArgument` when a connection is made, or, ``later``,
    :class:`~sansnet.LocalProtocolError` from a send that ``default_headers`` broke
    (a driver may change the list in place; it is not checked on every send, which
    would slow them all down, but where a bad field breaks one)."""
    problem = _not_pairs(fields, (str,))
    if problem is not None:
        message = (
            "default_headers must be a list of (name, value) pairs of str (for bytes: "
            f"Headers(fields).raw_items()), {problem}."
        )
        if later:
            raise LocalProtocolError(
                f"{message} It was changed after the connection was made: fix it, then "
                "send again (nothing was sent)."
            ) from None
        raise InvalidArgument(message)


def _fields_for_h11(items: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """(name, value) pairs as bytes; h11 validates them when it builds the event.

    Fields repeat from message to message (Host, User-Agent, Content-Type, ...), so the
    encoded pair of a short plain-``str`` field is remembered in :data:`_SENT`. Only
    fields :func:`_encode` accepted as ASCII are stored, so a hit is always a pair that
    passed the same checks; the memo is emptied when full (it holds Date values too).
    """
    sent = _SENT
    fields: list[tuple[bytes, bytes]] = []
    append = fields.append
    for item in items:
        field = sent.get(item) if type(item) is tuple else None
        if field is None:
            name, value = item
            field = (_encode(name, "header name"), _encode(value, "value of header", name))
            if (
                type(item) is tuple
                and type(name) is str
                and type(value) is str
                and len(value) <= _SENT_VALUE
            ):
                if len(sent) >= _SENT_SIZE:
                    sent.clear()
                sent[item] = field
        append(field)
    return fields


# (name, value) str pairs we sent -> their bytes; see _fields_for_h11.
_SENT: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_SENT_SIZE: Final = 1024
_SENT_VALUE: Final = 256


def _request_event(method: str, target: str, items: list[tuple[str, str]]) -> Any:
    """h11's Request for ``method``, ``target`` and the (name, value) ``items``.

    A client sends the same fields request after request, and h11 checks and
    normalizes every field of each one (a third of the cost of building the event). The
    fields h11 made of a list of short plain-``str`` pairs are remembered in
    :data:`_REQUEST_FIELDS`, by those pairs: a request with the same pairs passes h11
    the same (immutable) fields again, which it takes as they are. They were built from
    equal input by the same checks, so the outcome is the same; the method and target
    are still checked by h11 on every request. The memo is emptied when full.
    """
    key = tuple(items)  # _start builds (name, value) tuples: hashable
    fields = _REQUEST_FIELDS.get(key)
    try:
        if fields is not None:
            return h11.Request(method=method, target=target, headers=fields)
        event = h11.Request(method=method, target=target, headers=_fields_for_h11(items))
    except h11.LocalProtocolError as error:
        raise _h11_error(error) from None
    # Plain str pairs only: a key of Latin1Text values, equal to one of str values, may
    # encode differently (the str one is refused).
    for name, value in items:
        if type(name) is not str or type(value) is not str or len(value) > _SENT_VALUE:
            return event
    if len(_REQUEST_FIELDS) >= _REQUEST_FIELDS_SIZE:
        _REQUEST_FIELDS.clear()
    _REQUEST_FIELDS[key] = event.headers
    return event


# The (name, value) str pairs of a request -> h11's fields for them; see _request_event.
_REQUEST_FIELDS: dict[tuple[tuple[str, str], ...], Any] = {}
_REQUEST_FIELDS_SIZE: Final = 256


def _merged(defaults: list[tuple[str, str]], given: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``defaults`` then ``given`` (a new list), without the defaults that ``given``
    sets itself: a response's own Date or Server replaces the driver's (both are
    singletons, RFC 9110 section 5.3; two would make the message invalid)."""
    if defaults and given:
        # Plain loops first: no set or list is built for the usual response, which sets
        # none of the defaults (a comprehension here cost 2% of a hello-world request).
        for name, _ in given:
            lower = name.lower()
            for field in defaults:
                if field[0].lower() == lower:
                    names = {name.lower() for name, _ in given}
                    defaults = [field for field in defaults if field[0].lower() not in names]
                    return [*defaults, *given]
    return [*defaults, *given]


def _one_length(previous: str | None, value: str) -> str:
    """A Content-Length we are asked to send: one per message (two could disagree)."""
    if previous is not None:
        raise LocalProtocolError(
            f"Two Content-Length fields ({previous!r} and {value!r}): send one."
        )
    return value


def _length_value(value: str) -> int:
    """The number in a Content-Length we are asked to send: ASCII digits with optional
    spaces or tabs around them (``int()`` would also take other whitespace)."""
    digits = value.strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise LocalProtocolError(f"Invalid Content-Length {value!r}: send ASCII digits.")
    return int(digits)


def _chunked(value: str, before: bool) -> bool:
    """A Transfer-Encoding we are asked to send: exactly one, exactly ``chunked``."""
    if before or value.lower() != "chunked":
        raise LocalProtocolError(
            f"Transfer-Encoding {value!r}: only 'chunked' can be sent; compress the body "
            "and set Content-Encoding instead."
        )
    return True


def _valid_other_target(method: str, target: str) -> bool:
    """Targets other than origin-form: absolute-form, authority-form (CONNECT) and
    asterisk-form (OPTIONS), RFC 9112 section 3.2."""
    if target == "*":
        return method == "OPTIONS"
    if method == "CONNECT":
        host, colon, port = target.rpartition(":")
        return bool(host) and colon == ":" and port.isascii() and port.isdigit()
    scheme, sep, rest = target.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest) and rest[0] not in "/?"


def _check_other_target(method: str, target: str) -> None:
    """A received target other than origin-form: one of the forms :func:`_valid_other_target`
    takes, without userinfo (RFC 9110 section 4.2.4: a recipient SHOULD treat userinfo in
    a target as an error; it would also pass for part of the host)."""
    if not _valid_other_target(method, target):
        raise RemoteProtocolError(f"Invalid request target {target[:80]!r}.")
    if method == "CONNECT":
        authority = target
    else:  # absolute-form ("*" has none)
        authority = target.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:  # (the message leaves the credentials out: it may be logged)
        raise RemoteProtocolError(
            "The request target has userinfo ('user@' before the host), which HTTP "
            "forbids (RFC 9110 section 4.2.4): send credentials in an Authorization "
            "field and the host alone in the target."
        )


# ------------------------------------------------------------------ fields we receive


def _received_fields(headers: Any) -> list[tuple[str, str, str]]:
    """h11's parsed fields -> (lowercase name, name as received, value) ``str`` triples.
    Values are Latin-1 (RFC 9110 section 5.5: obs-text is opaque octets)."""
    fields: list[tuple[str, str, str]] = []
    append = fields.append
    names = _NAMES
    for raw, value in headers.raw_items():
        name = names.get(raw)
        if name is None:
            text = raw.decode("ascii")  # h11: a token
            name = (text.lower(), text)
            if len(names) < _NAMES_SIZE:
                names[raw] = name
        if value.isascii():
            append((name[0], name[1], value.decode("ascii")))
        else:
            append((name[0], name[1], Latin1Text(value.decode("latin-1"))))
    return fields


def _check_request_line(line: bytes) -> None:
    """Refuse a bad request line with the status it deserves (505 for HTTP/0.9 and
    versions other than 1.x, 400 otherwise). Used before a head is complete (HTTP/0.9
    lines and HTTP/2 prefaces never send the blank line h11 waits for) and to explain
    what h11 refused."""
    text = line.decode("latin-1")
    parts = text.split(" ")
    if len(parts) != 3:
        if len(parts) == 2 and parts[0] and parts[1][:1] == "/":
            raise RemoteProtocolError(
                "HTTP/0.9 requests are not supported; send an HTTP/1.1 request line.",
                status_hint=505,
            )
        raise RemoteProtocolError(
            f"Invalid request line {text[:80]!r}: expected METHOD SP TARGET SP HTTP/1.1."
        )
    method, target, version = parts
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if _VERSION.fullmatch(version):
            raise RemoteProtocolError(
                f"{version} is not supported; this server speaks HTTP/1.1 and HTTP/1.0.",
                status_hint=505,
            )
        raise RemoteProtocolError(f"Invalid HTTP version {version[:20]!r} in the request line.")
    if TOKEN.fullmatch(method) is None:
        raise RemoteProtocolError(f"Invalid method {method[:20]!r}: a method is a token.")
    if not target.isascii() or "\t" in target or not target.isprintable():
        raise RemoteProtocolError("The request target must be ASCII without tabs or spaces.")
    if target[:1] != "/":
        _check_other_target(method, target)


class HTTPConnection:
    """What client and server connections share: the h11 connection, the head
    hold-back, the event pump. Not instantiated directly; use :class:`ClientConnection`
    or :class:`ServerConnection`."""

    __slots__ = (
        "_body_received",
        "_conn",
        "_eof",
        "_force_close",
        "_head_wait",
        "_line_checked",
        "_no_body",
        "_out",
        "_out_chunked",
        "_out_remaining",
        "_owed",
        "_pending",
        "_searched",
        "_their_error",
        "_their_error_held",
        "limits",
    )

    _our_role: Sentinel
    _their_role: Sentinel
    _h11_role: Any

    def __init__(self, limits: Limits) -> None:
        if not isinstance(limits, Limits):
            raise InvalidArgument(
                f"limits must be a sansnet.Limits or None, not {type(limits).__name__}: "
                "build one with sansnet.Limits(max_header_bytes=..., ...)."
            )
        self.limits = limits
        self._conn = self._new_h11()
        self._pending = bytearray()
        self._head_wait = True
        self._eof = False
        self._searched = 0
        self._line_checked = False
        self._out: list[bytes] = []
        self._body_received = 0
        self._their_error = False
        self._their_error_held: RemoteProtocolError | None = None  # see events_received
        self._force_close = False
        self._no_body = False
        self._owed: int | None = None  # body bytes h11 still needs (None: all it gets)
        self._out_remaining: int | None = None  # bytes our declared Content-Length awaits
        self._out_chunked = False  # our body is chunked (trailers allowed)

    def _new_h11(self) -> Any:
        return h11.Connection(
            self._h11_role, max_incomplete_event_size=self.limits.max_header_bytes
        )

    # ---------------------------------------------------------------- state

    @property
    def our_state(self) -> Sentinel:
        """Our side's state: IDLE, SEND_RESPONSE (server), SEND_BODY, DONE, MUST_CLOSE,
        CLOSED, MIGHT_SWITCH_PROTOCOL (client), SWITCHED_PROTOCOL or ERROR."""
        return _STATES[self._conn.our_state]

    @property
    def their_state(self) -> Sentinel:
        """The peer's state, with the same names as :attr:`our_state`."""
        if self._their_error:
            return ERROR
        return _STATES[self._conn.their_state]

    @property
    def keep_alive(self) -> bool:
        """False once either side has asked to close after the current cycle."""
        return not self._force_close and MUST_CLOSE not in (self.our_state, self.their_state)

    @property
    def must_close(self) -> bool:
        """True when the transport must be closed: the connection cannot be reused."""
        if self._force_close or self._their_error:
            return True
        conn = self._conn
        return _STATES[conn.our_state] in _FINAL or _STATES[conn.their_state] in _FINAL

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """After a protocol switch: the bytes received beyond the HTTP message, and
        whether the peer's end of stream was received. Hand them to the next protocol."""
        data, closed = self._conn.trailing_data
        return data + bytes(self._pending), closed or self._eof

    # ---------------------------------------------------------------- input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer (bytes, bytearray or memoryview; b"" is no
        data, the end of the stream is :meth:`receive_eof`). Then call
        :meth:`next_event` until it returns NEED_DATA or PAUSED."""
        if type(data) is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            # h11 and wsproto take b"" or None for the end of the stream: here it is
            # receive_eof() (b"" is no data), and None must not pass for no data.
            raise LocalProtocolError(
                f"receive_data() takes bytes, not {type(data).__name__}; call "
                "receive_eof() when the stream ends."
            )
        if self._eof:
            raise LocalProtocolError("receive_data() called after receive_eof().")
        if not data:
            return
        if self._head_wait:
            self._pending += data
            return
        owed = self._owed
        if owed is None or owed >= len(data):
            # h11_mypyc takes bytes only (a bytearray raised its bare TypeError).
            self._conn.receive_data(data if type(data) is bytes else bytes(data))
            if owed is not None:
                self._owed = owed - len(data)
            return
        if owed:  # the end of the body, then the next request's bytes: held back
            self._conn.receive_data(bytes(data[:owed]))
            self._owed = 0
        self._pending += data[owed:]

    def receive_eof(self) -> None:
        """The peer closed its sending side. Then call :meth:`next_event`."""
        self._eof = True
        if not self._head_wait and not self._pending:
            self._conn.receive_data(b"")

    def next_event(self) -> Event | Sentinel:
        """The next event from the peer, or NEED_DATA, or PAUSED.

        Raises :class:`~sansnet.RemoteProtocolError` if the peer broke the protocol;
        the connection is then unusable (a server has queued its error response).
        """
        if self._their_error:
            held = self._their_error_held
            if held is not None:  # found by events_received() after the events it returned
                self._their_error_held = None
                raise held
            raise LocalProtocolError(
                "The connection is broken by an earlier protocol error; close it."
            )
        try:
            if self._head_wait:
                return self._next_head()
            conn = self._conn
            if conn.their_state is h11.MUST_CLOSE and conn.our_state is not h11.MUST_CLOSE:
                return PAUSED  # whatever follows waits for our message to be complete
            event = conn.next_event()
            kind = type(event)
            if kind is h11.Data:
                self._body_started()
                return self._on_data(event.data)
            if kind is h11.EndOfMessage:
                return self._on_end(event)
            if kind is h11.ConnectionClosed:
                return PeerClosed()
            if event is h11.PAUSED:
                return PAUSED
            if event is h11.NEED_DATA:
                return self._held_back() if self._pending else NEED_DATA
            raise AssertionError(f"unexpected h11 event {event!r}")  # pragma: no cover
        except h11.RemoteProtocolError as error:
            failure = self._body_error(error)
            self._on_remote_error(failure)
            raise failure from None
        except RemoteProtocolError as error:
            self._on_remote_error(error)
            raise

    def _held_back(self) -> Event | Sentinel:
        """h11 has had the whole message and waits; ``_pending`` holds what followed it.
        With keep-alive (their side DONE) that is the next request, which waits for our
        answer: PAUSED. After a message that ends the connection it is h11's to refuse
        (data after the message): given to it, with the end of the stream."""
        conn = self._conn
        if conn.their_state is h11.DONE:
            return PAUSED
        self._owed = None
        conn.receive_data(bytes(self._pending))
        self._pending.clear()
        if self._eof:
            conn.receive_data(b"")
        event = conn.next_event()  # raises: data after a message that ends the connection
        raise AssertionError(f"h11 took data after the end: {event!r}")  # pragma: no cover

    def _body_error(self, error: Any) -> RemoteProtocolError:
        """What h11 refused after a head: said in our words where h11's are terse."""
        message = str(error)
        if error.error_status_hint == 431:  # h11's incomplete-event limit
            message = (
                f"A chunk line or the trailer section is longer than "
                f"{self.limits.max_header_bytes} bytes (max_header_bytes)."
            )
        elif message == "Got data when expecting EOF":
            message = f"The {self._peer} sent data after a message that ends the connection."
        return RemoteProtocolError(message, status_hint=error.error_status_hint)

    def events_received(self) -> list[Event]:
        """Every event available now, in order (stops at NEED_DATA or PAUSED).

        If the peer broke the protocol after some events, those events are returned
        and the :class:`~sansnet.RemoteProtocolError` is raised by the next call (of
        this method or :meth:`next_event`), as one event at a time would have it; a
        server's error response is queued already."""
        events: list[Event] = []
        while True:
            try:
                event = self.next_event()
            except RemoteProtocolError as error:
                if not events:
                    raise
                self._their_error_held = error
                return events
            if isinstance(event, Sentinel):
                return events
            events.append(event)
            if type(event) is PeerClosed:
                return events

    def _next_head(self) -> Event | Sentinel:
        """The peer's next head, out of ``_pending``: checked, then parsed by h11."""
        pending = self._pending
        while pending[:2] == b"\r\n" and self._skips_empty_lines():
            del pending[:2]  # RFC 9112 section 2.2: ignore empty lines before a request
        if not pending or (pending == b"\r" and self._skips_empty_lines()):
            return self._no_head()  # (a CR alone: an empty line whose LF is on its way)
        end = pending.find(b"\r\n\r\n", self._searched)
        if end >= 0:
            end += 4
        else:
            match = _HEAD_END_LF.search(pending, self._searched)
            if match is None:
                self._searched = max(0, len(pending) - 3)
                return self._partial_head()
            end = match.end()
        conn = self._conn
        if self._force_close and conn.our_state is not h11.IDLE and conn.their_state is h11.IDLE:
            # (send_error_response before a request: it also set _force_close)
            raise LocalProtocolError(
                "A response ended this connection before the request arrived "
                "(send_error_response): close the transport."
            )
        head = bytes(pending[:end])
        del pending[:end]
        self._searched = 0
        self._line_checked = False
        self._check_head(head)
        conn.receive_data(head)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            self._explain(head)
            raise RemoteProtocolError(
                f"Invalid message head: {error}.", status_hint=error.error_status_hint
            ) from None
        return self._on_head(event)

    def _skips_empty_lines(self) -> bool:
        return False

    def _no_head(self) -> Event | Sentinel:
        """Nothing of a head has arrived: wait, or report the peer's close."""
        if not self._eof:
            return NEED_DATA
        self._conn.receive_data(b"")
        event = self._conn.next_event()
        assert type(event) is h11.ConnectionClosed, event
        return PeerClosed()

    def _partial_head(self) -> Sentinel:
        """Part of a head: enforce the limits now, not when the head is complete."""
        limits = self.limits
        pending = self._pending
        if len(pending) > limits.max_header_bytes:
            self._head_too_large()
        if not self._line_checked:
            self._check_start(pending[0])
            line_end = pending.find(b"\r\n", 0, limits.max_request_line + 2)
            if line_end < 0:
                # A CR last may be the start of the line's CRLF, not part of the line.
                if len(pending) - (pending[-1] == 13) > limits.max_request_line:
                    self._line_too_long()
            else:
                self._line_checked = True
                self._check_first_line(bytes(pending[:line_end]))
        if self._eof:
            raise RemoteProtocolError(
                f"The {self._peer} disconnected in the middle of the {self._head} head."
            )
        return NEED_DATA

    def _check_head(self, head: bytes) -> None:
        """The checks of a complete head h11 does not make, in one scan."""
        limits = self.limits
        line_end = head.find(b"\r\n")
        if line_end > limits.max_request_line or (
            line_end < 0 and len(head) > limits.max_request_line
        ):
            self._line_too_long()
        if len(head) > limits.max_header_bytes:
            self._head_too_large()
        if (
            not self._line_checked
            and line_end >= 0
            and not head.endswith(self._usual_line_end, 0, line_end)
        ):
            self._check_first_line(head[:line_end])
        rest = head.translate(None, _ALLOWED_IN_HEAD)  # the line ends and bad bytes
        line_ends = rest.count(b"\r\n")
        if line_ends * 2 != len(rest) or b"\n " in head or b"\n\t" in head:
            self._scan(head)
        fields = line_ends - 2
        if fields > limits.max_header_fields:
            raise RemoteProtocolError(
                f"Too many header fields ({fields}; the limit is {limits.max_header_fields}).",
                status_hint=431,
            )

    def _scan(self, head: bytes) -> None:
        """Raise what is wrong with ``head`` in the terms of :data:`_HEAD_PROBLEM`, if
        anything (the slow path: only for heads that are refused)."""
        problem = _HEAD_PROBLEM.search(head)
        if problem is not None:
            kind = problem.lastgroup
            if kind == "ctl":
                byte = problem.group()[0]
                what = "a NUL byte" if byte == 0 else f"the control character 0x{byte:02X}"
            else:
                what = _PROBLEMS[kind]  # type: ignore[index]
            raise RemoteProtocolError(f"The {self._head} head contains {what}.")

    def _line_too_long(self) -> None:
        raise RemoteProtocolError(
            f"The {self._first_line} is longer than {self.limits.max_request_line} bytes.",
            status_hint=414,
        )

    def _head_too_large(self) -> None:
        raise RemoteProtocolError(
            f"The {self._head} header section is larger than {self.limits.max_header_bytes} bytes.",
            status_hint=431,
        )

    _peer = "peer"
    _head = "message"
    _first_line = "first line"
    # A first line ending so needs no _check_first_line (b"": no check at all).
    _usual_line_end = b""

    def _check_start(self, first: int) -> None:
        """The first byte of a head that is not complete yet."""

    def _check_first_line(self, line: bytes) -> None:
        """The complete first line of a head, before h11 parses it."""

    def _explain(self, head: bytes) -> None:
        """h11 refused ``head``: raise a more precise error if we can say one."""
        self._scan(head)  # whitespace before a colon, for one

    def _on_head(self, event: Any) -> Event | Sentinel:
        raise NotImplementedError

    def _end_head_wait(self, body: int | None = None) -> None:
        """The head passed: the rest of what arrived belongs to h11 (the body), up to
        ``body`` bytes when given (a known length with keep-alive: what follows is the
        next request, held back in ``_pending``; see the module docstring)."""
        self._head_wait = False
        pending = self._pending
        if body is not None and body < len(pending):
            if body:
                self._conn.receive_data(bytes(pending[:body]))
                del pending[:body]
            self._owed = 0
            return  # the end of the stream (if here) stays behind the held bytes
        if pending:
            self._conn.receive_data(bytes(pending))
            if body is not None:
                body -= len(pending)
            pending.clear()
        self._owed = body
        if self._eof:
            self._conn.receive_data(b"")

    def _body_started(self) -> None:
        """The peer's body is arriving (a server's client no longer waits for 100)."""

    def _on_data(self, data: bytes | bytearray) -> Data:
        self._body_received += len(data)
        limit = self.limits.max_body_bytes
        if limit is not None and self._body_received > limit:
            raise RemoteProtocolError(
                f"The body is larger than {limit} bytes.", status_hint=self._body_status
            )
        return Data(data if type(data) is bytes else bytes(data))

    _body_status = 400

    def _on_end(self, event: Any) -> EndOfMessage:
        trailers = event.headers
        if not trailers:
            result = EndOfMessage()
        else:
            if len(trailers) > self.limits.max_header_fields:
                raise RemoteProtocolError(
                    f"Too many trailer fields ({len(trailers)}; the limit is "
                    f"{self.limits.max_header_fields}).",
                    status_hint=431,
                )
            for _, value in trailers.raw_items():
                if _CONTROL.search(value) is not None:  # h11 lets all but CR, LF, NUL in
                    raise RemoteProtocolError(
                        f"A trailer field value contains a control character: {value[:80]!r}."
                    )
            # Framing and routing fields are not allowed in trailers (RFC 9110 6.5.1).
            kept = [f for f in _received_fields(trailers) if f[0] not in _NOT_IN_TRAILERS]
            result = EndOfMessage(Headers._from_fields(kept))
        self._body_received = 0
        self._maybe_next_cycle()
        return result

    def _on_remote_error(self, error: RemoteProtocolError) -> None:
        self._their_error = True

    # ---------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (b"" if none). Write all of them, in order,
        before calling it again."""
        out = self._out
        if not out:
            return b""
        if len(out) == 1:
            return out.pop()
        data = b"".join(out)
        out.clear()
        return data

    def _send(self, event: Any) -> None:
        """Every ``send`` goes through here, after our checks: h11 refusing an event
        would leave our side in ERROR, so every rule it applies is checked first."""
        try:
            data = self._conn.send(event)
        except h11.LocalProtocolError as error:  # pragma: no cover - a bug in our checks
            raise _h11_error(error) from None
        if data:
            self._out.append(data)

    def send_data(self, data: _Body) -> None:
        """Send a piece of our message's body. Then write :meth:`data_to_send`."""
        if self._conn.our_state is not h11.SEND_BODY:
            raise LocalProtocolError(
                f"Can't send body data now: our side is {self.our_state.name}."
            )
        data = _check_body(data)
        if not data or self._no_body:
            return
        remaining = self._out_remaining
        if remaining is not None:
            if len(data) > remaining:
                raise LocalProtocolError(
                    f"Too much data for the declared Content-Length: {remaining} more bytes "
                    f"may be sent, not {len(data)}."
                )
            self._out_remaining = remaining - len(data)
        self._send(h11.Data(data=data))

    def send_end(self, trailers: HeadersLike | None = None) -> None:
        """End our message's body (with trailers, if chunked). Then write
        :meth:`data_to_send`; the connection may now be ready for the next cycle."""
        if self._conn.our_state is not h11.SEND_BODY:
            raise LocalProtocolError(f"Can't end a message now: our side is {self.our_state.name}.")
        if self._out_remaining:
            raise LocalProtocolError(
                f"The body ended {self._out_remaining} bytes short of its Content-Length."
            )
        fields: list[tuple[bytes, bytes]] = []
        if trailers is not None:
            fields = _fields_for_h11(_as_items(trailers))
            if fields and not self._out_chunked:
                raise LocalProtocolError("Trailers need a chunked body; drop the Content-Length.")
        try:
            end = h11.EndOfMessage(headers=fields) if fields else _END
        except h11.LocalProtocolError as error:
            raise _h11_error(error) from None
        self._send(end)
        self._maybe_next_cycle()

    def disable_keep_alive(self) -> None:
        """Close after the current cycle: the next head we send says Connection: close,
        and :attr:`must_close` becomes true once the cycle is complete."""
        self._force_close = True

    def send_eof(self) -> None:
        """Record that we are closing our side (call before closing the transport)."""
        conn = self._conn
        if conn.our_state is h11.CLOSED or conn.our_state is h11.ERROR:
            return
        try:
            conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:
            conn.send_failed()

    def _maybe_next_cycle(self) -> None:
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._head_wait = True
            leftover, closed = conn.trailing_data
            if leftover or closed:
                # Pipelined bytes are in h11's buffer: take them back, so the next head
                # is scanned like every other, into a fresh connection (a new cycle's
                # state is the initial state).
                self._conn = self._new_h11()
                self._pending[:0] = leftover
                self._eof = self._eof or closed


_FINAL: Final = frozenset([MUST_CLOSE, CLOSED, ERROR])


# ============================================================================ server


class ServerConnection(HTTPConnection):
    """The server side of one HTTP/1.1 connection, on h11. See the module docstring.

    Refuses what h11 accepts but lets requests be smuggled or resources be held (see
    the module docstring), with the matching status, and the breaches of
    :class:`~sansnet.protocol.Limits`. h11 itself refuses an unknown transfer coding
    (501), conflicting or malformed Content-Length, a missing Host in HTTP/1.1, and
    malformed lines (400). HTTP/1.0 connections close after one response (h11 does not
    do HTTP/1.0 keep-alive). CONNECT requests are read but not tunnelled: a 2xx answer
    to one raises :class:`~sansnet.LocalProtocolError` (answer 405 or 501).

    ``default_headers`` is a list of (name, value) fields added to every response we
    send, but for a name the response sets itself (a driver keeps ``date`` and
    ``server`` there; it may change the list in place). Names and values are ``str``;
    anything else raises :class:`~sansnet.InvalidArgument` here, and a bad field put
    in the list later :class:`~sansnet.LocalProtocolError` from the send it breaks.
    """

    __slots__ = ("_expect_continue", "_request_method", "_upgrade", "default_headers")

    _our_role = SERVER
    _their_role = CLIENT
    _h11_role = h11.SERVER
    _peer = "client"
    _head = "request"
    _first_line = "request line"
    _usual_line_end = b" HTTP/1.1"
    _body_status = 413

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        default_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        if default_headers is None:
            default_headers = []
        else:
            _check_default_headers(default_headers)
        super().__init__(limits if limits is not None else Limits())
        self.default_headers = default_headers
        self._request_method = "GET"
        self._expect_continue = False
        self._upgrade = False

    @property
    def expect_continue(self) -> bool:
        """True while the client waits for ``100 Continue`` before sending its body:
        call :meth:`send_continue` when you want the body, or answer at once."""
        return self._expect_continue

    @property
    def receiving_head(self) -> bool:
        """True while part of a request head has arrived but not all of it: the time a
        driver bounds with its header-read timeout."""
        return self._head_wait and bool(self._pending)

    @property
    def idle(self) -> bool:
        """True between requests with nothing buffered: the keep-alive idle state."""
        conn = self._conn
        return (
            self._head_wait
            and not self._pending
            and conn.their_state is h11.IDLE
            and conn.our_state is h11.IDLE
        )

    @property
    def response_has_body(self) -> bool:
        """Whether the response begun with :meth:`start_response` carries a body
        (valid from then until the next request head): False when it answers HEAD or
        its status is 204, 205 or 304, where :meth:`send_data` drops every byte. A driver
        streaming a body then produces none of it and calls :meth:`send_end` at once."""
        return not self._no_body

    # ---------------------------------------------------------------- input

    def _skips_empty_lines(self) -> bool:
        return True

    def _body_started(self) -> None:
        self._expect_continue = False  # it sent the body without waiting for 100

    def _check_start(self, first: int) -> None:
        if first not in _TOKEN_START:
            raise RemoteProtocolError(
                f"Invalid request line starting with byte 0x{first:02X}: this server speaks "
                "HTTP/1.1 (is the client speaking TLS?)."
            )

    def _check_first_line(self, line: bytes) -> None:
        if line[-9:] != b" HTTP/1.1":
            _check_request_line(line)

    def _explain(self, head: bytes) -> None:
        super()._explain(head)
        _check_request_line(head[: head.find(b"\r\n")])

    def _on_head(self, event: Any) -> Event | Sentinel:
        if type(event) is not h11.Request:  # pragma: no cover - h11 gives a Request here
            raise AssertionError(f"unexpected h11 event {event!r}")
        version = event.http_version  # 1.1 or 1.0: _check_first_line saw the others
        method = event.method.decode("ascii")
        # h11 has taken this request: an error response from here on answers it (no
        # body for HEAD), so the method is recorded before any check can refuse it.
        self._request_method = method
        target = event.target.decode("ascii")
        if target[:1] != "/":
            _check_other_target(method, target)
        fields = _received_fields(event.headers)
        length: str | None = None
        chunked = upgrade = False
        connection: list[str] = []
        for lower, _, value in fields:
            if lower in _REQUEST_SPECIAL:
                if lower == "content-length":
                    length = value
                elif lower == "transfer-encoding":
                    chunked = True
                elif lower == "upgrade":
                    upgrade = True
                elif lower == "host":
                    if value not in _GOOD_HOSTS:  # (h11 refuses a second Host field)
                        _check_host(value)
                else:
                    connection.append(value)
        if chunked:
            if length is not None:
                raise RemoteProtocolError(
                    "The request has both Content-Length and Transfer-Encoding; refusing it "
                    "(RFC 9112 section 6.3: a request smuggling vector)."
                )
            if version == b"1.0":
                raise RemoteProtocolError("HTTP/1.0 requests cannot use Transfer-Encoding.")
        elif length is not None:
            declared = int(length)  # h11 checked: digits
            if declared > _MAX_LENGTH:
                raise RemoteProtocolError(f"The Content-Length {length} is too large.")
            limit = self.limits.max_body_bytes
            if limit is not None and declared > limit:
                raise RemoteProtocolError(
                    f"The body ({declared} bytes) is larger than {limit} bytes.", status_hint=413
                )
        self._no_body = False
        # h11 takes any Upgrade field for a proposal; RFC 9110 section 7.8 also wants
        # the "upgrade" connection option, or the field is not for us.
        self._upgrade = upgrade and "upgrade" in _tokens(connection)
        self._body_received = 0
        self._expect_continue = self._conn.they_are_waiting_for_100_continue and (
            chunked or (length is not None and length != "0")
        )
        # A keep-alive request with a known length: what follows its body is held back
        # for the next cycle (pipelining), not handed to h11 and taken back.
        # A known length: what follows the body is held back for the next cycle
        # (pipelining), not handed to h11 and taken back; see _held_back() for the
        # request after which the connection closes.
        self._end_head_wait(None if chunked else 0 if length is None else int(length))
        return RequestHead(method, target, Headers._from_fields(fields), version.decode())

    def _refuse_tunnel(self, status: int) -> None:
        if 200 <= status < 300:
            # h11 would take it as the switch to a tunnel and refuse the body after it.
            raise LocalProtocolError(
                f"Can't answer CONNECT with {status}: a 2xx answer opens a tunnel (RFC 9110 "
                "section 9.3.6), which this connection does not do; answer with another "
                "status (405, 501)."
            )

    def _on_remote_error(self, error: RemoteProtocolError) -> None:
        super()._on_remote_error(error)
        our_state = self._conn.our_state
        if our_state is h11.IDLE or our_state is h11.SEND_RESPONSE:
            body = (str(error) + "\n").encode("utf-8")
            self.send_error_response(
                error.status_hint, [("content-type", "text/plain; charset=utf-8")], body
            )

    # ---------------------------------------------------------------- output

    def send_error_response(
        self, status: int, headers: HeadersLike | None = None, body: _Body = b""
    ) -> None:
        """Send a final response that ends the connection, even before a request head
        has arrived (a 408 for a head that never completed, a 503 for a connection
        refused under load). Adds ``Connection: close``, and Content-Length unless the status
        is 204 or 304; a 204, 205 or 304 carries no body. Afterwards
        write :meth:`data_to_send` and close the transport."""
        conn = self._conn
        our_state = conn.our_state
        if our_state is not h11.IDLE and our_state is not h11.SEND_RESPONSE:
            raise LocalProtocolError(
                f"Can't send an error response now (our side is {self.our_state.name})."
            )
        body = _check_body(body)
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(
                f"Invalid status code {status!r} for an error response: use 200 to 999."
            )
        if status in _NO_CONTENT and body:
            raise LocalProtocolError(f"A {status} response cannot have a body; send b''.")
        if our_state is h11.SEND_RESPONSE and self._request_method == "CONNECT":
            self._refuse_tunnel(status)
        try:
            items = _merged(self.default_headers, _as_items(headers))
            if status not in (204, 304):
                items.append(("content-length", str(len(body))))
            items.append(("connection", "close"))
            response = h11.Response(
                status_code=status,
                headers=_fields_for_h11(items),
                reason=_REASON_BYTES.get(status, b""),
            )
        except h11.LocalProtocolError as error:
            raise _h11_error(error) from None
        except (AttributeError, IndexError, TypeError, ValueError):
            _check_default_headers(self.default_headers, later=True)
            raise
        self._force_close = True
        self._send(response)
        if body and not (our_state is h11.SEND_RESPONSE and self._request_method == "HEAD"):
            self._send(h11.Data(data=body))  # a response to HEAD has no content
        self._send(h11.EndOfMessage())
        self._expect_continue = False

    def send_continue(self) -> None:
        """Send ``100 Continue`` if the client is waiting for it (else do nothing).
        Then write :meth:`data_to_send`."""
        if self._expect_continue:
            self._expect_continue = False
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))

    def send_informational(self, status: int, headers: HeadersLike | None = None) -> None:
        """Send a 1xx interim response other than 101 (such as 103 Early Hints)."""
        if not isinstance(status, int) or not 100 <= status < 200 or status == 101:
            raise LocalProtocolError(
                f"send_informational() takes a 1xx status other than 101, not {status!r}."
            )
        if self._conn.our_state is not h11.SEND_RESPONSE:
            raise LocalProtocolError(
                f"Can't send a {status} response now: our side is {self.our_state.name}."
            )
        if status == 100:
            self._expect_continue = False
        try:
            items = _merged(self.default_headers, _as_items(headers))
            fields = _fields_for_h11(items)
        except (AttributeError, IndexError, TypeError, ValueError):
            _check_default_headers(self.default_headers, later=True)
            raise
        self._send(
            h11.InformationalResponse(
                status_code=status, headers=fields, reason=reason_phrase(status).encode("ascii")
            )
        )

    def send_response(
        self,
        status: int,
        headers: HeadersLike | None = None,
        body: _Body = b"",
        *,
        reason: str | None = None,
    ) -> None:
        """Send a complete response: head and whole body, framed by Content-Length.

        Adds ``Content-Length`` (unless you set it, in which case it must match),
        ``Connection: close`` when the connection will close, and ``default_headers``.
        For a HEAD request the body is not sent. Status 101 accepts the client's
        upgrade: the connection is then SWITCHED_PROTOCOL (see :attr:`trailing_data`).
        Then write :meth:`data_to_send`.
        """
        body = _check_body(body)
        self._start(status, headers, reason, body)
        if status != 101:
            if body and not self._no_body:
                self._send(h11.Data(data=body))
            self._send(_END)
            self._maybe_next_cycle()

    def start_response(
        self,
        status: int,
        headers: HeadersLike | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """Send a response head; stream the body with :meth:`send_data` and finish it
        with :meth:`send_end`. The body is framed by your Content-Length if you set one,
        else chunked (HTTP/1.1 clients) or by closing the connection (HTTP/1.0)."""
        self._start(status, headers, reason, None)

    def _start(
        self, status: int, headers: HeadersLike | None, reason: str | None, body: _Body | None
    ) -> None:
        # A bare error here (a field of default_headers the driver broke in place
        # after the connection was made) is said as ours: see _check_default_headers.
        try:
            if type(status) is not int or not 100 <= status <= 999:
                raise LocalProtocolError(f"Invalid status code {status!r}: use 100 to 999.")
            if 100 <= status < 200 and status != 101:
                raise LocalProtocolError("Use send_informational() for 1xx responses.")
            conn = self._conn
            if conn.our_state is not h11.SEND_RESPONSE:
                raise LocalProtocolError(
                    f"Can't start a response now (our side is {self.our_state.name}): one "
                    "response per request."
                )
            if status == 101 and not (self._upgrade and conn.their_state is _H11_MIGHT_SWITCH):
                raise LocalProtocolError("Can't send 101: the client did not propose an upgrade.")
            if 200 <= status < 300 and self._request_method == "CONNECT":
                self._refuse_tunnel(status)
            items = (
                _merged(self.default_headers, _as_items(headers))
                if headers
                else self.default_headers
            )
            length: str | None = None
            chunked = said_close = False
            for name, value in items:
                lower = name.lower()
                if lower in _RESPONSE_SPECIAL:
                    if lower == "content-length":
                        length = _one_length(length, value)
                    elif lower == "transfer-encoding":
                        chunked = _chunked(value, chunked)
                    elif "close" in value.lower():
                        said_close = True
            if body and status in (101, 204, 304):
                raise LocalProtocolError(f"A {status} response cannot have a body; send b''.")
            if status == 205 and (body or (length is not None and _length_value(length) != 0)):
                raise LocalProtocolError(
                    "A 205 (Reset Content) response cannot have content (RFC 9110 section "
                    "15.3.6): send b'', and no Content-Length but 0."
                )
            extra: list[tuple[str, str]] = []
            declared = 0
            if length is not None:
                # Checked for every status and method: even where no body follows (HEAD,
                # 304), the field goes out and must be one decimal number.
                if chunked:
                    raise LocalProtocolError("Set Content-Length or Transfer-Encoding, not both.")
                declared = _length_value(length)
                if status == 204 and declared:
                    raise LocalProtocolError(
                        "A 204 (No Content) response cannot declare content (RFC 9110 section "
                        "8.6): leave Content-Length out."
                    )
                if (
                    body is not None
                    and declared != len(body)
                    and status not in (101, 204, 304)
                    and self._request_method != "HEAD"
                ):
                    raise LocalProtocolError(
                        f"Content-Length {length!r} does not match the body ({len(body)} bytes)."
                    )
            elif body is not None and not chunked and status not in (101, 204, 304):
                extra.append(("content-length", str(len(body))))
            elif status == 205 and not chunked:
                # Streamed (start_response): a client frames a 205 as any response, so its
                # emptiness is said (or, with the caller's chunked framing, one empty chunk).
                extra.append(("content-length", "0"))
            # Answering without reading the body the client holds back (expect_continue),
            # or with the request body unread (its bytes would be taken for the next
            # request): reuse is unsafe. Recorded once the response is sent: a refused one
            # changes nothing.
            force_close = (
                self._force_close
                or self._expect_continue
                or (conn.their_state is h11.SEND_BODY and status != 101)
            )
            if force_close and not said_close and status != 101:
                extra.append(("connection", "close"))
            fields = _fields_for_h11([*items, *extra] if extra else items)
            if reason is None:
                reason_bytes = _REASON_BYTES.get(status, b"")
            else:
                reason_bytes = reason.encode("latin-1", "replace") if type(reason) is str else b"\0"
                if _CONTROL.search(reason_bytes) is not None:
                    raise LocalProtocolError(
                        f"Invalid reason phrase {reason!r}: control characters would break the "
                        "start line."
                    )
            try:
                if status == 101:
                    event: Any = h11.InformationalResponse(
                        status_code=101, headers=fields, reason=reason_bytes
                    )
                else:
                    event = h11.Response(status_code=status, headers=fields, reason=reason_bytes)
            except h11.LocalProtocolError as error:
                raise _h11_error(error) from None
            self._send(event)
            self._force_close = force_close
            self._expect_continue = False
            self._no_body = no_body = self._request_method == "HEAD" or status in _NO_CONTENT
            self._out_remaining = declared if length is not None and not no_body else None
            # h11 frames a body without Content-Length as chunked for HTTP/1.1 clients and
            # by the close for HTTP/1.0 ones (dropping a Transfer-Encoding we were given).
            self._out_chunked = (
                not no_body and length is None and self._conn.their_http_version == b"1.1"
            )
        except (AttributeError, IndexError, TypeError, ValueError):
            _check_default_headers(self.default_headers, later=True)
            raise


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
_REQUEST_SPECIAL: Final = frozenset(
    ["connection", "content-length", "host", "transfer-encoding", "upgrade"]
)


def _check_host(value: str) -> None:
    """400 unless ``value`` is a Host field value (RFC 9112 section 3.2 says a server
    MUST refuse an invalid one; see :func:`~.headers.host_field_parts`): a "/", "@",
    space or "?" in it would make a request URL whose host is something else. A value
    found good is remembered (a server sees the same few): the caller looks in
    :data:`_GOOD_HOSTS` first."""
    if host_field_parts(value) is None:
        raise RemoteProtocolError(
            f"Invalid Host field {value[:80]!r}: a host is a name or an address, with an "
            "optional port (RFC 9112 section 3.2)."
        )
    if len(_GOOD_HOSTS) < _GOOD_HOSTS_SIZE:
        _GOOD_HOSTS.add(value)


_GOOD_HOSTS: Final[set[str]] = set()
_GOOD_HOSTS_SIZE: Final = 256


def _tokens(values: list[str]) -> set[str]:
    """The comma-separated options of list-valued fields (Connection), lowercase."""
    return {token.strip(" \t") for value in values for token in value.lower().split(",")}


_RESPONSE_SPECIAL: Final = frozenset(["content-length", "transfer-encoding", "connection"])
_REASON_BYTES: Final = {status: phrase.encode("ascii") for status, phrase in _REASONS.items()}
_END: Final = h11.EndOfMessage()


# ============================================================================ client


class ClientConnection(HTTPConnection):
    """The client side of one HTTP/1.1 connection to ``host``:``port``, on h11. See the
    module docstring.

    Requests get ``Host`` (with the port when it is not the scheme's default),
    ``User-Agent: sansnet/<version>`` and ``Accept: */*`` unless you set them.
    Interim 1xx responses come as :class:`~.events.InformationalResponse` events before
    the final :class:`~.events.ResponseHead` (101, when our request proposed an upgrade,
    is the final head: the connection then switches protocols).
    After the response's :class:`~.events.EndOfMessage`, :attr:`reusable` tells whether
    the connection may carry another request. h11 refuses a response framed by a
    transfer coding other than chunked; one with both Content-Length and chunked is
    read as chunked and the connection is not reused.

    ``host`` must be a str, ``port`` None or an int from 0 to 65535, ``limits`` a
    :class:`~sansnet.protocol.Limits` or None, and ``default_headers`` (the fields sent
    in place of User-Agent and Accept, kept as the list :attr:`default_headers`) None
    or a list of (name, value) pairs of str: anything else raises
    :class:`~sansnet.InvalidArgument` naming the argument. A bad field put in
    :attr:`default_headers` later raises :class:`~sansnet.LocalProtocolError` from the
    send it breaks.
    """

    __slots__ = ("_host_header", "_method", "default_headers")

    _our_role = CLIENT
    _their_role = SERVER
    _h11_role = h11.CLIENT
    _peer = "server"
    _head = "response"
    _first_line = "status line"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        scheme: str = "http",
        limits: Limits | None = None,
        default_headers: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        if not isinstance(host, str):
            raise InvalidArgument(f"host must be a str, not {type(host).__name__}.")
        if port is not None and (type(port) is not int or not 0 <= port <= 65535):
            raise InvalidArgument(f"port must be None or an int from 0 to 65535, not {port!r}.")
        super().__init__(limits if limits is not None else Limits.client())
        default_port = 443 if scheme in ("https", "wss") else 80
        if ":" in host and not host.startswith("["):
            # An IPv6 literal, without its zone (as curl does: see without_zone).
            host = f"[{without_zone(host)}]"
        self._host_header = host if port is None or port == default_port else f"{host}:{port}"
        if default_headers is not None:
            _check_default_headers(default_headers)
        self.default_headers: list[tuple[str, str]] = (
            list(default_headers)
            if default_headers is not None
            else [("User-Agent", USER_AGENT), ("Accept", "*/*")]
        )
        self._method = "GET"

    @property
    def reusable(self) -> bool:
        """True when both sides are IDLE and the connection may carry another request."""
        conn = self._conn
        return (
            conn.our_state is h11.IDLE
            and conn.their_state is h11.IDLE
            and self._head_wait
            and not self._pending
            and not self._eof
            and not self._force_close
        )

    # ---------------------------------------------------------------- output

    def send_request(
        self,
        method: str,
        target: str,
        headers: HeadersLike | None = None,
        body: _Body = b"",
    ) -> None:
        """Send a complete request: head and whole body, framed by Content-Length.

        ``Content-Length`` is added for a non-empty body, and for an empty one when
        the method usually carries a body (POST, PUT, PATCH). Then write
        :meth:`data_to_send` and read the response with :meth:`next_event`.
        """
        body = _check_body(body)
        self._start(method, target, headers, body)
        if body:
            self._send(h11.Data(data=body))
        self._send(_END)
        self._maybe_next_cycle()

    def start_request(
        self,
        method: str,
        target: str,
        headers: HeadersLike | None = None,
    ) -> None:
        """Send a request head; stream the body with :meth:`send_data` and finish with
        :meth:`send_end`. The body is chunked unless you set Content-Length."""
        self._start(method, target, headers, None)

    def _start(
        self, method: str, target: str, headers: HeadersLike | None, body: _Body | None
    ) -> None:
        # A bare error here (a field of default_headers the driver broke in place
        # after the connection was made) is said as ours: see _check_default_headers.
        try:
            conn = self._conn
            if conn.our_state is not h11.IDLE or not self._head_wait or self._pending:
                raise LocalProtocolError(
                    f"Can't send a request now (our side is {self.our_state.name}, the "
                    f"server's {self.their_state.name}): finish the previous cycle or open a "
                    "new connection."
                )
            if type(method) is not str or TOKEN.fullmatch(method) is None:
                raise LocalProtocolError(f"Invalid method {method!r}: a method is a token.")
            if not (
                type(target) is str
                and target.isascii()
                and target.isprintable()
                and " " not in target
                and (target[:1] == "/" or _valid_other_target(method, target))
            ):
                # RFC 9112 section 3.2: the forms a server accepts (ours refuses the rest).
                raise LocalProtocolError(
                    f"Invalid request target {target!r}: use an ASCII origin-form ('/path?q'), "
                    "absolute-form, authority-form (CONNECT) or '*' (OPTIONS), percent-encoded."
                )
            given = _as_items(headers)
            declared = 0
            items: list[tuple[str, str]] = []
            seen: set[str] = set()
            length: str | None = None
            chunked = False
            hosts = 0
            for name, value in given:
                lower = name.lower()
                seen.add(lower)
                if lower == "content-length":
                    length = _one_length(length, value)
                elif lower == "transfer-encoding":
                    chunked = _chunked(value, chunked)
                elif lower == "host" and hosts:
                    # RFC 9112 section 3.2: a server must refuse such a request with 400.
                    raise LocalProtocolError("A request has one Host field, not several.")
                elif lower == "host":
                    hosts = 1
            if not hosts:
                items.append(("Host", self._host_header))
            for name, value in self.default_headers:
                if name.lower() not in seen:
                    items.append((name, value))
            items.extend(given)
            if chunked:
                if length is not None:
                    raise LocalProtocolError("Set Content-Length or Transfer-Encoding, not both.")
            elif body is not None:
                if length is None:
                    if body or method in ("POST", "PUT", "PATCH"):
                        items.append(("Content-Length", str(len(body))))
                elif _length_value(length) != len(body):
                    raise LocalProtocolError(
                        f"Content-Length {length!r} does not match the body ({len(body)} bytes)."
                    )
            elif length is not None:
                declared = _length_value(length)
            else:
                items.append(("Transfer-Encoding", "chunked"))
                chunked = True
            if self._force_close and "connection" not in seen:
                items.append(("Connection", "close"))
            self._send(_request_event(method, target, items))
            self._method = method
            self._out_chunked = chunked
            self._out_remaining = declared if length is not None and body is None else None
        except (AttributeError, IndexError, TypeError, ValueError):
            _check_default_headers(self.default_headers, later=True)
            raise

    # ---------------------------------------------------------------- input

    def _next_head(self) -> Event | Sentinel:
        state = self._conn.their_state
        if state is h11.SEND_RESPONSE:
            if not self._pending and self._eof:
                raise RemoteProtocolError("Server disconnected without sending a response.")
            return super()._next_head()
        if state is h11.IDLE:  # no request in flight: an idle pooled connection
            if self._pending:
                raise RemoteProtocolError("The server sent data before any request was made.")
            return self._no_head()
        return PAUSED  # switched protocols: the bytes belong to the next protocol

    def _no_head(self) -> Event | Sentinel:
        if not self._eof:
            return NEED_DATA
        conn = self._conn
        conn.receive_data(b"")
        event = conn.next_event()
        if type(event) is h11.ConnectionClosed:
            return PeerClosed()
        return NEED_DATA  # pragma: no cover - h11 reports the close

    def _on_head(self, event: Any) -> Event | Sentinel:
        kind = type(event)
        version = event.http_version
        if version != b"1.1" and version != b"1.0":
            raise RemoteProtocolError(
                f"Invalid status line: HTTP/{version.decode()}; the server does not speak HTTP/1.1."
            )
        fields = _received_fields(event.headers)
        if kind is h11.InformationalResponse and event.status_code != 101:
            # Interim (100 Continue, 103 Early Hints): surfaced; the final one follows.
            return InformationalResponse(
                event.status_code,
                Headers._from_fields(fields),
                event.reason.decode("latin-1"),
                version.decode(),
            )
        response = ResponseHead(
            event.status_code,
            Headers._from_fields(fields),
            event.reason.decode("latin-1"),
            version.decode(),
        )
        if kind is h11.InformationalResponse:
            return response  # 101: h11 checked that we proposed the upgrade
        length: str | None = None
        chunked = False
        for lower, _, value in fields:
            if lower == "content-length":
                length = value
            elif lower == "transfer-encoding":
                chunked = True
        if chunked and length is not None:
            # Both framings: h11 reads chunked; the connection is suspect.
            self._force_close = True
        elif (
            not chunked
            and length is None
            and self._method != "HEAD"
            and event.status_code not in (204, 304)
            and not (self._method == "CONNECT" and 200 <= event.status_code < 300)
        ):
            # Close-delimited: the end of the body is the end of the connection, so
            # keep_alive is false from the head on (h11 only says so at the end).
            self._force_close = True
        if length is not None and not chunked:
            declared = int(length)
            limit = self.limits.max_body_bytes
            no_body = self._method == "HEAD" or event.status_code in (204, 304)
            if limit is not None and declared > limit and not no_body:
                raise RemoteProtocolError(
                    f"The response body ({declared} bytes) is larger than {limit} bytes."
                )
        if self._conn.our_state is h11.SEND_BODY:
            # The server answered before our body was complete: we cannot know whether
            # it reads the rest, so the connection is not reused.
            self._force_close = True
        self._body_received = 0
        self._end_head_wait()
        return response

    def _explain(self, head: bytes) -> None:
        super()._explain(head)
        line = head[: head.find(b"\r\n")].decode("latin-1")
        if line.startswith(("HTTP/1.1 101", "HTTP/1.0 101")):
            raise RemoteProtocolError("The server switched protocols (101) unasked.")
        if _STATUS_LINE.match(line) is None:
            raise RemoteProtocolError(
                f"Invalid status line {line[:80]!r}: the server does not speak HTTP/1.1."
            )
