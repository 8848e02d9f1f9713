"""The WebSocket side of net.serve, with the websockets library as client, and the
sansnet WebSocket object's own rules: Lune's socket cases, concurrency, keepalive,
backpressure, graceful stop."""

from __future__ import annotations

import contextlib
import os
import select
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed as WebsocketsClosed

import sansnet
from sansnet import ServeConfig, WebSocket
from sansnet.testing import Faults, serve
from tests.virtual_time import on_virtual_time

from .peers import run_websockets_client

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def ws_url(handle: sansnet.ServeHandle, path: str = "/") -> str:
    return handle.url.replace("http", "ws", 1) + path


async def test_websockets_client_against_our_server() -> None:
    async def scenario(url: str) -> list[Any]:
        async with connect(url, subprotocols=["v2", "v1"], max_size=2**22) as client:  # type: ignore[list-item]
            results: list[Any] = [client.subprotocol]
            # The last two come back in several frames (FRAGMENT_SIZE).
            for message in ["text", b"\x00binary", "é" * 70000, b"\x03" * 700_000, "é" * 300_000]:
                await client.send(message)
                results.append(await client.recv())
            await client.send(["frag", "mented"])  # a fragmented message
            results.append(await client.recv())
            pong = await client.ping(b"are you there")
            await pong  # answered by the server's engine, not by the handler
            await client.send("after ping")
            results.append(await client.recv())  # the ping itself was never echoed
            return results

    config = ServeConfig(handle_web_socket=echo, subprotocols=["v1", "v3"])
    async with sansnet.serve(0, config) as handle:
        url = ws_url(handle, "/chat?room=1")
        results = await anyio.to_thread.run_sync(run_websockets_client, lambda: scenario(url))
    assert results == [
        "v1",
        "text",
        b"\x00binary",
        "é" * 70000,
        b"\x03" * 700_000,
        "é" * 300_000,
        "fragmented",
        "after ping",
    ]


async def test_handler_sees_the_upgrade_request_and_chooses_a_subprotocol() -> None:
    seen: dict[str, Any] = {}

    async def handler(ws: WebSocket) -> None:
        assert ws.request is not None
        seen.update(
            path=ws.request.path,
            query=ws.request.query,
            token=ws.request.headers.get("x-token"),
            sub=ws.subprotocol,
        )
        await ws.send("hi")

    def choose(request: sansnet.ServeRequest, offered: list[str]) -> str | None:
        return offered[-1] if request.query.get("last") else None

    config = ServeConfig(handle_web_socket=handler, subprotocols=choose)
    async with sansnet.serve(0, config) as handle:
        ws = await sansnet.socket(
            ws_url(handle, "/room?last=1"), subprotocols=["a", "b"], headers={"X-Token": "t"}
        )
        assert await ws.next() == "hi"
        assert await ws.next() is None  # the handler returned: the server closed with 1000
        assert ws.close_code == 1000
        assert ws.subprotocol == "b"
    assert seen == {"path": "/room", "query": {"last": "1"}, "token": "t", "sub": "b"}


def _chooser_that_raises(request: sansnet.ServeRequest, offered: list[str]) -> str | None:
    raise RuntimeError("bug in the subprotocol chooser")


def _chooser_of_a_name_not_offered(request: sansnet.ServeRequest, offered: list[str]) -> str:
    return "not-offered"


@pytest.mark.parametrize(
    ("chooser", "logged"),
    [
        (_chooser_that_raises, "bug in the subprotocol chooser"),
        (_chooser_of_a_name_not_offered, "which the client did not offer"),
    ],
)
async def test_a_failing_subprotocol_chooser_gets_that_upgrade_a_500_and_the_server_goes_on(
    chooser: Any, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue: an exception from ServeConfig.subprotocols (or a choice the client did not
    offer, which the handshake refuses with ValueError) ended the whole server."""
    config = ServeConfig(
        handle_web_socket=echo, subprotocols=chooser, handle_request=lambda request: "plain"
    )
    async with sansnet.serve(0, config) as handle:
        with pytest.raises(sansnet.HandshakeError) as info:
            await sansnet.socket(ws_url(handle, "/room"), subprotocols=["chat"])
        assert info.value.status == 500
        assert info.value.body == b"Internal Server Error\n"
        assert (await sansnet.request(handle.url)).text == "plain"  # still serving
    [record] = [r for r in caplog.records if r.exc_info]
    assert logged in str(record.exc_info[1])
    assert "/room" in record.getMessage()


async def test_both_handlers_on_one_server() -> None:
    config = ServeConfig(handle_request=lambda request: "plain", handle_web_socket=echo)
    async with sansnet.serve(0, config) as handle:
        assert (await sansnet.request(handle.url)).text == "plain"
        async with await sansnet.socket(ws_url(handle)) as ws:
            await ws.send("socket")
            assert await ws.next() == "socket"


async def test_handler_exception_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(ws: WebSocket) -> None:
        await ws.next()
        raise RuntimeError("socket handler broke")

    async with sansnet.serve(0, ServeConfig(handle_web_socket=broken)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        await ws.send("trigger")
        assert await ws.next() is None
        assert ws.close_code == 1011
    assert any("socket handler broke" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_wss(server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext) -> None:
    config = ServeConfig(handle_web_socket=echo, tls=server_ssl_context)
    async with sansnet.serve(0, config) as handle:
        assert handle.url.startswith("https://")
        async with await sansnet.socket(ws_url(handle), verify=client_ssl_context) as ws:
            await ws.send(b"over tls")
            assert await ws.next() == b"over tls"


# ------------------------------------------------------------------ Lune's socket cases


async def test_lune_close_then_drain() -> None:
    """After close(), next() yields None; close_code is 1000; send raises an error
    that says "closed". The three messages arrived before the peer's close frame, but
    nobody had taken them in: close() read them and dropped them on its way to that
    frame (one message ahead at most; a message taken in before close() would stay
    readable: see test_reading)."""

    async def chatty(ws: WebSocket) -> None:
        for index in range(3):
            await ws.send(f"queued {index}")
        await ws.next()  # returns None once the client has closed

    async with sansnet.serve(0, ServeConfig(handle_web_socket=chatty)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        await anyio.sleep(0.1)  # let the three messages arrive
        await ws.close()
        assert ws.close_code == 1000
        drained = [await ws.next() for _ in range(2)]
        assert drained == [None, None]
        with pytest.raises(sansnet.ConnectionClosed, match="closed"):
            await ws.send("after close")
        with pytest.raises(sansnet.ConnectionClosed, match="already called"):
            await ws.close()


async def test_lune_wss_rw_reader_loop_while_main_task_sends_then_closes() -> None:
    async with sansnet.serve(0, ServeConfig(handle_web_socket=echo)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        received: list[str | bytes] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:

                async def reader() -> None:
                    while (message := await ws.next()) is not None:
                        received.append(message)

                group.start_soon(reader)
                await ws.send("a string")
                await ws.send(b"some bytes")
                for _ in range(500):  # until the reader has both (bounded: 5 s)
                    if len(received) == 2:
                        break
                    await anyio.sleep(0.01)
                await ws.close()
        assert received == ["a string", b"some bytes"]
        assert ws.close_code == 1000


async def test_sends_from_many_tasks_are_whole_messages() -> None:
    async with sansnet.serve(0, ServeConfig(handle_web_socket=echo)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        messages = {f"task {index}: " + "x" * (1000 * index) for index in range(20)}
        async with anyio.create_task_group() as group:
            for message in messages:
                group.start_soon(ws.send, message)
        received = {await ws.next() for _ in messages}
        assert received == messages
        await ws.close()


async def test_close_code_rules() -> None:
    async with sansnet.serve(0, ServeConfig(handle_web_socket=echo)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        for code in (999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000):
            with pytest.raises(sansnet.InvalidArgument):
                await ws.close(code)
        # 1016-2999 are kept for future versions of the protocol (RFC 6455 7.4.2):
        # sansnet's own receiving side refuses them (with 1002), so we never send them.
        with pytest.raises(sansnet.InvalidArgument, match="reserved for future versions"):
            await ws.close(2000)
        with pytest.raises(ValueError, match="123 bytes"):
            await ws.close(1000, "x" * 124)
        await ws.close(4321, "custom")
        assert (ws.close_code, ws.close_reason) == (4321, "custom")


@pytest.mark.parametrize(
    ("misuse", "message"),
    [
        (lambda ws: ws.close(1000, None), "reason is a str, not NoneType"),
        (lambda ws: ws.close(1000, b"bye"), "reason is a str, not bytes"),
        (lambda ws: ws.close(1000, "\ud800"), "no UTF-8 form"),
        (lambda ws: ws.close("1000"), "close code is an int"),
        (lambda ws: ws.close_quietly(1000, None), "reason is a str"),
        (lambda ws: ws.ping(b"x" * 126), "at most 125 bytes"),
        (lambda ws: ws.ping("é" * 63), "at most 125 bytes"),  # 126 bytes of UTF-8
        (lambda ws: ws.ping(42), "ping\\(\\) takes bytes, a str or None, not int"),
        (lambda ws: ws.ping("\ud800"), "no UTF-8 form"),
        (lambda ws: ws.send("\ud800"), "no UTF-8 form"),
        (lambda ws: ws.send("\ud800", binary=True), "no UTF-8 form"),
    ],
    ids=[
        "close-reason-None",
        "close-reason-bytes",
        "close-reason-surrogate",
        "close-code-str",
        "close_quietly-reason-None",
        "ping-126-bytes",
        "ping-126-bytes-of-utf8",
        "ping-int",
        "ping-surrogate",
        "send-surrogate",
        "send-surrogate-binary",
    ],
)
async def test_misuse_raises_invalid_argument_and_the_socket_stays_usable(
    misuse: Any, message: str
) -> None:
    """Issue: these raised AttributeError, UnicodeEncodeError or TypeError (a str ping
    payload, which websockets accepts), and close_quietly() with a bad reason waited
    its whole close_timeout without closing."""
    async with serve(ServeConfig(handle_web_socket=echo)) as client:
        ws = await client.socket("/")
        with anyio.fail_after(5), pytest.raises(sansnet.InvalidArgument, match=message):
            await misuse(ws)
        await ws.send("still open")
        assert await ws.next() == "still open"
        await ws.close()


async def test_ping_takes_a_str_payload_and_checks_it_before_sending() -> None:
    """A str payload goes out as UTF-8 (as websockets does); a payload too long is
    refused before the ping is registered, so a second try says the same."""
    async with serve(ServeConfig(handle_web_socket=echo)) as client:
        ws = await client.socket("/")
        assert await ws.ping("héllo") >= 0
        for _ in range(2):
            with pytest.raises(sansnet.InvalidArgument, match="at most 125 bytes"):
                await ws.ping(b"y" * 200)
        assert await ws.ping(b"y" * 125) >= 0
        await ws.close()


async def test_close_quietly_closes_once_and_never_raises_after() -> None:
    async with sansnet.serve(0, ServeConfig(handle_web_socket=echo)) as handle:
        ws = await sansnet.socket(ws_url(handle))
        with pytest.raises(ValueError):
            await ws.close_quietly(1005)  # a reserved code is still refused
        await ws.close_quietly(4001, "done")
        assert (ws.close_code, ws.close_reason) == (4001, "done")
        await ws.close_quietly()  # already closed: nothing to do, nothing raised
        assert ws.close_code == 4001
        with pytest.raises(sansnet.ConnectionClosed):
            await ws.close()  # close() after the socket closed raises, as documented


async def test_ping_reports_latency() -> None:
    async with (
        sansnet.serve(0, ServeConfig(handle_web_socket=echo)) as handle,
        await sansnet.socket(ws_url(handle)) as ws,
    ):
        latency = await ws.ping(b"payload")
        assert latency >= 0
        assert ws.latency == latency
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="UTF-8"):
            await ws.send(b"\xff", binary=False)


# Keepalive and backpressure run in memory on virtual time (sansnet.testing): the
# WebSocket code is the same as over TCP, and its timers cost no wall time here.


@on_virtual_time
async def test_keepalive_closes_a_dead_peer_with_1011() -> None:
    never_reads = anyio.Event()

    async def deaf(ws: WebSocket) -> None:
        await never_reads.wait()  # never reads, so never answers pings

    async with serve(ServeConfig(handle_web_socket=deaf, close_timeout=10)) as client:
        ws = await client.socket("/", ping_interval=20, ping_timeout=20, close_timeout=10)
        started = anyio.current_time()
        with anyio.fail_after(600):
            assert await ws.next() is None
        assert ws.close_code == 1011
        assert ws.close_reason == "keepalive ping timeout"
        # the first ping at 20 s, late at 40 s, then up to close_timeout for the close
        assert 40 <= anyio.current_time() - started <= 51
        never_reads.set()


@on_virtual_time
async def test_keepalive_with_ping_timeout_none_never_closes_for_a_missing_pong() -> None:
    """Issue: ping_timeout=None was documented to turn the pong deadline off, but a
    keepalive ping still unanswered when the next one was due closed the connection
    with 1011 ('keepalive ping timeout') after ping_interval. Now a new ping goes out
    every ping_interval and the connection stays open."""
    never_reads = anyio.Event()

    async def deaf(ws: WebSocket) -> None:
        await never_reads.wait()  # never reads, so never answers pings

    async with serve(ServeConfig(handle_web_socket=deaf, close_timeout=10)) as client:
        ws = await client.socket("/", ping_interval=20, ping_timeout=None, close_timeout=10)
        with anyio.move_on_after(600):
            await ws.next()
        assert ws.close_code is None
        assert ws.latency is None  # no pong ever came
        never_reads.set()
        await ws.close()


@on_virtual_time
async def test_a_pong_moves_the_keepalive_deadline_and_a_later_silence_is_caught() -> None:
    """The peer reads (so answers our pings) for 30 s, then stops. The ping at 20 s is
    answered, which moves the next step from 25 s (ping_timeout) to 40 s (the next
    ping); that one goes unanswered and is late at 45 s: 1011. (On trio the waiting
    read has no timeout: the alarm wakes at 25 s, finds the pong, and is armed again.)"""
    deaf = anyio.Event()

    async def reads_for_30_s(ws: WebSocket) -> None:
        with anyio.move_on_after(30):
            await ws.next()
        await deaf.wait()  # never reads again

    async with serve(ServeConfig(handle_web_socket=reads_for_30_s, ping_interval=None)) as client:
        ws = await client.socket("/", ping_interval=20, ping_timeout=5, close_timeout=10)
        started = anyio.current_time()
        with anyio.fail_after(600):
            assert await ws.next() is None
        assert ws.close_code == 1011
        assert ws.latency is not None  # the first pong came
        assert 45 <= anyio.current_time() - started <= 56
        deaf.set()


async def next_while_a_close_is_cut_short(
    ws: WebSocket, close_begins: Callable[[], Awaitable[object]]
) -> tuple[object, float]:
    """``ws.next()`` in a task of its own while this one, once ``close_begins()``
    returns, calls ``ws.close()`` and gives it up after 0.05 s. Returns what next()
    returned (within 60 s) and the time from the close to then."""
    result: list[object] = []
    ended = anyio.Event()
    async with anyio.create_task_group() as group:

        async def reader() -> None:
            result.append(await ws.next())
            ended.set()

        group.start_soon(reader)
        await close_begins()
        started = anyio.current_time()
        with anyio.move_on_after(0.05):
            await ws.close()
        with anyio.fail_after(60):
            await ended.wait()
    return result[0], anyio.current_time() - started


@on_virtual_time
async def test_a_read_waiting_while_a_cut_short_close_is_pending_ends_at_the_keepalive_step() -> (
    None
):
    """A task waits in next(); another's close() is cut short by its own timeout
    before the peer (which never reads) answers. The waiting read must still end, at
    its keepalive step (1 s), as it did when each read had a timeout of its own: on
    trio the alarm now takes that step and gives the connection up."""
    never_reads = anyio.Event()

    async def deaf(ws: WebSocket) -> None:
        await never_reads.wait()

    async with serve(ServeConfig(handle_web_socket=deaf, ping_interval=None)) as client:
        ws = await client.socket("/", ping_interval=1, ping_timeout=20, close_timeout=10)
        message, took = await next_while_a_close_is_cut_short(ws, lambda: anyio.sleep(0.01))
        assert message is None
        assert took <= 2
        assert ws.closed
        never_reads.set()


@on_virtual_time
async def test_a_read_waiting_when_a_close_begins_during_a_keepalive_ping_still_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, but the close() begins while the keepalive ping is being written (the
    write lets other tasks run), and is cut short. On trio the alarm, finding the socket
    closing once its step is done, used to arm nothing more: the read waited for ever.
    The next step (close_timeout later) now gives the connection up."""
    never_reads = anyio.Event()
    pinging = anyio.Event()
    original = WebSocket._keepalive

    async def keepalive_that_lets_others_run(self: WebSocket) -> bool:
        result = await original(self)
        if not pinging.is_set():
            pinging.set()
            await anyio.sleep(0.5)  # the ping's write, taking its time
        return result

    monkeypatch.setattr(WebSocket, "_keepalive", keepalive_that_lets_others_run)

    async def deaf(ws: WebSocket) -> None:
        await never_reads.wait()

    async with serve(ServeConfig(handle_web_socket=deaf, ping_interval=None)) as client:
        ws = await client.socket("/", ping_interval=1, ping_timeout=20, close_timeout=10)
        # close() begins while the keepalive ping at 1 s is on its way
        message, took = await next_while_a_close_is_cut_short(ws, pinging.wait)
        assert message is None
        assert took <= 12  # close_timeout, and some slack
        never_reads.set()


@on_virtual_time
async def test_keepalive_pings_keep_a_quiet_connection_open() -> None:
    async with serve(ServeConfig(handle_web_socket=echo)) as client:
        ws = await client.socket("/", ping_interval=20, ping_timeout=20)
        with anyio.move_on_after(600):
            await ws.next()  # nothing arrives for 10 minutes; pings go out, pongs come back
        assert ws.close_code is None
        assert ws.latency is not None
        await ws.close()


@pytest.mark.parametrize("anyio_backend", ["trio"], indirect=True)
@pytest.mark.net_virtual_time
async def test_a_keepalive_step_that_fails_on_trio_drops_the_connection_not_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On trio the keepalive step of a waiting read runs in the alarm's system task
    (sansnet._alarm), where an exception would end the whole trio run. A defect there
    gives the connection up (1006) and is logged; the server and the run go on."""

    async def broken(self: WebSocket) -> bool:
        raise RuntimeError("a defect in the keepalive step")

    monkeypatch.setattr(WebSocket, "_keepalive", broken)
    async with serve(ServeConfig(handle_web_socket=echo, ping_interval=None)) as client:
        ws = await client.socket("/", ping_interval=20, ping_timeout=20)
        with anyio.fail_after(60):
            assert await ws.next() is None
        assert ws.close_code == 1006
        assert "The WebSocket's keepalive failed" in caplog.text
        second = await client.socket("/", ping_interval=None)
        await second.send("still serving")
        assert await second.next() == "still serving"
        await second.close()


@on_virtual_time
async def test_a_flooding_peer_cannot_grow_our_memory() -> None:
    """Nobody reads on our side: the peer's sends block once the link's buffer is full."""
    flooded = anyio.Event()
    sent: list[int] = []
    payload = os.urandom(65536)  # incompressible: permessage-deflate cannot shrink it

    async def flood(ws: WebSocket) -> None:
        with anyio.move_on_after(10):
            for index in range(10_000):
                await ws.send(payload)
                sent.append(index)
        flooded.set()

    async with serve(ServeConfig(handle_web_socket=flood, close_timeout=1)) as client:
        ws = await client.socket("/")
        with anyio.fail_after(60):
            await flooded.wait()
        assert len(sent) < 20  # the in-memory link holds 256 KiB: a few messages at most
        assert await ws.next() == payload
        await ws.close()


async def test_graceful_stop_closes_websockets_with_1001() -> None:
    server = sansnet.serve(0, ServeConfig(handle_web_socket=echo))
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        ws = await sansnet.socket(ws_url(handle))
        await ws.send("before stop")
        assert await ws.next() == "before stop"
        with anyio.fail_after(5):
            group.start_soon(handle.stop)
            assert await ws.next() is None
        assert ws.close_code == 1001
        assert ws.close_reason == "The server is shutting down."


async def test_a_handler_that_closes_after_a_graceful_stop_does_not_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """stop() closed the socket with 1001 through close_quietly(), which counted as the
    handler's own close(): the handler's first close() then raised "close() was already
    called" and was logged as a failed handler at every graceful stop. The server's
    close is like the peer's: a close() after it returns quietly."""
    ended: list[str] = []
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            async for message in ws:
                await ws.send(message)
            await ws.close()
            ended.append("closed")
        finally:
            done.set()

    server = sansnet.serve(0, ServeConfig(handle_web_socket=handler, drain_timeout=5))
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        ws = await sansnet.socket(ws_url(handle))
        await ws.send("before stop")
        assert await ws.next() == "before stop"
        with anyio.fail_after(5):
            group.start_soon(handle.stop)
            assert await ws.next() is None
            await done.wait()
    assert ws.close_code == 1001
    assert ended == ["closed"]
    assert not [record for record in caplog.records if record.exc_info]


async def test_websockets_client_sees_our_close_codes() -> None:
    async def closer(ws: WebSocket) -> None:
        await ws.close(4000, "go away")

    async def scenario(url: str) -> tuple[int | None, str | None]:
        async with connect(url) as client:
            try:
                await client.recv()
            except WebsocketsClosed as closed:
                return (
                    closed.rcvd.code if closed.rcvd else None,
                    closed.rcvd.reason if closed.rcvd else None,
                )
        return None, None  # pragma: no cover

    async with sansnet.serve(0, ServeConfig(handle_web_socket=closer)) as handle:
        url = ws_url(handle)
        result = await anyio.to_thread.run_sync(run_websockets_client, lambda: scenario(url))
    assert result == (4000, "go away")


async def test_idle_unread_clients_see_the_servers_1001_the_same_on_every_backend() -> None:
    """Issue #22: with two idle client WebSockets (nobody reading) and the server
    stopping, asyncio reported 1006 though the server sent 1001, and on trio a send
    after the server's close went nowhere. Both backends: a send after the peer's close
    raises ConnectionClosed carrying 1001, and next() reports 1001."""
    config = ServeConfig(handle_web_socket=echo, drain_timeout=0.5)
    server = sansnet.serve(0, config)
    async with anyio.create_task_group() as group:
        handle = await group.start(server.run)
        sockets = [await sansnet.socket(ws_url(handle)) for _ in range(2)]
        for ws in sockets:
            await ws.send("hello")
            assert await ws.next() == "hello"
        with anyio.fail_after(10):
            await handle.stop()  # sends 1001, waits drain_timeout for replies nobody reads
        await anyio.sleep(0.2)  # the server's close has reached the clients
        first, second = sockets
        with pytest.raises(sansnet.ConnectionClosed) as info:
            await first.send("late")
        assert info.value.code == 1001
        assert await first.next() is None
        assert first.close_code == 1001
        assert await second.next() is None  # nobody sent after the close
        assert second.close_code == 1001
        for ws in sockets:
            with pytest.raises(sansnet.ConnectionClosed):
                await ws.send("after")


async def test_a_send_cancelled_while_the_peer_is_slow_leaves_the_wire_whole(
    anyio_backend_name: str,
) -> None:
    """A large message goes out in several frames (FRAGMENT_SIZE), written together: on
    asyncio the transport takes all of them at once, so a send() cancelled while it waits
    for the peer still delivers the whole message, and the next one follows it intact.
    (trio's socket streams leave a cancelled write half-done: the next test.)"""
    if anyio_backend_name != "asyncio":
        pytest.skip("asyncio's transports take a write whole; trio's sockets do not")
    big = os.urandom(24 * 1024 * 1024)  # more than loopback's socket buffers hold
    may_read = anyio.Event()
    sizes: list[int] = []

    async def slow_reader(ws: WebSocket) -> None:
        await may_read.wait()
        async for message in ws:
            sizes.append(len(message))
            await ws.send(str(len(sizes)))

    config = ServeConfig(handle_web_socket=slow_reader, max_message_size=32 * 1024 * 1024)
    async with sansnet.serve(0, config) as handle:
        ws = await sansnet.socket(ws_url(handle), compression=False)
        with anyio.move_on_after(0.3) as scope:
            await ws.send(big)
        assert scope.cancelled_caught  # the send waited for the peer, and was cancelled
        may_read.set()
        await ws.send(b"after")
        assert [await ws.next(), await ws.next()] == ["1", "2"]
        assert sizes == [len(big), 5]
        await ws.close()


def _slow_reader(
    may_read: anyio.Event, done: anyio.Event, seen: list[Any]
) -> Callable[[WebSocket], Awaitable[None]]:
    """A WebSocket handler that reads only once ``may_read`` is set, noting the length
    of every message and then the close code in ``seen``, and sets ``done`` at the end."""

    async def slow_reader(ws: WebSocket) -> None:
        await may_read.wait()
        seen.extend([len(message) async for message in ws])
        seen.append(ws.close_code)
        done.set()

    return slow_reader


async def test_a_send_cancelled_half_written_drops_the_connection_on_trio(
    anyio_backend_name: str,
) -> None:
    """Issue: on trio a cancelled send() left part of a frame on the wire and the socket
    carried on, so the next message went out glued into that frame. trio's sockets write
    a part and stop when cancelled: the connection is now dropped (1006), the app's next
    send() raises ConnectionClosed, and the peer sees the connection end, never a
    message. (asyncio's transports take a write whole: the test above.)"""
    if anyio_backend_name != "trio":
        pytest.skip("asyncio's transports take a write whole (the test above)")
    big = os.urandom(24 * 1024 * 1024)  # more than loopback's socket buffers hold
    may_read, done, seen = anyio.Event(), anyio.Event(), []
    slow_reader = _slow_reader(may_read, done, seen)

    config = ServeConfig(handle_web_socket=slow_reader, max_message_size=32 * 1024 * 1024)
    async with sansnet.serve(0, config) as handle:
        ws = await sansnet.socket(ws_url(handle), compression=False, ping_interval=None)
        with anyio.move_on_after(0.3) as scope:
            await ws.send(big)
        assert scope.cancelled_caught  # the send waited for the peer, and was cancelled
        assert ws.closed
        assert ws.close_code == 1006
        with pytest.raises(sansnet.ConnectionClosed) as info:
            await ws.send(b"after")
        assert info.value.code == 1006
        assert await ws.next() is None
        may_read.set()
        with anyio.fail_after(5):
            await done.wait()
    assert seen == [1006]  # a frame cut short, then the end: no message


@on_virtual_time
async def test_a_send_cancelled_mid_write_drops_a_connection_that_writes_in_pieces() -> None:
    """The same on any backend, in memory: Faults(chunk_size) makes the client's stream
    write in pieces (writes_whole is False), so a send cancelled while it waits for the
    peer leaves a part of its frame sent."""
    may_read, done, seen = anyio.Event(), anyio.Event(), []
    slow_reader = _slow_reader(may_read, done, seen)

    config = ServeConfig(handle_web_socket=slow_reader)
    async with serve(config, faults=Faults(chunk_size=4096)) as client:
        ws = await client.socket("/", compression=False, ping_interval=None)
        with anyio.move_on_after(1) as scope:
            await ws.send(bytes(1024 * 1024))  # the link holds 256 KiB
        assert scope.cancelled_caught
        assert (ws.closed, ws.close_code) == (True, 1006)
        with pytest.raises(sansnet.ConnectionClosed) as info:
            await ws.send("after")
        assert info.value.code == 1006
        assert await ws.next() is None
        may_read.set()
        with anyio.fail_after(60):
            await done.wait()
    assert seen == [1006]


UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize("method", ["close", "close_quietly"])
async def test_close_is_bounded_by_close_timeout_when_the_peer_does_not_read(
    method: str,
) -> None:
    """Issue: close() and close_quietly() wrote their close frame before close_timeout
    started, so with a peer that reads nothing (its buffers full) they never returned,
    and the server held the connection forever after the handler. Now close_timeout
    bounds the write too, and the connection is aborted when it runs out."""
    result: dict[str, Any] = {}
    done = anyio.Event()

    async def flood_then_close(ws: WebSocket) -> None:
        sending = False
        sock = ws._stream.raw_socket  # (private: only to watch the socket's buffer)
        assert sock is not None

        async with anyio.create_task_group() as group:

            async def flood() -> None:
                nonlocal sending
                with contextlib.suppress(sansnet.ConnectionClosed):
                    while True:
                        sending = True
                        await ws.send(bytes(65536))
                        sending = False

            group.start_soon(flood)
            # The peer reads nothing: wait until flood() is inside send() while the
            # socket's send buffer is full (not writable), so its write cannot finish.
            with anyio.fail_after(5):
                while not (sending and not select.select([], [sock], [], 0)[1]):  # noqa: ASYNC110 - a kernel buffer
                    await anyio.sleep(0.01)
            started = anyio.current_time()
            await getattr(ws, method)()
            result.update(elapsed=anyio.current_time() - started, closed=ws.closed)
        done.set()

    config = ServeConfig(
        handle_web_socket=flood_then_close, close_timeout=1, compression=False, ping_interval=None
    )
    async with (
        sansnet.serve(0, config) as handle,
        await anyio.connect_tcp("127.0.0.1", handle.port) as peer,
    ):
        await peer.send(UPGRADE)  # and never reads
        with anyio.fail_after(10):
            await done.wait()
    assert result["closed"]
    assert result["elapsed"] < 4  # close_timeout is 1 s; it used to never return


async def test_a_peer_that_sends_too_much_reads_our_1009_not_a_reset() -> None:
    """Issue: after failing a connection with 1009 the server closed it with the rest of
    the peer's message unread, so the peer got a reset and often lost our close frame
    (it saw 1006). Now the server half-closes after its close frame and reads and drops
    what still comes until the peer ends its side (within close_timeout)."""
    limit = 64 * 1024
    config = ServeConfig(handle_web_socket=echo, max_message_size=limit, max_frame_size=limit)
    async with sansnet.serve(0, config) as handle:
        for _ in range(3):
            ws = await sansnet.socket(ws_url(handle), compression=False, ping_interval=None)
            with contextlib.suppress(sansnet.ConnectionClosed):
                await ws.send(os.urandom(8 * 1024 * 1024))  # in 256 KiB frames
            with anyio.fail_after(5):
                assert await ws.next() is None
            assert ws.close_code == 1009
            assert "65536-byte limit" in ws.close_reason
