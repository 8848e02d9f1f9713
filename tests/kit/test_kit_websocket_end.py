"""sansnet.testing.serve() and the WebSockets still open when its block ends. On virtual
time: "the block does not wait" is measured against a close_timeout of 10 s that would
show as 10 s exactly, whatever the machine's load."""

from __future__ import annotations

import anyio
import pytest

from sansnet import ServeConfig, WebSocket
from sansnet.testing import Faults, WireRecorder, serve
from tests.virtual_time import on_virtual_time

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@on_virtual_time
async def test_a_websocket_open_when_the_block_ends_hears_1001() -> None:
    """Issue: the block's end cut the connection, so a WebSocket left open saw 1006
    (abnormal closure), where a stopping server sends 1001. Now it gets the server's
    close frame, without the block waiting for an answer nobody would read."""
    async with serve(ServeConfig(handle_web_socket=echo)) as client:
        ws = await client.socket("/")
        await ws.send("hello")
        assert await ws.next() == "hello"
        started = anyio.current_time()
    assert anyio.current_time() - started < 2  # close_timeout is 10 s: not waited
    with anyio.fail_after(5):
        assert await ws.next() is None
    assert (ws.close_code, ws.close_reason) == (1001, "The server is shutting down.")


@on_virtual_time
async def test_a_websocket_whose_server_is_mid_send_is_cut_as_before() -> None:
    """Where a send holds the line (a large message the client has not read, past
    what the link holds), our close frame cannot go out whole after it without a
    wait, and the block does not wait: the connection is cut, 1006."""
    sending = anyio.Event()

    async def flood(ws: WebSocket) -> None:
        sending.set()
        await ws.send(b"x" * (4 * 1024 * 1024))  # the link holds 256 KiB

    async with serve(ServeConfig(handle_web_socket=flood, compression=False)) as client:
        ws = await client.socket("/", compression=False)
        await sending.wait()
        await anyio.sleep(0.1)  # the send is waiting for room now
        started = anyio.current_time()
    assert anyio.current_time() - started < 2
    with anyio.fail_after(5):
        assert await ws.next() == b"x" * (4 * 1024 * 1024)  # the link took it whole
        assert await ws.next() is None
    assert ws.close_code == 1006


@on_virtual_time
async def test_a_link_that_splits_writes_gets_no_half_close_frame() -> None:
    """With response_faults splitting what the server writes, the close frame could
    go out in part (a cut frame on the wire): it is not written at all, 1006."""
    recorder = WireRecorder()
    async with serve(
        ServeConfig(handle_web_socket=echo), response_faults=Faults(chunk_size=3), recorder=recorder
    ) as client:
        ws = await client.socket("/")
        await ws.send("hello")
        assert await ws.next() == "hello"
        sent_before_the_end = len(recorder.server_bytes)
    with anyio.fail_after(5):
        assert await ws.next() is None
    assert ws.close_code == 1006
    assert len(recorder.server_bytes) == sent_before_the_end
