"""Proxy settings (sansnet.proxies): proxy URLs, the *_proxy environment variables and
NO_PROXY matching, as tables."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest

import sansnet
from sansnet.errors import InvalidArgument, InvalidURL, UnsupportedProtocol
from sansnet.proxies import (
    FROM_ENVIRONMENT,
    FromEnvironment,
    NoProxy,
    Proxy,
    ProxyEnvironment,
)

# ------------------------------------------------------------------------ Proxy.parse


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.example:3128", Proxy("http", "proxy.example", 3128)),
        ("http://proxy.example:3128/", Proxy("http", "proxy.example", 3128)),
        ("http://proxy.example", Proxy("http", "proxy.example", 80)),
        ("http://proxy.example:", Proxy("http", "proxy.example", 80)),
        ("https://proxy.example", Proxy("https", "proxy.example", 443)),
        ("socks5://proxy.example", Proxy("socks5", "proxy.example", 1080)),
        ("socks5h://proxy.example", Proxy("socks5h", "proxy.example", 1080)),
        ("socks4a://proxy.example:9050", Proxy("socks4a", "proxy.example", 9050)),
        ("HTTP://Proxy.EXAMPLE:8080", Proxy("http", "proxy.example", 8080)),
        ("  http://proxy.example:3128  ", Proxy("http", "proxy.example", 3128)),
        ("proxy.example:3128", Proxy("http", "proxy.example", 3128)),
        ("proxy.example", Proxy("http", "proxy.example", 80)),
        ("10.0.0.1:3128", Proxy("http", "10.0.0.1", 3128)),
        ("http://[::1]:3128", Proxy("http", "::1", 3128)),
        ("http://[0:0::1]", Proxy("http", "::1", 80)),
        ("socks5://[FD00::AB]:1080/", Proxy("socks5", "fd00::ab", 1080)),
        ("http://xn--bcher-kva.example", Proxy("http", "xn--bcher-kva.example", 80)),
        ("http://bücher.example", Proxy("http", "xn--bcher-kva.example", 80)),
        ("http://proxy_1.example:65535", Proxy("http", "proxy_1.example", 65535)),
        ("http://user:pass@proxy.example", Proxy("http", "proxy.example", 80, "user", "pass")),
        ("http://user@proxy.example", Proxy("http", "proxy.example", 80, "user", None)),
        ("http://user:@proxy.example", Proxy("http", "proxy.example", 80, "user", "")),
        ("http://@proxy.example", Proxy("http", "proxy.example", 80)),
        (
            "http://us%40er:p%3Ass%2Fw%25rd@proxy.example",
            Proxy("http", "proxy.example", 80, "us@er", "p:ss/w%rd"),
        ),
        (
            "http://j%C3%BCrgen:%E2%82%AC@proxy.example",
            Proxy("http", "proxy.example", 80, "jürgen", "€"),
        ),
        ("http://user:p@ss@proxy.example", Proxy("http", "proxy.example", 80, "user", "p@ss")),
        ("user:pass@proxy.example:3128", Proxy("http", "proxy.example", 3128, "user", "pass")),
    ],
)
def test_parse_good_urls(url: str, expected: Proxy) -> None:
    assert Proxy.parse(url) == expected


def test_parse_passes_a_proxy_through() -> None:
    proxy = Proxy("socks5", "proxy.example", 1080)
    assert Proxy.parse(proxy) is proxy


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        (
            "ftp://proxy.example",
            UnsupportedProtocol,
            "use one of http, https, socks5, socks5h, socks4a",
        ),
        ("socks4://proxy.example", UnsupportedProtocol, "use socks4a://"),
        ("SOCKS4://proxy.example", UnsupportedProtocol, "use socks4a://"),
        ("://proxy.example", UnsupportedProtocol, "scheme ''"),
        ("http://", InvalidURL, "no host"),
        ("http://:3128", InvalidURL, "no host"),
        ("http://user:secret@", InvalidURL, "no host"),
        ("http://proxy.example:0", InvalidURL, "port '0'"),
        ("http://proxy.example:65536", InvalidURL, "port '65536'"),
        ("http://proxy.example:http", InvalidURL, "port 'http'"),
        ("http://proxy.example:+80", InvalidURL, "port '+80'"),
        ("http://proxy.example:\uff18\uff10", InvalidURL, "port '\uff18\uff10'"),
        ("http://[::1]:x", InvalidURL, "port 'x'"),
        ("http://proxy.example/path", InvalidURL, "no path, query or fragment ('/path')"),
        ("http://proxy.example/?", InvalidURL, "no path, query or fragment ('/?')"),
        ("http://proxy.example?q=1", InvalidURL, "no path, query or fragment"),
        ("http://proxy.example#top", InvalidURL, "no path, query or fragment"),
        ("http://::1:3128", InvalidURL, "brackets"),
        ("http://[::1", InvalidURL, "[address]:port"),
        ("http://[::1]3128", InvalidURL, "[address]:port"),
        ("http://[10.0.0.1]:3128", InvalidURL, "only IPv6 addresses go in brackets"),
        ("http://[proxy]", InvalidURL, "only IPv6 addresses go in brackets"),
        ("http://proxy example", InvalidURL, "whitespace or control characters"),
        ("http://prox\ty.example", InvalidURL, "whitespace or control characters"),
        ("http://proxy.example\x00", InvalidURL, "whitespace or control characters"),
        ("http://proxy..example", InvalidURL, "is not a name"),
        ("http://proxy%2eexample", InvalidURL, "is not a name"),
        ("http://pro*xy", InvalidURL, "is not a name"),
        ("http://" + "\u00e9" * 70 + ".example", InvalidURL, "Invalid host name"),
        ("http://user%FF:x@proxy.example", InvalidURL, "not UTF-8"),
        ("http://user:%C3@proxy.example", InvalidURL, "not UTF-8"),
    ],
)
def test_parse_bad_urls(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        Proxy.parse(url)
    assert message in str(caught.value)
    assert isinstance(caught.value, InvalidURL)


@pytest.mark.parametrize("value", [None, b"http://proxy.example", 3128, ("proxy.example", 3128)])
def test_parse_refuses_what_is_not_a_str(value: object) -> None:
    with pytest.raises(InvalidArgument, match="URL str or a Proxy, not"):
        Proxy.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@proxy.example:0",
        "http://user:secret@proxy.example/path",
        "user:secret@proxy example",
        "socks4://user:secret@proxy.example",
        "http://user:secret@[::1",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(InvalidURL) as caught:
        Proxy.parse(url)
    assert "secret" not in str(caught.value)
    assert "user:***@" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:xyzzy/plugh@proxy.example:3128",
        "http://user:xyzzy?plugh@proxy.example:3128",
        "http://user:xyzzy#plugh@proxy.example:3128",
        "user:xyzzy/plugh@proxy.example:3128",
        "ftp://user:xyzzy/plugh@proxy.example",
        "http://user:xyzzy/plugh@proxy example",
    ],
)
def test_a_password_with_an_unencoded_delimiter_is_not_shown(url: str) -> None:
    # '/', '?' and '#' end the netloc, so the password ran into the "path" and was
    # shown unmasked: in the URL and in the path the message quoted.
    with pytest.raises(InvalidURL) as caught:
        Proxy.parse(url)
    message = str(caught.value)
    assert "xyzzy" not in message
    assert "plugh" not in message
    assert "user:***@" in message
    if "://" not in url or url.startswith("http"):
        assert "percent-encode" in message


@pytest.mark.anyio
async def test_an_at_sign_after_the_authority_of_a_url_is_not_taken_for_credentials() -> None:
    """Only a proxy URL's credentials run past a '/', '?' or '#' (the test above): in a
    URL with a path, an '@' in its query is no password (it read 'ws://host:***@b')."""
    with pytest.raises(InvalidURL) as caught:
        await sansnet.request("http://host:0/p?u=a@b")
    assert "'http://host:0/p?u=a@b'" in str(caught.value)
    with pytest.raises(InvalidURL) as caught:
        await sansnet.request("http://user:secret@host:0/p?u=a@b")
    assert "'http://user:***@host:0/p?u=a@b'" in str(caught.value)


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        (Proxy("http", "proxy.example", 3128), "Proxy('http://proxy.example:3128')"),
        (Proxy("http", "proxy.example", 3128, "user"), "Proxy('http://user@proxy.example:3128')"),
        (
            Proxy("http", "proxy.example", 3128, "user", "secret"),
            "Proxy('http://user:***@proxy.example:3128')",
        ),
        (Proxy("https", "proxy.example", 443, "u", ""), "Proxy('https://u:***@proxy.example:443')"),
        (
            Proxy("socks5h", "::1", 1080, "us@er:x", "secret"),
            "Proxy('socks5h://us%40er%3Ax:***@[::1]:1080')",
        ),
    ],
)
def test_repr_and_str_mask_the_password(proxy: Proxy, shown: str) -> None:
    assert repr(proxy) == shown
    assert str(proxy) == shown
    assert "secret" not in repr(ProxyEnvironment(http=proxy))


@pytest.mark.parametrize(
    ("url", "description"),
    [
        ("http://user:secret@proxy.example:3128", "http://proxy.example:3128"),
        ("https://proxy.example", "https://proxy.example:443"),
        ("socks5://[::1]", "socks5://[::1]:1080"),
        ("socks4a://10.0.0.1:9050/", "socks4a://10.0.0.1:9050"),
    ],
)
def test_description_has_no_credentials(url: str, description: str) -> None:
    assert Proxy.parse(url).description == description


@pytest.mark.parametrize(
    ("url", "credentials"),
    [
        ("http://user:pass@proxy.example", "user:pass"),
        ("http://user@proxy.example", "user:"),
        ("http://user:@proxy.example", "user:"),
        ("http://us%40er:p%3Ass@proxy.example", "us@er:p:ss"),
        ("http://j%C3%BCrgen:%E2%82%AC@proxy.example", "jürgen:€"),
    ],
)
def test_authorization_is_basic_over_utf8(url: str, credentials: str) -> None:
    expected = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    assert Proxy.parse(url).authorization == expected


def test_authorization_of_a_known_string() -> None:
    # RFC 7617 section 2's example
    proxy = Proxy.parse("http://Aladdin:open%20sesame@proxy.example")
    assert proxy.authorization == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_no_authorization_without_a_username() -> None:
    assert Proxy.parse("http://proxy.example").authorization is None


@pytest.mark.parametrize(
    ("scheme", "remote"),
    [("http", True), ("https", True), ("socks5", False), ("socks5h", True), ("socks4a", True)],
)
def test_remote_dns(scheme: str, remote: bool) -> None:
    assert Proxy.parse(f"{scheme}://proxy.example").remote_dns is remote


# ---------------------------------------------------------------------------- NoProxy


@pytest.mark.parametrize(
    ("value", "host", "port", "matches"),
    [
        # empty, separators, whitespace, case
        ("", "example.com", 80, False),
        (" , ,, ", "example.com", 80, False),
        ("  example.com  ", "example.com", 80, True),
        ("other.org, example.com", "example.com", 80, True),
        ("EXAMPLE.COM", "www.Example.Com", 443, True),
        # * alone
        ("*", "anything.example", 80, True),
        ("*", "10.1.2.3", 8080, True),
        ("other.org, *", "[::1]", 80, True),
        # names: example.com, .example.com, *.example.com; label boundaries
        ("example.com", "example.com", 80, True),
        ("example.com", "www.example.com", 80, True),
        ("example.com", "a.b.example.com", 80, True),
        ("example.com", "notexample.com", 80, False),
        ("example.com", "example.com.evil.org", 80, False),
        ("example.com", "com", 80, False),
        (".example.com", "example.com", 80, True),
        (".example.com", "www.example.com", 80, True),
        (".example.com", "notexample.com", 80, False),
        ("*.example.com", "example.com", 80, True),
        ("*.example.com", "www.example.com", 80, True),
        ("*.example.com", "notexample.com", 80, False),
        # trailing dots
        ("example.com.", "www.example.com", 80, True),
        ("example.com", "www.example.com.", 80, True),
        ("localhost", "localhost", 8000, True),
        # IP literals, compared as addresses
        ("10.0.0.1", "10.0.0.1", 80, True),
        ("10.0.0.1", "10.0.0.2", 80, False),
        ("::1", "::1", 80, True),
        ("::1", "0:0::1", 80, True),
        ("0:0::1", "[::1]", 80, True),
        ("[::1]", "::1", 80, True),
        ("[0:0:0:0:0:0:0:1]", "[::1]", 443, True),
        ("::1", "::2", 80, False),
        ("127.0.0.1", "::1", 80, False),
        # networks
        ("10.0.0.0/8", "10.200.3.4", 80, True),
        ("10.0.0.0/8", "11.0.0.1", 80, False),
        ("10.0.0.1/8", "10.9.9.9", 80, True),
        ("fd00::/8", "fd12::1", 80, True),
        ("fd00::/8", "[fd12::1]", 80, True),
        ("fd00::/8", "fe80::1", 80, False),
        ("fe80::1", "fe80::1%eth0", 80, True),  # a zone picks our interface: not compared
        ("fe80::/10", "[fe80::1%eth0]", 80, True),
        ("fe80::1%eth0", "fe80::1%eth0", 80, True),  # nor in the entry
        ("[fe80::1%25eth0]:80", "fe80::1", 80, True),
        ("[fd00::/8]", "fd12::1", 80, True),
        ("10.0.0.0/8", "::1", 80, False),
        # a name never matches an IP host, nor an address a named host
        ("localhost", "127.0.0.1", 80, False),
        ("0.1", "10.0.0.1", 80, False),
        ("127.0.0.1", "localhost", 80, False),
        ("10.0.0.0/8", "ten.example", 80, False),
        # ports
        ("example.com:8080", "example.com", 8080, True),
        ("example.com:8080", "example.com", 80, False),
        ("example.com:8080", "www.example.com", 8080, True),
        ("10.0.0.1:8080", "10.0.0.1", 8080, True),
        ("10.0.0.1:8080", "10.0.0.1", 80, False),
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "[::1]", 443, False),
        ("10.0.0.0/8:443", "10.1.1.1", 443, True),
        ("example.com:8080, example.com:443", "example.com", 443, True),
        # garbage is ignored, never raises
        ("10.0.0.0/99", "10.0.0.1", 80, False),
        ("10.0.0.0/99, example.com", "example.com", 80, True),
        ("fd00::/200", "fd00::1", 80, False),
        ("example.com:http", "example.com", 80, False),
        ("example.com:", "example.com", 80, False),
        ("example.com:0", "example.com", 0, False),
        ("example.com:65536", "example.com", 65536, False),
        ("[::1]8080", "::1", 8080, False),
        ("[::1", "::1", 80, False),
        ("[10.0.0.1]", "10.0.0.1", 80, False),
        ("[]:80", "example.com", 80, False),
        ("[::1]:x", "::1", 80, False),
        ("exa mple.com", "mple.com", 80, False),
        ("ex*ample.com", "ex*ample.com", 80, False),
        ("*.", "example.com", 80, False),
        (".", "example.com", 80, False),
        ("**", "example.com", 80, False),
        ("a/b", "a", 80, False),
        # an internationalized name matches in either form (requests use the IDNA one)
        ("bücher.example", "xn--bcher-kva.example", 80, True),
        (".MÜLLER.de", "www.xn--mller-kva.de", 80, True),
        ("*.müller.de:8080", "www.Müller.de", 8080, True),
        ("xn--bcher-kva.example", "bücher.example", 80, True),
        ("bücher.example", "xn--bchr-kva.example", 80, False),
        ("ü" * 70 + ".example", "example", 80, False),
        # an empty host matches nothing but *
        ("example.com", "", 80, False),
    ],
)
def test_no_proxy(value: str, host: str, port: int, matches: bool) -> None:
    assert NoProxy(value).matches(host, port) is matches


def test_no_proxy_repr_equality_and_hash() -> None:
    assert repr(NoProxy("localhost, .example.com")) == "NoProxy('localhost, .example.com')"
    assert NoProxy("Example.com, ::1") == NoProxy("example.com,0:0::1")
    assert hash(NoProxy("Example.com, ::1")) == hash(NoProxy("example.com,0:0::1"))
    assert NoProxy("example.com") != NoProxy("example.org")
    assert NoProxy("*") != NoProxy("")
    assert NoProxy() == NoProxy("10.0.0.0/99")  # garbage is ignored
    assert NoProxy() != "example.com"


# --------------------------------------------------------------------- FROM_ENVIRONMENT


def test_from_environment_is_a_named_sentinel() -> None:
    assert repr(FROM_ENVIRONMENT) == "FROM_ENVIRONMENT"
    assert str(FROM_ENVIRONMENT) == "FROM_ENVIRONMENT"
    assert isinstance(FROM_ENVIRONMENT, FromEnvironment)
    assert copy.deepcopy(FROM_ENVIRONMENT) is FROM_ENVIRONMENT
    assert pickle.loads(pickle.dumps(FROM_ENVIRONMENT)) is FROM_ENVIRONMENT


# ------------------------------------------------------------------- ProxyEnvironment

P_LOWER = Proxy("http", "lower.example", 3128)
P_UPPER = Proxy("http", "upper.example", 3128)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ProxyEnvironment()),
        ({"PATH": "/usr/bin", "HOME": "/root"}, ProxyEnvironment()),
        # each variable, either case
        ({"http_proxy": "lower.example:3128"}, ProxyEnvironment(http=P_LOWER)),
        ({"HTTP_PROXY": "upper.example:3128"}, ProxyEnvironment(http=P_UPPER)),
        ({"https_proxy": "lower.example:3128"}, ProxyEnvironment(https=P_LOWER)),
        ({"HTTPS_PROXY": "upper.example:3128"}, ProxyEnvironment(https=P_UPPER)),
        ({"ws_proxy": "lower.example:3128"}, ProxyEnvironment(ws=P_LOWER)),
        ({"WS_PROXY": "upper.example:3128"}, ProxyEnvironment(ws=P_UPPER)),
        ({"wss_proxy": "lower.example:3128"}, ProxyEnvironment(wss=P_LOWER)),
        ({"WSS_PROXY": "upper.example:3128"}, ProxyEnvironment(wss=P_UPPER)),
        ({"all_proxy": "lower.example:3128"}, ProxyEnvironment(all=P_LOWER)),
        ({"ALL_PROXY": "upper.example:3128"}, ProxyEnvironment(all=P_UPPER)),
        (
            {"ALL_PROXY": "socks5h://upper.example"},
            ProxyEnvironment(all=Proxy("socks5h", "upper.example", 1080)),
        ),
        ({"no_proxy": "example.com"}, ProxyEnvironment(no_proxy=NoProxy("example.com"))),
        ({"NO_PROXY": "example.com"}, ProxyEnvironment(no_proxy=NoProxy("example.com"))),
        # the lower-case name wins
        (
            {"http_proxy": "lower.example:3128", "HTTP_PROXY": "upper.example:3128"},
            ProxyEnvironment(http=P_LOWER),
        ),
        (
            {"HTTPS_PROXY": "upper.example:3128", "https_proxy": "lower.example:3128"},
            ProxyEnvironment(https=P_LOWER),
        ),
        (
            {"no_proxy": "lower.example", "NO_PROXY": "upper.example"},
            ProxyEnvironment(no_proxy=NoProxy("lower.example")),
        ),
        # empty values count as unset
        ({"http_proxy": ""}, ProxyEnvironment()),
        ({"http_proxy": "   "}, ProxyEnvironment()),
        (
            {"http_proxy": "", "HTTP_PROXY": "upper.example:3128"},
            ProxyEnvironment(http=P_UPPER),
        ),
        (
            {"no_proxy": "", "NO_PROXY": "upper.example"},
            ProxyEnvironment(no_proxy=NoProxy("upper.example")),
        ),
        # CGI: HTTP_PROXY is ignored, http_proxy and the others are not
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": "upper.example:3128"}, ProxyEnvironment()),
        (
            {"REQUEST_METHOD": "GET", "http_proxy": "lower.example:3128"},
            ProxyEnvironment(http=P_LOWER),
        ),
        (
            {"REQUEST_METHOD": "", "HTTP_PROXY": "upper.example:3128", "http_proxy": ""},
            ProxyEnvironment(),
        ),
        (
            {"REQUEST_METHOD": "POST", "HTTPS_PROXY": "upper.example:3128"},
            ProxyEnvironment(https=P_UPPER),
        ),
    ],
)
def test_from_environ(environ: dict[str, str], expected: ProxyEnvironment) -> None:
    assert ProxyEnvironment.from_environ(environ) == expected


@pytest.mark.parametrize(
    ("environ", "error", "message"),
    [
        (
            {"HTTPS_PROXY": "socks4://x"},
            UnsupportedProtocol,
            "HTTPS_PROXY='socks4://x' is not a proxy URL: Unsupported proxy scheme 'socks4'",
        ),
        (
            {"http_proxy": "http://proxy.example:99999"},
            InvalidURL,
            "http_proxy='http://proxy.example:99999' is not a proxy URL: ",
        ),
        ({"ws_proxy": "ftp://x"}, UnsupportedProtocol, "Correct or unset ws_proxy."),
        ({"WSS_PROXY": "http://x/path"}, InvalidURL, "WSS_PROXY='http://x/path'"),
        ({"all_proxy": "http://"}, InvalidURL, "all_proxy='http://'"),
        (
            {"https_proxy": "http://user:secret@proxy.example:0"},
            InvalidURL,
            "https_proxy='http://user:***@proxy.example:0'",
        ),
    ],
)
def test_from_environ_names_the_bad_variable(
    environ: dict[str, str], error: type[InvalidURL], message: str
) -> None:
    with pytest.raises(error) as caught:
        ProxyEnvironment.from_environ(environ)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)
    assert type(caught.value.__cause__) is error


def test_a_bad_no_proxy_is_ignored() -> None:
    env = ProxyEnvironment.from_environ({"NO_PROXY": "10.0.0.0/99,[::1"})
    assert env.no_proxy == NoProxy()


HTTP = Proxy("http", "http.example", 3128)
HTTPS = Proxy("http", "https.example", 3128)
WS = Proxy("http", "ws.example", 3128)
WSS = Proxy("http", "wss.example", 3128)
ALL = Proxy("socks5h", "all.example", 1080)
FULL = ProxyEnvironment(http=HTTP, https=HTTPS, ws=WS, wss=WSS, all=ALL)


@pytest.mark.parametrize(
    ("env", "scheme", "expected"),
    [
        (FULL, "http", HTTP),
        (FULL, "https", HTTPS),
        (FULL, "ws", WS),
        (FULL, "wss", WSS),
        (FULL, "HTTPS", HTTPS),
        (FULL, "ftp", ALL),
        (ProxyEnvironment(https=HTTPS, all=ALL), "http", ALL),
        (ProxyEnvironment(http=HTTP, all=ALL), "https", ALL),
        (ProxyEnvironment(http=HTTP, all=ALL), "ws", HTTP),
        (ProxyEnvironment(all=ALL), "ws", ALL),
        (ProxyEnvironment(https=HTTPS, all=ALL), "wss", HTTPS),
        (ProxyEnvironment(all=ALL), "wss", ALL),
        (ProxyEnvironment(http=HTTP), "wss", None),
        (ProxyEnvironment(https=HTTPS), "ws", None),
        (ProxyEnvironment(http=HTTP, https=HTTPS), "ftp", None),
        (ProxyEnvironment(), "http", None),
    ],
)
def test_select_by_scheme(env: ProxyEnvironment, scheme: str, expected: Proxy | None) -> None:
    assert env.select(scheme, "target.example", 80) == expected


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("target.example", "target.example", 443, True),
        ("target.example", "www.target.example", 443, True),
        ("other.example", "target.example", 443, False),
        ("target.example:8443", "target.example", 443, False),
        ("target.example:8443", "target.example", 8443, True),
        ("*", "target.example", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
    ],
)
def test_select_honours_no_proxy(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    env = ProxyEnvironment.from_environ({"HTTPS_PROXY": "proxy.example:3128", "NO_PROXY": no_proxy})
    for scheme in ("https", "wss"):
        chosen = env.select(scheme, host, port)
        assert chosen == (None if bypassed else Proxy("http", "proxy.example", 3128))
