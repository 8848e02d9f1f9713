"""sansnet's client and WebSocket through real proxies started on 127.0.0.1 (see
peers.py): tinyproxy (HTTP forward proxy and CONNECT, Basic auth), squid (a forward proxy
that keeps connections alive), microsocks (SOCKS5, with and without auth), ``ssh -D``
(SOCKS4a), and socat as a TLS front for tinyproxy (an https:// proxy). The origins are
sansnet servers, plain and TLS (trustme, certificate for ``localhost``), whose handler
reports what arrived: the path, the fields (a proxy that forwarded the request adds
``Via``) and the peer. Every test runs on asyncio, uvloop and trio."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import pytest
import trustme

import sansnet as net
from sansnet import InvalidArgument, ProxyError, ReadError, RemoteProtocolError, TLSError
from sansnet.transport.streams import memory_stream_pair
from tests.client.rawserver import RawServer
from tests.tcp.peers import running, socat_echo

from .peers import HTTP_AUTH, SOCKS_AUTH, ProxyServer, free_port, require, tinyproxy

pytestmark = [pytest.mark.anyio, pytest.mark.network]


def settled(proxy: ProxyServer, at_least: int) -> int:
    """``proxy.connections()`` once it reaches ``at_least`` (its log is written a little
    after the client got its answer), or what it is after 5 s."""
    deadline = time.monotonic() + 5
    while proxy.connections() < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)
    return proxy.connections()


# ---------------------------------------------------------------------------- origins


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@dataclass
class Origins:
    http: str  # http://127.0.0.1:PORT
    https: str  # https://localhost:PORT
    ws: str
    wss: str
    seen: list[net.ServeRequest]  # every request the origins received, in order


async def _handle(request: net.ServeRequest) -> Any:
    if request.path == "/redirect":
        return {"status": 302, "headers": {"Location": request.query["to"]}}
    if request.path == "/slow":

        async def drip() -> AsyncIterator[bytes]:
            for _ in range(400):  # 20 s at most: the test kills the proxy long before
                yield b"x" * 1024
                await anyio.sleep(0.05)

        return net.ServeResponse(200, {"Content-Type": "application/octet-stream"}, drip())
    return {
        "status": 200,
        "headers": {"Content-Type": "application/json"},
        "body": net.json_encode(
            {
                "path": request.target,
                "via": request.headers.get("via"),
                "proxy_authorization": request.headers.get("proxy-authorization"),
                "host": request.headers.get("host"),
            }
        ),
    }


@asynccontextmanager
async def origins(ca: trustme.CA) -> AsyncIterator[Origins]:
    seen: list[net.ServeRequest] = []

    async def handle(request: net.ServeRequest) -> Any:
        seen.append(request)
        return await _handle(request)

    async def echo(socket: net.WebSocket) -> None:
        async for message in socket:
            await socket.send(message)

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    config = net.ServeConfig(handle_request=handle, handle_web_socket=echo)
    async with (
        net.serve(0, config) as plain,
        net.serve(0, config, tls=server_tls) as secure,
    ):
        yield Origins(
            http=f"http://127.0.0.1:{plain.port}",
            https=f"https://localhost:{secure.port}",
            ws=f"ws://127.0.0.1:{plain.port}",
            wss=f"wss://localhost:{secure.port}",
            seen=seen,
        )


# ---------------------------------------------------------------- HTTP proxy, forward


async def test_plain_http_goes_to_the_proxy_in_absolute_form_with_its_credentials(
    http_proxy_auth: ProxyServer, ca: trustme.CA
) -> None:
    async with origins(ca) as origin, net.Client(proxy=http_proxy_auth.url) as client:
        before = http_proxy_auth.quiet_connections()
        response = await client.request(f"{origin.http}/a/b?c=d")
        assert response.status_code == 200
        seen = response.json()
        assert seen["path"] == "/a/b?c=d"  # tinyproxy took the absolute form and passed it on
        assert seen["via"]
        assert "tinyproxy" in seen["via"]
        assert seen["proxy_authorization"] is None  # the credentials stopped at the proxy
        assert seen["host"] == origin.http.removeprefix("http://")
        assert settled(http_proxy_auth, before + 1) > before


async def test_the_proxy_wants_credentials(http_proxy_auth: ProxyServer, ca: trustme.CA) -> None:
    bare = f"http://127.0.0.1:{http_proxy_auth.port}"
    wrong = f"http://{HTTP_AUTH[0]}:wrong@127.0.0.1:{http_proxy_auth.port}"
    async with origins(ca) as origin:
        # Plain http: the proxy's 407 is the response (as curl and httpx give it).
        response = await net.request(f"{origin.http}/", proxy=bare)
        assert response.status_code == 407
        assert "proxy-authenticate" in response.headers
        # Through CONNECT there is no response to give: a ProxyError with the status.
        with pytest.raises(ProxyError) as refused:
            await net.request(f"{origin.https}/", proxy=bare, verify=False)
        assert refused.value.status == 407
        assert "requires credentials" in str(refused.value)
        assert refused.value.proxy == bare
        with pytest.raises(ProxyError) as wrong_credentials:
            await net.socket(f"{origin.wss}/", proxy=wrong, verify=False)
        assert wrong_credentials.value.status in (401, 407)  # tinyproxy says 401
        assert "refused the credentials" in str(wrong_credentials.value)
        assert "wrong" not in str(wrong_credentials.value)  # the password is never shown
    assert not origin.seen  # nothing reached the origin


# -------------------------------------------------------------- HTTP proxy, CONNECT


async def test_https_through_a_connect_tunnel_is_verified_against_the_origin(
    http_proxy_auth: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    async with origins(ca) as origin:
        async with net.Client(proxy=http_proxy_auth.url, verify=client_tls) as client:
            for _ in range(3):
                response = await client.request(f"{origin.https}/secure")
                assert response.json()["path"] == "/secure"
                assert response.json()["via"] is None  # a tunnel: the proxy saw only bytes
                assert response.json()["proxy_authorization"] is None
        # The origin's certificate is checked inside the tunnel, with the default roots.
        with pytest.raises(TLSError, match="could not be verified"):
            await net.request(f"{origin.https}/", proxy=http_proxy_auth.url)


async def test_websockets_through_a_connect_tunnel(
    http_proxy_auth: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    async with origins(ca) as origin:
        for url in (f"{origin.ws}/chat", f"{origin.wss}/chat"):
            before = http_proxy_auth.quiet_connections()
            async with await net.socket(url, proxy=http_proxy_auth.url, verify=client_tls) as ws:
                await ws.send("hello through the tunnel")
                assert await ws.next() == "hello through the tunnel"
                await ws.send(b"\x00" * 100_000)
                assert await ws.next() == b"\x00" * 100_000
            assert settled(http_proxy_auth, before + 1) == before + 1


async def test_an_https_proxy_runs_tls_inside_tls(
    http_proxy: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext, tmp_path: Any
) -> None:
    """socat terminates TLS in front of tinyproxy: an https:// proxy. An https origin
    behind it is TLS inside TLS."""
    with tls_front(ca, http_proxy.port, tmp_path) as port:
        proxy = f"https://localhost:{port}"
        async with origins(ca) as origin:
            async with net.Client(proxy=proxy, verify=client_tls) as client:
                plain = await client.request(f"{origin.http}/p")
                assert plain.json()["via"]
                assert plain.json()["path"] == "/p"
                secure = await client.request(f"{origin.https}/s")
                assert secure.json()["path"] == "/s"
            async with await net.socket(f"{origin.wss}/", proxy=proxy, verify=client_tls) as ws:
                await ws.send("nested")
                assert await ws.next() == "nested"


@contextmanager
def tls_front(ca: trustme.CA, backend_port: int, folder: Any) -> Iterator[int]:
    """socat accepting TLS (certificate for localhost) and relaying to backend_port."""
    pem = folder / "proxy.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    port = free_port()
    listen = f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={pem},verify=0"
    with running([require("socat"), listen, f"TCP:127.0.0.1:{backend_port}"], port):
        yield port


# ---------------------------------------------------------------------------- SOCKS


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5_without_credentials(
    scheme: str, socks5_proxy: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    proxy = f"{scheme}://127.0.0.1:{socks5_proxy.port}"
    async with origins(ca) as origin:
        before = socks5_proxy.quiet_connections()
        async with net.Client(proxy=proxy, verify=client_tls) as client:
            # localhost: socks5:// resolves it here, socks5h:// sends the name
            plain = await client.request(f"http://localhost:{origin.http.rsplit(':', 1)[1]}/p")
            secure = await client.request(f"{origin.https}/s")
        assert plain.json()["path"] == "/p"
        assert plain.json()["via"] is None
        assert secure.json()["path"] == "/s"
        async with await net.socket(f"{origin.wss}/", proxy=proxy, verify=client_tls) as ws:
            await ws.send("over socks")
            assert await ws.next() == "over socks"
        assert settled(socks5_proxy, before + 3) == before + 3


async def test_socks5_with_credentials(
    socks5_proxy_auth: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    assert " " in (socks5_proxy_auth.password or "")  # percent-decoded from the URL
    async with origins(ca) as origin:
        response = await net.request(
            f"{origin.https}/auth", proxy=socks5_proxy_auth.url, verify=client_tls
        )
        assert response.json()["path"] == "/auth"
        bare = f"socks5://127.0.0.1:{socks5_proxy_auth.port}"
        with pytest.raises(ProxyError, match="requires credentials"):
            await net.request(f"{origin.http}/", proxy=bare)
        wrong = f"socks5h://{SOCKS_AUTH[0]}:nope@127.0.0.1:{socks5_proxy_auth.port}"
        with pytest.raises(ProxyError, match="refused the username and password") as refused:
            await net.socket(f"{origin.ws}/", proxy=wrong)
        assert refused.value.status == 0
        assert "nope" not in str(refused.value)


async def test_socks4a_lets_the_proxy_resolve_the_name(
    socks4a_proxy: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    proxy = f"socks4a://127.0.0.1:{socks4a_proxy.port}"
    async with origins(ca) as origin:
        response = await net.request(f"{origin.https}/4a", proxy=proxy, verify=client_tls)
        assert response.json()["path"] == "/4a"
        async with await net.socket(f"{origin.ws}/", proxy=proxy) as ws:
            await ws.send("four a")
            assert await ws.next() == "four a"


async def test_a_socks_proxy_that_cannot_reach_the_origin(socks5_proxy: ProxyServer) -> None:
    closed = free_port()  # nobody listens there
    with pytest.raises(ProxyError, match=r"could not connect to 127\.0\.0\.1:") as refused:
        await net.request(
            f"http://127.0.0.1:{closed}/", proxy=f"socks5://127.0.0.1:{socks5_proxy.port}"
        )
    assert refused.value.status == 0


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("then", ["closes", "waits"])
async def test_a_socks5_failure_cut_short_after_its_reply_code_says_why(then: str) -> None:
    """A SOCKS5 proxy that sends only VER and REP of a failure reply (5, 5: connection
    refused), then closes or says nothing more: the user got "the connection broke" (or
    a connect timeout) instead of the reason the proxy gave."""

    def proxy(conn: socket.socket, server: RawServer) -> None:
        assert _recv_exactly(conn, 3) == b"\x05\x01\x00"  # greeting: no auth
        conn.sendall(b"\x05\x00")
        _recv_exactly(conn, 10)  # CONNECT 127.0.0.1:9 (IPv4: 10 bytes)
        conn.sendall(b"\x05\x05")  # version 5, "connection refused", and no more
        if then == "waits":
            server.event("done").wait(5)

    server = RawServer(proxy)
    try:
        with anyio.fail_after(2):
            with pytest.raises(
                ProxyError, match=r"could not connect to 127\.0\.0\.1:9: connection refused\."
            ) as refused:
                await net.request(
                    "http://127.0.0.1:9/",
                    proxy=f"socks5://127.0.0.1:{server.port}",
                    timeout=net.Timeout(connect=1),
                )
    finally:
        server.stop()
    assert refused.value.status == 0
    assert refused.value.proxy == f"socks5://127.0.0.1:{server.port}"


# ---------------------------------------------------------------- failures, recovery


async def test_an_unreachable_proxy_is_a_proxy_error() -> None:
    port = free_port()
    with pytest.raises(ProxyError, match="Could not connect to the proxy") as failed:
        await net.request("http://example.invalid/", proxy=f"http://127.0.0.1:{port}")
    assert failed.value.status == 0
    assert isinstance(failed.value, net.ConnectError)


async def test_a_proxy_that_dies_mid_tunnel_then_the_pool_recovers(
    fresh_http_proxy: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    async with (
        origins(ca) as origin,
        net.Client(proxy=fresh_http_proxy.url, verify=client_tls) as client,
    ):
        assert (await client.request(f"{origin.https}/warm")).status_code == 200
        # The tunnel ends mid-body: a typed error, whichever the backend notices first
        # (the connection broke, or the body ended before its end).
        with pytest.raises((ReadError, RemoteProtocolError)):
            async with client.stream(f"{origin.https}/slow") as response:
                async for _ in response.aiter_bytes():
                    if fresh_http_proxy.running:
                        await anyio.to_thread.run_sync(fresh_http_proxy.restart)
        # The dead tunnels are gone from the pool; new requests open new ones.
        for _ in range(3):
            assert (await client.request(f"{origin.https}/again")).status_code == 200
        assert (await client.request(f"{origin.http}/plain")).status_code == 200


# ------------------------------------------------------------------------ keep-alive


async def test_a_thousand_requests_through_a_tunnel_use_one_connection(
    http_proxy: ProxyServer, ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    async with origins(ca) as origin:
        before = http_proxy.quiet_connections()
        async with net.Client(proxy=http_proxy.url, verify=client_tls) as client:
            for number in range(1000):
                response = await client.request(f"{origin.https}/{number}")
                assert response.status_code == 200
        assert settled(http_proxy, before + 1) - before <= 2


async def test_a_thousand_forwarded_requests_keep_the_proxy_connection_alive(
    squid_proxy_auth: ProxyServer, ca: trustme.CA
) -> None:
    """squid keeps its client connections alive; with Basic credentials (a password with
    a space, percent-encoded in the URL) on the pooled connection to it."""
    proxy = squid_proxy_auth
    async with origins(ca) as origin:
        before = proxy.quiet_connections()
        async with net.Client(proxy=proxy.url) as client:
            for number in range(1000):
                response = await client.request(f"{origin.http}/{number}")
                assert response.status_code == 200
                seen = response.json()
                assert seen["path"] == f"/{number}"
        assert seen["via"]
        assert "squid" in seen["via"]
        assert seen["proxy_authorization"] is None  # the credentials stopped at squid
        assert settled(proxy, before + 1) - before <= 2


# ------------------------------------------------------- the environment, NO_PROXY


async def test_the_environment_picks_the_proxy_per_url_and_redirects_are_rechecked(
    http_proxy: ProxyServer, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with origins(ca) as origin:
        port = origin.http.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", http_proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        async with net.Client() as client:
            # 127.0.0.1 is not in NO_PROXY: through the proxy ...
            assert (await client.request(f"{origin.http}/one")).json()["via"]
            # ... localhost is: direct.
            assert (await client.request(f"http://localhost:{port}/two")).json()["via"] is None
            # A redirect from a proxied origin to a NO_PROXY one goes direct.
            target = net.url_encode(f"http://localhost:{port}/landed")
            hop = await client.request(f"{origin.http}/redirect?to={target}")
            assert hop.json() == {
                "path": "/landed",
                "via": None,
                "proxy_authorization": None,
                "host": f"localhost:{port}",
            }
            assert origin.seen[-2].headers.get("via")  # the first hop went through it
            # proxy=None for one request; the pools never mix: each keeps its way.
            direct = await client.request(f"{origin.http}/direct", proxy=None)
            assert direct.json()["via"] is None
            assert (await client.request(f"{origin.http}/again")).json()["via"]
        async with net.Client(trust_env=False) as client:
            assert (await client.request(f"{origin.http}/untrusted")).json()["via"] is None


async def test_the_environment_applies_to_websockets(
    http_proxy: ProxyServer, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with origins(ca) as origin:
        before = http_proxy.quiet_connections()
        monkeypatch.setenv("ws_proxy", http_proxy.url)
        async with await net.socket(f"{origin.ws}/") as ws:
            await ws.send("via env")
            assert await ws.next() == "via env"
        assert settled(http_proxy, before + 1) == before + 1
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        async with await net.socket(f"{origin.ws}/") as ws:
            await ws.send("direct")
            assert await ws.next() == "direct"
        async with await net.socket(f"{origin.ws}/", trust_env=False) as ws:
            await ws.send("direct")
        assert settled(http_proxy, before + 1) == before + 1  # the last two went direct


async def test_proxy_and_unix_socket_are_exclusive(tmp_path: Any) -> None:
    with pytest.raises(InvalidArgument, match="proxy= or unix_socket="):
        net.Client(proxy="http://127.0.0.1:3128", unix_socket=str(tmp_path / "s"))
    with pytest.raises(InvalidArgument, match="proxy= or unix_socket="):
        await net.request("http://x/", proxy="http://127.0.0.1:3128", unix_socket="/s")
    with pytest.raises(InvalidArgument, match="proxy= or unix_socket="):
        await net.socket("ws://x/", proxy="http://127.0.0.1:3128", unix_socket="/s")
    async with net.Client(unix_socket=str(tmp_path / "s")) as client:
        # The client's Unix socket and the request's proxy: both too (the proxy was
        # ignored, the request sent in proxy form to the Unix socket's server).
        with pytest.raises(InvalidArgument, match="proxy= or unix_socket="):
            await client.request("http://x/", proxy="http://127.0.0.1:3128")
        assert client.pool.total == 0


async def test_a_bad_proxy_variable_is_named_when_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy:21")
    with pytest.raises(net.InvalidURL, match="HTTPS_PROXY"):
        net.Client()
    net.Client(trust_env=False)  # ignored when told to


# ------------------------------------------------------------------------------ CLI


def test_the_cli_takes_a_proxy(http_proxy: ProxyServer) -> None:
    """``sansnet request --proxy`` against a server in another process; --no-proxy and
    the environment too."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sansnet", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/cli"
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(
                [sys.executable, "-m", "sansnet", "request", "--no-proxy", url],
                capture_output=True,
                timeout=30,
            )
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert probe.returncode == 0, probe.stderr
        before = http_proxy.quiet_connections()
        result = subprocess.run(
            [sys.executable, "-m", "sansnet", "request", "--proxy", http_proxy.url, "-v", url],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert b"via" in result.stdout.lower()  # the echo service shows the proxy's Via
        assert settled(http_proxy, before + 1) > before
        # sansnet socket --proxy: a CONNECT tunnel to the echo service's WebSocket
        before = http_proxy.quiet_connections()
        echoed = subprocess.run(
            [
                sys.executable,
                *("-m", "sansnet", "socket", "--proxy", http_proxy.url, "--wait", "1"),
                url.replace("http", "ws", 1),
            ],
            input=b"through the proxy\n",
            capture_output=True,
            timeout=30,
        )
        assert echoed.returncode == 0, echoed.stderr
        assert echoed.stdout == b"through the proxy\n"
        assert settled(http_proxy, before + 1) > before
        # ... and the environment's proxy, unless --no-proxy
        environment = {**os.environ, "ws_proxy": f"http://127.0.0.1:{free_port()}"}
        for flags, code in ((), 1), (("--no-proxy",), 0):
            outcome = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sansnet",
                    "socket",
                    *flags,
                    "--wait",
                    "0.2",
                    url.replace("http", "ws", 1),
                ],
                input=b"x\n",
                capture_output=True,
                timeout=30,
                env=environment,
            )
            assert (outcome.returncode != 0) == bool(code), outcome.stderr
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "sansnet",
                "request",
                "--proxy",
                f"http://127.0.0.1:{free_port()}",
                url,
            ],
            capture_output=True,
            timeout=30,
        )
        assert refused.returncode != 0
        assert b"proxy" in refused.stderr.lower()
    finally:
        server.terminate()
        server.wait(15)


# -------------------------------------------------------------- proxies that fail us


async def test_a_proxy_that_cannot_reach_the_server(
    squid_proxy: ProxyServer, socks4a_proxy: ProxyServer
) -> None:
    closed = free_port()  # nobody listens there
    with pytest.raises(ProxyError, match="could not reach the server") as failed:
        await net.request(f"https://127.0.0.1:{closed}/", proxy=squid_proxy.url)
    assert failed.value.status == 503  # squid's answer to a refused CONNECT
    # ssh -D closes the connection instead of sending SOCKS4's refusal
    with pytest.raises(ProxyError, match=f"tunnel to 127.0.0.1:{closed}") as refused:
        await net.socket(f"ws://127.0.0.1:{closed}/", proxy=socks4a_proxy.url)
    assert refused.value.status == 0


async def test_a_proxy_whose_rules_forbid_the_destination(
    ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    with tinyproxy(connect_ports=(443,)) as strict:  # CONNECT to port 443 only
        async with origins(ca) as origin:
            with pytest.raises(ProxyError, match="its rules forbid this destination") as refused:
                await net.request(f"{origin.https}/", proxy=strict.url, verify=client_tls)
            assert refused.value.status == 403
            with pytest.raises(ProxyError, match="NO_PROXY, or proxy=None"):
                await net.socket(f"{origin.ws}/", proxy=strict.url)


async def test_a_proxy_of_another_kind_is_a_clear_error(
    http_proxy: ProxyServer, socks5_proxy: ProxyServer
) -> None:
    """A proxy URL whose scheme does not match the server behind it."""
    target = "http://127.0.0.1:9/"
    # tinyproxy waits for the end of a request line that SOCKS5's greeting never sends
    with pytest.raises(net.ConnectTimeout, match="did not open a tunnel"):
        await net.request(
            target, proxy=f"socks5://127.0.0.1:{http_proxy.port}", timeout=net.Timeout(connect=0.5)
        )
    with pytest.raises(net.ConnectTimeout, match="did not open a tunnel"):
        await net.request(
            target, proxy=f"socks4a://127.0.0.1:{http_proxy.port}", timeout=net.Timeout(connect=0.5)
        )
    # A server that is no proxy at all (socat echoing our bytes back): its "replies" are
    # our own requests, which no SOCKS client mistakes for an answer.
    with socat_echo() as echo:
        with pytest.raises(ProxyError, match="does not speak SOCKS5: it chose the login"):
            await net.request(target, proxy=f"socks5://127.0.0.1:{echo}")
        with pytest.raises(ProxyError, match="does not speak SOCKS4a"):
            await net.request(target, proxy=f"socks4a://127.0.0.1:{echo}")
    with pytest.raises(ProxyError, match=r"did not answer CONNECT 127\.0\.0\.1:9 with HTTP"):
        # microsocks answers a connection that does not start as SOCKS5, then drops it
        await net.socket("ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{socks5_proxy.port}")


async def test_a_proxy_that_never_answers_is_a_connect_timeout() -> None:
    """A listening socket nobody accepts from: the TCP connection opens (the kernel's
    backlog) and the CONNECT gets no answer."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(net.ConnectTimeout, match="did not open a tunnel"):
            await net.request("https://example.com/", proxy=proxy, timeout=net.Timeout(connect=0.3))
        with pytest.raises(net.ConnectTimeout):
            await net.socket(
                "wss://example.com/", proxy=proxy.replace("http", "socks5h"), timeout=0.3
            )


async def test_socks4a_has_no_ipv6(socks4a_proxy: ProxyServer) -> None:
    with pytest.raises(ProxyError, match="SOCKS4 has no IPv6"):
        await net.request("http://[::1]:9/", proxy=socks4a_proxy.url)


async def test_socks_without_socksio_says_which_extra(
    socks5_proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # as if it were not installed
    with pytest.raises(ProxyError, match=r"sansnet\[socks\]"):
        await net.request("http://127.0.0.1:9/", proxy=socks5_proxy.url)


async def test_socks5_credentials_longer_than_255_bytes_are_a_proxy_error(
    socks5_proxy_auth: ProxyServer,
) -> None:
    """RFC 1929 gives the username and the password one length byte each: longer ones
    (UTF-8 bytes, so 128 "é" are 256) are a ProxyError, not an OverflowError."""
    for username, password in ("u", "p" * 256), ("é" * 128, "p"):
        proxy = f"socks5h://{username}:{password}@127.0.0.1:{socks5_proxy_auth.port}"
        with pytest.raises(ProxyError, match="at most 255 bytes") as failed:
            await net.request("http://127.0.0.1:9/", proxy=proxy)
        assert failed.value.status == 0
        assert "p" * 256 not in str(failed.value)


async def test_socks4a_refuses_a_username_with_nul(
    socks4a_proxy: ProxyServer, ca: trustme.CA
) -> None:
    """SOCKS4 ends the user id at the first NUL: "a%00evil.example" would send the
    proxy user id "a", and SOCKS4a's host name field would be read from the rest."""
    async with origins(ca) as origin:
        proxy = f"socks4a://a%00evil.example@127.0.0.1:{socks4a_proxy.port}"
        with pytest.raises(ProxyError, match="NUL") as refused:
            await net.request(f"{origin.http}/", proxy=proxy)
        assert refused.value.status == 0


class OneShotProxy:
    """A listener on 127.0.0.1 that reads one request head (into ``heads``) and writes
    ``answer``: :meth:`answer_once` runs in a thread beside the client."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def __enter__(self) -> OneShotProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()

    def answer_once(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            self.heads.append(head)
            conn.sendall(self.answer)


async def test_an_ipv6_zone_stays_out_of_the_connect_request() -> None:
    """The zone of ``https://[fe80::1%25eth0]/`` names one of our interfaces: the
    proxy gets ``CONNECT [fe80::1]:443`` (it wrongly got the zone, with a raw "%")."""
    with OneShotProxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n") as proxy:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, proxy.answer_once)
            with pytest.raises(ProxyError):
                await net.request("https://[fe80::1%25eth0]/", proxy=proxy.url, timeout=5)
    heads = proxy.heads
    assert heads[0].startswith(b"CONNECT [fe80::1]:443 HTTP/1.1\r\n")
    assert b"\r\nHost: [fe80::1]:443\r\n" in heads[0]


async def test_a_forwarded_request_has_no_zone_and_the_trace_masks_the_proxy_credentials() -> None:
    """Forward mode: ``http://[fe80::1%25eth0]:8080/p`` goes to the proxy as
    ``GET http://[fe80::1]:8080/p`` (the zone went along), and the trace of
    ``sansnet request -v`` showed the proxy's password (``Proxy-Authorization``)."""
    traced: list[bytes] = []
    with OneShotProxy(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as proxy:
        url = proxy.url.replace("http://", "http://alice:s3cret@")
        async with (
            anyio.create_task_group() as group,
            net.Client(proxy=url, trace=lambda kind, head: traced.append(head)) as client,
        ):
            group.start_soon(anyio.to_thread.run_sync, proxy.answer_once)
            response = await client.request("http://[fe80::1%25eth0]:8080/p", timeout=5)
            assert response.body == b"ok"
    heads = proxy.heads
    credentials = base64.b64encode(b"alice:s3cret")
    assert heads[0].startswith(b"GET http://[fe80::1]:8080/p HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic " + credentials + b"\r\n" in heads[0]
    assert b"\r\nProxy-Authorization: Basic ***\r\n" in traced[0]
    assert credentials not in traced[0]


async def test_a_proxy_does_not_change_requests_on_streams_of_open_stream() -> None:
    """Proxies do not apply with ``open_stream=``: the request goes in origin form, with
    no Proxy-Authorization (a given ``proxy=`` switched it to absolute form)."""
    heads: list[bytes] = []

    async def open_stream(origin: object, timeout: float | None) -> Any:
        ours, theirs = memory_stream_pair()

        async def answer() -> None:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await theirs.read()
            heads.append(head)
            await theirs.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        group.start_soon(answer)
        return ours

    async with (
        anyio.create_task_group() as group,
        net.Client(open_stream=open_stream, proxy="http://u:p@proxy.test:3128") as c,
    ):
        assert (await c.request("http://app.test/hello", timeout=5)).status_code == 200
    assert heads[0].startswith(b"GET /hello HTTP/1.1\r\n")
    assert b"proxy-authorization" not in heads[0].lower()
