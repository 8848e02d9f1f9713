"""Closing a TLS stream sends our TLS close_notify first, on every backend, to a strict
peer (Python's ssl with ``suppress_ragged_eofs=False``): a close without one reads as
a truncated stream ("EOF occurred in violation of protocol").

Issue: on trio, TLS is anyio's TLSStream opened with ``standard_compatible=False``,
whose aclose() closes the socket without a close_notify; asyncio and uvloop sent one."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

import sansnet as net
from sansnet.transport.streams import AnyioStream

from .peers import one_connection

pytestmark = pytest.mark.anyio

CLEAN = "clean EOF"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: the server's certificate names 127.0.0.1 and
    localhost, the client trusts the CA that issued it."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def strict_server(
    server_context: ssl.SSLContext, outcome: dict[str, object]
) -> Callable[[socket.socket], None]:
    """A TLS server for one_connection() that reads to the end as a strict peer."""

    def serve(connection: socket.socket) -> None:
        with server_context.wrap_socket(
            connection, server_side=True, suppress_ragged_eofs=False
        ) as tls:
            _read_to_the_end(tls, outcome)

    return serve


def _read_to_the_end(tls: ssl.SSLSocket, outcome: dict[str, object]) -> None:
    """Read ``tls`` until its end: a clean EOF (the peer's close_notify) or the error
    a strict peer sees; in ``outcome``, what was read and how it ended."""
    received = bytearray()
    try:
        while data := tls.recv(65536):
            received += data
        outcome["end"] = CLEAN
    except (OSError, ssl.SSLError) as exc:
        outcome["end"] = repr(exc)
    outcome["received"] = bytes(received)


async def test_our_client_closing_sends_close_notify(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = contexts
    outcome: dict[str, object] = {}
    with one_connection(strict_server(server_context, outcome)) as port:
        stream = await net.tcp.connect(
            "127.0.0.1", port, tls=client_context, server_hostname="localhost"
        )
        await stream.write(b"a complete message")
        await stream.close()
    # one_connection joined the peer's thread: it read to the end.
    assert outcome == {"end": CLEAN, "received": b"a complete message"}


async def test_a_peer_closing_without_close_notify_reads_as_the_end(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """The other way round, we are lenient, on every backend alike (docs/transports.md):
    a TLS peer that closes the TCP connection without its close_notify reads as the end
    of the stream, b"" and b"" again, after all it sent, as asyncio's ssl and anyio's
    TLS (``standard_compatible=False``) treat it, and as HTTP clients do (HTTP's own
    framing tells a body cut short)."""
    server_context, client_context = contexts

    def rude_server(connection: socket.socket) -> None:
        tls = server_context.wrap_socket(connection, server_side=True)
        tls.sendall(b"all of it")
        socket.socket(fileno=tls.detach()).close()  # TCP's FIN, no close_notify

    with one_connection(rude_server) as port:
        async with await net.tcp.connect(
            "127.0.0.1", port, tls=client_context, server_hostname="localhost"
        ) as stream:
            assert await stream.read(timeout=5) == b"all of it"
            assert await stream.read(timeout=5) == b""
            assert await stream.read(timeout=5) == b""


async def test_our_server_closing_sends_close_notify(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = contexts
    outcome: dict[str, object] = {}

    async def answer(stream: net.tcp.TcpStream) -> None:
        await stream.write(b"a full answer")  # then return: the server closes the stream

    def strict_client(port: int) -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as connection,
            client_context.wrap_socket(
                connection, server_hostname="localhost", suppress_ragged_eofs=False
            ) as tls,
        ):
            _read_to_the_end(tls, outcome)

    async with net.tcp.serve(0, answer, tls=server_context) as handle:
        await anyio.to_thread.run_sync(strict_client, handle.port)
    assert outcome == {"end": CLEAN, "received": b"a full answer"}


async def test_tls_inside_tls_sends_the_close_notify_of_each_layer(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """TLS to an origin inside a proxy's TLS tunnel: the inner layer's close_notify
    goes through the outer layer, then the outer layer's own."""
    server_context, client_context = contexts
    outcome: dict[str, object] = {}

    def tunnel_server(connection: socket.socket) -> None:
        with server_context.wrap_socket(
            connection, server_side=True, suppress_ragged_eofs=False
        ) as outer:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            inner = server_context.wrap_bio(incoming, outgoing, server_side=True)

            def pump(call: Callable[[], bytes | None]) -> bytes | None:
                while True:
                    try:
                        result = call()
                    except ssl.SSLWantReadError:
                        outer.sendall(outgoing.read())
                        data = outer.recv(65536)
                        incoming.write(data) if data else incoming.write_eof()
                    else:
                        outer.sendall(outgoing.read())
                        return result

            pump(inner.do_handshake)
            received = bytearray()
            try:
                while data := pump(lambda: inner.read(65536)):
                    received += data
                outcome["inner"] = CLEAN
            except ssl.SSLZeroReturnError:
                outcome["inner"] = CLEAN
            except (OSError, ssl.SSLError) as exc:
                outcome["inner"] = repr(exc)
            outcome["received"] = bytes(received)
            rest: dict[str, object] = {}
            _read_to_the_end(outer, rest)
            outcome["outer"] = rest["end"]

    with one_connection(tunnel_server) as port:
        tcp = await anyio.connect_tcp("127.0.0.1", port)
        layers: anyio.abc.ByteStream = tcp
        for _ in range(2):
            layers = await TLSStream.wrap(
                layers, hostname="localhost", ssl_context=client_context, standard_compatible=False
            )
        stream = AnyioStream(layers)
        await stream.write(b"through the tunnel")
        await stream.aclose()
    assert outcome == {"inner": CLEAN, "received": b"through the tunnel", "outer": CLEAN}


async def test_abort_sends_no_close_notify(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """abort() stays a broken connection: the strict peer sees the stream cut short."""
    server_context, client_context = contexts
    outcome: dict[str, object] = {}
    with one_connection(strict_server(server_context, outcome)) as port:
        tls = await TLSStream.wrap(
            await anyio.connect_tcp("127.0.0.1", port),
            hostname="localhost",
            ssl_context=client_context,
            standard_compatible=False,
        )
        stream = AnyioStream(tls)
        await stream.write(b"cut short")
        stream.abort()
        await stream.aclose()
    assert outcome["received"] == b"cut short"
    assert outcome["end"] != CLEAN
