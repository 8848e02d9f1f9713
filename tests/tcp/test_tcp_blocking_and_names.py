"""Lune 0.10's names: ``sansnet.http`` / ``ws`` / ``tcp`` are the same objects as the
top-level ones, and ``sansnet.blocking`` has them too, with a blocking TCP stream and a
TCP listener whose plain handlers run in worker threads."""

from __future__ import annotations

import threading

import pytest

import sansnet as net
from sansnet import InvalidArgument, blocking

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
    with socat_echo() as port, blocking.tcp.connect("127.0.0.1", port) as stream:
        assert (stream.remote_ip, stream.remote_port) == ("127.0.0.1", port)
        assert stream.tls is None
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
