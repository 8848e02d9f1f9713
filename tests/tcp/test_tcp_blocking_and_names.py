"""Lune 0.10's names: ``sansnet.http`` / ``ws`` / ``tcp`` are the same objects as the
top-level ones, and ``sansnet.blocking`` has them too, with a blocking TCP stream and a
TCP listener whose plain handlers run in worker threads."""

from __future__ import annotations

import threading

import anyio
import pytest

import sansnet as net
from sansnet import InvalidArgument, ReadTimeout, WriteError, WriteTimeout, blocking
from tests.virtual_time import on_virtual_time

from .peers import socat_echo


def test_the_submodules_are_the_top_level_names() -> None:
    assert net.http.request is net.request
    assert net.http.stream is net.stream
    assert net.http.serve is net.serve
    assert net.http.Client is net.Client
    assert net.ws.connect is net.socket
    assert net.ws.WebSocket is net.WebSocket
    from sansnet.tcp import TcpStream, connect, serve  # importable as a module

    assert (net.tcp.connect, net.tcp.serve, net.tcp.TcpStream) == (connect, serve, TcpStream)
    assert blocking.http.request is blocking.request
    assert blocking.http.serve is blocking.serve
    assert blocking.ws.connect is blocking.socket
    assert blocking.tcp.TcpStream is blocking.BlockingTcpStream


def test_blocking_tcp_connect_to_socat() -> None:
    with socat_echo() as port, blocking.tcp.connect("127.0.0.1", port, ttl=9) as stream:
        assert (stream.remote_ip, stream.remote_port) == ("127.0.0.1", port)
        assert stream.tls is None
        assert stream.ttl == 9  # it had no ttl: AttributeError
        stream.write("hello ")
        stream.write(b"blocking")
        received = b""
        while len(received) < 14:
            received += stream.read(timeout=5)
        assert received == b"hello blocking"
        stream.send_eof()
        assert list(stream) == []  # the echo ends after our end
        assert "BlockingTcpStream 127.0.0.1" in repr(stream)
    assert stream.closed


def test_blocking_tcp_serve_runs_plain_handlers_in_threads() -> None:
    threads: set[int] = set()
    release = threading.Event()

    def shout(stream: blocking.BlockingTcpStream) -> None:
        threads.add(threading.get_ident())
        for chunk in stream:
            stream.write(chunk.upper())
            if chunk == b"wait":
                release.wait(5)  # blocks this thread only

    with blocking.tcp.serve(0, shout) as handle:
        assert handle.url.startswith("tcp://127.0.0.1:")
        with blocking.tcp.connect("127.0.0.1", handle.port) as slow:
            slow.write(b"wait")
            assert slow.read(timeout=5) == b"WAIT"
            with blocking.tcp.connect("127.0.0.1", handle.port) as quick:
                quick.write(b"quick")
                assert quick.read(timeout=5) == b"QUICK"  # while the other handler blocks
            release.set()
    assert handle.stopped
    assert len(threads) == 2
    assert threading.main_thread().ident not in threads


def test_blocking_tcp_serve_takes_async_handlers_and_checks_arguments() -> None:
    async def echo(stream: net.tcp.TcpStream) -> None:
        async for chunk in stream:
            await stream.write(chunk)

    with (
        blocking.tcp.serve(0, echo) as handle,
        blocking.tcp.connect("127.0.0.1", handle.port) as stream,
    ):
        stream.write(b"async")
        assert stream.read(timeout=5) == b"async"
    with pytest.raises(InvalidArgument, match="max_threads"):
        blocking.tcp.serve(0, echo, max_threads=0)
    with pytest.raises(InvalidArgument, match="handler"):
        blocking.tcp.serve(0, "not a function")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_tcp_stream_over_any_network_stream() -> None:
    """TcpStream wraps any NetworkStream: over memory there is no socket (ttl None),
    an unknown address reads None (Lune's nil), and a second send_eof does nothing."""
    from sansnet.transport.streams import memory_stream_pair

    ours, theirs = memory_stream_pair(client=("?", 0))
    stream = net.tcp.TcpStream(ours)
    assert stream.ttl is None
    assert (stream.local_ip, stream.local_port) == (None, None)
    assert (stream.remote_ip, stream.remote_port) == ("127.0.0.1", 80)
    await stream.write(b"over memory")
    assert await theirs.read() == b"over memory"
    await stream.send_eof()
    await stream.send_eof()
    assert await theirs.read() == b""
    await theirs.write(b"still readable")
    assert await stream.read() == b"still readable"
    await stream.close()


@pytest.mark.anyio
async def test_a_tls_listener_from_certificate_and_key_files(
    tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """tls=(certificate, key) files; a handler ended by the peer's reset is logged as
    an info line, not a traceback."""
    import logging
    import os

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = os.path.join(tmp_path, "cert.pem"), os.path.join(tmp_path, "key.pem")
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca_file = os.path.join(tmp_path, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)

    async def write_forever(stream: net.tcp.TcpStream) -> None:
        await stream.write(b"x")
        while True:
            await stream.write(b"y" * 65536)

    with caplog.at_level(logging.INFO, logger="sansnet.tcp"):
        async with net.tcp.serve(0, write_forever, tls=(cert_file, key_file)) as handle:
            stream = await net.tcp.connect("127.0.0.1", handle.port, tls=True, verify=ca_file)
            assert await stream.read(1, timeout=5) == b"x"
            stream._stream.abort()  # gone without a goodbye: the handler's write fails
            await stream.close()
            with anyio.fail_after(5):
                while "TCP connection from" not in caplog.text:  # noqa: ASYNC110 - a log line
                    await anyio.sleep(0.01)
    assert "The TCP handler failed" not in caplog.text


@pytest.mark.anyio
async def test_concurrent_reads_take_turns_and_a_cancelled_one_passes_its_turn() -> None:
    from sansnet.transport.streams import memory_stream_pair

    ours, theirs = memory_stream_pair()
    stream = net.tcp.TcpStream(ours)
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await stream.read())

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        group.start_soon(reader)
        doomed = anyio.CancelScope()  # a third reader, cancelled while it waits its turn
        group.start_soon(_cancelled_read, stream, doomed)
        await anyio.sleep(0.01)
        doomed.cancel()
        await theirs.write(b"first")
        await anyio.sleep(0.01)
        await theirs.write(b"second")
    assert got == [b"first", b"second"]
    await theirs.write(b"third")
    assert await stream.read() == b"third"  # the turn did not leak
    assert not stream._reading.busy
    assert not stream._reading.waiters


@on_virtual_time
@pytest.mark.anyio
@pytest.mark.parametrize("side", ["read", "write"])
async def test_the_timeout_bounds_the_wait_for_a_concurrent_turn(side: str) -> None:
    """Issue: a read (or write) queued behind another waited its turn unbounded, its
    timeout counted only from its turn: two reads with timeout=5 on a silent peer ended
    at 5 s and 10 s. Both end at 5 s now, and the turn does not leak."""
    from sansnet.transport.streams import memory_stream_pair

    ours, theirs = memory_stream_pair(capacity=1024)  # a write of more waits for the peer
    stream = net.tcp.TcpStream(ours)
    turn = stream._reading if side == "read" else stream._writing
    started = anyio.current_time()
    ended: list[float] = []

    async def waiter() -> None:
        # (the message gives the caller's timeout, not what was left after the wait)
        with pytest.raises((ReadTimeout, WriteTimeout, WriteError)) as caught:
            if side == "read":
                await stream.read(timeout=5)
            else:
                await stream.write(b"x" * 4096, timeout=5)
        if isinstance(caught.value, WriteError):
            # The second write got the turn just before its own deadline, after the
            # first was cut short by its timeout: the stream sends nothing more.
            assert "did not finish" in str(caught.value)
        else:
            assert isinstance(caught.value, ReadTimeout if side == "read" else WriteTimeout)
            assert " 5 s " in str(caught.value)
        ended.append(anyio.current_time() - started)

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        group.start_soon(waiter)
    assert ended == [pytest.approx(5, abs=0.5)] * 2
    assert not turn.busy
    assert not turn.waiters
    if side == "read":
        await theirs.write(b"after")
        assert await stream.read(timeout=1) == b"after"
    else:
        await theirs.read()  # make room
        # The turn is free (this write gets it at once), and the first write, cut
        # short by its timeout, ended the sending side (docs/limits.md).
        with anyio.fail_after(1), pytest.raises(WriteError, match="did not finish"):
            await stream.write(b"after", timeout=1)


async def _cancelled_read(stream: net.tcp.TcpStream, scope: anyio.CancelScope) -> None:
    with scope:
        await stream.read()
