"""For tests of a server's stop() while a client is still in its TLS handshake: a
raw client that connects and then sends nothing, half of a ClientHello, or all of it
and never answers."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import anyio
import trustme

HANDSHAKE_STAGES = ["nothing", "half a ClientHello", "a ClientHello"]


def server_context_for_127_0_0_1() -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1, from a throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


def client_hello() -> bytes:
    """The first flight of a TLS client: its ClientHello."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def closed_within(sock: socket.socket, seconds: float) -> str:
    """What the client sees once the server stopped: "closed" if its socket reads the
    end (after what the server had sent) or a reset within ``seconds``, else "open"."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "closed"
    except TimeoutError:
        return "open"
    return "closed"


async def stop_during_a_tls_handshake(handle: Any, stage: str) -> str:
    """Connect to ``handle``'s TLS port, send ``stage`` of a handshake, stop the server,
    and tell whether the client's connection was closed by then ("closed") or stays
    open ("open": the server left it to the TLS handshake timeout, 10 s)."""
    sock = socket.create_connection((handle.ip, handle.port))
    try:
        if stage != "nothing":
            hello = client_hello()
            sock.sendall(hello if stage == "a ClientHello" else hello[: len(hello) // 2])
        await anyio.sleep(0.2)  # the server accepted it and reads the handshake
        await handle.stop()
        # Only a moment after stop() returned: the connection is closed already, its end
        # is on its way (the old code left it open until the handshake timed out).
        return await anyio.to_thread.run_sync(closed_within, sock, 2.0)
    finally:
        sock.close()


def finish_handshake(
    sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> bool:
    """Drive the client handshake of ``tls`` (over ``incoming`` and ``outgoing``) on
    ``sock`` until it is done (True), or the server closes first (False). Our last
    handshake bytes (the Finished, in TLS 1.3) stay in ``outgoing``: the caller sends
    them, with what it writes next if it likes."""
    while True:
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                return False
            incoming.write(data)


def hello_first_echo(port: int, cafile: str, message: bytes) -> bytes:
    """A TLS client that sends its ClientHello in the same breath as it connects (before
    the server can have started its handshake: the server's loop reads it as plain
    bytes first), then ``message``; returns what came back for it (an echo server)."""
    context = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(outgoing.read())
        if not finish_handshake(sock, tls, incoming, outgoing):
            return b""
        tls.write(message)
        sock.sendall(outgoing.read())
        received = b""
        while len(received) < len(message):
            data = sock.recv(65536)
            if not data:
                break
            incoming.write(data)
            try:
                while chunk := tls.read(65536):
                    received += chunk
            except ssl.SSLWantReadError:
                pass
        return received
