"""Keepalive against a real TCP peer that completes the handshake and then never reads
again (its receive window full, our send buffer full): the side that reads must drop
it after about ping_interval + ping_timeout, plus close_timeout for a close frame that
cannot be written, whatever our sending task is doing, on asyncio, uvloop and trio."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import sansnet
from sansnet import ServeConfig, WebSocket
from sansnet.protocol.websocket import OPEN as OPEN_STATE
from tests.stuck import until_bytes_wait

from .peers import switching_protocols

pytestmark = pytest.mark.anyio

PING_INTERVAL = 0.1
PING_TIMEOUT = 0.1
CLOSE_TIMEOUT = 0.2
# Generous: the sansnet side is done after about 0.4 s (0.1 + 0.1 + 0.2).
BOUND = 3.0
SMALL_BUFFER = 4096

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _small_buffers(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)


@contextlib.contextmanager
def _upgrade_then_stop_reading(port: int) -> Iterator[socket.socket]:
    """A raw client with small buffers that asks for a WebSocket and never reads: not
    even the 101."""
    with socket.socket() as raw:
        _small_buffers(raw)
        raw.connect(("127.0.0.1", port))
        raw.sendall(UPGRADE)
        yield raw


async def _flood(ws: WebSocket, user_timeout: bool) -> None:
    """Send 64 KiB messages until the socket closes (the last send waits for the stuck
    peer, holding the write lock); with ``user_timeout``, until a send runs out of the
    application's own time (as websockets advises bounding a send), then send no more:
    the write lock is free, and the transport still full."""
    message = bytes(65536)
    with contextlib.suppress(sansnet.ConnectionClosed):
        while not ws.closed:
            if user_timeout:
                with anyio.move_on_after(PING_INTERVAL / 2) as scope:
                    await ws.send(message)
                if scope.cancelled_caught:
                    return
            else:
                await ws.send(message)


async def _read_and_flood(ws: WebSocket, user_timeout: bool, result: dict[str, Any]) -> None:
    """One task reads (so keepalive runs) while another floods the stuck peer."""
    async with anyio.create_task_group() as group:
        group.start_soon(_flood, ws, user_timeout)
        result["messages"] = [message async for message in ws]
        result["code"] = ws.close_code


@pytest.mark.parametrize("user_timeout", [False, True], ids=["send-blocked", "send-timed-out"])
async def test_the_server_drops_a_client_that_stops_reading(user_timeout: bool) -> None:
    result: dict[str, Any] = {}
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            await _read_and_flood(ws, user_timeout, result)
        finally:
            done.set()

    config = ServeConfig(
        handle_web_socket=handler,
        compression=False,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
    )
    async with sansnet.serve(0, config) as handle:
        with _upgrade_then_stop_reading(handle.port):
            with anyio.fail_after(BOUND):
                await done.wait()
    assert result == {"messages": [], "code": result["code"]}
    assert result["code"] in (1011, 1006)


@contextlib.contextmanager
def _small_listener() -> Iterator[socket.socket]:
    """A non-blocking listener on 127.0.0.1 whose accepted sockets have small buffers."""
    with socket.socket() as listener:
        _small_buffers(listener)  # accepted sockets inherit them
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        yield listener


async def _answer_then_stop_reading(listener: socket.socket, peers: list[socket.socket]) -> None:
    """Accept one WebSocket client, answer its handshake with 101, then never read
    again; the socket goes to ``peers`` for the test to close."""
    await anyio.wait_readable(listener)
    peer, _ = listener.accept()
    peers.append(peer)
    peer.setblocking(False)
    request = b""
    while b"\r\n\r\n" not in request:
        await anyio.wait_readable(peer)
        request += peer.recv(65536)
    peer.sendall(switching_protocols(request))


@pytest.mark.parametrize("user_timeout", [False, True], ids=["send-blocked", "send-timed-out"])
async def test_the_client_drops_a_server_that_stops_reading(user_timeout: bool) -> None:
    result: dict[str, Any] = {}
    with _small_listener() as listener:
        port = listener.getsockname()[1]
        async with anyio.create_task_group() as group:
            peers: list[socket.socket] = []
            group.start_soon(_answer_then_stop_reading, listener, peers)
            ws = await sansnet.socket(
                f"ws://127.0.0.1:{port}/",
                compression=False,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
            )
            try:
                with anyio.fail_after(BOUND):
                    await _read_and_flood(ws, user_timeout, result)
                    await ws.close_quietly()  # closed already: nothing to wait for
            finally:
                for peer in peers:
                    peer.close()
    assert result == {"messages": [], "code": result["code"]}
    assert result["code"] in (1011, 1006)


async def test_the_answer_to_a_close_frame_is_bounded_when_the_peer_stops_reading() -> None:
    """The peer sends its close frame but reads nothing: our answer cannot be written
    (the transport is full after a send the application gave up on). The reader gives
    up on it after close_timeout, with keepalive off, and the connection is aborted.
    (On trio the send given up on cut a frame short: the connection was dropped then.)"""
    result: dict[str, Any] = {}
    flooded, done = anyio.Event(), anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            await _flood(ws, user_timeout=True)
            flooded.set()
            result["messages"] = [message async for message in ws]
            result["code"] = ws.close_code
        finally:
            done.set()

    config = ServeConfig(
        handle_web_socket=handler,
        compression=False,
        ping_interval=None,
        close_timeout=CLOSE_TIMEOUT,
    )
    async with sansnet.serve(0, config) as handle:
        with _upgrade_then_stop_reading(handle.port) as raw:
            with anyio.fail_after(BOUND):
                await flooded.wait()
                raw.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # close 1000, masked
                await done.wait()
    assert result == {"messages": [], "code": result["code"]}
    assert result["code"] in (1000, 1006)


async def _fill_until_bytes_wait(ws: WebSocket) -> None:
    """Send small messages until some of ours wait in the transport (see
    :func:`tests.stuck.until_bytes_wait`)."""
    async for piece in until_bytes_wait(ws._stream):
        await ws.send(piece)


@pytest.mark.parametrize("late", [False, True], ids=["close-frame-there", "close-frame-late"])
async def test_close_is_bounded_by_close_timeout_when_our_last_bytes_wait(late: bool) -> None:
    """The closing handshake completes at once (the peer's close frame is there), but
    the peer reads nothing and some of our bytes still wait to be sent: closing the
    transport gracefully waited up to 5 s for them, close_timeout notwithstanding
    (close() took 5 s with close_timeout=0.2 on asyncio and uvloop). The transport is
    now aborted once what is left of close_timeout runs out. ``late``: the peer's close
    frame comes near the end of close_timeout; closing the transport then had a fresh
    close_timeout of its own (close() took about twice its bound)."""
    close_timeout = 1.0 if late else CLOSE_TIMEOUT
    with _small_listener() as listener:
        port = listener.getsockname()[1]
        peers: list[socket.socket] = []
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_answer_then_stop_reading, listener, peers)
                ws = await sansnet.socket(
                    f"ws://127.0.0.1:{port}/",
                    compression=False,
                    ping_interval=None,
                    close_timeout=close_timeout,
                )
            with anyio.fail_after(BOUND + 2):
                _small_buffers(ws._stream.raw_socket)  # type: ignore[arg-type]
                await _fill_until_bytes_wait(ws)
                started = anyio.current_time()
                async with anyio.create_task_group() as closing:
                    closing.start_soon(ws.close)
                    if late:
                        await anyio.sleep(close_timeout * 0.8)
                    peers[0].sendall(b"\x88\x02\x03\xe8")  # close 1000, and reads nothing
                took = anyio.current_time() - started
        finally:
            for peer in peers:
                peer.close()
    # The bugs took 5 s (close-frame-there) and 1.8 s (close-frame-late); some slack for load.
    assert took < close_timeout + (0.5 if late else 2), took
    assert ws.closed


async def test_a_handler_that_only_sends_stays_open_past_the_keepalive_timing() -> None:
    """The other side of the bound: a healthy peer that reads and pings, and a handler
    that only sends (nobody reads on our side, so our keepalive timing goes stale). Its
    sends answer the peer's pings as they read ahead; those answers must not be bounded
    by the stale timing (a bound of 0 failed the connection with 1011 on asyncio)."""
    ticks = 40
    sent = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        for number in range(ticks):
            await ws.send(str(number))
            await anyio.sleep(0.02)  # 0.8 s in all: past ping_interval + ping_timeout
        sent.set()
        await ws.close()

    config = ServeConfig(
        handle_web_socket=handler,
        compression=False,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
    )
    async with sansnet.serve(0, config) as handle:
        ws = await sansnet.socket(
            f"ws://127.0.0.1:{handle.port}/", ping_interval=PING_INTERVAL / 2, ping_timeout=5
        )
        with anyio.fail_after(BOUND + 5):
            received = [message async for message in ws]
        assert received == [str(number) for number in range(ticks)]
        assert ws.close_code == 1000
        assert sent.is_set()


async def test_sends_given_up_on_a_slow_reader_neither_pile_up_nor_corrupt(
    anyio_backend: Any,
) -> None:
    """A client that stops reading for a while, and a handler that gives each send a
    short time of its own (as websockets advises). On asyncio a send given up after
    its message was framed still delivers it whole; one given up before used to leave
    its whole message in the transport too, so the buffer grew by a message per attempt.
    A send now waits for room before it frames: one given up then frames nothing. With
    compression on (context takeover), every message the client gets afterwards must
    inflate, whole and in order."""
    if anyio_backend[0] == "trio":
        pytest.skip(
            "trio's sockets do not write whole: a send given up mid-frame drops the "
            "connection (test_server.py's cancelled-send tests)"
        )
    size, attempts = 64 * 1024, 30
    stopped_reading, sent = anyio.Event(), anyio.Event()
    buffered: list[int] = []
    returned: list[int] = []

    async def handler(ws: WebSocket) -> None:
        await stopped_reading.wait()
        ws._stream.raw_socket.setsockopt(  # type: ignore[union-attr]
            socket.SOL_SOCKET, socket.SO_SNDBUF, size
        )
        transport = getattr(ws._stream, "_transport", None)
        for number in range(attempts):
            with anyio.move_on_after(0.02):
                # incompressible, numbered: a message cut or misplaced cannot pass
                await ws.send(number.to_bytes(4, "big") + os.urandom(size))
                returned.append(number)
            if transport is not None:
                buffered.append(transport.get_write_buffer_size())
        sent.set()
        await ws.close()

    config = ServeConfig(handle_web_socket=handler, ping_interval=None)
    async with sansnet.serve(0, config) as handle:
        ws = await sansnet.socket(f"ws://127.0.0.1:{handle.port}/", ping_interval=None)
        ws._stream.raw_socket.setsockopt(  # type: ignore[union-attr]
            socket.SOL_SOCKET, socket.SO_RCVBUF, size
        )
        stopped_reading.set()
        with anyio.fail_after(BOUND + 5):
            await sent.wait()  # all the attempts made while we did not read
            received = [message async for message in ws]
    numbers = [int.from_bytes(message[:4], "big") for message in received]
    assert all(len(message) == size + 4 for message in received)
    assert numbers == sorted(set(numbers)), numbers  # in order, none twice
    assert set(returned) <= set(numbers), (returned, numbers)  # a send that returned arrived
    assert ws.close_code == 1000
    if buffered:  # asyncio: bounded by a little over the transport's high-water mark
        assert max(buffered) <= 256 * 1024 + 2 * size, buffered


async def test_a_send_while_closing_raises_at_once(anyio_backend: Any) -> None:
    """close() is writing its close frame to a peer that does not read (the transport is
    full): a send() meanwhile raises ConnectionClosed at once, as before sends waited for
    room, rather than after the transport drains or close_timeout runs out."""
    if anyio_backend[0] == "trio":
        pytest.skip("the wait for room is the asyncio transport's")
    result: dict[str, Any] = {}
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            transport = ws._stream._transport  # type: ignore[attr-defined]
            ws._stream.raw_socket.setsockopt(  # type: ignore[union-attr]
                socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER
            )
            while not ws._stream._protocol.paused_writing:  # type: ignore[attr-defined]
                with anyio.move_on_after(0.05):
                    await ws.send(bytes(65536))
            async with anyio.create_task_group() as group:
                group.start_soon(ws.close)
                while ws._conn.state is OPEN_STATE:  # noqa: ASYNC110 - until close() began
                    await anyio.sleep(0.01)
                started = anyio.current_time()
                try:
                    await ws.send("too late")
                except sansnet.ConnectionClosed:
                    result["took"] = anyio.current_time() - started
                result["buffered"] = transport.get_write_buffer_size()
                group.cancel_scope.cancel()  # the close would wait close_timeout: enough
        finally:
            done.set()

    config = ServeConfig(
        handle_web_socket=handler, compression=False, ping_interval=None, close_timeout=5
    )
    async with sansnet.serve(0, config) as handle:
        with _upgrade_then_stop_reading(handle.port):
            with anyio.fail_after(BOUND + 5):
                await done.wait()
    assert result["buffered"] > 0  # the transport was still full: the wait was there
    assert result["took"] < 1, result  # close_timeout is 5 s


async def test_a_close_cut_short_by_the_caller_leaves_no_deadline_behind() -> None:
    """close() records its deadline for _finish() while it runs; one cut short by the
    caller's own cancel scope must not leave it for the close that a later next() or
    close_quietly() finishes (it would abort at once, our last bytes dropped)."""

    async def handler(ws: WebSocket) -> None:
        await anyio.sleep(0.5)  # reads nothing: our close frame gets no answer meanwhile

    async with sansnet.serve(0, ServeConfig(handle_web_socket=handler)) as handle:
        ws = await sansnet.socket(f"ws://127.0.0.1:{handle.port}/", close_timeout=10)
        with anyio.move_on_after(0.1) as scope:
            await ws.close()
        assert scope.cancelled_caught  # cut short: no answer to our close frame yet
        assert ws._close_deadline is None
        await ws.close_quietly()
