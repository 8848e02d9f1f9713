"""sansnet.protocol.forwarded: which forwarding headers are believed, and what they say.

The rule under test: only a trusted peer's headers count, and within them only the hops
trusted proxies added (read from the right); a spoofed value from anyone else changes
nothing."""

from __future__ import annotations

import ipaddress

import pytest

from sansnet.protocol import Headers
from sansnet.protocol.forwarded import Client, TrustedProxies, forwarded_elements, resolve_client

PROXY = "10.0.0.7"
TRUSTED = TrustedProxies(["10.0.0.0/8", "::1"])


def resolve(fields: list[tuple[str, str]], peer: str = PROXY, trusted: TrustedProxies = TRUSTED):  # type: ignore[no-untyped-def]
    return resolve_client(Headers(fields), peer, trusted)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # X-Forwarded-*: the nearest untrusted address is the client
        ([("X-Forwarded-For", "203.0.113.9")], Client("203.0.113.9", None, None, None)),
        (
            [("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.1.1")],
            Client("203.0.113.9", None, None, None),
        ),
        (  # a spoofed left part is ignored: the client is where our proxies saw it
            [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9")],
            Client("203.0.113.9", None, None, None),
        ),
        (  # every hop trusted: the farthest one
            [("X-Forwarded-For", "10.9.9.9, 10.1.1.1")],
            Client("10.9.9.9", None, None, None),
        ),
        (  # a hop that is not an address stops the walk, address unknown
            [("X-Forwarded-For", "203.0.113.9, unknown")],
            Client(None, None, None, None),
        ),
        ([("X-Forwarded-For", "203.0.113.9:4711")], Client("203.0.113.9", None, None, None)),
        (
            [
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "http, HTTPS"),
                ("X-Forwarded-Host", "a.example, b.example"),
            ],
            Client("203.0.113.9", None, "https", "b.example"),
        ),
        (  # a scheme we do not know is not believed; proto without For is enough
            [("X-Forwarded-Proto", "gopher")],
            Client(None, None, None, None),
        ),
        ([("X-Forwarded-Host", "example.org")], Client(None, None, None, "example.org")),
        ([("X-Forwarded-Proto", " , ")], None),  # empty values: nothing forwarded
        # Forwarded (RFC 7239): wins over X-Forwarded-*
        (
            [
                ("Forwarded", 'for=203.0.113.9;proto=https;host="shop.example"'),
                ("X-Forwarded-For", "198.51.100.1"),
            ],
            Client("203.0.113.9", None, "https", "shop.example"),
        ),
        (
            [("Forwarded", 'for=198.51.100.1, for="[2001:db8::1]:4711";proto=wss, for=10.2.2.2')],
            Client("2001:db8::1", 4711, "wss", None),
        ),
        (
            [("Forwarded", "for=203.0.113.9:8080;proto=HTTP"), ("Forwarded", "for=10.1.1.1")],
            Client("203.0.113.9", 8080, "http", None),
        ),
        ([("Forwarded", "for=unknown;proto=https")], Client(None, None, "https", None)),
        ([("Forwarded", "for=_hidden, for=10.3.3.3")], Client(None, None, None, None)),
        ([("Forwarded", "proto=https")], Client(None, None, "https", None)),
        ([("Forwarded", 'for="[::1]"')], Client("::1", None, None, None)),  # all trusted
        ([("Forwarded", 'for="[::1]:x"')], Client("::1", None, None, None)),
        ([("Forwarded", "for=203.0.113.9:http")], Client("203.0.113.9", None, None, None)),
        # a port is 1 to 5 ASCII digits up to 65535; anything else is dropped, not raised
        # ("²" is str.isdigit() but not int()-able: it used to crash the server)
        ([("Forwarded", "for=1.2.3.4:\xb2")], Client("1.2.3.4", None, None, None)),
        ([("Forwarded", 'for="[2001:db8::1]:\xb2"')], Client("2001:db8::1", None, None, None)),
        ([("Forwarded", "for=1.2.3.4:\u0663")], Client("1.2.3.4", None, None, None)),  # Arabic 3
        ([("Forwarded", "for=1.2.3.4:65535")], Client("1.2.3.4", 65535, None, None)),
        ([("Forwarded", "for=1.2.3.4:0")], Client("1.2.3.4", 0, None, None)),
        ([("Forwarded", "for=1.2.3.4:65536")], Client("1.2.3.4", None, None, None)),
        ([("Forwarded", "for=1.2.3.4:000080")], Client("1.2.3.4", None, None, None)),
        ([("Forwarded", "for=1.2.3.4:")], Client("1.2.3.4", None, None, None)),
        ([("Forwarded", 'for="[2001:db8::1]:70000"')], Client("2001:db8::1", None, None, None)),
        ([("X-Forwarded-For", "1.2.3.4:\xb2")], Client("1.2.3.4", None, None, None)),
    ],
)
def test_what_a_trusted_proxy_says(fields: list[tuple[str, str]], expected: Client | None) -> None:
    assert resolve(fields) == expected


def test_nothing_forwarded_from_a_trusted_proxy_means_the_peer() -> None:
    assert resolve([("Host", "example.org")]) is None


@pytest.mark.parametrize("peer", ["203.0.113.50", "", "not an address"])
def test_an_untrusted_peer_changes_nothing(peer: str) -> None:
    spoofed = [
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
    ]
    assert resolve(spoofed, peer=peer) is None
    assert resolve(spoofed, peer=PROXY, trusted=TrustedProxies()) is None


@pytest.mark.parametrize(
    ("entries", "trusted", "untrusted"),
    [
        (["*"], ["1.2.3.4", "::1", ""], []),
        (["unix"], [""], ["127.0.0.1"]),
        ("127.0.0.1, 192.168.0.0/16", ["127.0.0.1", "192.168.4.4"], ["127.0.0.2", "", "x"]),
        (["2001:db8::/32"], ["2001:db8::5"], ["2001:db9::5", "10.0.0.1"]),
        ([], [], ["127.0.0.1", ""]),
    ],
)
def test_trusted_proxy_entries(
    entries: list[str] | str, trusted: list[str], untrusted: list[str]
) -> None:
    proxies = TrustedProxies(entries)
    assert bool(proxies) == bool(entries)
    assert "not an ip" not in TrustedProxies(["10.0.0.0/8"])
    for address in trusted:
        assert address in proxies
    for address in untrusted:
        assert address not in proxies
    assert 7 not in proxies


def test_a_bad_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an IP address"):
        TrustedProxies(["10.0.0.300"])


def test_entries_may_be_ipaddress_objects() -> None:
    proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_address("::1")])
    assert "10.1.2.3" in proxies
    assert "::1" in proxies
    assert "11.0.0.1" not in proxies


@pytest.mark.parametrize("entries", [None, 5, [None], [b"10.0.0.1"], [10]])
def test_entries_of_another_type_are_a_value_error_naming_them(entries: object) -> None:
    with pytest.raises(ValueError, match=r"^trusted_proxies: .* is not an IP address"):
        TrustedProxies(entries)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "elements"),
    [
        (["for=a;proto=http"], [{"for": "a", "proto": "http"}]),
        (['for="x,y;z";by=b', "for=c"], [{"for": "x,y;z", "by": "b"}, {"for": "c"}]),
        (['FOR="a\\"b\\\\c"'], [{"for": 'a"b\\c'}]),
        (["junk;=x;for=a"], [{"for": "a"}]),
        ([""], [{}]),
        (['for="unterminated'], [{"for": '"unterminated'}]),
        (['for=""'], [{"for": ""}]),
    ],
)
def test_forwarded_value_splitting(values: list[str], elements: list[dict[str, str]]) -> None:
    assert forwarded_elements(values) == elements


@pytest.mark.parametrize(
    "host",
    [
        "shop.example",
        "shop.example:8443",
        "SHOP.Example.",
        "10.0.0.1:80",
        "[2001:db8::1]",
        "[2001:db8::1]:443",
        "xn--bcher-kva.example",
        "a_b~c-d.example",
        "%41.example",
        "sub!$&'()*+;=.example",
    ],
)
def test_a_forwarded_host_that_is_a_uri_host_and_port_is_believed(host: str) -> None:
    assert resolve([("X-Forwarded-Host", host)]) == Client(None, None, None, host)
    quoted = '"' + host + '"'
    assert resolve([("Forwarded", f"host={quoted}")]) == Client(None, None, None, host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example/path",
        "user@shop.example",
        "shop.example?q",
        "shop.example#f",
        "shop example",
        "shop.example\x00",
        "shop.example\x7f",
        "shöp.example",
        "shop.example:",
        "shop.example:http",
        "shop.example:99999",
        "shop.example:1:2",
        "2001:db8::1",
        "[2001:db8::1",
        "[not-v6]",
        "[fe80::1%eth0]",
        "[2001:db8::1]x",
        "%zz.example",
        "%4",
        "",
        '"quoted"',
        "\\",
    ],
)
def test_a_forwarded_host_that_is_not_a_uri_host_is_ignored(host: str) -> None:
    """A trusted proxy passing on a client's garbage must not make it the request's
    host (and its URL): the value is dropped, the Host field stands."""
    assert resolve([("X-Forwarded-Host", host)]) is None
    with_for = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Host", host)]
    assert resolve(with_for) == Client("203.0.113.9", None, None, None)
    escaped = host.replace("\\", "\\\\").replace('"', '\\"')
    forwarded = [("Forwarded", f'for=203.0.113.9;host="{escaped}"')]
    assert resolve(forwarded) == Client("203.0.113.9", None, None, None)


def test_an_ipv4_mapped_peer_matches_by_its_ipv4_address() -> None:
    """Issue: a dual-stack listener ("::") reports an IPv4 client as ::ffff:10.0.0.7,
    which did not match a trusted 10.0.0.0/8. It matches now (and its IPv6 form still
    matches an IPv6 entry), in the peer check and in the hops alike."""
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert "::ffff:10.0.0.7" in proxies
    assert "::FFFF:10.0.0.7" in proxies
    assert "::ffff:11.0.0.7" not in proxies
    assert "::ffff:10.0.0.7" in TrustedProxies(["::ffff:0:0/96"])
    assert "::ffff:10.0.0.7" not in TrustedProxies(["::1"])
    fields = [("X-Forwarded-For", "203.0.113.9, ::ffff:10.1.1.1")]
    assert resolve(fields, peer="::ffff:10.0.0.7", trusted=proxies) == Client(
        "203.0.113.9", None, None, None
    )


@pytest.mark.parametrize(
    ("entries", "trusted"),
    [
        ("", []),
        (" , ", []),
        ("10.0.0.1,", ["10.0.0.1"]),
        (",10.0.0.1,, ::1 ,", ["10.0.0.1", "::1"]),
    ],
)
def test_empty_entries_of_a_comma_separated_str_are_skipped(
    entries: str, trusted: list[str]
) -> None:
    """Issue: "" and "10.0.0.1," raised, while the CLI skips an empty --trusted-proxies.
    A comma-separated str now skips its empty entries, so "" trusts nobody."""
    proxies = TrustedProxies(entries)
    assert bool(proxies) == bool(trusted)
    for address in trusted:
        assert address in proxies
    assert "10.0.0.2" not in proxies


def test_an_empty_entry_in_a_list_is_still_named() -> None:
    with pytest.raises(ValueError, match=r"^trusted_proxies: '' is not an IP address"):
        TrustedProxies(["10.0.0.1", ""])
