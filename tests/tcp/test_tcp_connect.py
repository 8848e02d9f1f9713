"""``sansnet.tcp.connect`` against peers no one here wrote (socat, openssl s_server, an
``asyncio.start_server`` echo) and against sockets that misbehave on purpose: half-close,
a reset, a read timeout, writes after the end. Every test runs on asyncio, uvloop and
trio."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
import trustme

import sansnet as net
from sansnet import (
    ConnectError,
    InvalidArgument,
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    Timeout,
    TLSError,
    WriteError,
    WriteTimeout,
)
from tests.network import has_ipv6_loopback, resolve_name

from .peers import asyncio_echo, free_port, one_connection, require, running, socat_echo

pytestmark = pytest.mark.anyio

PAYLOAD = os.urandom(300_000)  # several socket buffers' worth: writes and reads interleave


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pem_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(the server's certificate+key PEM, the CA's PEM) for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    server = folder / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(server)
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    return str(server), str(ca_file)


async def _echo_round_trip(stream: net.tcp.TcpStream) -> bytes:
    """Write PAYLOAD while reading the echo, then half-close; everything read back."""
    received = bytearray()

    async def reader() -> None:
        async for chunk in stream:
            received.extend(chunk)

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        for start in range(0, len(PAYLOAD), 50_000):
            await stream.write(PAYLOAD[start : start + 50_000])
        await stream.send_eof()
    return bytes(received)


async def test_plain_exchange_with_socat() -> None:
    with socat_echo() as port:
        async with await net.tcp.connect("127.0.0.1", port) as stream:
            assert (stream.remote_ip, stream.remote_port) == ("127.0.0.1", port)
            assert stream.local_ip == "127.0.0.1"
            assert isinstance(stream.local_port, int)
            assert stream.local_port > 0
            assert stream.tls is None
            assert await _echo_round_trip(stream) == PAYLOAD


async def test_tls_exchange_with_socat(pem_files: tuple[str, str]) -> None:
    server_pem, ca_file = pem_files
    with socat_echo(tls=(server_pem, "")) as port:
        async with await net.tcp.connect("127.0.0.1", port, tls=True, verify=ca_file) as stream:
            assert stream.tls is not None
            assert stream.tls.version is not None
            assert stream.tls.alpn_protocol is None  # a raw stream offers no ALPN by default
            await stream.write(b"over TLS\n")
            assert await stream.read() == b"over TLS\n"
            with pytest.raises(LocalProtocolError, match="half-closed"):
                await stream.send_eof()


async def test_tls_exchange_with_openssl_s_server(pem_files: tuple[str, str]) -> None:
    """openssl s_server -rev answers each line reversed: a TLS peer that is not an echo."""
    openssl = require("openssl")
    server_pem, ca_file = pem_files
    port = free_port()
    command = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", server_pem]
    command += ["-rev", "-naccept", "1"]
    with running(command, port, probe=False):
        stream = None
        with anyio.fail_after(10):
            while stream is None:
                try:
                    stream = await net.tcp.connect("localhost", port, tls=True, verify=ca_file)
                except ConnectError as exc:
                    assert not isinstance(exc, TLSError), exc
                    await anyio.sleep(0.05)
        async with stream:
            # s_server greets after the handshake in some versions; read to our line
            await stream.write("sansnet says hello\n")
            seen = b""
            while b"sansnet says hello"[::-1] not in seen:
                chunk = await stream.read(timeout=5)
                assert chunk, seen
                seen += chunk


async def test_tls_certificate_is_verified_by_default(pem_files: tuple[str, str]) -> None:
    server_pem, _ = pem_files
    with socat_echo(tls=(server_pem, "")) as port:
        with pytest.raises(TLSError, match="could not be verified"):
            await net.tcp.connect("127.0.0.1", port, tls=True)
        async with await net.tcp.connect("127.0.0.1", port, tls=True, verify=False) as stream:
            await stream.write(b"unverified but encrypted")
            assert await stream.read() == b"unverified but encrypted"


async def test_tls_details_outlive_the_end_of_the_stream(pem_files: tuple[str, str]) -> None:
    """Issue: on trio, once read() had returned b"" (the peer's close_notify), .tls,
    repr() and send_eof() raised a bare ValueError("handshake not done yet") from the
    SSLObject. What the handshake agreed is kept; send_eof() is the documented
    LocalProtocolError. Both ends: the client after the server closes, and a handler
    after the client closes."""
    server_pem, ca_file = pem_files
    seen_by_handler: list[object] = []
    handler_done = anyio.Event()

    async def hello_then_wait(stream: net.tcp.TcpStream) -> None:
        await stream.write(b"hi")
        if await stream.read(timeout=5) != b"bye":
            return  # the first client: the handler returns, the server closes
        agreed = stream.tls
        try:
            assert await stream.read(timeout=5) == b""  # the second client closed
            seen_by_handler.extend([agreed is not None and stream.tls == agreed, repr(stream)])
            await stream.send_eof()
        except Exception as exc:
            seen_by_handler.append(exc)
        finally:
            handler_done.set()

    async with net.tcp.serve(0, hello_then_wait, tls=server_pem) as handle:
        async with await net.tcp.connect(
            "127.0.0.1", handle.port, tls=True, verify=ca_file
        ) as stream:
            agreed = stream.tls
            assert agreed is not None
            assert agreed.version is not None
            assert await stream.read(timeout=5) == b"hi"
            await stream.write(b"x")
            assert await stream.read(timeout=5) == b""
            assert stream.tls == agreed
            assert repr(stream).endswith(" tls>")
            with pytest.raises(LocalProtocolError, match="cannot be half-closed"):
                await stream.send_eof()
        async with await net.tcp.connect(
            "127.0.0.1", handle.port, tls=True, verify=ca_file
        ) as stream:
            assert await stream.read(timeout=5) == b"hi"
            await stream.write(b"bye")
        with anyio.fail_after(5):
            await handler_done.wait()
    assert len(seen_by_handler) == 3, seen_by_handler
    assert seen_by_handler[0] is True
    assert str(seen_by_handler[1]).endswith(" tls>")
    assert isinstance(seen_by_handler[2], LocalProtocolError), seen_by_handler


@contextmanager
def closing_during_handshake(reset: bool) -> Iterator[int]:
    """A port whose server reads the ClientHello, then closes (or resets) the connection.
    It reads all of it before a close: unread bytes would turn the close into a reset."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            while True:
                try:
                    peer, _ = server.accept()
                except OSError:
                    return
                with peer:
                    if reset:
                        peer.recv(100)
                        peer.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        continue
                    peer.settimeout(0.3)  # the client sends its hello, then waits
                    with contextlib.suppress(OSError):
                        while peer.recv(65536):
                            pass

        threading.Thread(target=serve, daemon=True).start()
        yield server.getsockname()[1]
        server.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_server_closing_during_the_tls_handshake_is_a_connect_error(reset: bool) -> None:
    """On trio (anyio's TLS stream) the handshake's EndOfStream / BrokenResourceError
    became ConnectError, as asyncio's ConnectionResetError does; TLS over a tunnel
    (start_tls) raises the ConnectionResetError its callers map."""
    from sansnet.transport.connect import open_tcp_stream
    from sansnet.transport.tls import client_context

    with closing_during_handshake(reset) as port:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            await net.tcp.connect("127.0.0.1", port, tls=True)
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            await net.request(f"https://127.0.0.1:{port}/", timeout=5)
        with pytest.raises(ConnectError, match="during the TLS handshake") as caught:
            await open_tcp_stream(
                "127.0.0.1", port, ssl_context=client_context(), timeout=5, backend="anyio"
            )
        # A close is anyio's EndOfStream, a reset its BrokenResourceError: both mapped.
        causes = []
        cause: BaseException | None = caught.value
        while cause is not None:
            causes.append(type(cause))
            cause = cause.__cause__ or cause.__context__
        assert (anyio.EndOfStream in causes) is not reset, causes
        tunnel = await open_tcp_stream("127.0.0.1", port, timeout=5, backend="anyio")
        try:
            with pytest.raises(ConnectionResetError, match="during the TLS handshake"):
                await tunnel.start_tls(client_context(), "localhost", 5)
        finally:
            await tunnel.aclose()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_unix_server_closing_during_the_tls_handshake_is_a_connect_error(
    reset: bool, tmp_path: Path
) -> None:
    """As over TCP; on asyncio the reset was "Could not connect to the Unix socket ...:
    ConnectionResetError. Check that the server listens there", which it did."""
    from sansnet.transport.connect import open_unix_stream
    from sansnet.transport.tls import client_context

    path = str(tmp_path / "tls.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()

    def serve() -> None:
        peer, _ = server.accept()
        with peer:
            if reset:
                peer.recv(100)  # the rest of the hello unread: the close is a reset
                return
            peer.settimeout(0.3)
            with contextlib.suppress(OSError):
                while peer.recv(65536):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectError, match="during the TLS handshake") as caught:
            await open_unix_stream(
                path, ssl_context=client_context(), server_hostname="localhost", timeout=5
            )
    finally:
        thread.join(5)
        server.close()
    assert f"unix:{path}" in str(caught.value)
    del caught
    gc.collect()  # a socket left open is a ResourceWarning now, an error in this test


async def test_exchange_with_an_asyncio_start_server_echo() -> None:
    with asyncio_echo() as port:
        async with await net.tcp.connect("127.0.0.1", port) as stream:
            assert await _echo_round_trip(stream) == PAYLOAD


@contextmanager
def raw_server(behaviour: str) -> Iterator[int]:
    """A one-connection server on a plain socket in a thread:

    * ``reset``: sends b"partial", waits for b"ack", then resets (SO_LINGER 0);
    * ``bye``: sends b"bye" and closes both directions at once;
    * ``late``: sends b"late" 0.5 s after the connection opens, then waits for EOF;
    * ``half``: reads until our EOF, then answers b"got N bytes" and closes.
    """

    def serve(conn: socket.socket) -> None:
        if behaviour == "reset":
            conn.sendall(b"partial")
            conn.recv(3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif behaviour == "bye":
            conn.sendall(b"bye")
        elif behaviour == "late":
            threading.Event().wait(0.5)
            conn.sendall(b"late")
            conn.recv(10)
        else:
            total = 0
            while data := conn.recv(65536):
                total += len(data)
            conn.sendall(f"got {total} bytes".encode())

    with one_connection(serve) as port:
        yield port


async def test_half_close_keeps_the_reading_side_open() -> None:
    with raw_server("half") as port:
        async with await net.tcp.connect("127.0.0.1", port) as stream:
            await stream.write(b"x" * 100_000)
            await stream.send_eof()
            with pytest.raises(WriteError, match="send_eof"):
                await stream.write(b"more")
            answer = b""
            async for chunk in stream:
                answer += chunk
            assert answer == b"got 100000 bytes"
            assert await stream.read() == b""  # and on every later call


async def test_a_reset_is_a_read_error_after_the_data_that_came_first() -> None:
    with raw_server("reset") as port:
        async with await net.tcp.connect("127.0.0.1", port) as stream:
            assert await stream.read(timeout=5) == b"partial"
            await stream.write(b"ack")
            with pytest.raises(ReadError, match="broke while reading"):
                with anyio.fail_after(5):
                    while await stream.read():
                        pass
            with pytest.raises(WriteError):
                await stream.write(b"after the reset")
            ttl = stream.ttl  # the socket may be released already: None, not an OSError
            assert ttl is None or ttl > 0
        assert stream.ttl is None  # closed (it raised OSError)


async def test_read_timeout_leaves_the_stream_usable() -> None:
    with raw_server("late") as port:
        async with await net.tcp.connect("127.0.0.1", port) as stream:
            with pytest.raises(ReadTimeout, match="read timeout"):
                await stream.read(timeout=0.05)
            assert await stream.read(timeout=5) == b"late"
            await stream.send_eof()


async def test_a_read_waiting_when_another_task_closes_the_stream_raises_read_error() -> None:
    # The same error on every backend: asyncio's stream used to end quietly (b"", as if
    # the peer had finished), trio's said ClosedResourceError.
    with raw_server("half") as port:
        stream = await net.tcp.connect("127.0.0.1", port)
        outcome: list[object] = []

        async def reader() -> None:
            try:
                outcome.append(await stream.read())
            except ReadError as exc:
                outcome.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(reader)
                await anyio.sleep(0.1)  # the read is waiting: the peer says nothing yet
                await stream.close()
        assert len(outcome) == 1
        assert isinstance(outcome[0], ReadError), outcome
        assert "close() was called" in str(outcome[0])


@contextlib.asynccontextmanager
async def connected_to_a_silent_peer() -> AsyncIterator[tuple[net.tcp.TcpStream, socket.socket]]:
    """A TCP stream to a plain socket that reads nothing until the test makes it (its
    calls give up after 10 s); the stream is closed at the end."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stream = await net.tcp.connect("127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()  # connected already: does not block
        with peer:
            peer.settimeout(10)
            try:
                yield stream, peer
            finally:
                await stream.close()


async def test_a_write_waiting_when_another_task_closes_the_stream_raises_write_error() -> None:
    # A peer that never reads: the write waits with most of its bytes unsent. asyncio's
    # stream used to return from that write as if it had succeeded once close() gave
    # up on the peer (5 s) and dropped the rest; trio's raised WriteError.
    async with connected_to_a_silent_peer() as (stream, _):
        outcome: list[object] = []

        async def writer() -> None:
            try:
                await stream.write(b"x" * 32_000_000)  # far beyond the socket buffers
                outcome.append("returned")
            except WriteError as exc:
                outcome.append(exc)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                await anyio.wait_all_tasks_blocked()  # the write waits for the peer
                await stream.close()
    assert len(outcome) == 1
    assert isinstance(outcome[0], WriteError), outcome
    assert "close() was called" in str(outcome[0])


def _read_until_the_end(peer: socket.socket) -> bytes:
    chunks = []
    while data := peer.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("how", ["timeout", "cancelled"])
async def test_a_write_that_did_not_finish_ends_the_sending_side_with_no_gap(how: str) -> None:
    """A write cut short (WriteTimeout, or the caller's cancellation) leaves the peer an
    unknown part of it: trio sent what the socket took, asyncio's transport keeps the
    rest. A later write then would land after a gap (trio) or pile up without a bound
    (asyncio); instead it raises WriteError on every backend, and the peer receives a
    prefix of the cut write, nothing after it. Reading goes on."""
    first = b"a" * 8_000_000  # far beyond the socket buffers of a peer that reads nothing
    async with connected_to_a_silent_peer() as (stream, peer):
        if how == "timeout":
            with pytest.raises(WriteTimeout, match="write timeout"):
                await stream.write(first, timeout=0.2)
        else:
            with anyio.move_on_after(0.2) as scope:
                await stream.write(first)
            assert scope.cancelled_caught
        peer.sendall(b"still readable")
        assert await stream.read(timeout=5) == b"still readable"
        async with anyio.create_task_group() as group:
            received: list[bytes] = []

            async def drain() -> None:
                received.append(await anyio.to_thread.run_sync(_read_until_the_end, peer))

            group.start_soon(drain)  # the peer reads now: a later write would go out
            with pytest.raises(WriteError, match="did not finish") as caught:
                await stream.write(b"b" * 10, timeout=5)
            assert "8000000 bytes" in str(caught.value)
            assert "Nothing of these 10 bytes was sent" in str(caught.value)
            await stream.close()
    assert first.startswith(received[0]), "the peer got bytes after a gap"


async def test_writes_after_the_end_fail_clearly_and_lose_nothing() -> None:
    with raw_server("bye") as port:
        stream = await net.tcp.connect("127.0.0.1", port)
        assert await stream.read(timeout=5) == b"bye"  # what the peer said is ours
        assert await stream.read(timeout=5) == b""
        # The peer has closed both ways: the first write may still be accepted by our
        # kernel; its reset makes a later one fail, with a clear error.
        with pytest.raises(WriteError, match=r"closed|broke"):
            with anyio.fail_after(5):
                while True:
                    await stream.write(b"anyone there?")
                    await anyio.sleep(0.02)
        await stream.close()
        with pytest.raises(WriteError, match=r"close\(\) was called\); nothing of these 3 bytes"):
            await stream.write(b"end")
        with pytest.raises(ReadError, match=r"close\(\) was called"):
            await stream.read()
        await stream.close()  # twice is fine
        assert stream.closed


async def test_connect_errors_are_typed() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectError, match="refused"):
        await net.tcp.connect("127.0.0.1", port)
    with pytest.raises(ConnectError, match="resolve"):
        await net.tcp.connect("no-such-host.invalid", 80)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "", "port": 80}, "host"),
        ({"host": "127.0.0.1", "port": 0}, "port"),
        ({"host": "127.0.0.1", "port": 70000}, "port"),
        ({"host": "127.0.0.1", "port": True}, "port"),
        ({"host": "127.0.0.1", "port": 80, "ttl": 0}, "ttl"),
        ({"host": "127.0.0.1", "port": 80, "ttl": 256}, "ttl"),
        ({"host": "127.0.0.1", "port": 80, "timeout": 0}, "timeout"),
        ({"host": "127.0.0.1", "port": 80, "timeout": "5"}, "timeout"),
        ({"host": "127.0.0.1", "port": 80, "timeout": math.nan}, "timeout"),
        ({"host": "127.0.0.1", "port": 80, "tls": "yes"}, "tls"),
        # A lone surrogate (a byte of sys.argv that is not UTF-8) has no IDNA form: it
        # was a bare UnicodeError from getaddrinfo.
        ({"host": "\udcff", "port": 80}, "is no host name"),
        ({"host": "é" * 64 + ".example", "port": 80}, "is no host name"),
        # A NUL was a bare ValueError on asyncio; trio's resolver cut the name there.
        ({"host": "a\x00b", "port": 80}, "control character"),
        ({"host": "127.0.0.1\x00", "port": 80}, "control character"),
        ({"host": "[::1\x00x]", "port": 80}, "control character"),
        ({"host": "exa\nmple.com", "port": 80}, "control character"),
        # TLS options of the wrong shape were a TypeError, an IndexError, an ssl.SSLError,
        # an AttributeError; alpn="http/1.1" offered 'h', 't', 't', 'p', ...
        ({"host": "127.0.0.1", "port": 80, "tls": True, "verify": None}, "^verify must be"),
        ({"host": "127.0.0.1", "port": 80, "tls": True, "cert": ("c",)}, "^cert must be"),
        ({"host": "127.0.0.1", "port": 80, "tls": True, "alpn": "http/1.1"}, "its letters"),
        ({"host": "127.0.0.1", "port": 80, "tls": True, "alpn": [""]}, "^alpn: each"),
        ({"host": "127.0.0.1", "port": 80, "tls": True, "server_hostname": 5}, "server_hostname"),
    ],
)
async def test_bad_arguments_are_invalid_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await net.tcp.connect(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "timeout",
    [math.inf, math.nan, 0, 0.0, -1, -math.inf],
    ids=["inf", "nan", "0", "0.0", "-1", "-inf"],
)
async def test_tcp_and_the_http_client_take_the_same_timeouts(timeout: float) -> None:
    """Issue: tcp (and blocking, through it) took timeout=inf where the HTTP client's
    Timeout refused it (its documented rule: a positive, finite number or None). One
    rule now checks every timeout: inf, NaN, 0 and negatives are InvalidArgument on
    both paths, before any I/O; None is the way to say "no limit"."""
    with pytest.raises(InvalidArgument, match=r"Timeout\(read=\.\.\.\)"):
        Timeout(read=timeout)
    with pytest.raises(InvalidArgument, match="timeout must be a positive"):
        Timeout.of(timeout)
    with pytest.raises(InvalidArgument, match="timeout must be a positive"):
        await net.tcp.connect("127.0.0.1", 1, timeout=timeout)
    async with (
        net.tcp.serve(0, _echo) as handle,
        await net.tcp.connect("127.0.0.1", handle.port, timeout=5) as stream,
    ):
        with pytest.raises(InvalidArgument, match="timeout must be a positive"):
            with anyio.fail_after(5):
                await stream.read(timeout=timeout)
        with pytest.raises(InvalidArgument, match="timeout must be a positive"):
            await stream.write(b"x", timeout=timeout)
        await stream.write(b"ok", timeout=5)  # a finite positive timeout (and None) pass
        assert await stream.read(timeout=5) == b"ok"
    assert Timeout.of(0.5) == Timeout(0.5, 0.5, 0.5, 0.5, None)


async def test_a_str_with_no_utf8_form_and_a_huge_read_size_are_handled() -> None:
    """Issue: write("\\ud800") raised a bare UnicodeEncodeError; read(2**62) a
    MemoryError on trio, and read(2**31) allocated 2 GiB there. A lone surrogate is
    InvalidArgument (nothing is sent); a read hands the socket at most MAX_READ."""
    assert net.tcp.MAX_READ == 256 * 1024
    async with (
        net.tcp.serve(0, _echo) as handle,
        await net.tcp.connect("127.0.0.1", handle.port, timeout=5) as stream,
    ):
        with pytest.raises(InvalidArgument, match="lone surrogate at index 1"):
            await stream.write("a\ud800", timeout=5)
        await stream.write(PAYLOAD, timeout=5)  # nothing of the bad write went first
        received = b""
        while len(received) < len(PAYLOAD):
            chunk = await stream.read(2**62, timeout=5)
            assert 0 < len(chunk) <= net.tcp.MAX_READ
            received += chunk
        assert received == PAYLOAD


async def test_ttl_ipv6_and_bad_writes() -> None:
    with socat_echo() as port:
        async with await net.tcp.connect("127.0.0.1", port, ttl=17) as stream:
            assert stream.ttl == 17
            with pytest.raises(InvalidArgument, match="bytes or str"):
                await stream.write(12)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgument, match="max_bytes"):
                await stream.read(0)
            # NaN made asyncio's read wait forever; a str was a bare TypeError
            for timeout in (math.nan, "5", 0, -1, True):
                with pytest.raises(InvalidArgument, match="timeout"):
                    with anyio.fail_after(5):
                        await stream.read(timeout=timeout)  # type: ignore[arg-type]
                with pytest.raises(InvalidArgument, match="timeout"):
                    await stream.write(b"x", timeout=timeout)  # type: ignore[arg-type]
            await stream.write(b"")  # nothing to send is fine
            await stream.write(memoryview(b"view"))
            assert await stream.read(timeout=5) == b"view"
            assert "TcpStream 127.0.0.1" in repr(stream)
    if not socket.has_ipv6:
        return
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return  # no IPv6 loopback in this sandbox
    async with net.tcp.serve(0, _echo, address="::1") as handle:
        assert handle.url.startswith("tcp://[::1]:")
        async with await net.tcp.connect("[::1]", handle.port, ttl=5) as stream:
            assert stream.remote_ip == "::1"
            assert stream.ttl == 5
            await stream.write("v6")
            assert await stream.read(timeout=5) == b"v6"


async def _echo(stream: net.tcp.TcpStream) -> None:
    async for chunk in stream:
        await stream.write(chunk)


@contextmanager
def unanswered_ipv6_twin(port: int) -> Iterator[None]:
    """[::1]:``port`` listening with its accept queue full, so that a connection
    attempt there is never answered (the kernel drops its SYNs)."""
    with socket.socket(socket.AF_INET6) as silent, contextlib.ExitStack() as fillers:
        silent.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            silent.bind(("::1", port))
        except OSError:
            pytest.skip(f"[::1]:{port} cannot be bound here")
        silent.listen(0)
        for _ in range(8):
            filler = fillers.enter_context(socket.socket(socket.AF_INET6))
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("::1", port))
        with socket.socket(socket.AF_INET6) as probe:
            probe.settimeout(1)
            try:
                probe.connect(("::1", port))
            except TimeoutError:
                pass
            else:
                pytest.skip("this kernel answers beyond a full accept queue")
        yield


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_a_name_whose_first_address_never_answers_connects_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue (review): happy eyeballs is promised for a name with addresses of both
    families, but uvloop tried them in turn: a name resolving to ::1 (no answer) then
    127.0.0.1 (a server) raised ConnectTimeout there, where asyncio and trio connected
    to 127.0.0.1 after the happy eyeballs delay."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with unanswered_ipv6_twin(port):
            resolve_name(monkeypatch, "dual.example", ["::1", "127.0.0.1"])
            stream = await net.tcp.connect("dual.example", port, timeout=10)
            try:
                assert (stream.remote_ip, stream.remote_port) == ("127.0.0.1", port)
            finally:
                await stream.close()
