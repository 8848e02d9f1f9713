"""A close cut short by the caller's cancellation closes the connection anyway.

Issue (a review, scripts proved it on asyncio and trio): ``async with ws:`` left by a
timeout while ``next()`` waited ran ``close_quietly()`` inside the cancelled scope; its
first await raised, and the socket stayed open with no close frame, the peer waiting
(each use leaked a descriptor). And ``next()`` cancelled while the WebSocket lingered
after the peer broke the protocol left the stream open, marked closed, so no later
close could close it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest

import sansnet

from .peers import switching_protocols

pytestmark = pytest.mark.anyio


@contextmanager
def raw_peer(
    after_handshake: bytes = b"", hold: float = 0.0
) -> Iterator[tuple[int, Callable[[], bool]]]:
    """A WebSocket server on a plain socket in a thread: it accepts the handshake,
    sends ``after_handshake``, then reads without closing its side, and ``hold``
    seconds more after the client's end. Yields the port and a function telling
    whether the client's end (EOF or a reset) arrived within 8 s (the tests' clients
    have a close_timeout of 30 s: an end seen came from no timeout of theirs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    ended: list[bool] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(8)
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(4096)
            connection.sendall(switching_protocols(head))
            if after_handshake:
                time.sleep(0.2)  # after the client has the 101, on its own
                connection.sendall(after_handshake)
            try:
                while connection.recv(65536):
                    pass
                ended.append(True)
                time.sleep(hold)
            except ConnectionResetError:
                ended.append(True)
            except TimeoutError:
                ended.append(False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], lambda: (thread.join(10), ended[0])[1]
    finally:
        thread.join(10)
        listener.close()


async def test_async_with_left_by_a_timeout_closes_the_connection() -> None:
    with raw_peer() as (port, end):
        ws = await sansnet.socket(f"ws://127.0.0.1:{port}/", proxy=None, close_timeout=30)
        with anyio.move_on_after(0.3) as scope:
            async with ws:
                await ws.next()  # the peer says nothing
        assert scope.cancelled_caught
        assert ws.closed
        assert await anyio.to_thread.run_sync(end), "the peer never saw the connection end"


async def test_next_cancelled_while_lingering_after_a_protocol_error_closes_it() -> None:
    # opcode 3 (reserved): 1002; the peer keeps its side open after our end, so the
    # WebSocket lingers, reading what it still sends, up to close_timeout.
    with raw_peer(after_handshake=b"\x83\x00", hold=3) as (port, _):
        ws = await sansnet.socket(f"ws://127.0.0.1:{port}/", proxy=None, close_timeout=30)
        sock = ws._stream.raw_socket
        assert sock is not None
        with anyio.move_on_after(1.0) as scope:
            await ws.next()
        assert scope.cancelled_caught
        assert ws.close_code == 1002
        await ws.close_quietly()
        await anyio.sleep(0.1)  # asyncio closes a transport's socket in its next turn
        assert sock.fileno() == -1, "the socket is still open"
