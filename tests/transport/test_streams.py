"""The network streams over real sockets: the read timeout of the asyncio stream, whose
timer is moved rather than re-created per read (see ``_StreamProtocol.arm_read_timer``),
and the same behaviour on every backend."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
import trustme
from anyio.streams.tls import TLSStream

from sansnet import ReadError, ReadTimeout, WriteError, WriteTimeout
from sansnet.transport.clock import now
from sansnet.transport.connect import open_tcp_stream
from sansnet.transport.streams import (
    RECEIVE_SIZE,
    AnyioStream,
    AsyncioStream,
    NetworkStream,
    memory_stream_pair,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[NetworkStream, anyio.abc.SocketStream]]:
    """A stream of ours connected to a plain anyio socket stream on the other end."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        ours = await open_tcp_stream("127.0.0.1", port, timeout=5)
        try:
            raw = listener.listeners[0]  # type: ignore[attr-defined]
            async with await raw.accept() as theirs:
                yield ours, theirs
        finally:
            await ours.aclose()


async def _timed_out_after(stream: NetworkStream, timeout: float) -> float:
    start = now()
    with pytest.raises(ReadTimeout):
        await stream.read(100, timeout)
    return now() - start


async def test_a_shorter_timeout_after_a_longer_one_fires_on_time() -> None:
    async with connected() as (ours, theirs), anyio.create_task_group() as tg:

        async def later() -> None:
            await anyio.sleep(0.05)
            await theirs.send(b"a")

        tg.start_soon(later)
        assert await ours.read(100, 30) == b"a"  # leaves a timer 30 s out, if any
        elapsed = await _timed_out_after(ours, 0.1)
        assert 0.09 <= elapsed < 5


async def test_a_longer_timeout_after_a_shorter_one_does_not_fire_early() -> None:
    async with connected() as (ours, theirs), anyio.create_task_group() as tg:

        async def later() -> None:
            await anyio.sleep(0.02)
            await theirs.send(b"a")

        tg.start_soon(later)
        assert await ours.read(100, 0.05) == b"a"  # its timer fires while nobody reads
        await anyio.sleep(0.01)
        elapsed = await _timed_out_after(ours, 0.3)  # the timer must re-arm, not time out
        assert 0.29 <= elapsed < 5
        await theirs.send(b"b")
        assert await ours.read(100, 1) == b"b"  # the stream still works after a timeout


async def test_many_reads_schedule_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    async with connected() as (ours, theirs):
        if not isinstance(ours, AsyncioStream):
            pytest.skip("the moved timer is the asyncio stream's; trio's streams use trio's")
        loop = asyncio.get_running_loop()
        scheduled: list[float] = []
        for name in ("call_at", "call_later"):
            original = getattr(loop, name)

            def counting(
                delay: float, *args: object, _original=original, **kwargs: object
            ) -> object:  # type: ignore[no-untyped-def]
                scheduled.append(delay)
                return _original(delay, *args, **kwargs)

            monkeypatch.setattr(loop, name, counting)
        for n in range(200):
            await theirs.send(b"x")
            assert await ours.read(100, 10) == b"x", n
        assert len(scheduled) <= 1, scheduled[:5]


@pytest.mark.parametrize("stream_class", [AnyioStream, AsyncioStream])
def test_the_network_streams_slots_take_effect(stream_class: type[NetworkStream]) -> None:
    # NetworkStream declares no instance attributes, so its subclasses' __slots__ work.
    assert not hasattr(object.__new__(stream_class), "__dict__")


async def test_small_reads_of_large_chunks_keep_every_byte_in_order() -> None:
    """The loop hands over up to 256 KiB at once; reads smaller than that take slices
    of it (AsyncioStream keeps an offset into the chunk instead of copying the rest)."""
    payload = bytes(range(256)) * 4096  # 1 MiB, position-dependent
    async with connected() as (ours, theirs):
        await theirs.send(payload)
        await theirs.send_eof()
        received = bytearray()
        sizes = [1000, 65536, 7, 300_000]
        index = 0
        while chunk := await ours.read(sizes[index % len(sizes)], 5):
            assert len(chunk) <= sizes[index % len(sizes)]
            received += chunk
            index += 1
    assert bytes(received) == payload


async def test_a_small_receive_takes_no_large_buffer_of_its_own() -> None:
    # A plain asyncio protocol gets a new 256 KiB bytes object from the transport for
    # every receive: glibc serves that size with mmap unless its threshold was raised by
    # an earlier free (an mmap, an mremap, a munmap and page faults per response).
    async with connected() as (ours, theirs):
        if not isinstance(ours, AsyncioStream):
            pytest.skip("trio's sockets receive into buffers of the size asked")
        await theirs.send(b"warm")
        assert await ours.read(100, 5) == b"warm"  # the thread's receive buffer exists
        tracemalloc.start()
        try:
            await theirs.send(b"x" * 100)
            assert await ours.read(1000, 5) == b"x" * 100
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < RECEIVE_SIZE // 4, f"{peak} bytes allocated to receive 100"


async def test_bytes_received_stay_as_they_came_when_more_arrive() -> None:
    # Every connection of a loop receives into one buffer: what a connection has
    # received but not read yet must be a copy, not a view of that buffer.
    async with connected() as (first, first_peer), connected() as (second, second_peer):
        await first_peer.send(b"first")
        assert await first.read(2, 5) == b"fi"  # received: the rest waits in the stream
        await second_peer.send(b"SECOND")
        assert await second.read(100, 5) == b"SECOND"
        assert await first.read(100, 5) == b"rst"


async def test_aclose_soon_closes_at_the_next_loop_iteration_and_the_peer_sees_it() -> None:
    """With nothing left to send, aclose_soon() does not wait for the socket (the
    server's end of a connection); it is gone one loop iteration later, on every
    backend (where a stream has no fast path, aclose_soon is aclose)."""
    async with connected() as (ours, theirs):
        await ours.write(b"last words")
        socket = ours.raw_socket
        assert socket is not None
        await ours.aclose_soon()
        await anyio.lowlevel.checkpoint()  # one iteration: the loop closes the socket
        assert socket.fileno() == -1
        assert await theirs.receive() == b"last words"
        with pytest.raises(anyio.EndOfStream):
            await theirs.receive()
        await ours.aclose()  # still fine afterwards, as aclose twice is


async def test_aclose_soon_with_unsent_bytes_waits_for_them_as_aclose_does() -> None:
    async with connected() as (ours, theirs):
        if not isinstance(ours, AsyncioStream):
            pytest.skip("the fast path and its fallback are the asyncio stream's")
        # Fill the transport's buffer past what the socket takes while the peer does not
        # read, without waiting for it (write() would wait at the high-water mark).
        payload = b"x" * (8 * 1024 * 1024)
        ours._transport.write(payload)  # type: ignore[attr-defined]
        assert ours._transport.get_write_buffer_size() > 0  # type: ignore[attr-defined]
        received = bytearray()

        async def drain() -> None:
            await anyio.sleep(0.05)  # aclose_soon must be waiting by now
            while len(received) < len(payload):
                received.extend(await theirs.receive())

        socket = ours.raw_socket
        assert socket is not None
        async with anyio.create_task_group() as group:
            group.start_soon(drain)
            await ours.aclose_soon()
            assert socket.fileno() == -1  # it waited until every byte was sent
        assert bytes(received) == payload


async def test_a_cancelled_memory_write_has_delivered_all_of_its_data() -> None:
    """MemoryStream says it writes whole, as AsyncioStream: a write cancelled while it
    waits for the peer has delivered all of its data (a WebSocket has framed it and taken
    it from its engine by then). It waited for room first, so a cancelled one delivered
    nothing. wait_writable() is where a writer waits for room with nothing at stake; any
    number of tasks may wait there at once, and all wake up."""
    from sansnet.transport.streams import memory_stream_pair

    client, server = memory_stream_pair(capacity=10)
    await client.write(b"0123456789")  # full
    with anyio.move_on_after(0.05):
        await client.write(b"abc")  # waits for the peer, all of it delivered
    assert client.writes_whole
    woken: list[int] = []

    async def wait_for_room(number: int) -> None:
        await client.wait_writable()
        woken.append(number)

    async with anyio.create_task_group() as group:
        for number in range(3):
            group.start_soon(wait_for_room, number)
        await anyio.sleep(0.05)
        assert woken == []
        assert await server.read(100) == b"0123456789"
        assert await server.read(100) == b"abc"
    assert sorted(woken) == [0, 1, 2]


async def test_waiting_for_room_ends_when_the_connection_does() -> None:
    """Tasks in wait_writable() on a full asyncio transport wake up when the connection
    is lost, whoever ends it (a peer's reset, our own abort), and nothing is left waiting:
    a lost connection is not paused any more (Python 3.10's TLS transport does not report
    is_closing() then, and a waiter that looked again would wait forever)."""
    for ending in ("reset", "abort"):
        async with connected() as (ours, theirs):
            if not isinstance(ours, AsyncioStream):
                pytest.skip("the transport's buffer is the asyncio stream's")
            sock = ours.raw_socket
            assert sock is not None
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            theirs.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
            )
            with anyio.move_on_after(5):
                while not ours._protocol.paused_writing:
                    with anyio.move_on_after(0.05):
                        await ours.write(bytes(256 * 1024))
            assert ours._protocol.paused_writing, "the transport never filled"
            woken: list[int] = []

            async def wait(
                number: int, stream: AsyncioStream = ours, woken: list[int] = woken
            ) -> None:
                await stream.wait_writable()
                woken.append(number)

            with anyio.fail_after(5):
                async with anyio.create_task_group() as group:
                    for number in range(2):
                        group.start_soon(wait, number)
                    await anyio.sleep(0.05)
                    assert woken == []
                    if ending == "abort":
                        ours.abort()
                    else:
                        raw = theirs.extra(anyio.abc.SocketAttribute.raw_socket)
                        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        await theirs.aclose()
            assert sorted(woken) == [0, 1]
            assert ours._protocol.room_waiters == []
            assert not ours._protocol.paused_writing


class _SlowToClose(anyio.abc.ByteStream):
    """An anyio stream whose graceful close waits for its peer until cancelled (as a TLS
    close_notify to a peer that reads nothing would); closing it forcefully is at once."""

    def __init__(self) -> None:
        self.closed = ""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        pass

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.closed = "cancelled"


async def test_abort_ends_an_anyio_close_that_waits_for_the_peer() -> None:
    # A server's stop aborts a close begun before it (sansnet._lifecycle): abort() must
    # end the wait at once, not only make the next close forceful.
    inner = _SlowToClose()
    stream = AnyioStream(inner, "slow peer")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(stream.aclose_within, 60)
            await anyio.wait_all_tasks_blocked()
            assert inner.closed == ""
            stream.abort()
    assert inner.closed == "cancelled"
    await stream.aclose_within(60)  # once aborted, closing again is forceful and at once


async def test_a_blocked_write_times_out_and_a_reset_breaks_both_directions(
    anyio_backend_name: str,
) -> None:
    """The same errors on every backend (trio's stream talks to its socket itself): a
    write to a peer that does not read ends in WriteTimeout; once the peer resets the
    connection, a read raises ReadError and so does a write WriteError."""
    async with connected() as (ours, theirs):
        if anyio_backend_name == "trio":  # anyio's asyncio peer reads all on its own
            with pytest.raises(WriteTimeout):
                for _ in range(256):  # the socket buffers fill first
                    await ours.write(b"x" * (1024 * 1024), 0.2)
        else:
            await ours.write(b"x" * (1024 * 1024), 5)
        sock = theirs.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await theirs.aclose()  # a reset: the peer had bytes unread
        with pytest.raises(ReadError):
            while await ours.read(1024 * 1024, 5):
                pass
        with pytest.raises(WriteError):
            await ours.write(b"after the reset", 5)


async def test_a_write_of_nothing_is_still_a_checkpoint(anyio_backend_name: str) -> None:
    # trio's rule (every async operation of the stream may be cancelled and yields);
    # a loop writing whatever an engine had to send would otherwise never yield there.
    if anyio_backend_name != "trio":
        pytest.skip("a trio rule: asyncio's transports take writes without a checkpoint")
    async with connected() as (ours, _):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ours.write(b"")
            pytest.fail("the write of nothing was no checkpoint")  # pragma: no cover
        assert scope.cancelled_caught


async def _tls_pair(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
) -> tuple[NetworkStream, anyio.abc.ByteStream]:
    """A TLS stream of ours to ``listener``, and its other end (accepted and wrapped)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    raw = listener.listeners[0]  # type: ignore[attr-defined]
    theirs: list[anyio.abc.ByteStream] = []
    async with anyio.create_task_group() as tg:

        async def accept() -> None:
            accepted = await raw.accept()
            theirs.append(
                await TLSStream.wrap(accepted, server_side=True, ssl_context=server_context)
            )

        tg.start_soon(accept)
        ours = await open_tcp_stream(
            "127.0.0.1", port, ssl_context=client_context, server_hostname="127.0.0.1", timeout=5
        )
    return ours, theirs[0]


@pytest.mark.parametrize("kind", ["tcp", "tls", "memory"])
async def test_closing_a_stream_that_says_so_ends_a_read_waiting_in_another_task(
    kind: str, anyio_backend_name: str
) -> None:
    """``closing_wakes_reader``, which a WebSocket on trio relies on to read without a
    timeout of its own (its keepalive alarm closes the stream of a peer taken for
    dead): where a stream says it, closing it from another task ends a waiting read."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        theirs: anyio.abc.ByteStream | None = None
        if kind == "memory":
            ours: NetworkStream = memory_stream_pair()[0]
        elif kind == "tls":
            ours, theirs = await _tls_pair(listener)
        else:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            ours = await open_tcp_stream("127.0.0.1", port, timeout=5)
            theirs = await listener.listeners[0].accept()  # type: ignore[attr-defined]
        try:
            if anyio_backend_name == "trio" or kind == "memory":
                assert ours.closing_wakes_reader  # what the WebSocket's alarm needs there
            if not ours.closing_wakes_reader:
                pytest.skip("this stream does not say it (asyncio's own: not needed there)")
            outcome: list[bytes | str] = []
            ended = anyio.Event()
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    try:
                        outcome.append(await ours.read(100))
                    except ReadError:
                        outcome.append("ReadError")
                    ended.set()

                tg.start_soon(reader)
                await anyio.sleep(0.05)
                assert outcome == []  # waiting
                with anyio.fail_after(5):
                    await ours.aclose()
                    await ended.wait()
            assert outcome in ([b""], ["ReadError"])
        finally:
            ours.abort()  # the other end does not read: no wait for it
            await ours.aclose()
            if theirs is not None:
                await anyio.aclose_forcefully(theirs)


def test_an_anyio_stream_says_closing_wakes_its_reader_only_over_a_socket() -> None:
    """A stream of the user's wrapped in AnyioStream promises nothing: its reads keep
    their timeouts under a WebSocket on trio."""
    assert not AnyioStream(_SlowToClose()).closing_wakes_reader  # no socket under it


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_bytes_the_stream_took_from_its_socket_but_were_not_read_count_as_readable(
    backend: str,
) -> None:
    """A read of 1 byte from a 5-byte segment: anyio's asyncio stream (backend="anyio"
    under asyncio) keeps the other 4 in its own queue, no longer in the socket, and
    is_readable() polled only the socket. The pool asks it before reusing an idle
    connection; a close_notify held in anyio's TLS buffer is the same case (see
    tests/client/test_connections.py)."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        ours = await open_tcp_stream("127.0.0.1", port, timeout=5, backend=backend)  # type: ignore[arg-type]
        try:
            async with await listener.listeners[0].accept() as theirs:  # type: ignore[attr-defined]
                await theirs.send(b"hello")
                assert await ours.read(1, timeout=5) == b"h"
                assert ours.is_readable(), "4 bytes are waiting"
                assert await ours.read(100, timeout=5) == b"ello"
                assert not ours.is_readable(), "nothing is waiting"
        finally:
            await ours.aclose()


def _read_slowly(listener: socket.socket, total: int) -> int:
    """Accept one connection and take ``total`` bytes from it, 32 KiB every 10 ms: a slow
    reader that never goes silent for long."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        got = 0
        while got < total:
            data = conn.recv(32 * 1024)
            if not data:
                break
            got += len(data)
            time.sleep(0.01)
        return got


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_the_write_timeout_limits_silence_not_a_whole_write_to_a_slow_reader(
    backend: str,
) -> None:
    """A write of 3 MiB with a 0.5 s timeout to a peer that reads steadily but takes
    longer than that for all of it completes: the timeout bounds each wait for the peer
    to take more (docs/limits.md), on every stream (trio's, anyio's in pieces)."""
    total = 3 * 1024 * 1024
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        async with anyio.create_task_group() as tg:
            received: list[int] = []

            async def peer() -> None:
                received.append(await anyio.to_thread.run_sync(_read_slowly, listener, total))

            tg.start_soon(peer)
            ours = await open_tcp_stream("127.0.0.1", port, timeout=5, backend=backend)  # type: ignore[arg-type]
            try:
                sock = ours.raw_socket
                assert sock is not None
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
                with anyio.fail_after(60):
                    await ours.write(b"x" * total, 0.5)
            finally:
                await ours.aclose()
        assert received == [total]


async def test_reads_after_the_peers_end_return_nothing_though_a_later_write_failed() -> None:
    """The end of the stream, once read, stays the end: a write after it that fails (the
    peer is gone: EPIPE or a reset) breaks writing, not the reads, which keep returning
    b"" as on trio. An error only wins over the end when it came first."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        ours = await open_tcp_stream("127.0.0.1", port, timeout=5, half_close=True)
        try:
            async with await listener.listeners[0].accept() as theirs:  # type: ignore[attr-defined]
                await theirs.send(b"bye")
            assert await ours.read(100, 5) == b"bye"
            assert await ours.read(100, 5) == b""
            with anyio.fail_after(10), pytest.raises(WriteError):
                while True:  # the first write draws a reset, a later one fails
                    await ours.write(b"ping", 5)
                    await anyio.sleep(0.01)
            assert await ours.read(100, 5) == b""
            assert await ours.read(100, 5) == b""
        finally:
            await ours.aclose()


async def test_closing_ends_a_read_and_a_write_waiting_in_other_tasks_at_once() -> None:
    """aclose() with unsent data waits for the peer to take it; a read and a write that
    wait in other tasks do not wait with it: they end when the close begins, a read with
    ReadError and a write with WriteError (what trio's stream raises)."""
    with socket.socket() as listener:  # a peer that never reads: nothing is accepted
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        ours = await open_tcp_stream("127.0.0.1", listener.getsockname()[1], timeout=5)
        sock = ours.raw_socket
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        outcome: dict[str, str] = {}
        ended = [anyio.Event(), anyio.Event()]

        async def reader() -> None:
            try:
                outcome["read"] = repr(await ours.read(100))
            except ReadError:
                outcome["read"] = "ReadError"
            ended[0].set()

        async def writer() -> None:
            try:
                await ours.write(bytes(16 * 1024 * 1024))
                outcome["write"] = "written"
            except WriteError:
                outcome["write"] = "WriteError"
            ended[1].set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                tg.start_soon(writer)
                await anyio.sleep(0.1)
                assert outcome == {}  # both wait
                tg.start_soon(ours.aclose_within, 20)
                with anyio.fail_after(10):
                    for event in ended:
                        await event.wait()
                ours.abort()  # the close still waits for the peer: end it
        finally:
            ours.abort()
            await ours.aclose()
        assert outcome == {"read": "ReadError", "write": "WriteError"}
