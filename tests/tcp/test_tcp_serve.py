"""``sansnet.tcp.serve``, the TCP listener: served by our client and by socat (plain and
TLS), its handle semantics (real port for port 0, graceful stop, stop from a handler,
``async with``), a failing handler, the connection limit, and 1,000 short connections
without descriptor growth. Every test runs on asyncio, uvloop and trio."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import ssl
import sys
from pathlib import Path

import anyio
import pytest
import trustme

import sansnet as net
from sansnet import BindError, InvalidArgument, ReadError, ServerStoppedError
from sansnet.transport.streams import _StreamProtocol
from tests.handshaking import (
    HANDSHAKE_STAGES,
    finish_handshake,
    hello_first_echo,
    server_context_for_127_0_0_1,
    stop_during_a_tls_handshake,
)
from tests.stuck import seconds_to_stop, serving_a_client_that_never_reads, until_bytes_wait

from .peers import require

pytestmark = pytest.mark.anyio


async def echo(stream: net.tcp.TcpStream) -> None:
    async for chunk in stream:
        await stream.write(chunk)


async def _closed_by_peer(stream: net.tcp.TcpStream) -> bool:
    """True if the peer ended the stream (b"" or a reset) within 5 s."""
    try:
        with anyio.fail_after(5):
            return await stream.read() == b""
    except ReadError:
        return True


async def test_port_zero_reports_the_real_port_and_echoes() -> None:
    async with net.tcp.serve(0, echo) as handle:
        assert handle.port > 0
        assert handle.ip == "127.0.0.1"
        assert handle.url == f"tcp://127.0.0.1:{handle.port}"
        assert repr(handle) == f"<TcpHandle tcp://127.0.0.1:{handle.port}>"
        async with await net.tcp.connect(handle.ip, handle.port) as stream:
            assert (stream.remote_ip, stream.remote_port) == (handle.ip, handle.port)
            await stream.write(b"ping")
            assert await stream.read(timeout=5) == b"ping"
    assert handle.stopped
    with pytest.raises(ServerStoppedError):
        await handle.stop()


def _localhost_is_dual_stack() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return {info[0] for info in infos} == {socket.AF_INET, socket.AF_INET6}


@pytest.mark.skipif(
    not _localhost_is_dual_stack(),
    reason='"localhost" does not resolve to both 127.0.0.1 and ::1 here (/etc/hosts)',
)
async def test_port_zero_on_localhost_serves_both_families_on_the_handles_port() -> None:
    # Issue: on asyncio and uvloop, each address got a port of its own, so handle.port
    # (and handle.url) was right for one family only.
    async with net.tcp.serve(0, echo, address="localhost") as handle:
        assert {port for _, port in handle.addresses} == {handle.port}, handle.addresses
        for ip in ("127.0.0.1", "::1"):
            async with await net.tcp.connect(ip, handle.port) as stream:
                await stream.write(ip.encode())
                assert await stream.read(timeout=5) == ip.encode()


async def test_socat_is_served_plain() -> None:
    socat = require("socat")
    async with net.tcp.serve(0, echo) as handle:
        result = await anyio.run_process(
            [socat, "-t", "5", "-", f"TCP:127.0.0.1:{handle.port}"], input=b"from socat\n"
        )
    assert result.stdout == b"from socat\n"


async def test_socat_is_served_over_tls(tmp_path: os.PathLike[str]) -> None:
    socat = require("socat")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_pem = os.path.join(tmp_path, "server.pem")
    ca_pem = os.path.join(tmp_path, "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(server_pem)
    ca.cert_pem.write_to_path(ca_pem)
    seen: list[str | None] = []

    async def greet(stream: net.tcp.TcpStream) -> None:
        seen.append(stream.tls.version if stream.tls else None)
        line = await stream.read(timeout=5)
        await stream.write(b"hello, " + line)

    async with net.tcp.serve(0, greet, tls=server_pem) as handle:
        assert handle.url.startswith("tls://127.0.0.1:")
        peer = f"OPENSSL:127.0.0.1:{handle.port},cafile={ca_pem}"
        # stdin stays open until the answer is in: at the end of its input socat would
        # send TLS close_notify, and TLS in Python has no half-close
        async with await anyio.open_process([socat, "-", peer]) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            await process.stdin.send(b"socat\n")
            answer = b""
            with anyio.fail_after(5):
                while not answer.endswith(b"\n"):
                    answer += await process.stdout.receive()
            await process.stdin.aclose()
        # and our own client, verifying against the same CA
        async with await net.tcp.connect(
            "127.0.0.1", handle.port, tls=True, verify=ca_pem
        ) as stream:
            await stream.write(b"sansnet\n")
            assert await stream.read(timeout=5) == b"hello, sansnet\n"
    assert answer == b"hello, socat\n"
    assert seen[0] is not None
    assert seen[0].startswith("TLS")


async def test_a_failing_handler_closes_its_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def picky(stream: net.tcp.TcpStream) -> None:
        data = await stream.read(timeout=5)
        if data == b"boom":
            raise RuntimeError("the handler broke")
        await stream.write(b"fine: " + data)

    with caplog.at_level(logging.ERROR, logger="sansnet.tcp"):
        async with net.tcp.serve(0, picky) as handle:
            bad = await net.tcp.connect("127.0.0.1", handle.port)
            good = await net.tcp.connect("127.0.0.1", handle.port)
            async with bad, good:
                await bad.write(b"boom")
                assert await _closed_by_peer(bad)
                await good.write(b"ok")
                assert await good.read(timeout=5) == b"fine: ok"
    assert "The TCP handler failed" in caplog.text
    assert "the handler broke" in caplog.text


async def test_a_handlers_own_cancelled_error_closes_its_connection_only(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue (a review): a handler that awaited a task of its own, cancelled elsewhere,
    let a CancelledError out, which cancelled the listener's task group: the next
    client got "connection refused". As in the HTTP server, it ends that connection."""
    if anyio_backend_name == "trio":
        pytest.skip("trio's Cancelled comes only from a cancelled scope: no stray one")
    import asyncio

    async def handler(stream: net.tcp.TcpStream) -> None:
        data = await stream.read(timeout=5)
        if data == b"boom":
            stray = asyncio.ensure_future(asyncio.sleep(10))
            asyncio.get_running_loop().call_later(0.05, stray.cancel)
            await stray  # a CancelledError that is not this task's
        await stream.write(b"echo: " + data)

    with caplog.at_level(logging.ERROR, logger="sansnet.tcp"):
        async with net.tcp.serve(0, handler) as handle:
            async with await net.tcp.connect("127.0.0.1", handle.port) as bad:
                await bad.write(b"boom")
                assert await _closed_by_peer(bad)
            async with await net.tcp.connect("127.0.0.1", handle.port) as good:
                await good.write(b"ok")
                assert await good.read(timeout=5) == b"echo: ok"
    assert "was cancelled from inside" in caplog.text


async def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    release = anyio.Event()

    async def hold(stream: net.tcp.TcpStream) -> None:
        await stream.write(b"in")
        await release.wait()

    async with net.tcp.serve(0, hold, max_connections=2) as handle:
        first = await net.tcp.connect("127.0.0.1", handle.port)
        second = await net.tcp.connect("127.0.0.1", handle.port)
        assert await first.read(timeout=5) == b"in"
        assert await second.read(timeout=5) == b"in"
        third = await net.tcp.connect("127.0.0.1", handle.port)
        assert await _closed_by_peer(third)
        release.set()
        for stream in (first, second, third):
            await stream.close()
        with anyio.fail_after(5):
            while True:  # the slots come back once the handlers have returned
                async with await net.tcp.connect("127.0.0.1", handle.port) as again:
                    try:
                        if await again.read(timeout=5) == b"in":
                            break
                    except ReadError:
                        pass


async def test_stop_lets_a_busy_handler_finish_and_cancels_a_stuck_one() -> None:
    finished: list[str] = []

    async def handler(stream: net.tcp.TcpStream) -> None:
        request = await stream.read(timeout=5)
        if request == b"slow":
            await anyio.sleep(0.2)
            await stream.write(b"done")
            finished.append("slow")
        else:
            try:
                await anyio.sleep(30)
            finally:
                finished.append("stuck cancelled")

    server = net.tcp.serve(0, handler, drain_timeout=1.0)
    async with server as handle:
        slow = await net.tcp.connect("127.0.0.1", handle.port)
        stuck = await net.tcp.connect("127.0.0.1", handle.port)
        await slow.write(b"slow")
        await stuck.write(b"stuck")
        await anyio.sleep(0.05)
        with anyio.fail_after(5):
            await handle.stop()
        assert await slow.read(timeout=5) == b"done"
        assert await _closed_by_peer(stuck)
        with pytest.raises(net.ConnectError):
            await net.tcp.connect("127.0.0.1", handle.port)  # the port is free
        await slow.close()
        await stuck.close()
    assert finished == ["slow", "stuck cancelled"]


@pytest.mark.parametrize("ending", ["returns", "cancelled"])
async def test_stop_does_not_wait_for_a_client_that_never_reads(ending: str) -> None:
    """A handler that writes to a client that reads nothing and then returns during the
    drain (or is cancelled at its end), some of its bytes waiting in the transport below
    the high-water mark: closing its stream waited up to 5 s more for the client to take
    them, and stop() with it (drain_timeout + 5 s on asyncio and uvloop). On trio a
    socket write waits for the kernel instead: nothing ever waits in user space, so a
    little is written and the bound holds anyway."""
    drain_timeout = 0.5
    started = anyio.Event()
    go = anyio.Event()
    filled: list[bool] = []

    async def handler(stream: net.tcp.TcpStream) -> None:
        await stream.read(timeout=5)
        started.set()
        await go.wait()  # write once stop() has begun
        async for piece in until_bytes_wait(stream._stream):
            await stream.write(piece)
        filled.append(True)
        if ending == "cancelled":
            await anyio.sleep(30)

    server = net.tcp.serve(0, handler, drain_timeout=drain_timeout)
    async with serving_a_client_that_never_reads(server, b"go") as handle:
        with anyio.fail_after(5):
            await started.wait()
        took = await seconds_to_stop(handle, release=go)
    assert filled  # the bytes were written within the drain
    assert took < drain_timeout + 1, took  # the bug took drain_timeout + 5 s


@pytest.mark.parametrize("closed_by", ["server", "handler"])
async def test_stop_aborts_the_close_of_a_connection_that_ended_before_it(closed_by: str) -> None:
    """A handler that wrote to a client that reads nothing and returned *before* stop(),
    its last bytes waiting in the transport: the connection's close waits up to 5 s for
    the client to take them, and it held stop() for the rest of those 5 s on asyncio and
    uvloop, whether the server closed the stream after the handler or the handler closed
    it itself (`await stream.close()`). A close still waiting when the drain ends is now
    aborted; the drain counts the connection until its socket is closed. On trio nothing
    waits in user space."""
    drain_timeout = 0.5
    returned = anyio.Event()

    async def handler(stream: net.tcp.TcpStream) -> None:
        await stream.read(timeout=5)
        async for piece in until_bytes_wait(stream._stream):
            await stream.write(piece)
        if closed_by == "handler":
            returned.set()
            await stream.close()
        returned.set()

    server = net.tcp.serve(0, handler, drain_timeout=drain_timeout)
    async with serving_a_client_that_never_reads(server, b"go") as handle:
        with anyio.fail_after(5):
            await returned.wait()
        await anyio.wait_all_tasks_blocked()  # the close waits for the client
        took = await seconds_to_stop(handle)
    assert took < drain_timeout + 1, took  # the bug took up to 5 s


async def test_stop_from_a_handler_returns_at_once() -> None:
    async def stopper(stream: net.tcp.TcpStream) -> None:
        await handle.stop()  # must not wait for this very connection
        await stream.write(b"stopping")

    server = net.tcp.serve(0, stopper)
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        async with await net.tcp.connect("127.0.0.1", handle.port) as stream:
            assert await stream.read(timeout=5) == b"stopping"
    assert handle.stopped


async def test_bind_errors_and_bad_arguments() -> None:
    async with net.tcp.serve(0, echo) as handle:
        with pytest.raises(BindError):
            async with net.tcp.serve(handle.port, echo):
                pass  # pragma: no cover

    def plain(stream: net.tcp.TcpStream) -> None:  # pragma: no cover - refused
        pass

    with pytest.raises(InvalidArgument, match="async handler"):
        net.tcp.serve(0, plain)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="max_connections"):
        net.tcp.serve(0, echo, max_connections=0)
    with pytest.raises(InvalidArgument, match="max_connections"):
        net.tcp.serve(0, echo, max_connections="5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="address"):
        net.tcp.serve(0, echo, address="")
    with pytest.raises(InvalidArgument, match="port"):
        net.tcp.serve(-1, echo)
    # Issue: tls=True (the mirror of connect(tls=True)) or 5 was a bare TypeError on
    # asyncio, while trio listened and failed every handshake silently; ("cert",) was
    # an IndexError.
    for tls in (True, False, 5, ("cert.pem",), ("a", "b", "c"), ("", "key.pem"), ""):
        with pytest.raises(InvalidArgument, match=r"^tls must be an ssl\.SSLContext, the path"):
            net.tcp.serve(0, echo, tls=tls)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="needs a certificate to present"):
        net.tcp.serve(0, echo, tls=True)  # type: ignore[arg-type]
    # Issue: a bad drain_timeout was taken, and failed (or waited forever) at stop().
    for drain_timeout in ("x", -1, 0, float("nan"), float("inf"), True, None):
        with pytest.raises(InvalidArgument, match=r"^drain_timeout must be a positive number"):
            net.tcp.serve(0, echo, drain_timeout=drain_timeout)


def test_tls_takes_a_pem_path_or_a_certificate_and_key_pair(tmp_path: Path) -> None:
    """What the tls check lets through: a str or os.PathLike PEM file, and a pair of
    them (a tuple, or a list as a worker's JSON options carry it); a pair whose key is
    None, the key being in the certificate's file, as it was taken before the check."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    both, chain, key = tmp_path / "both.pem", tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(both)
    cert.cert_chain_pems[0].write_to_path(chain)
    cert.private_key_pem.write_to_path(key)
    pairs = [(str(chain), str(key)), (chain, key), [str(chain), str(key)], (both, None)]
    for tls in (str(both), both, *pairs):
        server = net.tcp.serve(0, echo, tls=tls)  # type: ignore[arg-type]
        assert server.scheme == "tls"
        assert isinstance(server._ssl, ssl.SSLContext)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
async def test_a_thousand_short_connections_leave_no_descriptor_behind() -> None:
    async with net.tcp.serve(0, echo) as handle:
        for _ in range(20):  # warm up: the event loop's own descriptors settle
            async with await net.tcp.connect("127.0.0.1", handle.port) as stream:
                await stream.write(b".")
                await stream.read(timeout=5)
        gc.collect()
        before = _open_descriptors()
        with anyio.fail_after(60):
            for index in range(1000):
                async with await net.tcp.connect("127.0.0.1", handle.port) as stream:
                    await stream.write(b"%d" % index)
                    assert await stream.read(timeout=5) == b"%d" % index
        gc.collect()
        after = _open_descriptors()
    assert after - before <= 2, (before, after)


async def test_a_handler_may_use_a_tls_context_of_its_own() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with (
        net.tcp.serve(0, echo, tls=server_ctx) as handle,
        await net.tcp.connect(
            "127.0.0.1", handle.port, tls=client_ctx, server_hostname="localhost"
        ) as stream,
    ):
        await stream.write("ünïcode")
        assert await stream.read(timeout=5) == "ünïcode".encode()


def _finished_data_and_close_notify_at_once(port: int, cafile: str, data: bytes) -> None:
    """A TLS 1.3 client that sends its Finished, ``data`` and its close_notify in one
    write (as a fire-and-forget sender can), then reads until the server is done."""
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        assert finish_handshake(raw, tls, incoming, outgoing)
        tls.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()
        raw.sendall(outgoing.read())
        with contextlib.suppress(OSError):
            while raw.recv(65536):
                pass


async def test_data_and_close_notify_sent_with_the_finished_reach_the_handler(
    tmp_path: Path,
) -> None:
    """Issue (a review of 15d3d53): on asyncio, the TLS transport start_tls returned was
    already closing (the close_notify read with the Finished), and the listener took
    that for a connection closed during its handshake: it dropped it, the handler never
    ran, the data was lost. It is handed on: the handler reads the data, then the end."""
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(tmp_path / "s.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    received: list[bytes] = []
    all_three = anyio.Event()

    async def read_all(stream: net.tcp.TcpStream) -> None:
        received.append(b"".join([chunk async for chunk in stream]))
        if len(received) == 3:
            all_three.set()

    data = os.urandom(100)
    async with net.tcp.serve(0, read_all, tls=str(tmp_path / "s.pem")) as handle:
        for _ in range(3):
            await anyio.to_thread.run_sync(
                _finished_data_and_close_notify_at_once, handle.port, str(tmp_path / "ca.pem"), data
            )
        with anyio.fail_after(5):
            await all_three.wait()
    assert received == [data] * 3


@pytest.mark.parametrize("stage", HANDSHAKE_STAGES)
async def test_stop_closes_a_connection_still_in_its_tls_handshake(stage: str) -> None:
    """The HTTP server's test of this name (tests/server/test_serve_api.py), for
    tcp.serve: the same listener, the same regression."""
    context = server_context_for_127_0_0_1()
    async with net.tcp.serve(0, echo, tls=context, drain_timeout=1) as handle:
        assert await stop_during_a_tls_handshake(handle, stage) == "closed"


async def test_a_tls_client_that_sends_its_hello_at_once_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend_name: str
) -> None:
    """On asyncio and uvloop the server runs the TLS handshake itself, after the loop may
    already have read the ClientHello as plain bytes: those bytes go to the TLS layer
    first, once and in order."""
    early: list[int] = []
    take_buffered = _StreamProtocol.take_buffered

    def counted(protocol: _StreamProtocol) -> bytes:
        data = take_buffered(protocol)
        early.append(len(data))
        return data

    monkeypatch.setattr(_StreamProtocol, "take_buffered", counted)
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    cafile = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    async with net.tcp.serve(0, echo, tls=context) as handle:
        for n in range(5):
            message = b"ping %d" % n
            answer = await anyio.to_thread.run_sync(hello_first_echo, handle.port, cafile, message)
            assert answer == message
    if anyio_backend_name == "asyncio":  # (uvloop too) the bytes read early were replayed
        assert any(early)
