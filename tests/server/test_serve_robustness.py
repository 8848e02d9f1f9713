"""net.serve under hostile or unlucky peers over real sockets: the keep-alive timeout
on TCP, pipelining against kernel buffers, descriptors, graceful stop, curl. Raw
sockets play the misbehaving clients; every wait is bounded. The rules that need no
socket (slowloris, body timeout, protocol limits, the connection cap, disconnects mid
exchange) run in memory on virtual time in test_serve_in_memory.py."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import sys
import tracemalloc
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import sansnet
from sansnet import ServeConfig, ServeRequest, ServeResponse
from sansnet.server import Server
from sansnet.transport.streams import _StreamProtocol
from tests.stuck import seconds_to_stop, serving_a_client_that_never_reads, until_bytes_wait

pytestmark = pytest.mark.anyio


async def hello(request: ServeRequest) -> str:
    return "hello"


async def raw_exchange(port: int, data: bytes, *, read_for: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (bounded)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        received = b""
        with anyio.move_on_after(read_for):
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        return received


async def test_idle_keep_alive_connections_are_closed() -> None:
    config = ServeConfig(handle_request=hello, keepalive_timeout=0.3)
    async with sansnet.serve(0, config) as handle:
        received = await raw_exchange(handle.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", read_for=5)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert received.endswith(b"hello")  # then the server closed the idle connection


async def test_pipelining_without_reading_keeps_memory_bounded() -> None:
    body = b"x" * 65536

    async def big(request: ServeRequest) -> ServeResponse:
        return ServeResponse(body=body)

    async with sansnet.serve(0, big) as handle:
        gc.collect()
        tracemalloc.start()
        try:
            sock = socket.create_connection(("127.0.0.1", handle.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.setblocking(False)
            pipeline = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 1000  # 64 MB of answers
            sent = 0
            with anyio.move_on_after(3):
                while sent < len(pipeline):
                    try:
                        sent += sock.send(pipeline[sent:])
                    except BlockingIOError:
                        await anyio.sleep(0.01)
            await anyio.sleep(0.5)  # the server answers until its writes block
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 8 * 1024 * 1024, f"the server buffered {peak} bytes"
            sock.close()
        finally:
            tracemalloc.stop()
        assert (await sansnet.request(handle.url)).ok


_FLOOD_THEN_ASK = """
import socket, sys
port, data = int(sys.argv[1]), sys.stdin.buffer.read()
with socket.create_connection(("127.0.0.1", port), timeout=20) as flooder:
    flooder.sendall(data)
    assert flooder.recv(65536), "the flood is being answered"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as other:
        other.sendall(b"GET /other HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        answer = b""
        while chunk := other.recv(65536):
            answer += chunk
    flooder.shutdown(socket.SHUT_WR)
    while flooder.recv(1 << 20):  # the rest of the answers, until the server closes
        pass
sys.stdout.buffer.write(answer)
"""


@pytest.mark.parametrize("flood", ["pipelined requests", "a body of one-byte chunks"])
async def test_one_client_flooding_the_server_does_not_hold_the_others(flood: str) -> None:
    """Issue: on asyncio, a read returns what is buffered without a trip through the
    event loop, a handler that never awaits does not yield, nor does a write the
    transport takes at once: one client pipelining cheap requests (or sending a body of
    tiny chunks) held the loop for seconds, and every other client waited. The other
    client here connects once the flood is being answered; it must be served before
    the flood's last request, not after."""
    order: list[str] = []

    async def record(request: ServeRequest) -> str:
        order.append(request.path)
        return "ok"

    if flood == "pipelined requests":
        data = b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n" * 4000
    else:
        chunks = b"1\r\nx\r\n" * 160000
        data = (
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /flood HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )

    async with sansnet.serve(0, record) as handle:
        with anyio.fail_after(60):
            # In a process of its own: a thread would wait for the server's GIL.
            result = await anyio.run_process(
                [sys.executable, "-c", _FLOOD_THEN_ASK, str(handle.port)], input=data
            )
    answer = result.stdout
    assert answer.endswith(b"ok")
    assert order[-1] == "/flood", f"The other client was served after the flood: {order[-3:]}"


async def test_a_refused_connection_reads_the_503_not_a_reset() -> None:
    """Issue: past max_connections the server wrote its 503 and closed at once, the
    client's request unread: closing a socket with unread bytes sends a reset, which
    ends the client's sending and reading with a ConnectionResetError (and over a real
    network can destroy the 503 before the client reads it). Now the refusal
    half-closes after its answer and reads and drops what the client sends (bounded in
    bytes and time) until the client closes. The body is larger than what asyncio's
    transports read ahead on their own (a read or two of 256 KiB), so that some of it
    is always unread when the refusal ends, on every backend."""
    config = ServeConfig(handle_request=hello, max_connections=1)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 786432\r\n\r\n" + bytes(786432)
    async with (
        sansnet.serve(0, config) as handle,
        await anyio.connect_tcp("127.0.0.1", handle.port) as held,
    ):
        await held.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = b""
        with anyio.fail_after(5):
            while not answered.endswith(b"hello"):  # the server holds it: the one slot
                answered += await held.receive()
        received = b""
        with anyio.fail_after(5):
            async with (
                await anyio.connect_tcp("127.0.0.1", handle.port) as refused,
                anyio.create_task_group() as group,
            ):
                # A reset fails the send (BrokenResourceError) or the reading.
                group.start_soon(refused.send, request)
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        received += await refused.receive()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert len(body) == length > 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_descriptors_return_to_baseline_after_a_thousand_connections() -> None:
    async with sansnet.serve(0, hello) as handle:
        await sansnet.request(handle.url, headers={"Connection": "close"})
        await anyio.sleep(0.1)
        baseline = _open_fds()

        async def client(count: int) -> None:
            for _ in range(count):
                try:
                    await raw_exchange(
                        handle.port,
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        read_for=5,
                    )
                except OSError:
                    pass

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(client, 100)
        for _ in range(100):  # closing is asynchronous: give it up to 5 s
            if _open_fds() <= baseline:
                break
            await anyio.sleep(0.05)
        assert _open_fds() <= baseline


async def test_an_unexpected_error_serving_a_connection_ends_only_that_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect outside the handler (a forwarding header used to raise ValueError) is
    logged and closes its connection; the listener and the other connections go on."""
    make_request = Server._make_request

    def failing(self: Server, head: Any, *args: Any) -> ServeRequest:
        if head.target == "/boom":
            raise RuntimeError("a defect")
        return make_request(self, head, *args)

    monkeypatch.setattr(Server, "_make_request", failing)
    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with sansnet.serve(0, hello) as handle:
            other = await anyio.connect_tcp("127.0.0.1", handle.port)
            await other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _response(other)).endswith(b"hello")  # kept alive
            received = await raw_exchange(handle.port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            assert received == b""  # closed, nothing to say
            await anyio.sleep(0.1)
            with anyio.fail_after(5):
                await other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await _response(other)).endswith(b"hello")
            await other.aclose()
            assert (await sansnet.request(handle.url, timeout=5)).text == "hello"
    [record] = [r for r in caplog.records if r.name == "sansnet.server"]
    assert "that connection is closed, the server goes on" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "a defect"


@pytest.mark.parametrize(
    ("chunk", "count"), [(b"x" * 100, 200), (b"", 1000)], ids=["small", "empty"]
)
async def test_a_sync_streamed_body_lets_the_event_loop_run(chunk: bytes, count: int) -> None:
    """Writing to a socket that takes the data at once does not yield on asyncio (and
    an empty chunk writes nothing anywhere): an endless sync iterator would keep every
    other task and connection waiting. The body yields to the loop as it goes."""
    ticks = 0
    seen: list[int] = []

    def chunks() -> Any:
        for _ in range(count):
            seen.append(ticks)
            yield chunk
        yield b"end"

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with (
        sansnet.serve(0, lambda request: ServeResponse(body=chunks())) as handle,
        anyio.create_task_group() as group,
    ):
        group.start_soon(ticker)
        response = await sansnet.request(handle.url, timeout=5)
        group.cancel_scope.cancel()
    assert response.body == chunk * count + b"end"
    assert seen[-1] > seen[0]  # other tasks ran while the body was produced


async def test_graceful_stop_finishes_in_flight_requests_and_closes_idle_ones() -> None:
    started = anyio.Event()

    async def slow(request: ServeRequest) -> str:
        if request.path == "/slow":
            started.set()
            await anyio.sleep(0.5)
            return "finished"
        return "quick"

    results: dict[str, Any] = {}
    server = sansnet.serve(0, slow)
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        idle = await anyio.connect_tcp("127.0.0.1", handle.port)
        await idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle.receive()).endswith(b"quick")  # now idle, kept alive

        async def in_flight() -> None:
            async with httpx.AsyncClient() as client:
                response = await client.get(handle.url + "/slow")
                results["status"] = response.status_code
                results["text"] = response.text
                results["connection"] = response.headers.get("connection")

        group.start_soon(in_flight)
        await started.wait()
        with anyio.fail_after(5):
            await handle.stop()
        with anyio.fail_after(2):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await idle.receive()  # the idle connection was closed at once
        await idle.aclose()
    assert results == {"status": 200, "text": "finished", "connection": "close"}
    with pytest.raises(sansnet.ConnectError):
        await sansnet.request(handle.url, timeout=2)


async def test_stop_closes_a_connection_partway_through_a_head_at_once() -> None:
    """Part of a request head is not a request: stop() closes that connection rather
    than wait drain_timeout for the rest, and still lets an in-flight request finish."""
    started = anyio.Event()

    async def slow(request: ServeRequest) -> str:
        started.set()
        await anyio.sleep(0.5)
        return "finished"

    results: dict[str, Any] = {}
    server = sansnet.serve(0, ServeConfig(handle_request=slow, drain_timeout=5))
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        partial = await anyio.connect_tcp("127.0.0.1", handle.port)
        await partial.send(b"GET / HTTP/1.1\r\nHo")

        async def in_flight() -> None:
            response = await sansnet.request(handle.url + "/slow", timeout=10)
            results["answer"] = (response.status_code, response.text)

        group.start_soon(in_flight)
        await started.wait()
        await anyio.sleep(0.2)  # the partial head has reached the server
        took = await seconds_to_stop(handle)
        with anyio.fail_after(2):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await partial.receive()  # closed without an answer
        await partial.aclose()
    assert took < 2  # the in-flight request's 0.5 s, not drain_timeout's 5
    assert results == {"answer": (200, "finished")}


async def test_stop_cancels_what_outlives_the_drain_timeout() -> None:
    async def stuck(request: ServeRequest) -> str:
        await anyio.sleep(60)
        return "never"  # pragma: no cover

    config = ServeConfig(handle_request=stuck, drain_timeout=0.2)
    async with sansnet.serve(0, config) as handle:
        stream = await anyio.connect_tcp("127.0.0.1", handle.port)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await anyio.sleep(0.1)
        with anyio.fail_after(5):
            await handle.stop()
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            with anyio.fail_after(2):
                await stream.receive()
        await stream.aclose()


async def test_expect_100_continue_with_curl(tmp_path: Any) -> None:
    async def size(request: ServeRequest) -> str:
        return str(len(request.body))

    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"z" * 100_000)
    async with sansnet.serve(0, size) as handle:
        result = await anyio.run_process(
            [
                "curl",
                "-sS",
                "-v",
                "--max-time",
                "10",
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                f"@{upload}",
                handle.url,
            ],
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"100000"
    assert b"HTTP/1.1 100 Continue" in result.stderr


async def test_curl_keep_alive_head_and_chunked_upload(tmp_path: Any) -> None:
    async with sansnet.serve(0, lambda request: f"{request.method} {len(request.body)}") as handle:
        result = await anyio.run_process(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                handle.url + "/1",
                handle.url + "/2",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                "chunky",
            ],
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"POST 6POST 6"
        result = await anyio.run_process(
            ["curl", "-sS", "-I", "--max-time", "10", handle.url], check=False
        )
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 6\r\n" in result.stdout.lower()  # len("HEAD 0"), no body sent


async def _response(stream: anyio.abc.SocketStream) -> bytes:
    """One whole response to a hello request: read until its 5-byte body is in."""
    received = b""
    while not received.endswith(b"hello"):
        chunk = await stream.receive()
        received += chunk
    return received


@pytest.mark.parametrize("where", ["tcp", "uds"])
async def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(
    where: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, anyio_backend_name: str
) -> None:
    """`printf 'GET ...' | nc -N`: the client ends its sending side after the request
    and reads the answer. On asyncio the server closed the connection on the client's
    EOF, so an answer not written by then (a handler still running) was lost (b"");
    trio kept it open."""
    eof_seen = anyio.Event()
    eof_received = _StreamProtocol.eof_received

    def noting_eof(self: _StreamProtocol) -> bool:
        eof_seen.set()
        return eof_received(self)

    monkeypatch.setattr(_StreamProtocol, "eof_received", noting_eof)

    async def after_the_eof(request: ServeRequest) -> str:
        if anyio_backend_name == "asyncio":  # (trio has no protocol callback to wait for)
            with anyio.fail_after(5):
                await eof_seen.wait()  # the server has seen the client's EOF
        return "hello"

    uds = str(tmp_path / "s.sock") if where == "uds" else None
    async with sansnet.serve(0, after_the_eof, uds=uds) as handle:
        if uds is None:
            stream: Any = await anyio.connect_tcp("127.0.0.1", handle.port)
        else:
            stream = await anyio.connect_unix(uds)
        async with stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await stream.send_eof()
            received = b""
            with anyio.fail_after(5):
                while True:
                    try:
                        received += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nhello")


async def test_stop_does_not_wait_for_a_client_that_never_reads() -> None:
    """A response cut off by drain_timeout is dropped with its connection. On asyncio
    the cancelled connection was closed gracefully, waiting 5 s more for a client that
    never reads to take the rest: stop() took drain_timeout + 5 s (trio: drain_timeout)."""
    yielded = anyio.Event()

    async def endless() -> Any:
        while True:
            yield b"x" * 65536
            yielded.set()

    config = ServeConfig(
        handle_request=lambda request: ServeResponse(body=endless()), drain_timeout=1
    )
    server = sansnet.serve(0, config)
    async with serving_a_client_that_never_reads(
        server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    ) as handle:
        with anyio.fail_after(5):
            await yielded.wait()
        took = await seconds_to_stop(handle)
    assert took < 3  # drain_timeout's 1 s, not 6


async def test_stop_does_not_wait_for_the_last_bytes_of_a_connection_that_ended() -> None:
    """A response that ends during the drain while its last bytes wait in the transport
    (the client reads nothing; below the high-water mark, so the write returned): the
    connection's close waited up to 5 s more for the client to take them, and stop()
    with it (drain_timeout + 5 s on asyncio and uvloop). The close now gets what is left
    of drain_timeout, then aborts. On trio a socket write waits for the kernel instead:
    nothing ever waits in user space, so a little is sent and the bound holds anyway."""
    drain_timeout = 0.5
    started = anyio.Event()
    go = anyio.Event()
    filled: list[bool] = []

    async def fill_until_bytes_wait() -> Any:
        (record,) = server._records
        async for piece in until_bytes_wait(record.stream):
            yield piece
        filled.append(True)

    async def handler(request: ServeRequest) -> ServeResponse:
        started.set()
        await go.wait()  # answer once stop() has begun
        return ServeResponse(body=fill_until_bytes_wait())

    server = sansnet.serve(0, ServeConfig(handle_request=handler, drain_timeout=drain_timeout))
    async with serving_a_client_that_never_reads(
        server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    ) as handle:
        with anyio.fail_after(5):
            await started.wait()
        took = await seconds_to_stop(handle, release=go)
    assert filled  # the response ended within the drain: its connection closed normally
    assert took < drain_timeout + 1, took  # the bug took drain_timeout + 5 s


async def test_stop_aborts_the_close_of_a_connection_that_ended_before_it() -> None:
    """A `Connection: close` response that ended *before* stop(), its last bytes waiting
    in the transport (the client reads nothing): the connection's close waits up to 5 s
    for the client to take them, and the server no longer counted the connection, so
    stop() returned with that close still running in its task group, which then held
    stop() for the rest of those 5 s (asyncio and uvloop). A close still waiting when the
    drain ends is now aborted. On trio nothing waits in user space (see above)."""
    drain_timeout = 0.5
    filled = anyio.Event()

    async def fill_until_bytes_wait() -> Any:
        (record,) = server._records
        async for piece in until_bytes_wait(record.stream):
            yield piece
        filled.set()

    async def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(body=fill_until_bytes_wait())

    server = sansnet.serve(0, ServeConfig(handle_request=handler, drain_timeout=drain_timeout))
    async with serving_a_client_that_never_reads(
        server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ) as handle:
        with anyio.fail_after(5):
            await filled.wait()
        await anyio.wait_all_tasks_blocked()
        assert not server._records  # the response ended; its connection is closing
        took = await seconds_to_stop(handle)
    assert took < drain_timeout + 1, took  # the bug took up to 5 s


def _asyncio_only(anyio_backend: Any) -> None:
    name = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    if name != "asyncio":
        pytest.skip("trio's Cancelled comes only from a cancelled scope: no stray one")


@pytest.mark.parametrize("where", ["handler", "body", "websocket"])
async def test_a_cancelled_error_of_the_application_ends_only_its_exchange(
    anyio_backend: Any, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue: a handler (or a body iterator, or a WebSocket handler) that raised
    asyncio.CancelledError, as one awaiting a task cancelled elsewhere does, stopped the
    whole server, with nothing logged. It is that exchange's failure: a 500, a reset
    body, a closed WebSocket; the server goes on."""
    _asyncio_only(anyio_backend)
    import asyncio

    async def body() -> Any:
        yield b"start"
        raise asyncio.CancelledError

    async def handler(request: ServeRequest) -> Any:
        if request.path == "/fine":
            return "fine"
        if where == "handler":
            raise asyncio.CancelledError
        return ServeResponse(body=body())

    async def socket_handler(ws: sansnet.WebSocket) -> None:
        raise asyncio.CancelledError

    config = ServeConfig(handle_request=handler, handle_web_socket=socket_handler)
    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with sansnet.serve(0, config) as handle:
            if where == "handler":
                assert (await sansnet.request(handle.url, timeout=5)).status_code == 500
            elif where == "body":
                with pytest.raises(sansnet.NetError):
                    await (await sansnet.request(handle.url, timeout=5)).aread()
            else:
                async with await sansnet.socket(handle.url.replace("http", "ws")) as ws:
                    assert await ws.next() is None
            assert (await sansnet.request(f"{handle.url}/fine", timeout=5)).text == "fine"
            assert not handle.stopped
    assert any(record.exc_info for record in caplog.records)


async def test_an_async_body_that_never_awaits_lets_the_loop_run(anyio_backend: Any) -> None:
    """Issue: an async generator body that never awaits kept the asyncio loop from
    every other client while it streamed (7 s for another client's request), as a sync
    one no longer did: the writes return at once while the transport takes them. It
    gets the same checkpoint, every 64 chunks or 64 KiB."""
    ticks = 0
    seen: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async def body() -> Any:
        start = ticks
        for index in range(3000):  # 48 KB: under the transport's high-water mark
            if index == 2999:
                seen.append(ticks - start)
            yield b"x" * 16

    async def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(body=body())

    async with anyio.create_task_group() as group, sansnet.serve(0, handler) as handle:
        group.start_soon(ticker)
        response = await sansnet.request(handle.url, timeout=10)
        assert len(response.body) == 48_000
        group.cancel_scope.cancel()
    assert seen[0] > 0  # before: 0 on asyncio, nothing else ran


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
async def test_a_body_that_fails_resets_the_connection(version: bytes) -> None:
    """Issue: over HTTP/1.0 (a body framed by the end of the connection) a body
    iterator that raised midway was followed by a FIN: the client took the first half
    for the whole document. The connection is reset instead."""

    def body() -> Any:
        yield b"first half; "
        raise RuntimeError("the database went away")

    async def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(body=body())

    def exchange(port: int) -> tuple[bytes, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n")
            received = b""
            try:
                while chunk := conn.recv(65536):
                    received += chunk
            except ConnectionResetError:
                return received, "reset"
            return received, "end of stream"

    logging.getLogger("sansnet.server").disabled = True
    try:
        async with sansnet.serve(0, handler) as handle:
            _, end = await anyio.to_thread.run_sync(exchange, handle.port)
    finally:
        logging.getLogger("sansnet.server").disabled = False
    assert end == "reset"  # before (HTTP/1.0): "end of stream"
