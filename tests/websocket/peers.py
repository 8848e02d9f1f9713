"""Real WebSocket peers that no one here wrote, run on 127.0.0.1 for the tests: the
websockets library (server and client, in a thread with its own asyncio loop) and
Node's ws package (installed with npm into a cache directory on first use); and
:func:`switching_protocols`, the answer of a hand-written peer on a plain socket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


async def _websockets_handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request else "/"
    if path.startswith("/echo"):
        async for message in ws:
            await ws.send(message)
    elif path == "/fragments":
        await ws.send(["frag", "ment", "ed"])
        await ws.send([b"\x00\x01", b"\x02"])
        async for message in ws:
            await ws.send(message)
    elif path == "/pings":
        for index in range(3):
            await ws.ping(f"p{index}".encode())
        await ws.send("after pings")
        async for message in ws:
            await ws.send(message)
    elif path == "/close":
        await ws.close(4001, "bye from websockets")
    elif path == "/vanish":
        await ws.send("about to vanish")
        ws.transport.abort()
    elif path == "/headers":
        await ws.send(json.dumps(dict(ws.request.headers.raw_items()) if ws.request else {}))
        await ws.send(ws.subprotocol or "")
        async for message in ws:
            await ws.send(message)
    elif path == "/burst":
        for index in range(50):
            await ws.send(f"message {index}")
        await ws.close(1000, "done")


def _choose_subprotocol(connection: ServerConnection, offered: Any) -> Any:
    return next((choice for choice in ("superchat", "chat") if choice in offered), None)


@contextmanager
def websockets_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A websockets echo server in a background thread; yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with serve(
            _websockets_handler,
            "127.0.0.1",
            0,
            ssl=ssl_context,
            select_subprotocol=_choose_subprotocol,
            max_size=2**25,
            ping_interval=None,
        ) as server:
            state["port"] = next(iter(server.sockets)).getsockname()[1]
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the websockets server did not start"
    try:
        yield state["port"]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        loop.close()


def run_websockets_client(coroutine: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    """Run an asyncio coroutine (a websockets client) in its own loop, in this thread,
    for at most ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine(), timeout)

    return asyncio.run(bounded())


NODE_DIR = Path(os.environ.get("SANSNET_NODE_DIR", "/tmp/sansnet-node-ws"))

NODE_SERVER = r"""
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true });
wss.on('listening', () => { console.log(JSON.stringify({ port: wss.address().port })); });
wss.on('connection', (ws, request) => {
  if (request.url === '/close') { ws.close(4002, 'bye from ws'); return; }
  if (request.url === '/ping') { ws.ping('node ping'); ws.send('after ping'); }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
"""


def node_ws_available() -> bool:
    """Install ws with npm (once); False if node or npm are missing or the install fails."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if (NODE_DIR / "node_modules" / "ws").is_dir():
        return True
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "npm",
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(NODE_DIR),
            "ws@8",
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    return result.returncode == 0 and (NODE_DIR / "node_modules" / "ws").is_dir()


@contextmanager
def node_ws_server() -> Iterator[int]:
    script = NODE_DIR / "echo_server.js"
    script.write_text(NODE_SERVER, encoding="utf-8")
    process = subprocess.Popen(
        ["node", str(script)],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    with process, process.stdout:
        try:
            line = process.stdout.readline()
            yield int(json.loads(line)["port"])
        finally:
            process.terminate()


def switching_protocols(request: bytes) -> bytes:
    """The 101 answer to the WebSocket handshake ``request`` (its whole head), for a
    peer on a plain socket that then misbehaves as a test needs (RFC 6455 section 4.2.2;
    computed here, not by the code under test)."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            digest = hashlib.sha1(value.strip() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + base64.b64encode(digest.digest())
                + b"\r\n\r\n"
            )
    raise AssertionError("no Sec-WebSocket-Key")  # pragma: no cover
