"""For tests of a peer that stops reading: enough of our bytes to leave some waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
