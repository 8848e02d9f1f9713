"""Proxy settings: a proxy URL (:class:`Proxy`), the ``*_proxy`` environment variables
(:class:`ProxyEnvironment`) and the hosts that bypass them (:class:`NoProxy`).

The environment is read the way curl, ``urllib.request.getproxies`` and httpx read it,
plus ``WS_PROXY`` / ``WSS_PROXY`` as websockets reads them; the rules are in each
class's docstring. :data:`FROM_ENVIRONMENT` is the default of ``proxy=`` options:
"read the environment".

Pure: no sockets, no DNS, no clock; the environment is a mapping the caller passes.
A bad proxy URL raises :class:`~sansnet.InvalidURL` (or
:class:`~sansnet.UnsupportedProtocol` for its scheme) before any I/O; a bad
``NO_PROXY`` entry is ignored, as curl ignores it.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, unquote

from ._idna import ascii_host
from .errors import InvalidArgument, InvalidURL, UnsupportedProtocol
from .protocol.headers import without_zone

__all__ = [
    "FROM_ENVIRONMENT",
    "FromEnvironment",
    "NoProxy",
    "Proxy",
    "ProxyEnvironment",
    "ProxyScheme",
    "environment_proxies",
    "given_proxy",
]

ProxyScheme = Literal["http", "https", "socks5", "socks5h", "socks4a"]

# scheme -> (the scheme as a ProxyScheme, its default port)
_SCHEMES: Final[Mapping[str, tuple[ProxyScheme, int]]] = {
    "http": ("http", 80),
    "https": ("https", 443),
    "socks5": ("socks5", 1080),
    "socks5h": ("socks5h", 1080),
    "socks4a": ("socks4a", 1080),
}
_SUPPORTED = ", ".join(_SCHEMES)
_FORM = "write scheme://[user:password@]host[:port]"
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _masked(url: str, *, proxy: bool = False) -> str:
    """``url`` with the password of its userinfo replaced by ``***``, for messages.

    The userinfo ends the authority, which ends at the first ``/``, ``?`` or ``#``
    (``ws://host/p?u=a@b`` has none). For a proxy URL (``proxy=True``), which has no
    path, it runs to the last ``@`` even past one of them: a password with a ``/``,
    ``?`` or ``#`` left unencoded is still masked.
    """
    span = _userinfo(url, proxy)
    if span is None:
        return url
    _, password, end = span
    return f"{url[:password]}***{url[end:]}"


def _masked_in(text: str, url: str) -> str:
    """``text`` (a message about ``url``, such as urlsplit's, which quotes its netloc)
    with ``url``'s ``user:password`` shown as ``user:***``."""
    span = _userinfo(url, False)
    if span is None:
        return text
    start, password, end = span
    masked = f"{url[start:password]}***"
    text = text.replace(url[start:end], masked)
    # urlsplit removes tabs and line breaks before it quotes the netloc in its reason.
    unsafe = {9: None, 10: None, 13: None}
    return text.replace(url[start:end].translate(unsafe), masked.translate(unsafe))


def _userinfo(url: str, proxy: bool) -> tuple[int, int, int] | None:
    """Where ``url``'s userinfo starts, where its password starts and where it ends (the
    "@"), or None when it has no password (see :func:`_masked`)."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    start = rest.rindex("@") + 1 if proxy and "@" in rest else 0
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop, start)
        if index != -1:
            end = min(end, index)
    userinfo = rest[:end].rpartition("@")[0]
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return None
    offset = len(scheme) + len(sep)
    return offset, offset + len(user) + 1, offset + len(userinfo)


def _port(text: str, url: str) -> int | None:
    """The port of a proxy URL (None when empty: the scheme's default)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InvalidURL(
            f"Invalid proxy URL {_masked(url, proxy=True)!r}: port {text!r} is not a number from 1 to "
            "65535; write the proxy's port, or leave it out for the scheme's default."
        )
    return int(text)


def _host(hostport: str, url: str) -> tuple[str, int | None]:
    """The host (lower-cased; IPv6 compressed, without brackets) and port of a netloc."""
    if hostport.startswith("["):
        inner, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise InvalidURL(
                f"Invalid proxy URL {_masked(url, proxy=True)!r}: write an IPv6 address as [address]:port."
            )
        try:
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise InvalidURL(
                f"Invalid proxy URL {_masked(url, proxy=True)!r}: {inner!r} in brackets is not an IPv6 "
                "address; only IPv6 addresses go in brackets."
            ) from None
        return host, _port(port[1:], url)
    if hostport.count(":") > 1:
        raise InvalidURL(
            f"Invalid proxy URL {_masked(url, proxy=True)!r}: put an IPv6 address in brackets, "
            "as http://[::1]:3128."
        )
    host, _, port = hostport.partition(":")
    if not host:
        raise InvalidURL(f"Invalid proxy URL {_masked(url, proxy=True)!r}: no host; {_FORM}.")
    if not host.isascii():
        try:
            host = ascii_host(host)
        except UnicodeError as exc:
            raise InvalidURL(
                f"Invalid host name in proxy URL {_masked(url, proxy=True)!r}: {exc}."
            ) from None
    host = host.lower()
    if _NAME.fullmatch(host) is None:
        raise InvalidURL(
            f"Invalid proxy URL {_masked(url, proxy=True)!r}: host {host!r} is not a name (letters, "
            "digits, '-', '.') or an IPv4 address; percent-encode credentials, and put an "
            "IPv6 address in brackets."
        )
    return host, _port(port, url)


def _decoded(text: str, url: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidURL(
            f"Invalid proxy URL {_masked(url, proxy=True)!r}: the credentials percent-decode to bytes "
            "that are not UTF-8; percent-encode their UTF-8 form."
        ) from None


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy to send requests through: its scheme, address and credentials.

    Build one with :meth:`parse`. ``host`` is lower-cased (an IPv6 address without
    brackets); ``port`` is the scheme's default when the URL has none (http 80,
    https 443, socks5/socks5h/socks4a 1080); ``username`` and ``password`` are
    percent-decoded from the URL's userinfo, None when absent. The password is never
    shown: not by ``repr``, ``str``, :attr:`description` nor error messages.
    """

    scheme: ProxyScheme
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str | Proxy) -> Proxy:
        """The proxy ``url`` names (a :class:`Proxy` is returned as it is).

        ``scheme://[user[:password]@]host[:port][/]``, scheme one of http, https,
        socks5, socks5h, socks4a; ``host:port`` without a scheme means ``http://``, as
        curl and httpx read environment values. A path other than ``/``, a query or a
        fragment is refused: a proxy is an address, not a resource.

        Raises :class:`~sansnet.UnsupportedProtocol` for another scheme,
        :class:`~sansnet.InvalidURL` for a missing host, a bad port or other malformed
        text, :class:`~sansnet.InvalidArgument` when ``url`` is not a str.
        """
        if isinstance(url, Proxy):
            return url
        if not isinstance(url, str):
            raise InvalidArgument(
                f"A proxy must be a URL str or a Proxy, not {type(url).__name__}."
            )
        text = url.strip()
        if _CONTROL.search(text):
            raise InvalidURL(
                f"Invalid proxy URL {_masked(url, proxy=True)!r}: it contains whitespace or control "
                "characters; percent-encode them in the credentials."
            )
        if "://" not in text:
            text = "http://" + text  # "proxy.example:3128", as curl and httpx read it
        scheme_text, _, rest = text.partition("://")
        scheme_text = scheme_text.lower()
        if scheme_text not in _SCHEMES:
            if scheme_text == "socks4":
                raise UnsupportedProtocol(
                    f"Unsupported proxy scheme 'socks4' in {_masked(url, proxy=True)!r}: SOCKS4 cannot "
                    "send a host name; use socks4a:// (the proxy resolves the name)."
                )
            raise UnsupportedProtocol(
                f"Unsupported proxy scheme {scheme_text!r} in {_masked(url, proxy=True)!r}: use one of "
                f"{_SUPPORTED}."
            )
        scheme, default_port = _SCHEMES[scheme_text]
        netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
        tail = rest[len(netloc) :]
        if "@" in tail:
            raise InvalidURL(
                f"Invalid proxy URL {_masked(url, proxy=True)!r}: the credentials contain '/', '?' "
                "or '#'; percent-encode them (%2F, %3F, %23)."
            )
        if tail not in ("", "/"):
            raise InvalidURL(
                f"Invalid proxy URL {_masked(url, proxy=True)!r}: a proxy URL has no path, query or "
                f"fragment ({tail!r}); {_FORM}."
            )
        userinfo, _, hostport = netloc.rpartition("@")
        host, port = _host(hostport, url)
        username = password = None
        if userinfo:
            user, colon, secret = userinfo.partition(":")
            username = _decoded(user, url)
            password = _decoded(secret, url) if colon else None
        return cls(scheme, host, port or default_port, username, password)

    @property
    def description(self) -> str:
        """The proxy's URL without credentials: ``"http://proxy.example:3128"``,
        ``"socks5://[::1]:1080"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for the credentials: ``"Basic "`` and the
        base64 of the UTF-8 ``user:password`` (the password may be empty), or None
        without a username."""
        if self.username is None:
            return None
        credentials = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(credentials).decode("ascii")

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the target's host name: True for http, https,
        socks5h and socks4a; False for socks5, whose client resolves it locally."""
        return self.scheme != "socks5"

    def __repr__(self) -> str:
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":***"
            userinfo += "@"
        scheme, _, address = self.description.partition("://")
        return f"Proxy('{scheme}://{userinfo}{address}')"


_Entry = tuple[str | _Address | _Network, int | None]


class NoProxy:
    """Parsed NO_PROXY value, as curl and httpx read it.

    * Entries are separated by commas; whitespace around them and empty entries are
      ignored; matching is case-insensitive.
    * ``*`` alone matches every host.
    * A name, ``example.com``, ``.example.com`` or ``*.example.com``, matches
      example.com and its subdomains (www.example.com), on label boundaries:
      notexample.com does not match. A trailing dot on the host or the entry is ignored.
      An internationalized name (``bücher.example``) matches in its IDNA form too.
    * An IP address (``10.0.0.1``, ``::1``, ``[::1]``) matches that address, compared
      as an address (``::1`` is ``0:0::1``); a network (``10.0.0.0/8``, ``fd00::/8``)
      matches the addresses in it.
    * A name never matches an IP host, nor an address a named host: nothing is
      resolved.
    * ``host:port`` (``[v6]:port`` for IPv6) matches only on that port; other entries
      match on every port.
    * An entry that is none of these (``10.0.0.0/99``, ``a b``, ``host:http``) is
      ignored; a NO_PROXY value never raises.
    """

    __slots__ = ("_entries", "_everything", "_value")

    def __init__(self, value: str = "") -> None:
        self._value = value
        self._everything = False
        entries: list[_Entry] = []
        for item in value.split(","):
            text = item.strip().lower()
            if text == "*":
                self._everything = True
            elif text:
                entry = _no_proxy_entry(text)
                if entry is not None:
                    entries.append(entry)
        self._entries = tuple(entries)

    def matches(self, host: str, port: int) -> bool:
        """Whether a request to ``host`` (a name, an IPv4 address, an IPv6 address with
        or without brackets) on ``port`` bypasses the proxy."""
        if self._everything:
            return True
        host = _ascii_name(host.lower().rstrip("."))
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        host = without_zone(host)
        address: _Address | None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for pattern, entry_port in self._entries:
            if entry_port is not None and entry_port != port:
                continue
            if isinstance(pattern, str):
                if address is None and (host == pattern or host.endswith("." + pattern)):
                    return True
            elif address is not None and (
                address in pattern if isinstance(pattern, _Network) else address == pattern
            ):
                return True
        return False

    def __repr__(self) -> str:
        return f"NoProxy({self._value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoProxy):
            return NotImplemented
        return (self._everything, self._entries) == (other._everything, other._entries)

    def __hash__(self) -> int:
        return hash((self._everything, self._entries))


def _no_proxy_entry(text: str) -> _Entry | None:
    """One lower-cased, stripped, non-empty NO_PROXY entry, or None when it is garbage."""
    port_text: str | None = None
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in text:
            return None  # brackets hold an IPv6 address or network only
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
    port: int | None = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    text = text.rstrip(".")
    text = without_zone(text)  # not compared (see matches)
    if "/" in text:
        try:
            return ipaddress.ip_network(text, strict=False), port
        except ValueError:
            return None
    try:
        return ipaddress.ip_address(text), port
    except ValueError:
        pass
    if text.startswith("*."):
        text = text[2:]
    elif text.startswith("."):
        text = text[1:]
    text = _ascii_name(text)
    if _NAME.fullmatch(text) is None:
        return None
    return text, port


def _ascii_name(name: str) -> str:
    """An internationalized host name in its IDNA form, as request URLs have it ("" if
    it has none); an ASCII name as it is."""
    if name.isascii():
        return name
    try:
        return ascii_host(name)
    except UnicodeError:
        return ""


_NO_EXCEPTIONS: Final = NoProxy()  # immutable, so one instance is every default


class FromEnvironment(enum.Enum):
    """The type of :data:`FROM_ENVIRONMENT` (for annotations: ``proxy: str | Proxy |
    None | FromEnvironment = FROM_ENVIRONMENT``)."""

    FROM_ENVIRONMENT = "FROM_ENVIRONMENT"

    def __repr__(self) -> str:
        return "FROM_ENVIRONMENT"

    __str__ = __repr__


FROM_ENVIRONMENT: Final = FromEnvironment.FROM_ENVIRONMENT
"""The default of ``proxy=`` options: read the proxy from the environment
(:meth:`ProxyEnvironment.from_environ`). Pass None for no proxy at all."""


@dataclass(frozen=True, slots=True)
class ProxyEnvironment:
    """The proxies the environment asks for, by request scheme, and the hosts that
    bypass them.

    :meth:`from_environ` reads these variables, as ``urllib.request.getproxies`` and
    httpx do (and websockets for the ws ones):

    =================================  ======================================
    ``http_proxy`` / ``HTTP_PROXY``    :attr:`http`
    ``https_proxy`` / ``HTTPS_PROXY``  :attr:`https`
    ``ws_proxy`` / ``WS_PROXY``        :attr:`ws`
    ``wss_proxy`` / ``WSS_PROXY``      :attr:`wss`
    ``all_proxy`` / ``ALL_PROXY``      :attr:`all`
    ``no_proxy`` / ``NO_PROXY``        :attr:`no_proxy` (see :class:`NoProxy`)
    =================================  ======================================

    * The lower-case name wins over the upper-case one when both are set.
    * An empty value (or only whitespace) counts as unset.
    * ``HTTP_PROXY`` (upper-case only) is ignored when ``REQUEST_METHOD`` is in the
      environment: a CGI script gets a client's ``Proxy:`` header there ("httpoxy",
      CVE-2016-1000110). ``http_proxy`` still counts.
    * A value that is not a proxy URL (see :meth:`Proxy.parse`) raises
      :class:`~sansnet.InvalidURL` naming the variable.

    :meth:`select` picks the proxy of one request.
    """

    http: Proxy | None = None
    https: Proxy | None = None
    ws: Proxy | None = None
    wss: Proxy | None = None
    all: Proxy | None = None
    no_proxy: NoProxy = _NO_EXCEPTIONS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyEnvironment:
        """The proxy settings of ``environ`` (pass ``os.environ``), by the rules above."""
        proxies: dict[str, Proxy | None] = {}
        for name in ("http", "https", "ws", "wss", "all"):
            variable, value = _variable(environ, f"{name}_proxy")
            if name == "http" and variable == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
                value = ""  # CGI: HTTP_PROXY may come from the client's Proxy: header
            try:
                proxies[name] = Proxy.parse(value) if value else None
            except InvalidURL as exc:
                raise type(exc)(
                    f"{variable}={_masked(value, proxy=True)!r} is not a proxy URL: {exc} Correct or "
                    f"unset {variable}."
                ) from exc
        _, no_proxy = _variable(environ, "no_proxy")
        return cls(
            http=proxies["http"],
            https=proxies["https"],
            ws=proxies["ws"],
            wss=proxies["wss"],
            all=proxies["all"],
            no_proxy=NoProxy(no_proxy),
        )

    @property
    def configured(self) -> bool:
        """True when any proxy is set (else every request connects directly)."""
        return any((self.http, self.https, self.ws, self.wss, self.all))

    def select(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for a request to ``scheme://host:port``, or None to connect
        directly: None when :attr:`no_proxy` matches the host; otherwise http uses
        :attr:`http`, https :attr:`https`, ws :attr:`ws` then :attr:`http`, wss
        :attr:`wss` then :attr:`https`, each falling back to :attr:`all`; any other
        scheme uses :attr:`all`."""
        if self.no_proxy.matches(host, port):
            return None
        scheme = scheme.lower()
        if scheme == "http":
            chosen = self.http
        elif scheme == "https":
            chosen = self.https
        elif scheme == "ws":
            chosen = self.ws or self.http
        elif scheme == "wss":
            chosen = self.wss or self.https
        else:
            chosen = None
        return chosen or self.all


def _variable(environ: Mapping[str, str], lower: str) -> tuple[str, str]:
    """The name and stripped value of the variable that counts: ``lower`` when it is set
    and not empty, else its upper-case twin ("" when neither is)."""
    value = environ.get(lower, "").strip()
    if value:
        return lower, value
    upper = lower.upper()
    return upper, environ.get(upper, "").strip()


def given_proxy(proxy: str | Proxy | None, unix_socket: str | None = None) -> Proxy | None:
    """The proxy a ``proxy=`` option names (``None``: connect directly). A proxy and a
    Unix socket exclude each other: :class:`~sansnet.InvalidArgument`."""
    if proxy is None:
        return None
    if unix_socket is not None:
        raise InvalidArgument("Pass proxy= or unix_socket=, not both.")
    return Proxy.parse(proxy)


def environment_proxies(
    environ: Mapping[str, str], *, trust_env: bool, network: bool
) -> ProxyEnvironment | None:
    """The environment's proxies for a ``proxy=`` option left at
    :data:`FROM_ENVIRONMENT`: None when ``trust_env`` is false, when the connection does
    not go to the network by host and port (``network`` false: a Unix socket, a
    replaced transport), or when the environment sets no proxy."""
    if not (trust_env and network):
        return None
    environment = ProxyEnvironment.from_environ(environ)
    return environment if environment.configured else None
