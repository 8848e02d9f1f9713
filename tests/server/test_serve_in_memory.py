"""net.serve's timeouts, limits and early ends, in memory on virtual time
(:mod:`sansnet.testing`): the server code is the same as over TCP, a raw in-memory
connection plays the misbehaving client, and every timeout fires as soon as all tasks
wait, so these tests take no wall time for their seconds. What needs a real socket
(descriptors, kernel buffers, resets, the accept loop, graceful stop) stays in
test_serve_robustness.py."""

from __future__ import annotations

import email.utils
import gc
import logging
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import sansnet
from sansnet import ServeConfig, ServeRequest, ServeResponse, Timeout
from sansnet.testing import serve
from tests.virtual_time import on_virtual_time

pytestmark = pytest.mark.anyio


async def hello(request: ServeRequest) -> str:
    return "hello"


@on_virtual_time
async def test_slowloris_is_disconnected_and_others_are_served_meanwhile() -> None:
    config = ServeConfig(handle_request=hello, header_timeout=10.0)
    async with serve(config) as client:
        result: dict[str, Any] = {}

        async def slowloris() -> None:
            async with await client.connect() as conn:
                request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
                started = anyio.current_time()
                for byte in request:  # one byte a second: never finishes in time
                    try:
                        await conn.send(bytes([byte]))
                    except sansnet.WriteError:
                        break
                    await anyio.sleep(1)
                result["answer"] = await conn.receive_until_closed(timeout=60)
                result["after"] = anyio.current_time() - started

        async with anyio.create_task_group() as group:
            group.start_soon(slowloris)
            await anyio.sleep(3)
            for _ in range(5):  # others are served at once while the slow one trickles
                assert (await client.request("/")).text == "hello"
        assert result["answer"].startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert 10 <= result["after"] < 20  # cut near header_timeout; the trickle takes 130 s


@on_virtual_time
async def test_body_timeout() -> None:
    config = ServeConfig(handle_request=hello, body_timeout=30)
    async with serve(config) as client, await client.connect() as conn:
        await conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = anyio.current_time()
        received = await conn.receive_until_closed(timeout=120)
        assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert anyio.current_time() - started == pytest.approx(30, abs=1)


@on_virtual_time
async def test_idle_keep_alive_connections_are_closed_after_keepalive_timeout() -> None:
    config = ServeConfig(handle_request=hello, keepalive_timeout=5)
    async with serve(config) as client, await client.connect() as conn:
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.receive()).endswith(b"hello")
        started = anyio.current_time()
        assert await conn.receive(timeout=60) == b""  # closed by the server
        assert anyio.current_time() - started == pytest.approx(5, abs=0.5)


@on_virtual_time
async def test_empty_lines_before_a_head_run_on_the_header_timeout() -> None:
    """RFC 9112 section 2.2 lets empty lines come before a request line, and the
    server skips them; they count as the head's first bytes. Each CRLF used to restart
    the keep-alive wait, so a client sending one every few seconds held its connection
    forever, never under header_timeout."""
    config = ServeConfig(handle_request=hello, keepalive_timeout=5, header_timeout=10)
    async with serve(config) as client, await client.connect() as conn:
        started = anyio.current_time()
        answer = b""
        with anyio.fail_after(60):
            while not answer:
                try:
                    await conn.send(b"\r\n")
                except sansnet.WriteError:
                    break
                with anyio.move_on_after(4):
                    answer = await conn.receive()
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert anyio.current_time() - started == pytest.approx(10, abs=1)


@on_virtual_time
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
    ],
)
async def test_protocol_limits_are_answered_with_their_status(
    request_bytes: bytes, status: int
) -> None:
    async with serve(hello) as client:
        async with await client.connect() as conn:
            await conn.send(request_bytes)
            received = await conn.receive_until_closed(timeout=5)
        assert received.startswith(b"HTTP/1.1 %d " % status)
        assert b"\r\nconnection: close\r\n" in received
        assert (await client.request("/")).ok  # and the server goes on


@on_virtual_time
@pytest.mark.parametrize("kind", ["async generator", "generator"])
async def test_a_streamed_body_is_closed_when_the_client_leaves_mid_body(kind: str) -> None:
    """The body's ``finally`` runs as soon as the response ends early, not whenever
    the garbage collector finds the generator (trio warns about that)."""
    cleaned_up = anyio.Event()

    async def pieces() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
                await anyio.sleep(1)
        finally:
            cleaned_up.set()

    def blocks() -> Iterator[bytes]:
        try:
            while True:
                yield b"y" * (1024 * 1024)
        finally:
            cleaned_up.set()

    bodies: list[object] = []  # held, so the garbage collector cannot close them for us

    async def endless(request: ServeRequest) -> ServeResponse:
        bodies.append(pieces() if kind == "async generator" else blocks())
        return ServeResponse(body=bodies[-1])

    async with serve(endless) as client:
        async with client.stream("/", timeout=Timeout(read=5)) as response:
            async for chunk in response.aiter_raw():
                assert chunk
                break
        # the client closed the connection mid-body: the server's next write fails
        with anyio.fail_after(60):
            await cleaned_up.wait()


@on_virtual_time
@pytest.mark.parametrize(
    ("method", "status"),
    [("HEAD", 200), ("GET", 204), ("GET", 205), ("GET", 304)],
    ids=["HEAD", "204", "205", "304"],
)
@pytest.mark.parametrize("kind", ["async generator", "generator"])
async def test_a_streamed_body_that_is_not_sent_is_never_iterated(
    method: str, status: int, kind: str
) -> None:
    """A response to HEAD, a 204, 205 or 304 carries no body: an endless event stream (or
    a sync iterator, which would freeze the event loop) is closed unread, and the
    keep-alive connection goes on to the next request at once."""
    produced = 0

    async def events() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield b"data: tick\n\n"
            await anyio.sleep(1)

    def blocks() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(1000):  # endless in life; bounded here, to fail rather than hang
            produced += 1
            yield b"y" * 1024

    bodies: list[object] = []  # held, so the garbage collector cannot close them for us

    async def endless(request: ServeRequest) -> ServeResponse:
        if request.path == "/next":
            return ServeResponse(body=b"next")
        bodies.append(events() if kind == "async generator" else blocks())
        return ServeResponse(status, {"Content-Type": "text/event-stream"}, bodies[-1])

    async with serve(endless) as client, await client.connect() as conn:
        await conn.send(
            f"{method} /events HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        received = b""
        with anyio.fail_after(30):
            while not received.endswith(b"next"):
                chunk = await conn.receive()
                assert chunk, received
                received += chunk
    assert received.startswith(b"HTTP/1.1 %d " % status)
    assert received.count(b"HTTP/1.1 ") == 2  # the head, nothing after it, the next answer
    assert b"tick" not in received
    assert b"y" * 10 not in received
    assert produced == 0
    [body] = bodies
    assert getattr(body, "ag_frame", getattr(body, "gi_frame", "")) is None  # closed


@on_virtual_time
async def test_a_body_that_fails_its_cleanup_or_has_none_does_not_stop_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing_cleanup() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * (1024 * 1024)
        finally:
            raise RuntimeError("cleanup failed")

    bodies: list[object] = []

    async def endless(request: ServeRequest) -> ServeResponse:
        if request.path == "/list":
            bodies.append([b"y" * (1024 * 1024)] * 64)  # no close() to call
        elif request.path == "/failing":
            bodies.append(failing_cleanup())
        else:
            return ServeResponse(body=b"still serving")
        return ServeResponse(body=bodies[-1])

    async with serve(endless) as client:
        for path in ("/list", "/failing"):
            async with client.stream(path) as response:
                async for _ in response.aiter_raw():
                    break
        await anyio.sleep(10)  # virtual: returns once every task waits, the server's too
        assert "Closing a response body iterator after an early end failed" in caplog.text
        assert (await client.request("/")).text == "still serving"


@on_virtual_time
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [(b"\x00garbage\r\n\r\n", 400), (b"GET / HTTP/1.1\r\nHost: x\r\n", 408)],
    ids=["garbage", "unfinished head"],
)
async def test_an_error_that_opens_a_connection_carries_a_valid_date(
    request_bytes: bytes, status: int
) -> None:
    # The first thing a connection gets is an error: its Date was empty before.
    config = ServeConfig(handle_request=hello, header_timeout=10)
    async with serve(config) as client, await client.connect() as conn:
        await conn.send(request_bytes)
        received = await conn.receive_until_closed(timeout=60)
    assert received.startswith(b"HTTP/1.1 %d " % status)
    date = received.split(b"\r\ndate: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert email.utils.parsedate_to_datetime(date).tzinfo is not None  # an HTTP-date


async def test_an_error_after_a_long_idle_keep_alive_carries_the_current_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #22: an error response carried the Date of the last success."""
    import sansnet.server

    clock = [1_800_000_000.0]
    monkeypatch.setattr(sansnet.server, "_wall_clock", lambda: clock[0])
    config = ServeConfig(handle_request=hello)
    async with serve(config) as client, await client.connect() as conn:
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await conn.receive(timeout=10)
        assert first.startswith(b"HTTP/1.1 200 ")
        clock[0] += 3600  # an hour later, on the same connection: garbage
        await conn.send(b"\x00garbage\r\n\r\n")
        error = await conn.receive_until_closed(timeout=10)
    assert error.startswith(b"HTTP/1.1 400 ")
    assert b"\r\ndate: " + email.utils.formatdate(clock[0], usegmt=True).encode() in error


async def test_the_date_follows_a_wall_clock_set_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Date field is formatted once a second: a clock stepped back (NTP) must not
    leave it at the later time until the clock catches up."""
    import sansnet.server

    clock = [1_800_000_000.0]
    monkeypatch.setattr(sansnet.server, "_wall_clock", lambda: clock[0])
    config = ServeConfig(handle_request=hello)
    async with serve(config) as client:
        for _ in range(2):
            async with await client.connect() as conn:
                await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = await conn.receive_until_closed(timeout=10)
            expected = email.utils.formatdate(clock[0], usegmt=True).encode()
            assert b"\r\ndate: " + expected + b"\r\n" in answer
            clock[0] -= 3600  # set back an hour


@on_virtual_time
async def test_connection_cap_answers_503_past_it() -> None:
    config = ServeConfig(handle_request=hello, max_connections=2)
    async with serve(config) as client:
        held = [await client.connect() for _ in range(2)]
        try:
            await anyio.sleep(0.1)  # the server takes both in
            async with await client.connect() as third:
                await third.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                received = await third.receive_until_closed(timeout=5)
            assert received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        finally:
            for conn in held:
                await conn.aclose()
        with anyio.fail_after(5):
            while True:  # slots come back once the held connections are gone
                response = await client.request("/", headers={"Connection": "close"})
                if response.status_code == 200:
                    break
                await anyio.sleep(0.05)


@on_virtual_time
async def test_disconnects_mid_head_body_and_response_are_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = anyio.Event()

    async def slow(request: ServeRequest) -> ServeResponse:
        if request.path == "/slow":
            await release.wait()
        return ServeResponse(body=b"y" * 1_000_000)

    with caplog.at_level(logging.DEBUG, logger="sansnet"):
        async with serve(slow) as client:
            for data in (
                b"GET / HT",  # mid-head
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # mid-body
                b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",  # gone before the response
            ):
                async with await client.connect() as conn:
                    await conn.send(data)
                    await anyio.sleep(0.05)
            release.set()
            async with await client.connect() as conn:  # mid-response
                await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await conn.receive(timeout=5)
            await anyio.sleep(0.2)
            assert (await client.request("/")).ok
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@on_virtual_time
async def test_a_body_of_tiny_chunks_takes_memory_near_its_size() -> None:
    """max_body_bytes bounds the memory a body takes: a chunked body of 2-byte chunks
    (7 bytes each on the wire) was kept as one bytes object per chunk, about 50 bytes
    each: 60 times the body's size (16 MiB allowed, about 1 GB taken; here 2.5 MB
    for 40 KB)."""
    chunks = 20_000
    wire = b"2\r\nxx\r\n" * chunks + b"0\r\n\r\n"

    async def size(request: ServeRequest) -> str:
        return str(len(request.body))

    async with serve(size) as client, await client.connect() as conn:
        gc.collect()
        tracemalloc.start()
        try:
            await conn.send(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n"
            )
            for start in range(0, len(wire), 65536):
                await conn.send(wire[start : start + 65536])
            received = await conn.receive_until_closed(timeout=60)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received.endswith(b"\r\n\r\n%d" % (2 * chunks))
    assert peak < 1024 * 1024, f"a {2 * chunks}-byte body took {peak} bytes"
