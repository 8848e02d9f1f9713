"""TLS: verified by default, custom CA bundles and contexts, client certificates,
verification off on request; IPv6 and IP-literal URLs."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Callable

import pytest

import sansnet
from tests.network import has_ipv6_loopback

from .conftest import Servers
from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_untrusted_certificate(servers: Servers, backend: str) -> None:
    port = servers.https.rsplit(":", 1)[1]
    async with sansnet.Client(backend=backend) as client:  # type: ignore[arg-type]
        with pytest.raises(sansnet.TLSError, match=f"localhost:{port}.*verify") as info:
            await client.request(f"{servers.https}/echo")
        assert client.pool.total == 0
    assert isinstance(info.value, sansnet.ConnectError), "A TLS failure is a ConnectError."


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_verify_options(servers: Servers, backend: str) -> None:
    context = ssl.create_default_context(cafile=servers.certs.ca_file)
    async with sansnet.Client(backend=backend) as client:  # type: ignore[arg-type]
        for verify in (False, servers.certs.ca_file, context):
            response = await client.request(f"{servers.https}/echo", verify=verify)
            assert response.json()["scheme"] == "https", f"verify={verify!r} connects."
    async with sansnet.Client(verify=servers.certs.ca_file, backend=backend) as client:  # type: ignore[arg-type]
        ip = servers.https.replace("localhost", "127.0.0.1")
        assert (await client.request(f"{ip}/status/200")).ok, "IP-literal https URLs verify."
        assert (await client.request(f"{servers.https}/status/200")).ok
        assert client.pool.idle == 2


@pytest.fixture(scope="module")
def ca_directory(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA directory as OpenSSL reads it: files named by subject hash (openssl rehash)."""
    directory = tmp_path_factory.mktemp("cas")
    servers.certs.ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    try:
        rehash = subprocess.run(["openssl", "rehash", str(directory)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("the openssl command is not installed: no CA directory can be indexed.")
    if rehash.returncode != 0:
        pytest.skip("openssl rehash failed: no CA directory can be indexed.")
    return str(directory)


async def test_ca_directory(servers: Servers, ca_directory: str) -> None:
    async with sansnet.Client(verify=ca_directory) as client:
        assert (await client.request(f"{servers.https}/status/200")).ok, "A CA directory works."


async def test_ssl_cert_file_environment(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", servers.certs.ca_file)
    async with sansnet.Client() as client:
        assert (await client.request(f"{servers.https}/status/200")).ok, (
            "SSL_CERT_FILE is honoured by verify=True."
        )


async def test_client_certificate(servers: Servers) -> None:
    certs = servers.certs
    for cert in (certs.client_cert_file, (certs.client_cert, certs.client_key)):
        async with sansnet.Client(verify=certs.ca_file, cert=cert) as client:
            response = await client.request(f"{servers.mtls}/echo")
            assert response.json()["scheme"] == "https", f"cert={cert!r} is presented."
    async with sansnet.Client(verify=certs.ca_file) as client:
        # TLS 1.3: the server checks the client certificate after the handshake, so the
        # refusal shows on the first read.
        with pytest.raises((sansnet.TLSError, sansnet.ReadError, sansnet.RemoteProtocolError)):
            await client.request(f"{servers.mtls}/echo")
        assert client.pool.total == 0
    with pytest.raises(ValueError, match="own SSLContext"):
        await sansnet.request(
            f"{servers.mtls}/echo", verify=ssl.create_default_context(), cert=certs.client_cert_file
        )


async def test_tls_options_of_the_wrong_shape_are_invalid_argument(servers: Servers) -> None:
    """Issue: request(url, verify=None) raised a bare TypeError (os.fspath(None)),
    cert=("c",) an IndexError, cert=[cert, key] "unhashable type: 'list'"."""
    url = f"{servers.https}/status/200"
    with pytest.raises(sansnet.InvalidArgument, match=r"^verify must be True"):
        await sansnet.request(url, verify=None)  # type: ignore[arg-type]
    with pytest.raises(sansnet.InvalidArgument, match=r"^cert must be None"):
        await sansnet.request(url, cert=("client.pem",))  # type: ignore[arg-type]
    with pytest.raises(sansnet.InvalidArgument, match=r"\(certificate, key\) tuple"):
        await sansnet.request(url, cert=["client.pem", "client.key"])  # type: ignore[arg-type]
    with pytest.raises(sansnet.InvalidArgument, match=r"^verify must be True"):
        await sansnet.socket(url.replace("https", "wss"), verify=None)  # type: ignore[arg-type]


async def test_bad_certificate_files(servers: Servers, tmp_path: object) -> None:
    import pathlib

    garbage = pathlib.Path(str(tmp_path)) / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(sansnet.TLSError, match=r"garbage\.pem"):
        await sansnet.request(f"{servers.https}/status/200", verify=str(garbage))
    with pytest.raises(sansnet.TLSError, match=r"garbage\.pem"):
        await sansnet.request(
            f"{servers.https}/status/200", verify=servers.certs.ca_file, cert=str(garbage)
        )


async def test_https_to_a_plain_http_server(servers: Servers) -> None:
    port = servers.uvicorn.rsplit(":", 1)[1]
    with pytest.raises(sansnet.TLSError, match=f"127.0.0.1:{port}"):
        await sansnet.request(f"https://127.0.0.1:{port}/status/200")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_ipv6_loopback(raw_server: Callable[..., RawServer], backend: str) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while (head := server.read_request(conn)) is not None:
            conn.sendall(response(head.split(b"\r\n")[1]))

    server = raw_server(handler, "::1")
    async with sansnet.Client(backend=backend) as client:  # type: ignore[arg-type]
        result = await client.request(f"{server.url}/v6")
        assert result.body == f"Host: [::1]:{server.port}".encode(), "Host has the brackets."
        assert (await client.request(f"{server.url}/again")).ok
    assert server.accepted == 1, "The IPv6 connection was reused."


async def test_the_pool_limits_hold_across_tls_settings(servers: Servers) -> None:
    """One pool per client: max_connections counts the connections of every TLS setting
    a request asks for (a new SSLContext per request used to open a pool each, and
    keep its connections until the client closed)."""
    limits = sansnet.PoolLimits(max_connections=2)
    async with sansnet.Client(limits=limits) as client:
        for _ in range(40):
            context = ssl.create_default_context(cafile=servers.certs.ca_file)
            assert (await client.request(f"{servers.https}/status/200", verify=context)).ok
            assert client.pool.total <= 2
        assert len(client._transports) <= 32, "Settings that came and went are forgotten."
        # A connection serves only the TLS setting it was opened with.
        assert (await client.request(f"{servers.https}/status/200", verify=False)).ok
        assert (
            await client.request(f"{servers.https}/status/200", verify=servers.certs.ca_file)
        ).ok
        assert (await client.request(f"{servers.https}/status/200", verify=False)).ok
        assert client.pool.total == 2
        assert client.pool.idle == 2


async def test_settings_used_once_leave_keep_alive_to_the_others(servers: Servers) -> None:
    async with sansnet.Client() as client:  # max_keepalive 20
        for _ in range(25):
            context = ssl.create_default_context(cafile=servers.certs.ca_file)
            assert (await client.request(f"{servers.https}/status/200", verify=context)).ok
        for _ in range(3):
            response = await client.request(
                f"{servers.https}/status/200", verify=servers.certs.ca_file
            )
            assert response.ok
        assert client.pool.idle <= 20
        reused = [conn for idle in client.pool._idle.values() for conn in idle if conn.reused]
        assert len(reused) == 1, "The settings in use keep their connection."


async def test_tls_settings_do_not_split_plain_http_connections(servers: Servers) -> None:
    async with sansnet.Client() as client:
        for _ in range(3):
            context = ssl.create_default_context(cafile=servers.certs.ca_file)
            assert (await client.request(f"{servers.uvicorn}/status/200", verify=context)).ok
        assert client.pool.total == 1, "http:// has no TLS: one connection serves them all."
