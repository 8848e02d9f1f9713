"""net.serve with TLS against clients no one here wrote (httpx, curl, the websockets
library), and Lune's "0.0.0.0 is reachable via localhost" case, run inside a private
network namespace so nothing listens on a real interface."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

import sansnet
from sansnet import ServeConfig, ServeRequest
from tests.websocket.peers import run_websockets_client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


async def hello(request: ServeRequest) -> str:
    return f"secure {request.path}"


async def echo(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_httpx_over_https(ca: trustme.CA, server_context: ssl.SSLContext) -> None:
    config = ServeConfig(handle_request=hello, tls=server_context)
    async with sansnet.serve(0, config) as handle:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        async with httpx.AsyncClient(verify=client_context) as client:
            for path in ("/a", "/b"):  # keep-alive over TLS
                response = await client.get(handle.url + path)
                assert response.text == f"secure {path}"


async def test_curl_over_https_with_cert_files(ca: trustme.CA, tmp_path: Path) -> None:
    certificate = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.private_key_pem.write_to_path(str(key_file))
    with cert_file.open("wb") as out:
        for blob in certificate.cert_chain_pems:
            out.write(blob.bytes())
    ca.cert_pem.write_to_path(str(ca_file))
    config = ServeConfig(handle_request=hello, tls=(str(cert_file), str(key_file)))
    async with sansnet.serve(0, config) as handle:
        result = await anyio.run_process(
            ["curl", "-sS", "--max-time", "10", "--cacert", str(ca_file), handle.url + "/curl"],
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"secure /curl"


# Python 3.10's asyncio leaves the websockets client's SSL transport to the garbage
# collector when its thread's loop closes: a warning about the peer library, not us.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_websockets_client_over_wss(ca: trustme.CA, server_context: ssl.SSLContext) -> None:
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def scenario(url: str) -> Any:
        async with connect(url, ssl=client_context) as client:
            await client.send("over wss")
            return await client.recv()

    config = ServeConfig(handle_web_socket=echo, tls=server_context)
    async with sansnet.serve(0, config) as handle:
        url = handle.url.replace("https", "wss", 1) + "/"
        assert (
            await anyio.to_thread.run_sync(run_websockets_client, lambda: scenario(url))
            == "over wss"
        )


async def test_tls_handshake_failures_do_not_stop_the_server(
    server_context: ssl.SSLContext,
) -> None:
    config = ServeConfig(handle_request=hello, tls=server_context)
    async with sansnet.serve(0, config) as handle:
        with pytest.raises(sansnet.TLSError):
            await sansnet.request(handle.url)  # our client does not trust the test CA
        async with await anyio.connect_tcp("127.0.0.1", handle.port) as plain:
            await plain.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to a TLS port
            with anyio.move_on_after(5):
                try:
                    await plain.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
        response = await sansnet.request(handle.url, verify=False)
        assert response.text == "secure /"


async def test_stop_closes_a_connection_partway_through_its_tls_handshake(
    ca: trustme.CA, server_context: ssl.SSLContext
) -> None:
    """After stop() returns every connection is closed, one still in its TLS handshake
    too. On trio it stayed open (the cancelled handshake left the socket unclosed: a
    client finishing it hung); on asyncio the handshake went on after stop() and the
    connection it made was never served nor closed."""
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    config = ServeConfig(handle_request=hello, tls=server_context)
    server = sansnet.serve(0, config)
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        pending = socket.create_connection(("127.0.0.1", handle.port))  # no ClientHello yet
        with pending:
            # Accepted in order: once a later connection is answered, this one is taken.
            answered = await sansnet.request(handle.url, verify=client_context, timeout=5)
            assert answered.text == "secure /"
            with anyio.fail_after(10):
                await handle.stop()

            def finish_the_handshake() -> bytes | str:
                pending.settimeout(5)
                try:
                    with client_context.wrap_socket(
                        pending, server_hostname="127.0.0.1", do_handshake_on_connect=True
                    ) as tls:
                        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        return tls.recv(100)
                except TimeoutError:
                    return "the connection is still open"
                except OSError:
                    return "closed"

            result = await anyio.to_thread.run_sync(finish_the_handshake)
    assert result in (b"", "closed")


LUNE_ANY_ADDRESS = textwrap.dedent(
    """
    import anyio, sansnet

    async def main():
        config = sansnet.ServeConfig(handle_request=lambda request: "reachable", address="0.0.0.0")
        async with sansnet.serve(0, config) as handle:
            assert handle.ip == "0.0.0.0"
            response = await sansnet.request(f"http://localhost:{handle.port}/")
            print(response.text)

    anyio.run(main)
    """
)


@pytest.mark.skipif(
    shutil.which("unshare") is None, reason="needs unshare(1) for a private network namespace"
)
def test_lune_any_address_is_reachable_via_localhost_in_a_private_namespace() -> None:
    """Binds 0.0.0.0 only inside a new network namespace (loopback only), so the test
    never listens on a real interface."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            f'ip link set lo up && exec "{sys.executable}" -c "$0"',
            LUNE_ANY_ADDRESS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reachable"
