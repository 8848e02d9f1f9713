"""WebSocket engine micro-benchmark: round trips through a client and a server object in
memory (no sockets), sansnet against bare wsproto and against the sans-IO layer of the
websockets library, in the same process.

    python bench/bench_websocket_engine.py

A round trip: the client sends a message, the server parses it and sends it back, the
client parses the echo: two messages sent and two received. sansnet's engine drives
wsproto's ``Connection``, so the difference with bare wsproto is the cost of our layer
(limits counted on every piece, auto-pong and close rules, the lazy event pull, our
permessage-deflate against wsproto's): reported per message, i.e. half a round trip.
sansnet runs with its default limits. Target (issue #4): a cost ratio of at most 1.15.

The 1 MiB rows move with glibc's malloc thresholds (whether each 1 MiB buffer is a fresh
mmap, page faults included); for stable numbers pin them as bench_websocket.py's
--fixed-malloc does:

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864 \
        python bench/bench_websocket_engine.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import websockets
import wsproto
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto import ConnectionType
from wsproto.connection import Connection as WsprotoConnection
from wsproto.events import BytesMessage, TextMessage
from wsproto.extensions import PerMessageDeflate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import fmt_time, machine, per_call, table

from sansnet.protocol.websocket import DeflateParameters, WebSocketConnection

SMALL = "x" * 49
LARGE = bytes(range(256)) * 4096  # 1 MiB


def sansnet_pair(message: str | bytes, compressed: bool = False) -> object:
    params = DeflateParameters() if compressed else None
    client = WebSocketConnection("client", deflate=params)
    server = WebSocketConnection("server", deflate=params)

    def round_trip() -> None:
        client.send_message(message)
        server.receive_data(client.data_to_send())
        event = server.next_event()
        server.send_message(event.data)  # type: ignore[union-attr]
        client.receive_data(server.data_to_send())
        echo = client.next_event()
        assert len(echo.data) == len(message)  # type: ignore[union-attr]

    return round_trip


def _wsproto_deflate(compressed: bool) -> list[PerMessageDeflate] | None:
    if not compressed:
        return None
    extension = PerMessageDeflate()
    extension.finalize("permessage-deflate")  # agreed with the default parameters
    return [extension]


def wsproto_pair(message: str | bytes, compressed: bool = False) -> object:
    client = WsprotoConnection(ConnectionType.CLIENT, _wsproto_deflate(compressed))
    server = WsprotoConnection(ConnectionType.SERVER, _wsproto_deflate(compressed))
    kind = TextMessage if isinstance(message, str) else BytesMessage

    def round_trip() -> None:
        server.receive_data(client.send(kind(data=message)))
        [event] = server.events()
        client.receive_data(server.send(kind(data=event.data)))
        [echo] = client.events()
        assert len(echo.data) == len(message)

    return round_trip


def websockets_pair(message: str | bytes) -> object:
    client = ClientProtocol(parse_uri("ws://localhost/"), max_size=None)
    server = ServerProtocol(max_size=None)
    client.send_request(client.connect())
    for data in client.data_to_send():
        server.receive_data(data)
    [request] = server.events_received()
    server.send_response(server.accept(request))
    for data in server.data_to_send():
        client.receive_data(data)
    client.events_received()

    def round_trip() -> None:
        if isinstance(message, str):
            client.send_text(message.encode())
        else:
            client.send_binary(message)
        for data in client.data_to_send():
            server.receive_data(data)
        [frame] = server.events_received()
        if frame.opcode is Opcode.TEXT:
            server.send_text(frame.data)
        else:
            server.send_binary(frame.data)
        for data in server.data_to_send():
            client.receive_data(data)
        [echo] = client.events_received()
        assert isinstance(echo, Frame)
        assert len(echo.data) == len(message)

    return round_trip


def _signed(seconds: float) -> str:
    return f"-{fmt_time(-seconds)}" if seconds < 0 else f"+{fmt_time(seconds)}"


def main() -> None:
    print(
        f"# WebSocket engine round trip — {machine()}, wsproto {wsproto.__version__}, websockets {websockets.__version__}"
    )
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"# malloc: {malloc or 'glibc defaults'}")
    for compressed in (False, True):
        rows = []
        for name, message in (("49-byte text", SMALL), ("1 MiB binary", LARGE)):
            ours = per_call(sansnet_pair(message, compressed))  # type: ignore[arg-type]
            bare = per_call(wsproto_pair(message, compressed))  # type: ignore[arg-type]
            layer = (ours - bare) / 2  # per message; below 0 when we are faster
            row = [name, fmt_time(ours), fmt_time(bare), _signed(layer)]
            row.append(f"{ours / bare:.2f}")
            if not compressed:  # the websockets pair is set up without compression
                peer = per_call(websockets_pair(message))  # type: ignore[arg-type]
                row += [fmt_time(peer), f"{ours / peer:.2f}"]
            rows.append(row)
        header = ["message", "sansnet", "bare wsproto", "our layer per message"]
        header.append("cost vs wsproto (target <= 1.15)")
        if not compressed:
            header += ["websockets sans-IO", "cost vs websockets"]
        title = (
            "one echo round trip, permessage-deflate (ours bounded, wsproto's not)"
            if compressed
            else "one echo round trip, compression off"
        )
        print(table(title, header, rows))


if __name__ == "__main__":
    main()
