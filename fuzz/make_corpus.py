"""Regenerate the seed corpora in fuzz/corpus/ from real traffic on 127.0.0.1.

Run: ``python fuzz/make_corpus.py`` (needs curl, and the dev extra: uvicorn, hypercorn,
httpx, websockets, brotli, backports.zstd). It replaces the contents of the six corpus
directories (new inputs a long run finds stay in the run's own copy; see run.sh).

What it does: starts uvicorn and hypercorn (serving a small ASGI app) and a websockets
echo server, each behind a recording TCP proxy; drives them with curl, httpx and the
websockets client; and keeps the raw bytes each side wrote, per connection. Those bytes
become seeds, each behind the option bytes its harness reads first (see each harness's
docstring):

* http_server: what curl and httpx sent (requests), as a server receives them
* http_client: what uvicorn and hypercorn answered, as a client receives it
* websocket: the frames after the handshake, both directions, with and without
  permessage-deflate
* content_decoders: the gzip, deflate, br and zstd bodies uvicorn and hypercorn sent
  (the app compresses; the servers write the bytes), and their plaintext for the round
  trip mode
* codecs: the percent-encoded targets curl and httpx wrote, and the JSON bodies
* differential: the requests and responses above, as material for our writers

The date and server fields make the bytes differ a little from run to run; nothing
else depends on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import socket
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import brotli
import h11
import httpx
import uvicorn
from backports import zstd
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
TEXT = b"The quick brown fox jumps over the lazy dog. " * 4
DOCUMENT = {"name": "sansnet", "tags": ["http", "websocket"], "version": 1.5, "ok": True}
CODINGS = {  # the index of each coding in content_decoders.CODINGS
    "gzip": 0,
    "deflate": 2,
    "br": 3,
    "zstd": 4,
}


# --------------------------------------------------------------------------- recording


@dataclass
class Capture:
    label: str
    sent: bytearray = field(default_factory=bytearray)  # client -> server
    received: bytearray = field(default_factory=bytearray)  # server -> client


class RecordingProxy:
    """A TCP proxy on 127.0.0.1 that keeps what each side of each connection wrote."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.label = ""
        self.captures: list[Capture] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self.settle()

    async def settle(self) -> None:
        """Wait until every proxied connection has closed."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        capture = Capture(self.label)
        self.captures.append(capture)
        task = asyncio.ensure_future(self._relay(capture, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(
        self, capture: Capture, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bytearray
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    record += data
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError, RuntimeError):
                sink.write_eof()

        await asyncio.gather(
            pipe(reader, up_writer, capture.sent), pipe(up_reader, writer, capture.received)
        )
        for w in (writer, up_writer):
            w.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the peers


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    """The ASGI app both servers run: plain, JSON, chunked, compressed and echo bodies."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    status = 200
    if path == "/json":
        payload = json.dumps(DOCUMENT).encode()
        headers = [(b"content-type", b"application/json")]
    elif path == "/echo":
        payload = body
    elif path.startswith("/encoded/"):
        name = path.rsplit("/", 1)[1]
        payload = {
            "gzip": lambda: gzip.compress(TEXT, mtime=0),
            "deflate": lambda: zlib.compress(TEXT),
            "br": lambda: bytes(brotli.compress(TEXT)),
            "zstd": lambda: bytes(zstd.compress(TEXT)),
        }[name]()
        headers.append((b"content-encoding", name.encode()))
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in (b"first piece, ", b"second piece, ", b"last piece\n"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    elif path == "/missing":
        status, payload = 404, b"Not Found\n"
    else:
        payload = b"hello from " + path.encode() + b"\n"
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def run_uvicorn(port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn only offers the flag
        await asyncio.sleep(0.01)
    return server, task


async def run_hypercorn(port: int) -> tuple[asyncio.Event, asyncio.Task[None]]:
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.ensure_future(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(500):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.01)
    return stop, task


async def curl(proxy: RecordingProxy, label: str, *args: str) -> None:
    proxy.label = label
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "--max-time", "10", *args, stdout=asyncio.subprocess.DEVNULL
    )
    await process.wait()
    await proxy.settle()


async def drive_http(proxy: RecordingProxy, name: str) -> None:
    base = f"http://127.0.0.1:{proxy.port}"
    await curl(proxy, f"{name}-curl-get", f"{base}/index.html?q=%F0%9F%9A%80+rocket&lang=en")
    await curl(proxy, f"{name}-curl-head", "-I", f"{base}/")
    await curl(proxy, f"{name}-curl-keepalive", f"{base}/a", f"{base}/json", f"{base}/missing")
    await curl(proxy, f"{name}-curl-http10", "-0", f"{base}/json")
    await curl(
        proxy,
        f"{name}-curl-form",
        "--data-urlencode",
        "name=J\u00fcrgen & co",
        "--data-urlencode",
        "path=/a b/c?d",
        f"{base}/echo",
    )
    await curl(
        proxy,
        f"{name}-curl-chunked",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        '{"chunked": true}',
        f"{base}/echo",
    )
    await curl(
        proxy,
        f"{name}-curl-expect",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "x" * 300,
        f"{base}/echo",
    )
    await curl(proxy, f"{name}-curl-streamed", f"{base}/chunked")
    for coding in CODINGS:
        await curl(proxy, f"{name}-curl-encoded-{coding}", f"{base}/encoded/{coding}")

    async def body() -> Any:
        for piece in (b"streamed ", b"upload ", b"body"):
            yield piece

    proxy.label = f"{name}-httpx"
    async with httpx.AsyncClient(base_url=base) as client:
        await client.get("/json", params={"q": "a b&c=d", "emoji": "\U0001f680"})
        await client.post("/echo", json=DOCUMENT)
        await client.post("/echo", content=body())
        await client.head("/")
        await client.get("/chunked", headers=[("X-Repeated", "1"), ("X-Repeated", "2")])
    await proxy.settle()


async def echo(connection: Any) -> None:
    with contextlib.suppress(Exception):
        async for message in connection:
            await connection.send(message)


async def drive_websocket(proxy: RecordingProxy) -> None:
    for compression in ("deflate", None):
        proxy.label = f"websockets-{compression or 'plain'}"
        async with ws_connect(
            f"ws://127.0.0.1:{proxy.port}/chat", compression=compression
        ) as connection:
            await connection.send("hello, world")
            await connection.recv()
            await connection.send(b"\x00\x01binary\xff" * 3)
            await connection.recv()
            await connection.send(["fragmented ", "text ", "message \u00e9"])
            await connection.recv()
            await connection.send("repeat " * 40)
            await connection.recv()
            pong = await connection.ping(b"ping!")
            await pong
            await connection.close(1000, "bye")
        await proxy.settle()


async def record() -> list[Capture]:
    captures: list[Capture] = []
    uvicorn_port, hypercorn_port = free_port(), free_port()
    server, uvicorn_task = await run_uvicorn(uvicorn_port)
    stop_hypercorn, hypercorn_task = await run_hypercorn(hypercorn_port)
    try:
        for name, port in (("uvicorn", uvicorn_port), ("hypercorn", hypercorn_port)):
            proxy = RecordingProxy(port)
            await proxy.start()
            await drive_http(proxy, name)
            await proxy.stop()
            captures += proxy.captures
        async with ws_serve(echo, "127.0.0.1", 0) as ws_server:
            ws_port = next(iter(ws_server.sockets)).getsockname()[1]
            proxy = RecordingProxy(ws_port)
            await proxy.start()
            await drive_websocket(proxy)
            await proxy.stop()
            captures += proxy.captures
    finally:
        server.should_exit = True
        stop_hypercorn.set()
        await asyncio.gather(uvicorn_task, hypercorn_task)
    return captures


# --------------------------------------------------------------------------- the seeds


def responses(data: bytes, methods: list[str]) -> list[tuple[h11.Response, bytes]]:
    """Split a server's output into (head, body) pairs with h11."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    out: list[tuple[h11.Response, bytes]] = []
    for method in methods:
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        if conn.our_state is not h11.IDLE:
            break
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        head, body = None, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                out.append((head, body))
                break
            elif not isinstance(event, h11.InformationalResponse):
                return out
    return out


def request_methods(data: bytes) -> list[str]:
    """The methods of the requests a client sent, in order."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    methods: list[str] = []
    with contextlib.suppress(h11.RemoteProtocolError):
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                methods.append(event.method.decode())
            elif isinstance(event, h11.EndOfMessage):
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
            elif event is h11.NEED_DATA or event is h11.PAUSED or not event:
                break
    return methods


def seeds(captures: list[Capture]) -> dict[str, dict[str, bytes]]:
    corpus: dict[str, dict[str, bytes]] = {
        name: {}
        for name in (
            "http_server",
            "http_client",
            "websocket",
            "content_decoders",
            "codecs",
            "differential",
        )
    }
    counts: dict[str, int] = {}
    for capture in captures:
        sent, received = bytes(capture.sent), bytes(capture.received)
        if not sent:
            continue
        counts[capture.label] = counts.get(capture.label, 0) + 1
        label = f"{capture.label}-{counts[capture.label]}"
        if capture.label.startswith("websockets"):
            deflate = 2 if "deflate" in capture.label else 0
            to_server = sent.partition(b"\r\n\r\n")[2]
            to_client = received.partition(b"\r\n\r\n")[2]
            corpus["websocket"][f"{label}-to-server"] = bytes([deflate | 16, 0]) + to_server
            corpus["websocket"][f"{label}-to-client"] = bytes([deflate | 1 | 16, 0]) + to_client
            corpus["websocket"][f"{label}-to-client-split"] = bytes([deflate | 1, 5]) + to_client
            continue
        methods = request_methods(sent)
        if not methods:
            continue
        # The clients sent the same requests to both servers: keep one copy of them.
        if capture.label.startswith("uvicorn"):
            # http_server: the requests, then EOF; 100 Continue when asked.
            corpus["http_server"][label] = b"\x21\x00\x00" + sent
            # differential: the request as material.
            if len(methods) == 1:
                corpus["differential"][f"{label}-request"] = b"\x00\x03" + sent
        # http_client: the responses, read by a client that sent the same requests.
        head = 2 if methods[0] == "HEAD" else 0
        more = min(len(methods) - 1, 3) << 4
        corpus["http_client"][label] = bytes([1 | head | more, 0]) + received
        # differential: the response as material (one message per connection suffices).
        if len(methods) == 1:
            corpus["differential"][f"{label}-response"] = b"\x01\x03" + received
        # codecs: the targets (percent-encoded by the client) and JSON bodies.
        target = sent.split(b" ", 2)[1]
        if b"%" in target or b"?" in target:
            corpus["codecs"][f"{label}-target"] = b"\x00" + target.partition(b"?")[2]
        for response, body in responses(received, methods):
            kinds = dict(response.headers)
            if kinds.get(b"content-type") == b"application/json":
                corpus["codecs"][f"{label}-json"] = b"\x03" + body
            coding = kinds.get(b"content-encoding", b"").decode()
            if coding in CODINGS:
                index = CODINGS[coding]
                corpus["content_decoders"][f"{label}-{coding}"] = bytes([index, 0, 5, 3, 0]) + body
                corpus["content_decoders"][f"{label}-{coding}-small"] = (
                    bytes([index, 4, 3, 0x83, 0]) + body
                )
        if b"form" in label.encode():
            corpus["codecs"][f"{label}-form"] = b"\x00" + sent.partition(b"\r\n\r\n")[2]
    # content_decoders round trips and damage, from the plaintext the app compressed.
    for coding, index in CODINGS.items():
        corpus["content_decoders"][f"roundtrip-{coding}"] = bytes([index, 2, 6, 3, 4]) + TEXT[:60]
        corpus["content_decoders"][f"damaged-{coding}"] = bytes([index, 0x21, 6, 3, 90]) + TEXT[:60]
    corpus["codecs"]["url-roundtrip"] = b"\x02" + "\U0001f680 This string will be encoded.".encode()
    return corpus


def write(corpus: dict[str, dict[str, bytes]]) -> None:
    for harness, files in corpus.items():
        directory = os.path.join(CORPUS, harness)
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            os.remove(os.path.join(directory, name))
        for label, data in sorted(files.items()):
            with open(os.path.join(directory, label), "wb") as file:
                file.write(data)
        total = sum(len(data) for data in files.values())
        print(f"{harness}: {len(files)} files, {total} bytes")


def main() -> None:
    captures = asyncio.run(record())
    write(seeds(captures))


if __name__ == "__main__":
    main()
    sys.exit(0)
