"""Who the client really is, behind proxies you trust: ``Forwarded`` (RFC 7239) and
``X-Forwarded-For`` / ``-Proto`` / ``-Host``.

A server behind a load balancer sees the balancer as its peer. The balancer says who
its own peer was in a header, and so may anyone else: a client can send
``X-Forwarded-For: 1.2.3.4`` itself. So these headers count only when the connection
comes from a proxy listed in :class:`TrustedProxies`, and within them only the hops
that trusted proxies added: reading the list from the right (the nearest hop first),
the client is the first address that is not a trusted proxy. Nothing is trusted by
default.

* ``Forwarded`` wins over the ``X-Forwarded-*`` fields when both are present (it is the
  standard one); its element for the chosen hop gives ``for`` (address and maybe port),
  ``proto`` and ``host``. A port that is not 1 to 5 ASCII digits up to 65535 (an
  obfuscated ``_port``, garbage) is dropped; the address stands.
* Otherwise ``X-Forwarded-For`` gives the address, and the nearest (rightmost) value of
  ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` the scheme and host.
* A host that is not a URI ``host[:port]`` (a reg-name or IPv4 address, or an
  ``[IPv6]`` literal, with maybe a port of 1 to 5 digits up to 65535) is dropped: a
  ``/``, ``@``, space, ``?``, ``#``, control or non-ASCII character would make a
  misleading URL. The Host field then stands.
* A value that is not an IP address (``unknown``, an obfuscated ``_hidden``
  identifier) stops the walk: that hop is the client, its address unknown, and the
  peer's address stays.

The ``Forwarded`` value splitter here is the RFC 7239 grammar (``token=value`` pairs,
``;`` between pairs, ``,`` between hops, quoted strings with ``\\`` escapes): h11 parses
the field itself, nothing well kept parses its value, and this module is tested byte
for byte in tests/protocol/test_forwarded.py. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sansnet.errors import InvalidArgument

from .headers import Headers, host_field_parts

__all__ = ["Client", "TrustedProxies", "forwarded_elements", "resolve_client"]

UNIX = "unix"  # the entry that trusts peers on a Unix domain socket
_SCHEMES = frozenset(("http", "https", "ws", "wss"))
# RFC 3986 reg-name (IPv4 text is one too): unreserved, pct-encoded and sub-delims.
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_IP_OBJECTS = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


class TrustedProxies:
    """The peers whose forwarding headers are believed: IP addresses (``"10.0.0.7"``,
    ``"::1"``), networks (``"10.0.0.0/8"``), ``"*"`` (every peer: only when nothing
    but your proxy can reach the server) and ``"unix"`` (peers on a Unix domain
    socket, whose address is empty); an address or network may also be an
    :mod:`ipaddress` object. A str is a comma-separated list whose empty entries are
    skipped (``"10.0.0.1,"``; ``""`` trusts nobody). An IPv4-mapped address
    (``::ffff:10.0.0.7``, how a dual-stack socket reports IPv4 clients: not sansnet's own
    ``"::"`` listeners, which are IPv6-only, but a proxy's) matches by its IPv4 address too.
    Raises :class:`~sansnet.InvalidArgument` (a ``ValueError``)
    naming a bad entry."""

    def __init__(self, entries: Iterable[str | _Address | _Network] | str = ()) -> None:
        given: object = entries
        if isinstance(given, str):  # empty entries skipped: "" trusts nobody, as in the CLI
            entries = [entry for entry in given.split(",") if entry.strip()]
        elif not isinstance(given, Iterable):  # (None, a number: named as a bad entry)
            entries = [given]  # type: ignore[list-item]
        self.everyone = False
        self.unix = False
        self._networks: list[_Network] = []
        for entry in entries:
            if isinstance(entry, _IP_OBJECTS):
                self._networks.append(ipaddress.ip_network(entry))
                continue
            text = entry.strip() if isinstance(entry, str) else None
            if text == "*":
                self.everyone = True
            elif text == UNIX:
                self.unix = True
            else:
                network: _Network | None = None
                if text is not None:
                    try:
                        network = ipaddress.ip_network(text, strict=False)
                    except ValueError:
                        pass
                if network is None:
                    raise InvalidArgument(
                        f"trusted_proxies: {entry!r} is not an IP address, a network "
                        '(10.0.0.0/8), "*" or "unix".'
                    )
                self._networks.append(network)

    def __bool__(self) -> bool:
        return self.everyone or self.unix or bool(self._networks)

    def __contains__(self, address: object) -> bool:
        """Whether a peer at ``address`` (an IP text, or "" for a Unix socket) is trusted."""
        if not isinstance(address, str):
            return False
        if address == "":
            return self.unix or self.everyone
        if self.everyone:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        # A dual-stack socket (a proxy's; sansnet's "::" listeners are IPv6-only)
        # reports an IPv4 peer as ::ffff:a.b.c.d: it is trusted by its IPv4 address too.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in network for network in self._networks):
            return True
        return any(ip in network for network in self._networks)


@dataclass(frozen=True, slots=True)
class Client:
    """The client as the trusted proxies report it; None fields were not reported."""

    ip: str | None
    port: int | None
    scheme: str | None
    host: str | None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        out = []
        escaped = False
        for char in value[1:-1]:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def forwarded_elements(values: Iterable[str]) -> list[dict[str, str]]:
    """The hops of ``Forwarded`` field values, first (farthest) to last (nearest): each
    a dict of lower-cased parameter names to unquoted values. Malformed pairs (no
    ``=``, an empty name) are skipped; an element with no valid pair is kept empty, so
    the hop count stays right."""
    elements: list[dict[str, str]] = []
    for value in values:
        for element in _split_outside_quotes(value, ","):
            pairs: dict[str, str] = {}
            for pair in _split_outside_quotes(element, ";"):
                name, equals, raw = pair.partition("=")
                name = name.strip().lower()
                if equals and name:
                    pairs[name] = _unquote(raw.strip())
            elements.append(pairs)
    return elements


def _port(text: str) -> int | None:
    """A node's port: 1 to 5 ASCII digits (RFC 7239 section 6; ``str.isdigit`` alone
    also takes ``"²"``), at most 65535; None for anything else (an obfuscated port,
    garbage), which leaves the address standing."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        if port <= 65535:
            return port
    return None


def _node(value: str) -> tuple[str | None, int | None]:
    """A ``for`` node (RFC 7239 section 6): an IP address and maybe a port; None for
    ``unknown`` and obfuscated identifiers."""
    text = value.strip()
    port: int | None = None
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        address, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:])
    elif text.count(":") == 1:  # IPv4:port
        address, _, port_text = text.partition(":")
        port = _port(port_text)
    else:
        address = text
    try:
        return str(ipaddress.ip_address(address)), port
    except ValueError:
        return None, None


def _host(value: str | None) -> str | None:
    """A forwarded ``host`` if it is a Host field value (RFC 7239 section 5.3 takes the
    Host field's syntax; :func:`~.headers.host_field_parts`) with a host and, after a
    colon, a port (1 to 5 digits), else None: a value with ``/``, ``@``, spaces,
    ``?``, ``#``, control or non-ASCII characters would make a misleading URL, so it
    is ignored and the Host field stands."""
    if value is None:
        return None
    parts = host_field_parts(value)
    if parts is None:
        return None
    host, port = parts
    if not host or (port is not None and _port(port) is None):
        return None
    return value


def _rightmost(values: list[str]) -> str | None:
    for value in reversed(",".join(values).split(",")):
        if value.strip():
            return value.strip()
    return None


def resolve_client(headers: Headers, peer_ip: str, trusted: TrustedProxies) -> Client | None:
    """The client behind the trusted proxies, or None when the peer is not a trusted
    proxy or sent no forwarding field (then the connection's own peer is the client)."""
    if not trusted or peer_ip not in trusted:
        return None
    forwarded = headers.get_all("forwarded")
    if forwarded:
        elements = forwarded_elements(forwarded)
        chosen = elements[0]
        for element in reversed(elements):
            chosen = element
            ip, _ = _node(element.get("for", ""))
            if ip is None or ip not in trusted:
                break
        ip, port = _node(chosen.get("for", ""))
        proto = chosen.get("proto", "").lower()
        host = _host(chosen.get("host"))
        return Client(ip, port, proto if proto in _SCHEMES else None, host)
    hops = [hop.strip() for hop in ",".join(headers.get_all("x-forwarded-for")).split(",")]
    hops = [hop for hop in hops if hop]
    proto = (_rightmost(headers.get_all("x-forwarded-proto")) or "").lower()
    host = _host(_rightmost(headers.get_all("x-forwarded-host")))
    if not hops and not proto and host is None:
        return None
    client_ip: str | None = None
    for hop in reversed(hops):
        ip, _ = _node(hop)
        client_ip = ip
        if ip is None or ip not in trusted:
            break
    return Client(client_ip, None, proto if proto in _SCHEMES else None, host)
