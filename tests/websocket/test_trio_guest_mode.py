"""sansnet in asyncio tasks while trio runs as a guest of the same thread
(``trio.lowlevel.start_guest_run``): the trio code paths (TrioStream, TurnLock) are for
trio's tasks only."""

from __future__ import annotations

import asyncio

import trio
import trio.lowlevel

import sansnet
from sansnet.transport.streams import AsyncioStream


async def _echo(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def _from_an_asyncio_task() -> tuple[str, str, str | bytes]:
    async with sansnet.serve(0, sansnet.ServeConfig(handle_web_socket=_echo)) as handle:
        ws = await sansnet.socket(f"ws://127.0.0.1:{handle.port}/")
        try:
            await ws.send("hi")
            echoed = await ws.next()
        finally:
            await ws.close()
        return type(ws._stream).__name__, type(ws._read_lock).__name__, echoed


def test_a_websocket_in_an_asyncio_task_beside_a_trio_guest_run() -> None:
    """Issue: trio.lowlevel.in_trio_run() is true for the whole thread in guest mode, so
    a WebSocket made in an asyncio task took trio's TurnLock and its first send failed
    with "must be called from async context"."""

    async def main() -> tuple[str, str, str | bytes]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        scopes: list[trio.CancelScope] = []
        started = asyncio.Event()

        async def trio_main() -> None:
            with trio.CancelScope() as scope:
                scopes.append(scope)
                loop.call_soon_threadsafe(started.set)
                await trio.sleep_forever()

        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(None),
        )
        await asyncio.wait_for(started.wait(), 10)
        try:
            return await asyncio.wait_for(_from_an_asyncio_task(), 10)
        finally:
            scopes[0].cancel()
            await asyncio.wait_for(done, 10)

    stream, lock, echoed = asyncio.run(main())
    assert (stream, echoed) == (AsyncioStream.__name__, "hi")
    assert lock != "TurnLock"
