"""For tests of a peer that stops reading: enough of our bytes to leave some waiting, and
a client that never reads."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio


async def until_bytes_wait(stream: object) -> AsyncIterator[bytes]:
    """1 KiB pieces for the caller to write on ``stream`` (a NetworkStream) until some of
    them wait in its asyncio transport, below the high-water mark: a write returns, yet
    closing must wait for the peer to read. On trio a socket write waits in the kernel
    instead and nothing ever waits in user space: one piece, as the others send."""
    transport = getattr(stream, "_transport", None)
    if transport is None:
        yield bytes(1024)
        return
    while True:
        while transport.get_write_buffer_size() == 0:
            yield bytes(1024)
        await anyio.sleep(0.05)  # the kernel may still have taken them meanwhile
        if transport.get_write_buffer_size():
            return


@asynccontextmanager
async def serving_a_client_that_never_reads(server: Any, first: bytes) -> AsyncIterator[Any]:
    """Run ``server`` (an HTTP or TCP server, not yet running) and connect one client on
    127.0.0.1 that sends ``first`` and then never reads, its receive buffer 4 KiB; yield
    the server's handle. The server is stopped when the block ends, if it is not yet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        async with anyio.create_task_group() as group:
            handle = await group.start(server.run)
            sock.connect(("127.0.0.1", handle.port))
            sock.sendall(first)
            try:
                yield handle
            finally:
                if not handle.stopped:
                    await handle.stop()


async def seconds_to_stop(handle: Any, *, release: anyio.Event | None = None) -> float:
    """How long ``handle.stop()`` takes (the test fails past 10 s). With ``release``:
    stop() starts in the background and, once it waits for the connections
    (``handle.stopped``), ``release`` is set, so a handler waiting for it goes on while
    the server drains."""
    begun = anyio.current_time()
    with anyio.fail_after(10):
        if release is None:
            await handle.stop()
        else:
            async with anyio.create_task_group() as stopping:
                stopping.start_soon(handle.stop)
                await anyio.wait_all_tasks_blocked()  # stop() waits for the connection
                assert handle.stopped
                release.set()
    return anyio.current_time() - begun
