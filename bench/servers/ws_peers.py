"""WebSocket echo peers for bench/bench_websocket.py: one server and one client per library.

    python bench/servers/ws_peers.py server --library websockets
    python bench/servers/ws_peers.py client --library websockets --port N --workload small \
        --count 10000 [--warmup 500] [--server-pid PID]

``server`` binds 127.0.0.1 on a port the OS picks, prints ``LISTENING <port>`` on stdout
once it accepts connections, and echoes every message back (text as text, binary as
binary) until it is killed. ``client`` opens one connection to a server of the *same*
library, sends ``--warmup`` messages (not timed), then ``--count`` messages one at a time,
each waiting for its echo, checks every echo (type, length and content; the first wrong
echo stops the run and is reported), closes, and prints one ``BENCH_JSON {...}`` line: the
timed run's wall time, round-trip percentiles, and the CPU time used meanwhile by itself,
by the server process (``--server-pid``, read from /proc) and by the whole machine.

Workloads: ``small`` = 49-byte text messages, each one different (a counter, then
filler); ``large`` = 1 MiB binary messages, cycling through four different payloads, so
a stale or shifted echo never passes the check.

Every library runs with compression off and its message-size limit raised to 16 MiB
(where the default would not fit 1 MiB); everything else is the library's default
(keepalive pings included: they never fire within a run, but on trio they cost a cancel
scope per read; ``sansnet-trio-nopings`` turns them off, as trio-websocket has none). If
sansnet cannot be imported or lacks the WebSocket API, both commands print ``not
available (...)`` on stderr and exit with status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _harness import machine_busy_seconds, process_cpu_seconds

HOST = "127.0.0.1"
MiB = 1024 * 1024
MAX_SIZE = 16 * MiB  # message-size limit given to every library (1 MiB must fit)
NOT_AVAILABLE = 3  # exit status bench_websocket.py reads as "not available"

SMALL_SIZE = 49
LARGE_SIZE = MiB

# library -> (implementation, event loop)
LIBRARIES: dict[str, tuple[str, str]] = {
    "sansnet-asyncio": ("sansnet", "asyncio"),
    "sansnet-uvloop": ("sansnet", "uvloop"),
    "sansnet-trio": ("sansnet", "trio"),
    # Without keepalive pings (ping_interval=None): like trio-websocket, which has none,
    # so each read waits without a timeout (on trio, without a cancel scope).
    "sansnet-trio-nopings": ("sansnet-nopings", "trio"),
    "websockets": ("websockets", "asyncio"),
    "websockets-uvloop": ("websockets", "uvloop"),
    "aiohttp": ("aiohttp", "asyncio"),
    "aiohttp-uvloop": ("aiohttp", "uvloop"),
    "trio-websocket": ("trio-websocket", "trio"),
    "wsproto-anyio": ("wsproto-anyio", "asyncio"),
    "wsproto-anyio-trio": ("wsproto-anyio", "trio"),
}

Send = Callable[[Any], Awaitable[Any]]
Receive = Callable[[], Awaitable[Any]]


def announce(port: int) -> None:
    print(f"LISTENING {port}", flush=True)


def not_available(exc: BaseException) -> None:
    print(f"not available ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
    sys.exit(NOT_AVAILABLE)


def import_sansnet() -> Any:
    try:
        import sansnet

        for name in ("serve", "ServeConfig", "socket", "WebSocket"):
            getattr(sansnet, name)
    except (ImportError, AttributeError) as exc:
        not_available(exc)
    return sansnet


# ================================================================ workload


def small_messages(count: int) -> list[str]:
    filler = "x" * (SMALL_SIZE - 8)
    return [f"{i % 100_000_000:08d}{filler}" for i in range(count)]


def large_messages(count: int) -> list[bytes]:
    base = bytes(range(256)) * (LARGE_SIZE // 256)
    payloads = [base[k:] + base[:k] for k in range(4)]  # four different 1 MiB payloads
    return [payloads[i % 4] for i in range(count)]


class WrongEcho(Exception):
    pass


def describe(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{type(value).__name__} of {len(value)} bytes, starting {bytes(value[:12])!r}"
    if isinstance(value, str):
        return f"str of {len(value)} chars, starting {value[:12]!r}"
    return repr(value)[:80]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Workload:
    def __init__(self, kind: str, count: int, warmup: int, server_pid: int | None) -> None:
        self.kind = kind
        self.text = kind == "small"
        make = small_messages if self.text else large_messages
        self.messages = make(count)
        self.warmup = make(warmup)
        self.server_pid = server_pid
        self.result: dict[str, Any] = {}

    def _snapshot(self) -> tuple[float, float, float | None, float | None]:
        pid = self.server_pid
        return (
            time.perf_counter(),
            own_cpu_seconds(),
            process_cpu_seconds(pid) if pid else None,
            machine_busy_seconds(),
        )

    async def run(self, send: Send, receive: Receive) -> None:
        """Warm up, then the timed run: send, wait for the echo, check it, next."""
        text = self.text
        for index, message in enumerate(self.warmup):
            await send(message)
            reply = await receive()
            if not (type(reply) is str if text else isinstance(reply, (bytes, bytearray))) or (
                reply != message
            ):
                raise WrongEcho(
                    f"warm-up message {index}: sent {describe(message)}, got {describe(reply)}"
                )
        messages = self.messages
        stamps: list[float] = []
        stamp = stamps.append
        clock = time.perf_counter
        wrong = None
        before = self._snapshot()
        start = clock()
        if text:
            for message in messages:
                await send(message)
                reply = await receive()
                if type(reply) is not str or reply != message:
                    wrong = (message, reply)
                    break
                stamp(clock())
        else:
            for message in messages:
                await send(message)
                reply = await receive()
                if not isinstance(reply, (bytes, bytearray)) or reply != message:
                    wrong = (message, reply)
                    break
                stamp(clock())
        after = self._snapshot()
        if wrong is not None:
            raise WrongEcho(
                f"message {len(stamps)}: sent {describe(wrong[0])}, got {describe(wrong[1])}"
            )
        elapsed = stamps[-1] - start
        trips = sorted(b - a for a, b in zip([start, *stamps], stamps))

        def share(i: int) -> float | None:
            a, b = before[i], after[i]
            return None if a is None or b is None else b - a

        self.result = {
            "messages": len(stamps),
            "message_bytes": SMALL_SIZE if text else LARGE_SIZE,
            "elapsed": elapsed,
            "window": after[0] - before[0],
            "p50_us": trips[len(trips) // 2] * 1e6,
            "p99_us": trips[min(len(trips) - 1, int(len(trips) * 0.99))] * 1e6,
            "client_cpu": share(1),
            "server_cpu": share(2),
            "machine_busy": share(3),
        }


# ================================================================ sansnet


async def sansnet_server(ping_interval: float | None = 20.0) -> None:
    sansnet = import_sansnet()
    import anyio

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    config = sansnet.ServeConfig(
        handle_web_socket=echo,
        address=HOST,
        compression=False,
        max_message_size=MAX_SIZE,
        ping_interval=ping_interval,
    )
    async with sansnet.serve(0, config) as handle:
        announce(handle.port)
        await anyio.sleep_forever()


async def sansnet_client(port: int, workload: Workload, ping_interval: float | None = 20.0) -> None:
    sansnet = import_sansnet()
    ws = await sansnet.socket(
        f"ws://{HOST}:{port}/",
        compression=False,
        max_message_size=MAX_SIZE,
        ping_interval=ping_interval,
    )
    try:
        await workload.run(ws.send, ws.next)
    finally:
        await ws.close()


# ================================================================ websockets (asyncio API)


async def websockets_server() -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, HOST, 0, compression=None, max_size=MAX_SIZE) as server:
        announce(next(iter(server.sockets)).getsockname()[1])
        await server.serve_forever()


async def websockets_client(port: int, workload: Workload) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://{HOST}:{port}/", compression=None, max_size=MAX_SIZE) as ws:
        await workload.run(ws.send, ws.recv)


# ================================================================ aiohttp


async def aiohttp_server() -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    server: Any = site._server  # the only way to learn the port the OS chose
    assert server is not None
    announce(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


async def aiohttp_client(port: int, workload: Workload) -> None:
    import aiohttp
    from aiohttp import WSMsgType

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{HOST}:{port}/", compress=0, max_msg_size=MAX_SIZE) as ws,
    ):
        receive_msg = ws.receive
        data_types = (WSMsgType.TEXT, WSMsgType.BINARY)

        async def receive() -> Any:
            msg = await receive_msg()
            return msg.data if msg.type in data_types else msg

        await workload.run(ws.send_str if workload.text else ws.send_bytes, receive)


# ================================================================ trio-websocket


async def trio_websocket_server() -> None:
    import trio
    from trio_websocket import ConnectionClosed, serve_websocket

    async def echo(request: Any) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                echo, HOST, 0, None, max_message_size=MAX_SIZE, task_status=task_status
            )
        )
        announce(server.port)


async def trio_websocket_client(port: int, workload: Workload) -> None:
    from trio_websocket import open_websocket_url

    async with open_websocket_url(f"ws://{HOST}:{port}/", max_message_size=MAX_SIZE) as ws:
        await workload.run(ws.send_message, ws.get_message)


# ================================================================ bare wsproto on anyio


class WsprotoPeer:
    """A bare wsproto connection over an anyio stream: the floor for a sans-IO design.
    Whole messages in and out; pings answered; no limits, no keepalive, no locks."""

    def __init__(self, stream: Any, role: str) -> None:
        from wsproto import ConnectionType, WSConnection

        self.stream = stream
        self.conn = WSConnection(
            ConnectionType.CLIENT if role == "client" else ConnectionType.SERVER
        )
        self.messages: deque[Any] = deque()
        self.parts: list[Any] = []
        self.closed = False
        self.accepted = False

    async def _read(self) -> None:
        import anyio
        from wsproto.events import (
            AcceptConnection,
            BytesMessage,
            CloseConnection,
            Message,
            Ping,
            Request,
            TextMessage,
        )

        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = None
        self.conn.receive_data(data)
        out = []
        for event in self.conn.events():
            if isinstance(event, Message):
                self.parts.append(event.data)
                if event.message_finished:
                    parts, self.parts = self.parts, []
                    if isinstance(event, TextMessage):
                        self.messages.append(parts[0] if len(parts) == 1 else "".join(parts))
                    else:
                        assert isinstance(event, BytesMessage)
                        self.messages.append(parts[0] if len(parts) == 1 else b"".join(parts))
            elif isinstance(event, Ping):
                out.append(self.conn.send(event.response()))
            elif isinstance(event, Request):
                out.append(self.conn.send(AcceptConnection()))
                self.accepted = True
            elif isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, CloseConnection):
                if self.conn.state.name == "REMOTE_CLOSING":
                    out.append(self.conn.send(event.response()))
                self.closed = True
            else:  # a rejection or anything unexpected
                self.closed = True
        if data is None:
            self.closed = True
        if out:
            try:
                await self.stream.send(b"".join(out))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.closed = True

    async def send(self, message: str | bytes) -> None:
        from wsproto.events import BytesMessage, TextMessage

        event = (
            TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        )
        await self.stream.send(self.conn.send(event))

    async def receive(self) -> str | bytes | None:
        messages = self.messages
        while not messages:
            if self.closed:
                return None
            await self._read()
        message: str | bytes = messages.popleft()
        return message


async def wsproto_server() -> None:
    import anyio

    async def handle(stream: Any) -> None:
        async with stream:
            peer = WsprotoPeer(stream, "server")
            while (message := await peer.receive()) is not None:
                await peer.send(message)

    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    announce(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.serve(handle)


async def wsproto_client(port: int, workload: Workload) -> None:
    import anyio
    from wsproto.events import CloseConnection, Request

    async with await anyio.connect_tcp(HOST, port) as stream:
        peer = WsprotoPeer(stream, "client")
        await stream.send(peer.conn.send(Request(host=f"{HOST}:{port}", target="/")))
        while not peer.accepted:
            if peer.closed:
                raise WrongEcho("the wsproto handshake was refused")
            await peer._read()
        await workload.run(peer.send, peer.receive)
        await stream.send(peer.conn.send(CloseConnection(code=1000)))
        with anyio.move_on_after(5):
            while not peer.closed:
                await peer._read()


# ================================================================ main


SERVERS = {
    "sansnet": sansnet_server,
    "sansnet-nopings": functools.partial(sansnet_server, ping_interval=None),
    "websockets": websockets_server,
    "aiohttp": aiohttp_server,
    "trio-websocket": trio_websocket_server,
    "wsproto-anyio": wsproto_server,
}
CLIENTS = {
    "sansnet": sansnet_client,
    "sansnet-nopings": functools.partial(sansnet_client, ping_interval=None),
    "websockets": websockets_client,
    "aiohttp": aiohttp_client,
    "trio-websocket": trio_websocket_client,
    "wsproto-anyio": wsproto_client,
}


def run(
    implementation: str, loop: str, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any
) -> Any:
    """Run ``func(*args)`` on the event loop: plain asyncio, uvloop, or trio. The anyio-based
    peers (sansnet, wsproto-anyio) go through ``anyio.run``; the others run natively."""
    if implementation in ("sansnet", "sansnet-nopings", "wsproto-anyio"):
        import anyio

        if loop == "uvloop":
            return anyio.run(func, *args, backend="asyncio", backend_options={"use_uvloop": True})
        return anyio.run(func, *args, backend=loop)
    if loop == "trio":
        import trio

        return trio.run(func, *args)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(func(*args))
    return asyncio.run(func(*args))


def start_profile(path: str) -> None:
    """cProfile the whole process; dump the stats at exit, and on SIGTERM (servers)."""
    import atexit
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    def on_sigterm(*_: object) -> None:
        dump()
        os._exit(0)

    atexit.register(dump)
    signal.signal(signal.SIGTERM, on_sigterm)
    profiler.enable()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--library", choices=tuple(LIBRARIES), required=True)
    parser.add_argument("--port", type=int, help="the server's port (client)")
    parser.add_argument("--workload", choices=("small", "large"), default="small")
    parser.add_argument("--count", type=int, default=10_000, help="timed messages (client)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed messages first (client)")
    parser.add_argument("--server-pid", type=int, help="server process to account CPU for")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="write cProfile stats here (server: on SIGTERM; client: when done)",
    )
    args = parser.parse_args()
    if args.profile:
        start_profile(args.profile)

    implementation, loop = LIBRARIES[args.library]
    if implementation.startswith("sansnet"):
        import_sansnet()  # "not available" before anything else
    if args.role == "server":
        run(implementation, loop, SERVERS[implementation])
        return
    if args.port is None:
        parser.error("client needs --port")
    if args.count < 1:
        parser.error("--count must be at least 1")
    workload = Workload(args.workload, args.count, args.warmup, args.server_pid)
    try:
        run(implementation, loop, CLIENTS[implementation], args.port, workload)
    except WrongEcho as exc:
        print("BENCH_JSON " + json.dumps({"error": f"wrong echo: {exc}"}), flush=True)
        sys.exit(1)
    if not workload.result:
        print("BENCH_JSON " + json.dumps({"error": "the client did not finish"}), flush=True)
        sys.exit(1)
    print("BENCH_JSON " + json.dumps(workload.result), flush=True)


if __name__ == "__main__":
    main()
