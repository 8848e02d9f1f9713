"""The WebSocket object's reading model, against a raw peer in memory: one message ahead
at most while ``next()``, ``close()`` and ``ping()`` read (memory stays bounded however
much the peer sends), and who reads when several tasks wait."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

import sansnet
from sansnet import WebSocket
from sansnet.protocol.websocket import MAX_UNSENT_PONGS, Closed, WebSocketConnection
from sansnet.transport.streams import MemoryStream, NetworkStream, memory_stream_pair
from tests.protocol.ws_frames import encode_frame
from tests.virtual_time import on_virtual_time

pytestmark = pytest.mark.anyio

TEXT, BINARY, CLOSE, PONG = 0x1, 0x2, 0x8, 0xA
CLOSE_1000 = encode_frame(CLOSE, b"\x03\xe8")


class Peer:
    """The server end of the link, written to frame by frame (unmasked, as a server
    sends) and read through a server engine."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.engine = WebSocketConnection("server")

    async def send(self, *frames: bytes) -> None:
        await self.stream.write(b"".join(frames))

    async def wait_for_close(self) -> None:
        """Read what our WebSocket sends until its close frame (pings are answered by
        the engine but the answer is not sent)."""
        while True:
            event = self.engine.next_event()
            if isinstance(event, Closed):
                return
            if event is None:
                self.engine.receive_data(await self.stream.read())


def socket_pair(
    max_message_size: int | None = 16 * 1024 * 1024, **options: Any
) -> tuple[WebSocket, Peer]:
    """A client WebSocket joined in memory (256 KiB in flight each way) to a raw peer."""
    ours, theirs = memory_stream_pair()
    options.setdefault("ping_interval", None)
    engine = WebSocketConnection("client", max_message_size=max_message_size)
    return WebSocket(ours, engine, **options), Peer(theirs)


@on_virtual_time
@pytest.mark.parametrize("method", ["close", "close_quietly"])
async def test_messages_the_peer_sends_while_we_close_are_discarded(method: str) -> None:
    """Issue: close() and close_quietly() queued every message that came before the
    peer's close frame, so a peer flooding us while we waited for it made us hold
    gigabytes. Once our close frame is out, its data messages are read and dropped; the
    one message taken in before close() (by a send, one ahead at most) stays readable."""
    ws, peer = socket_pair(close_timeout=30)
    await peer.send(encode_frame(TEXT, b"taken in before close"), encode_frame(TEXT, b"not yet"))
    await ws.send("hello")  # nobody reads: takes in one message, no more
    assert list(ws._messages) == ["taken in before close"]
    payload = bytes(4096)
    async with anyio.create_task_group() as group:

        async def flood_then_close() -> None:
            await peer.wait_for_close()
            for _ in range(1000):  # 4 MB: the link holds 256 KiB
                await peer.send(encode_frame(BINARY, payload))
                assert len(ws._messages) <= 1
            await peer.send(CLOSE_1000)

        group.start_soon(flood_then_close)
        with anyio.fail_after(20):
            await getattr(ws, method)()
    assert len(ws._messages) == 1
    assert ws.close_code == 1000
    assert await ws.next() == "taken in before close"
    assert await ws.next() is None


@on_virtual_time
async def test_ping_queues_a_bounded_number_of_messages_before_its_pong() -> None:
    """Issue: ping() read on until its pong, queueing every message before it. Now it
    queues at most 16 messages (or 1 MiB, past what one read brings), then lets TCP
    push back on the peer, and reads on as next() takes them."""
    ws, peer = socket_pair(ping_timeout=60)
    sent = 0
    async with anyio.create_task_group() as group:

        async def flood_then_pong() -> None:
            nonlocal sent
            for index in range(200):  # 800 KB: the link holds 256 KiB
                await peer.send(encode_frame(BINARY, index.to_bytes(2, "big") * 2048))
                sent += 1
            await peer.send(encode_frame(PONG, b"ping"))

        latency: list[float] = []

        async def ping() -> None:
            latency.append(await ws.ping(b"ping"))

        group.start_soon(flood_then_pong)
        group.start_soon(ping)
        await anyio.sleep(5)  # everyone waits: ping() on next(), the peer on the link
        # 16 messages, plus what the read that reached them brought (256 KiB at most)
        assert 16 <= len(ws._messages) <= 16 + 64
        assert sent < 150
        assert not latency
        with anyio.fail_after(20):
            received = [await ws.next() for _ in range(200)]
    assert received == [index.to_bytes(2, "big") * 2048 for index in range(200)]
    assert len(latency) == 1
    await ws.close_quietly()


@on_virtual_time
async def test_ping_from_the_reading_task_sees_its_pong_behind_a_message() -> None:
    """A client that sends, then pings from the same task: the echo comes before the
    pong; ping() keeps it for next() and returns its latency."""
    ws, peer = socket_pair(ping_timeout=5)

    async def answer() -> None:
        await anyio.sleep(0.01)
        await peer.send(encode_frame(TEXT, b"echo"), encode_frame(PONG, b"ping"))

    async with anyio.create_task_group() as group:
        group.start_soon(answer)
        with anyio.fail_after(3):
            assert await ws.ping(b"ping") >= 0
    assert await ws.next() == "echo"
    await ws.close_quietly()


@on_virtual_time
@pytest.mark.parametrize("how", ["with the last message", "with the handshake's answer"])
async def test_send_sees_a_close_frame_already_read(how: str) -> None:
    """Issue: send() took in what the peer had sent only when the socket was readable,
    so a close frame read already, in the same read as the message next() returned or
    with the 101 answer (the engine is seeded with what came after it), was not seen:
    the message went out to a peer that had closed, and the closing handshake waited.
    Now send() raises ConnectionClosed with the peer's code, as documented."""
    ws, peer = socket_pair(close_timeout=5)
    close_1001 = encode_frame(CLOSE, b"\x03\xe9going away")
    if how == "with the last message":
        await peer.send(encode_frame(TEXT, b"hello"), close_1001)
        assert await ws.next() == "hello"
    else:
        ws._conn.receive_data(close_1001)  # what engine_after_upgrade() does
    with pytest.raises(sansnet.ConnectionClosed) as info:
        await ws.send("too late")
    assert (info.value.code, info.value.reason) == (1001, "going away")
    assert ws.close_code == 1001
    with anyio.fail_after(1):
        await peer.wait_for_close()  # our answer, and never the message
    assert await ws.next() is None


@on_virtual_time
async def test_a_cancelled_ping_frees_its_payload_and_keeps_no_late_pong() -> None:
    """Issue: a ping() cancelled while it waited (move_on_after around it) left its
    payload registered: the next ping() with that payload raised InvalidArgument
    ('already waiting for its pong') with nobody waiting, until a pong came; and a
    pong that came after the cancel was kept for good (one entry per cancelled ping,
    for the life of the connection)."""
    ws, peer = socket_pair(ping_timeout=60)
    with anyio.move_on_after(1):
        await ws.ping(b"late")
    await peer.send(encode_frame(PONG, b"late"))  # after the cancel
    with anyio.move_on_after(1):
        await ws.next()  # reads the pong
    assert not ws._pings
    assert not ws._ping_results
    async with anyio.create_task_group() as group:

        async def answer() -> None:
            await anyio.sleep(1)
            await peer.send(encode_frame(PONG, b"late"))

        group.start_soon(answer)
        with anyio.fail_after(10):
            assert await ws.ping(b"late") >= 0  # the payload is free again
    await ws.close_quietly()


async def _reader_that_gives_up(ws: WebSocket) -> None:
    with anyio.move_on_after(1):
        await ws.next()  # holds the read lock, then lets go of it at t = 1 s


@on_virtual_time
async def test_close_reads_when_the_task_that_was_reading_stops() -> None:
    """Issue: close() waited for the end, not for the read lock, while another task
    read: if that task stopped reading (it got its message, or here gave up), nobody
    read the peer's close frame and close() took the whole close_timeout."""
    ws, peer = socket_pair(close_timeout=10)
    async with anyio.create_task_group() as group:
        group.start_soon(_reader_that_gives_up, ws)
        await anyio.sleep(0.5)

        async def answer_late() -> None:
            await peer.wait_for_close()
            await anyio.sleep(2)  # after the reader gave up
            await peer.send(CLOSE_1000)

        group.start_soon(answer_late)
        started = anyio.current_time()
        await ws.close()
        elapsed = anyio.current_time() - started
    assert ws.close_code == 1000
    assert elapsed < 5  # the peer's close frame came 2 s after ours; close_timeout is 10 s


@on_virtual_time
async def test_ping_reads_when_the_task_that_was_reading_stops() -> None:
    """Issue: the same for ping(): it waited for its pong's event while another task
    held the read lock, so a pong arriving after that task stopped reading was never
    read and ping() raised TimeoutError."""
    ws, peer = socket_pair(ping_timeout=10)
    async with anyio.create_task_group() as group:
        group.start_soon(_reader_that_gives_up, ws)

        async def pong_late() -> None:
            await anyio.sleep(3)  # the ping went out at 0.5 s; the reader gave up at 1 s
            await peer.send(encode_frame(PONG, b"late"))

        group.start_soon(pong_late)
        await anyio.sleep(0.5)
        latency = await ws.ping(b"late")
    assert 2 <= latency < 5
    await ws.close_quietly()


@on_virtual_time
@pytest.mark.parametrize("peer_ends", [True, False])
async def test_after_failing_with_1009_we_half_close_and_drain_within_close_timeout(
    peer_ends: bool,
) -> None:
    """After our 1009 the peer reads our close frame and then the end of our side, while
    we still read (and drop) what it sends: it is not reset. We close once it ends its
    side, or after close_timeout if it never does."""
    ws, peer = socket_pair(max_message_size=1024, close_timeout=5)
    frame = encode_frame(BINARY, bytes(4096))
    events: list[Any] = []
    async with anyio.create_task_group() as group:

        async def peer_side() -> None:
            await peer.send(frame)  # too big: we fail the connection with 1009
            while (event := peer.engine.next_event()) is None:
                peer.engine.receive_data(await peer.stream.read())
            events.append(event)  # our close frame
            events.append(await peer.stream.read())  # then the end of our side
            await peer.send(frame)  # we still read: this is no reset
            if peer_ends:
                await peer.stream.send_eof()
                return
            with contextlib.suppress(sansnet.WriteError):
                while True:  # a peer that never stops (nor sends 64 MiB)
                    await anyio.sleep(0.1)
                    await peer.send(frame)

        group.start_soon(peer_side)
        started = anyio.current_time()
        with anyio.fail_after(60):
            assert await ws.next() is None
        elapsed = anyio.current_time() - started
    assert ws.close_code == 1009
    assert isinstance(events[0], Closed)
    assert events[0].code == 1009
    assert events[1] == b""
    if peer_ends:
        assert elapsed < 1  # at once: no timeout ran out
    else:
        assert 5 <= elapsed < 6  # close_timeout


# ---------------------------------------------------- what a cancelled call must keep


@on_virtual_time
async def test_a_send_cancelled_at_once_loses_no_message_the_peer_sent() -> None:
    """Issue: a send() takes in what arrived before it sends (one message ahead); taken
    out of the engine and then cancelled at its first checkpoint (a deadline already
    past), it dropped that message: next() went from the first to the third."""
    ws, peer = socket_pair()
    await peer.send(*(encode_frame(TEXT, b"m%d" % index) for index in (1, 2, 3)))
    assert await ws.next() == "m1"  # m2 and m3 arrived with it, not parsed yet
    with anyio.CancelScope() as scope:
        scope.cancel()
        await ws.send("cancelled")
    assert scope.cancelled_caught
    with anyio.fail_after(5):
        assert [await ws.next(), await ws.next()] == ["m2", "m3"]


@on_virtual_time
async def test_a_next_cancelled_while_its_pong_waits_to_be_written_keeps_the_message() -> None:
    """Issue: next() took a message out of the engine, then waited to write the pong
    the engine owed for a ping read with it (the peer not reading); cancelled there, it
    lost the message. The link is filled first, so the pong has to wait."""
    ws, peer = socket_pair()
    await ws._stream.write(bytes(256 * 1024))  # the link's capacity: the next write waits
    await peer.send(encode_frame(0x9, b"ping"), encode_frame(TEXT, b"hello"))
    with anyio.move_on_after(5) as scope:
        await ws.next()
    assert scope.cancelled_caught, "The pong's write waited for the peer."
    with anyio.fail_after(5):
        assert await ws.next() == "hello"


@on_virtual_time
async def test_keepalive_pings_while_the_peer_keeps_sending_and_finds_a_pong_behind_a_backlog() -> (
    None
):
    """Issue: on asyncio a read returns what is buffered whatever its timeout, so while
    the peer kept sending, no keepalive ping ever went out. Pings now go out when due;
    and a pong that comes late only because it is queued behind messages sent before
    our ping (an application that reads slowly) is found, not taken for a dead peer."""
    # The pong comes about 3.2 s after its ping: late (3 s), found within ping_timeout more.
    ws, peer = socket_pair(ping_interval=1, ping_timeout=3)
    pings = 0

    async def stream_messages() -> None:
        while True:  # as fast as the link takes them: 256 KiB, 64 messages, queued
            await peer.send(encode_frame(TEXT, b"x" * 4096))

    async def answer_pings() -> None:
        nonlocal pings
        while data := await peer.stream.read():
            peer.engine.receive_data(data)
            while peer.engine.next_event() is not None:
                pass
            pong = peer.engine.data_to_send()
            if pong:
                pings += 1
                await peer.stream.write(pong)  # in order: behind the queued messages

    async with anyio.create_task_group() as group:
        group.start_soon(stream_messages)
        group.start_soon(answer_pings)
        for _ in range(200):  # 10 s: a backlog of 64 messages is 3.2 s behind
            assert await ws.next() is not None, ws.close_code
            await anyio.sleep(0.05)  # the application's work
        group.cancel_scope.cancel()
    assert pings >= 3
    assert ws.close_code is None


async def test_a_peer_that_keeps_sending_and_never_answers_is_dropped() -> None:
    """A late pong is looked for in the bytes that wait for ping_timeout more, no longer:
    a peer that floods us and never reads (so never answers) is dropped with 1011 while
    its flood goes on (on virtual time a flood never lets the clock move: real time)."""
    ws, peer = socket_pair(ping_interval=0.2, ping_timeout=0.2, close_timeout=0.2)
    flooding = True

    async def flood() -> None:
        with anyio.move_on_after(20):  # bounded, should the peer never be dropped
            try:
                while flooding:
                    await peer.send(*[encode_frame(TEXT, b"x" * 1000)] * 64)
            except sansnet.WriteError:
                pass  # we dropped the connection before the loop saw it: as expected
        await peer.stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(flood)
        async for _ in ws:
            pass
        assert ws.close_code == 1011, "Dropped by keepalive while the flood went on."
        flooding = False


@on_virtual_time
async def test_a_ping_flood_behind_a_send_that_waits_keeps_our_unsent_pongs_bounded() -> None:
    """Issue: a send() waiting for a peer that does not read holds the write lock, so
    the reader leaves its pongs to it: a peer flooding pings grew them without bound
    (about 5 MB/s). The engine keeps MAX_UNSENT_PONGS, the last for the newest ping."""
    ws, peer = socket_pair()
    async with anyio.create_task_group() as group:
        group.start_soon(ws.send, bytes(1024 * 1024))  # waits: the link holds 256 KiB
        await anyio.wait_all_tasks_blocked()
        await peer.send(*[encode_frame(0x9, b"%d" % index) for index in range(5000)])
        await peer.send(encode_frame(TEXT, b"after the flood"))
        with anyio.fail_after(5):
            assert await ws.next() == "after the flood"
        assert len(ws._conn._out) == MAX_UNSENT_PONGS
        group.cancel_scope.cancel()


@on_virtual_time
async def test_sends_whose_frames_went_in_a_failed_write_raise() -> None:
    """Issue: the task holding the write lock writes every queued frame in one write;
    when that write failed, only it raised, and a send whose message was in it returned
    normally (on a stream that frames without waiting for room: trio's)."""
    ws, peer = socket_pair()
    # A stream that buffers nothing of its own, as NetworkStream's default says.
    ws._stream.wait_writable = NetworkStream.wait_writable.__get__(ws._stream)  # type: ignore[method-assign]
    outcomes: dict[str, str] = {}

    async def send(name: str, message: bytes) -> None:
        try:
            await ws.send(message)
            outcomes[name] = "returned"
        except sansnet.ConnectionClosed as exc:
            outcomes[name] = f"ConnectionClosed({exc.code})"

    async with anyio.create_task_group() as group:
        group.start_soon(send, "big", bytes(1024 * 1024))  # waits, holding the lock
        await anyio.wait_all_tasks_blocked()
        group.start_soon(send, "second", b"b")  # framed, waiting for the lock
        group.start_soon(send, "third", b"c")
        await anyio.wait_all_tasks_blocked()
        await peer.stream.aclose()
    assert outcomes == dict.fromkeys(["big", "second", "third"], "ConnectionClosed(1006)")


async def test_the_peers_close_during_our_send_is_answered_after_the_message() -> None:
    """Issue: the peer's close frame, read by a reader task while a send() held the
    write lock, made us close the connection under that send: the peer got part of the
    message (trio) or all of it, and no close frame (1006 for it). RFC 6455 section
    5.5.1: the message is finished, then answered with a close frame, then TCP closed."""
    ws, peer = socket_pair(close_timeout=30)
    data = bytes(2 * 1024 * 1024)  # eight frames; the link holds 256 KiB
    results: dict[str, object] = {}
    received: list[object] = []
    async with anyio.create_task_group() as group:

        async def reader() -> None:
            results["next"] = await ws.next()

        async def sender() -> None:
            await ws.send(data)
            results["send"] = "returned"

        group.start_soon(reader)
        group.start_soon(sender)
        await anyio.wait_all_tasks_blocked()  # the send waits for room, the reader for us
        await peer.send(encode_frame(CLOSE, b"\x0f\xa0bye"))  # 4000
        with anyio.fail_after(20):
            while not any(isinstance(event, Closed) for event in received):
                event = peer.engine.next_event()
                if event is None:
                    peer.engine.receive_data(await peer.stream.read())
                else:
                    received.append(event)
            await peer.stream.aclose()
    assert [type(event).__name__ for event in received] == ["BinaryMessage", "Closed"]
    assert received[0].data == data  # type: ignore[attr-defined]
    assert received[1] == Closed(4000, "")  # our answer (before: 1006, no close frame)
    assert results == {"send": "returned", "next": None}
    assert ws.close_code == 4000
