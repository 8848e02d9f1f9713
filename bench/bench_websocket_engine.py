"""WebSocket engine micro-benchmark: round trips through a client and a server object in
memory (no sockets), sansnet against bare wsproto and against the sans-IO layer of the
websockets library, in the same process.

    python bench/bench_websocket_engine.py

A round trip: the client sends a message, the server parses it and sends it back, the
client parses the echo. Compression off. Target (issue #4): sansnet's overhead over bare
wsproto within 15% (a cost ratio of at most 1.15; below 1.0 means faster).
"""

from __future__ import annotations

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import fmt_time, machine, per_call, table

from sansnet.protocol.websocket import WebSocketConnection

SMALL = "x" * 49
LARGE = bytes(range(256)) * 4096  # 1 MiB


def sansnet_pair(message: str | bytes) -> object:
    client = WebSocketConnection("client", max_message_size=None, max_frame_size=None)
    server = WebSocketConnection("server", max_message_size=None, max_frame_size=None)

    def round_trip() -> None:
        client.send_message(message)
        server.receive_data(client.data_to_send())
        event = server.next_event()
        server.send_message(event.data)  # type: ignore[union-attr]
        client.receive_data(server.data_to_send())
        echo = client.next_event()
        assert len(echo.data) == len(message)  # type: ignore[union-attr]

    return round_trip


def wsproto_pair(message: str | bytes) -> object:
    client = WsprotoConnection(ConnectionType.CLIENT)
    server = WsprotoConnection(ConnectionType.SERVER)
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


def main() -> None:
    print(
        f"# WebSocket engine round trip — {machine()}, wsproto {wsproto.__version__}, websockets {websockets.__version__}"
    )
    rows = []
    for name, message in (("49-byte text", SMALL), ("1 MiB binary", LARGE)):
        ours = per_call(sansnet_pair(message))  # type: ignore[arg-type]
        bare = per_call(wsproto_pair(message))  # type: ignore[arg-type]
        peer = per_call(websockets_pair(message))  # type: ignore[arg-type]
        rows.append(
            [
                name,
                fmt_time(ours),
                fmt_time(bare),
                fmt_time(peer),
                f"{ours / bare:.2f}",
                f"{ours / peer:.2f}",
            ]
        )
    print(
        table(
            "one echo round trip, compression off",
            [
                "message",
                "sansnet",
                "bare wsproto",
                "websockets sans-IO",
                "cost vs wsproto (target <= 1.15)",
                "cost vs websockets",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
