"""A tiny threaded TCP server that does exactly what a test tells it, byte for byte.

For what uvicorn and hypercorn will not do: close-delimited bodies, closing idle
connections, closing in the middle of a body, sending garbage, never answering,
never reading. Each accepted connection runs ``handler(conn, server)`` in its own
thread; :meth:`RawServer.stop` closes the listener and every connection and joins the
threads (bounded).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family, backlog=64)
        self._listener.settimeout(0.05)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self.handler = handler
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.requests: list[bytes] = []  # request heads, in the order they were read
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def event(self, name: str) -> threading.Event:
        """A named event for a test and its handler; all are set when the server stops,
        so a handler waiting on one ends."""
        with self.lock:
            event = self.events.setdefault(name, threading.Event())
            if self._stopping.is_set():
                event.set()
            return event

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with self.lock:
                self.accepted += 1
                self.connections.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(conn, self)
        with contextlib.suppress(OSError):
            conn.close()

    def read_request(self, conn: socket.socket, *, read_body: bool = True) -> bytes | None:
        """Read one request head (and its Content-Length body); None at end of stream."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        with self.lock:
            self.requests.append(head)
        self.event("request").set()
        if read_body:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
        return head

    def stop(self) -> None:
        with self.lock:
            self._stopping.set()
            for event in self.events.values():
                event.set()
        with contextlib.suppress(OSError):  # wakes the acceptor's accept() at once on Linux
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(5)
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(5)


def response(body: bytes = b"hello", *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    """A complete keep-alive response with a Content-Length."""
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n"
    ) + body
