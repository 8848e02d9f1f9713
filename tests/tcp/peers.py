"""Peers no one here wrote, for the TCP tests: socat (plain and TLS echo), openssl
s_server, and an ``asyncio.start_server`` echo in a thread of its own (so it serves
trio tests too). Each binds 127.0.0.1 and is stopped by the context manager."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


def require(program: str, package: str | None = None) -> str:
    """The path of ``program`` (on PATH, or in /usr/sbin as sshd is for non-root users);
    a missing one fails the test with the Debian ``package`` to install (default: the
    program's name). Not a skip: CI installs every peer, and a skip would hide a gap."""
    path = shutil.which(program)
    if path is None and os.access(f"/usr/sbin/{program}", os.X_OK):
        path = f"/usr/sbin/{program}"
    if path is None:
        pytest.fail(
            f"{program} is not installed: `apt-get install {package or program}` (.ci/run does it)."
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the peer exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after 10 s")


@contextmanager
def running(command: list[str], port: int, probe: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        if probe:
            wait_listening(port, process)
        yield process
    finally:
        process.kill()
        process.communicate(timeout=10)


@contextmanager
def socat_echo(tls: tuple[str, str] | None = None) -> Iterator[int]:
    """socat echoing every connection back (``PIPE``), plain or over TLS (``tls``: the
    server's certificate+key PEM and nothing else)."""
    socat = require("socat")
    port = free_port()
    if tls is None:
        listen = f"TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"
    else:
        listen = f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={tls[0]},verify=0"
    with running([socat, listen, "PIPE"], port):
        yield port


@contextmanager
def asyncio_echo() -> Iterator[int]:
    """An ``asyncio.start_server`` echo on its own event loop thread."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    port = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main() -> asyncio.Server:
        nonlocal port
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ready.set()
        return server

    server_holder: list[asyncio.Server] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        server_holder.append(loop.run_until_complete(main()))
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port
    finally:

        async def stop() -> None:
            server_holder[0].close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def one_connection(serve: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on a free port of 127.0.0.1 whose first connection ``serve`` handles
    in a thread (then it is closed; accept and each socket call give up after 10 s);
    yields the port, and joins the thread at the end."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def accept() -> None:
        connection, _ = listener.accept()
        connection.settimeout(10)
        with connection:
            serve(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(10)
        listener.close()
