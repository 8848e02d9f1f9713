"""The proxy fixtures proxy for real: each is used by httpx (or by a raw handshake, for
what httpx does not speak) to reach the origin, its auth refuses wrong credentials, its
own log counts the connections, and a restarted proxy kills its tunnels and serves again
on the same port. tinyproxy closes a client connection after each forwarded response;
squid keeps it alive. sansnet's own proxy tests build on these fixtures."""

from __future__ import annotations

import base64
import socket
import struct
import time
from urllib.parse import urlsplit

import httpx
import pytest

from .peers import HTTP_AUTH, HTTP_AUTH_SQUID, SOCKS_AUTH, HttpsOrigin, ProxyServer

pytestmark = pytest.mark.network


def settled(proxy: ProxyServer, expected: int) -> int:
    """``proxy.connections()`` once it reaches ``expected`` (its log is written a little
    after the client got its answer), or what it is after 5 s."""
    deadline = time.monotonic() + 5
    while proxy.connections() < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # and nothing more arrives
    return proxy.connections()


def origin_port(origin_url: str) -> int:
    port = urlsplit(origin_url).port
    assert port is not None
    return port


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read off ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: origin.test\r\n\r\n".encode())
    return read_response(sock)


def connect_tunnel(
    proxy: ProxyServer, port: int, expect: bytes = b"200", credentials: bool = False
) -> socket.socket:
    """A CONNECT to 127.0.0.1:``port`` through the HTTP proxy, answered ``expect``; with
    ``credentials``, the proxy's own in a Proxy-Authorization header."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    try:
        header = ""
        if credentials:
            token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
            header = f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall(
            f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            assert chunk, f"closed after {head!r}"
            head += chunk
        assert head.split(b" ")[1] == expect, head
    except BaseException:
        sock.close()
        raise
    return sock


def socks5_tunnel(
    proxy: ProxyServer, host: str, port: int, auth: tuple[str, str] | None = None
) -> socket.socket:
    """A SOCKS5 CONNECT to ``host``:``port`` (a name: the server resolves it)."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    try:
        sock.sendall(b"\x05\x01" + (b"\x02" if auth else b"\x00"))
        assert sock.recv(2) == (b"\x05\x02" if auth else b"\x05\x00")
        if auth:
            user, password = (part.encode() for part in auth)
            sock.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
            if sock.recv(2) != b"\x01\x00":
                raise PermissionError("refused")
        sock.sendall(
            b"\x05\x01\x00\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port)
        )
        reply = sock.recv(4)
        assert reply[:2] == b"\x05\x00", reply
        sock.recv({1: 4, 4: 16}[reply[3]] + 2)  # the bound address and port
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------- tinyproxy


def forwarded_by_httpx(
    proxy: ProxyServer, origin_url: str, count: int, via: str, *, close: bool = False
) -> None:
    """``count`` GETs through ``proxy`` on one httpx client, each answered by the origin
    for its own path and marked by the proxy's Via field (it went through ``via``); with
    ``close``, each asks for ``Connection: close``."""
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    headers = {"Connection": "close"} if close else {}
    with httpx.Client(proxy=proxy.url, headers=headers) as client:
        answers = [client.get(f"{origin_url}/through?n={n}") for n in range(count)]
    for n, answer in enumerate(answers):
        assert answer.status_code == 200
        assert answer.json()["path"] == f"/through?n={n}"
        assert via in answer.json()["headers"]["via"]


def test_http_proxy_forwards_and_logs_a_connection_per_request(
    http_proxy: ProxyServer, origin_url: str
) -> None:
    before = http_proxy.quiet_connections()
    # tinyproxy closes the client connection after each forwarded response, without a
    # Connection: close: a client that reuses the connection races that close, which
    # httpx lost now and then ("Server disconnected without sending a response"), so
    # the requests ask for the close themselves (as bench/bench_proxy.py's do).
    forwarded_by_httpx(http_proxy, origin_url, 3, "tinyproxy", close=True)
    assert settled(http_proxy, before + 3) == before + 3


def test_http_proxy_tunnels_connect_to_any_port(http_proxy: ProxyServer, origin_url: str) -> None:
    before = http_proxy.quiet_connections()
    with connect_tunnel(http_proxy, origin_port(origin_url)) as tunnel:
        first, second = get(tunnel, "/one"), get(tunnel, "/two")  # one tunnel, kept alive
    assert first.startswith(b"HTTP/1.1 200")
    assert b'"path": "/one"' in first
    assert second.startswith(b"HTTP/1.1 200")
    assert b'"path": "/two"' in second
    assert b"tinyproxy" not in second  # a tunnel: tinyproxy adds no Via to it
    assert settled(http_proxy, before + 1) == before + 1


def test_http_proxy_auth_refuses_without_or_with_wrong_credentials(
    http_proxy_auth: ProxyServer, origin_url: str
) -> None:
    assert http_proxy_auth.url == f"http://alice:s3cret.pass@127.0.0.1:{http_proxy_auth.port}"
    bare = f"http://127.0.0.1:{http_proxy_auth.port}"
    wrong = f"http://alice:wrong@127.0.0.1:{http_proxy_auth.port}"
    with httpx.Client(proxy=bare) as client:
        refused = client.get(f"{origin_url}/secret")
    assert refused.status_code == 407
    assert refused.headers["proxy-authenticate"] == 'Basic realm="Tinyproxy"'
    # tinyproxy 1.11.1 answers wrong credentials (user or password) with 401 and
    # WWW-Authenticate, not 407: a client must treat both as "proxy auth refused"
    with httpx.Client(proxy=wrong) as client:
        refused = client.get(f"{origin_url}/secret")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="Tinyproxy"'
    assert refused.headers["server"].startswith("tinyproxy")  # not the origin's 401
    port = origin_port(origin_url)
    connect_tunnel(http_proxy_auth, port, expect=b"407").close()  # CONNECT, no credentials
    with connect_tunnel(http_proxy_auth, port, credentials=True) as tunnel:
        assert get(tunnel, "/tunnelled").startswith(b"HTTP/1.1 200")
    with httpx.Client(proxy=http_proxy_auth.url) as client:
        answer = client.get(f"{origin_url}/secret")
    assert answer.status_code == 200
    assert answer.json()["path"] == "/secret"
    assert "proxy-authorization" not in answer.json()["headers"]  # not passed on
    assert (http_proxy_auth.username, http_proxy_auth.password) == HTTP_AUTH


def test_fresh_http_proxy_restart_kills_tunnels_and_serves_again(
    fresh_http_proxy: ProxyServer, origin_url: str
) -> None:
    port = origin_port(origin_url)
    url = fresh_http_proxy.url
    tunnel = connect_tunnel(fresh_http_proxy, port)
    assert get(tunnel, "/before").startswith(b"HTTP/1.1 200")
    count = settled(fresh_http_proxy, 2)  # start()'s probe and the tunnel
    assert count == 2
    fresh_http_proxy.restart()
    assert_dead(tunnel)  # the tunnel died with the proxy
    assert fresh_http_proxy.url == url
    assert fresh_http_proxy.running
    with connect_tunnel(fresh_http_proxy, port) as again:
        assert get(again, "/after").startswith(b"HTTP/1.1 200")
    assert settled(fresh_http_proxy, count + 2) == count + 2  # the new probe, the tunnel


# ---------------------------------------------------------------- squid


def test_squid_proxy_keeps_the_client_connection_alive(
    squid_proxy: ProxyServer, origin_url: str
) -> None:
    before = squid_proxy.quiet_connections()
    forwarded_by_httpx(squid_proxy, origin_url, 50, "squid")
    # 50 forwarded requests, one client connection, by squid's own access log
    assert settled(squid_proxy, before + 1) == before + 1


def test_squid_proxy_tunnels_connect_to_a_tls_origin_and_any_port(
    squid_proxy: ProxyServer, origin_url: str, https_origin_server: HttpsOrigin
) -> None:
    before = squid_proxy.quiet_connections()
    verify = https_origin_server.client_context()
    with httpx.Client(proxy=squid_proxy.url, verify=verify) as client:
        answers = [client.get(f"{https_origin_server.url}/tls{n}") for n in range(3)]
    assert [answer.json()["path"] for answer in answers] == ["/tls0", "/tls1", "/tls2"]
    assert "via" not in answers[0].json()["headers"]  # a tunnel: squid saw only TLS
    assert settled(squid_proxy, before + 1) == before + 1  # one tunnel, kept alive
    with connect_tunnel(squid_proxy, origin_port(origin_url)) as tunnel:
        first, second = get(tunnel, "/one"), get(tunnel, "/two")
    assert b'"path": "/one"' in first
    assert b'"path": "/two"' in second
    assert settled(squid_proxy, before + 2) == before + 2


def test_squid_proxy_auth_refuses_without_or_with_wrong_credentials(
    squid_proxy_auth: ProxyServer, origin_url: str, https_origin_server: HttpsOrigin
) -> None:
    port = squid_proxy_auth.port
    assert squid_proxy_auth.url == f"http://alice:s3cret%20pass@127.0.0.1:{port}"
    assert (squid_proxy_auth.username, squid_proxy_auth.password) == HTTP_AUTH_SQUID
    for proxy in (f"http://127.0.0.1:{port}", f"http://alice:wrong@127.0.0.1:{port}"):
        with httpx.Client(proxy=proxy) as client:
            refused = client.get(f"{origin_url}/secret")
        assert refused.status_code == 407
        assert refused.headers["proxy-authenticate"] == 'Basic realm="sansnet-squid"'
    connect_tunnel(squid_proxy_auth, origin_port(origin_url), expect=b"407").close()
    with connect_tunnel(squid_proxy_auth, origin_port(origin_url), credentials=True) as tunnel:
        assert get(tunnel, "/tunnelled").startswith(b"HTTP/1.1 200")
    before = squid_proxy_auth.quiet_connections()
    with httpx.Client(proxy=squid_proxy_auth.url) as client:
        answers = [client.get(f"{origin_url}/secret{n}") for n in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert "proxy-authorization" not in answers[0].json()["headers"]  # not passed on
    assert settled(squid_proxy_auth, before + 1) == before + 1  # kept alive, auth and all
    verify = https_origin_server.client_context()
    with httpx.Client(proxy=squid_proxy_auth.url, verify=verify) as client:
        assert client.get(f"{https_origin_server.url}/s").json()["path"] == "/s"


def test_fresh_squid_proxy_restart_kills_tunnels_and_serves_again(
    fresh_squid_proxy: ProxyServer, origin_url: str
) -> None:
    port = origin_port(origin_url)
    url = fresh_squid_proxy.url
    tunnel = connect_tunnel(fresh_squid_proxy, port)
    assert get(tunnel, "/before").startswith(b"HTTP/1.1 200")
    # start()'s probe; squid logs a tunnel when it ends, and this one dies unlogged
    assert settled(fresh_squid_proxy, 1) == 1
    fresh_squid_proxy.restart()
    assert_dead(tunnel)
    assert fresh_squid_proxy.url == url
    assert fresh_squid_proxy.running
    with connect_tunnel(fresh_squid_proxy, port) as again:
        assert get(again, "/after").startswith(b"HTTP/1.1 200")
    assert settled(fresh_squid_proxy, 3) == 3  # the new probe, the tunnel


# ---------------------------------------------------------------- microsocks


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_proxy_connects_through_httpx(
    socks5_proxy: ProxyServer, origin_url: str, scheme: str
) -> None:
    assert socks5_proxy.url == f"socks5://127.0.0.1:{socks5_proxy.port}"
    before = socks5_proxy.quiet_connections()
    proxy = socks5_proxy.url.replace("socks5://", f"{scheme}://")
    target = origin_url if scheme == "socks5" else origin_url.replace("127.0.0.1", "localhost")
    with httpx.Client(proxy=proxy) as client:
        answers = [client.get(f"{target}/s{n}") for n in range(3)]
    assert [answer.json()["path"] for answer in answers] == ["/s0", "/s1", "/s2"]
    assert settled(socks5_proxy, before + 1) == before + 1  # one tunnel, kept alive


def test_socks5_proxy_auth_takes_the_password_with_a_space(
    socks5_proxy_auth: ProxyServer, origin_url: str
) -> None:
    port = socks5_proxy_auth.port
    assert socks5_proxy_auth.url == f"socks5://alice:s3cret%20pass@127.0.0.1:{port}"
    before = socks5_proxy_auth.quiet_connections()
    with httpx.Client(proxy=socks5_proxy_auth.url) as client:
        assert client.get(f"{origin_url}/in").json()["path"] == "/in"
    with pytest.raises(PermissionError):
        socks5_tunnel(socks5_proxy_auth, "127.0.0.1", origin_port(origin_url), ("alice", "wrong"))
    with socks5_tunnel(
        socks5_proxy_auth, "localhost", origin_port(origin_url), SOCKS_AUTH
    ) as tunnel:
        assert get(tunnel, "/raw").startswith(b"HTTP/1.1 200")
    assert settled(socks5_proxy_auth, before + 2) == before + 2  # the refused ones: none


def test_fresh_socks5_proxy_restart_kills_tunnels_and_serves_again(
    fresh_socks5_proxy: ProxyServer, origin_url: str
) -> None:
    port = origin_port(origin_url)
    tunnel = socks5_tunnel(fresh_socks5_proxy, "127.0.0.1", port)
    assert get(tunnel, "/before").startswith(b"HTTP/1.1 200")
    fresh_socks5_proxy.restart()
    assert_dead(tunnel)
    with socks5_tunnel(fresh_socks5_proxy, "127.0.0.1", port) as again:
        assert get(again, "/after").startswith(b"HTTP/1.1 200")
    assert settled(fresh_socks5_proxy, 2) == 2


# ---------------------------------------------------------------- ssh -D


def test_socks4a_proxy_resolves_the_host_name(socks4a_proxy: ProxyServer, origin_url: str) -> None:
    assert socks4a_proxy.url == f"socks4a://127.0.0.1:{socks4a_proxy.port}"
    before = socks4a_proxy.quiet_connections()
    port = origin_port(origin_url)
    with socket.create_connection((socks4a_proxy.host, socks4a_proxy.port), timeout=5) as sock:
        # SOCKS4a: the address 0.0.0.1 means "the host name follows the user id"
        sock.sendall(b"\x04\x01" + struct.pack(">H", port) + b"\x00\x00\x00\x01sn\x00localhost\x00")
        reply = sock.recv(8)
        assert reply[:2] == b"\x00\x5a", reply  # granted
        first, second = get(sock, "/4a-one"), get(sock, "/4a-two")
    assert b'"path": "/4a-one"' in first
    assert b'"path": "/4a-two"' in second
    assert settled(socks4a_proxy, before + 1) == before + 1


def assert_dead(sock: socket.socket) -> None:
    """``sock``'s peer is gone: a request on it gets EOF or a reset. Closes it."""
    with sock:
        try:
            sock.sendall(b"GET /late HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            assert sock.recv(65536) == b""
        except OSError:
            pass
