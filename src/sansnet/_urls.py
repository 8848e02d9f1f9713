"""Request URLs: parsing and checking one (:class:`ParsedURL`, cached by
:func:`parse_url`), and merging a ``query`` mapping into one (:func:`with_query`).

What a connection and a request line need from a URL, and the errors a bad one raises
(:class:`~sansnet.InvalidURL`, :class:`~sansnet.UnsupportedProtocol`) before any I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, quote, unquote_to_bytes, urlencode, urlsplit

from ._idna import ascii_host
from .errors import InvalidArgument, InvalidURL, UnsupportedProtocol
from .proxies import _masked, _masked_in
from .transport.pool import Origin

__all__ = [
    "DEFAULT_PORTS",
    "URL_CACHE",
    "ParsedURL",
    "basic_authorization",
    "checked_host",
    "checked_port",
    "parse_url",
    "split_url",
    "target_parts",
    "with_query",
]

DEFAULT_PORTS = {"http": 80, "https": 443}


_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9._~-]+)?")


class ParsedURL:
    """A parsed request URL: what a connection and a request line need.

    ``url`` and ``target`` never hold the URL's credentials (``user:password@``), and
    error messages show no password; ``authorization`` is their ``Authorization`` value
    (``"Basic "`` and the base64 of the percent-decoded ``user:password``), or None when
    the URL has none.
    """

    __slots__ = ("authorization", "host", "origin", "port", "scheme", "target", "url")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise InvalidArgument(f"The URL must be a str, not {type(url).__name__}.")
        split = split_url(url)
        port = checked_port(split, url)
        scheme = split.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            if not scheme:
                raise UnsupportedProtocol(
                    f"Invalid URL {_masked(url)!r}: no scheme; use http:// or https://."
                )
            raise UnsupportedProtocol(
                f"Unsupported URL scheme {scheme!r} in {_masked(url)!r}: use http or https."
            )
        host = checked_host(split, url)
        self.scheme = scheme
        self.host = host
        self.port = port or DEFAULT_PORTS[scheme]
        self.origin: Origin = (scheme, host, self.port)
        path, query = target_parts(split, url)
        self.target = f"{path}?{query}" if query else path
        self.url = _unsplit(split, scheme, host, path, query)
        self.authorization = basic_authorization(split.username, split.password)

    @property
    def absolute_form(self) -> str:
        """The URL as the target of a request to a proxy: no credentials and, for an
        IPv6 host, no zone (it names one of our interfaces, meaningless to the proxy)."""
        if "%" not in self.host:
            return self.url
        head, bracket, rest = self.url.partition("]")  # the first "]" ends the address
        return head.partition("%")[0] + bracket + rest


def split_url(url: str) -> SplitResult:
    """``urlsplit(url)``, raising :class:`~sansnet.InvalidURL` where it raises ValueError
    (an unclosed ``[`` of an IPv6 host, ...)."""
    try:
        return urlsplit(url.strip())
    except ValueError as exc:  # its reason may quote the netloc, password and all
        raise InvalidURL(f"Invalid URL {_masked(url)!r}: {_masked_in(str(exc), url)}.") from None


def checked_port(split: SplitResult, url: str) -> int | None:
    """The port of a split URL, None when it has none; :class:`~sansnet.InvalidURL` for
    one out of range, not a number, or 0 (which cannot be connected to)."""
    try:
        port = split.port
    except ValueError as exc:
        raise InvalidURL(f"Invalid URL {_masked(url)!r}: {_masked_in(str(exc), url)}.") from None
    if port == 0:
        raise InvalidURL(f"Invalid URL {_masked(url)!r}: port 0 cannot be connected to.")
    return port


def checked_host(split: SplitResult, url: str) -> str:
    """The host of a split URL, in its ASCII (IDNA) form; :class:`~sansnet.InvalidURL`
    when there is none or it is no name or address (``url`` is for the message, shown
    without its password)."""
    host = split.hostname
    if not host:
        raise InvalidURL(f"Invalid URL {_masked(url)!r}: no host.")
    hostport = split.netloc.rpartition("@")[2]
    end = hostport.find("]") if hostport.startswith("[") else -1
    if end != -1:  # urlsplit ignores what follows "]" up to a ":"
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise InvalidURL(
                f"Invalid URL {_masked(url)!r}: {after!r} follows the IPv6 address; "
                "write [address]:port."
            )
    if not host.isascii():
        try:
            host = ascii_host(host)
        except UnicodeError as exc:
            raise InvalidURL(f"Invalid host name in {_masked(url)!r}: {exc}.") from None
    if _HOST.fullmatch(host) is None:
        raise InvalidURL(
            f"Invalid host {host!r} in {_masked(url)!r}: a host is a name (letters, digits, "
            "'-', '_', '.'), an IPv4 address or a bracketed IPv6 address."
        )
    if "%" in host:
        host = _with_zone(split, host, url)
    return host


def _with_zone(split: SplitResult, host: str, url: str) -> str:
    """An IPv6 address with a zone (``[fe80::1%25eth0]``, RFC 6874: the "%" itself is
    written "%25") as it is connected to: ``fe80::1%eth0``, the zone as the URL has it
    (``hostname`` lowercases it; interface names are case-sensitive). A bare "%" (no
    "25" after it) is taken as the separator too, as curl does. The zone is only for
    connecting: Host, TLS names and proxies leave it out."""
    hostport = split.netloc.rpartition("@")[2]
    end = hostport.find("]")
    zone = hostport[1:end].partition("%")[2] if hostport.startswith("[") and end > 0 else ""
    if zone.startswith("25"):
        zone = zone[2:]
    if not zone:
        raise InvalidURL(
            f"Invalid host in {_masked(url)!r}: an IPv6 zone is written "
            "[address%25zone] (RFC 6874), as in [fe80::1%25eth0]."
        )
    return f"{host.partition('%')[0]}%{zone}"


def target_parts(split: SplitResult, url: str) -> tuple[str, str]:
    """The path (``/`` when empty) and query of a split URL, percent-encoded as UTF-8
    where they are not ASCII (a request target is ASCII); :class:`~sansnet.InvalidURL`
    for a str with no UTF-8 form."""
    try:
        path = quote(split.path, safe="/%:@!$&'()*+,;=-._~") or "/"
        query = quote(split.query, safe="/?%:@!$&'()*+,;=-._~")
    except UnicodeEncodeError as exc:  # "\udcff", as sys.argv gives a byte not UTF-8
        raise InvalidURL(
            f"Invalid URL {_masked(url)!r}: a lone surrogate at index {exc.start} of "
            "its path or query has no UTF-8 form; percent-encode the bytes meant."
        ) from None
    return path, query


def basic_authorization(username: str | None, password: str | None) -> str | None:
    """The Basic ``Authorization`` value of a URL's percent-encoded credentials (those
    of ``urlsplit()``), or None when it has none; request() and socket() both send it."""
    if not username and not password:
        return None
    credentials = unquote_to_bytes(username or "") + b":" + unquote_to_bytes(password or "")
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def _unsplit(split: SplitResult, scheme: str, host: str, path: str, query: str) -> str:
    netloc = split.netloc.rpartition("@")[2]  # credentials never go in the request URL
    if not netloc.isascii():  # an internationalized name: its IDNA (ASCII) form
        netloc = host if split.port is None else f"{host}:{split.port}"
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


URL_CACHE: dict[str, ParsedURL] = {}


def parse_url(url: str) -> ParsedURL:
    parsed = URL_CACHE.get(url)
    if parsed is None:
        parsed = ParsedURL(url)
        if len(URL_CACHE) < 512:
            URL_CACHE[url] = parsed
    return parsed


def with_query(url: str, query: Mapping[str, Any] | None) -> str:
    if not query:
        return url
    if not isinstance(url, str):
        raise InvalidArgument(f"The URL must be a str, not {type(url).__name__}.")
    if not isinstance(query, Mapping):
        raise InvalidArgument(f"query must be a mapping, not {type(query).__name__}.")
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((str(key), "" if item is None else str(item)) for item in values)
    try:
        encoded = urlencode(pairs)  # form encoding: space -> "+"
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"query has a str with a lone surrogate ({exc.object!r}), which has no UTF-8 "
            "form; pass bytes decoded properly, or percent-encode them."
        ) from None
    base = url.strip().partition("#")[0]  # as split_url strips it
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return f"{base}{separator}{encoded}"
