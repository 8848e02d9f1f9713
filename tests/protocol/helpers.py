"""Helpers for driving sans-IO HTTP connections in tests, without sockets."""

from __future__ import annotations

from sansnet.protocol import (
    NEED_DATA,
    PAUSED,
    ClientConnection,
    Event,
    Sentinel,
    ServerConnection,
)
from sansnet.protocol.http11 import HTTPConnection


def feed(conn: HTTPConnection, data: bytes, *, eof: bool = False) -> list[Event]:
    """Give ``data`` to ``conn`` and return every event it produces."""
    if data:
        conn.receive_data(data)
    if eof:
        conn.receive_eof()
    return conn.events_received()


def events_until_blocked(conn: HTTPConnection) -> tuple[list[Event], Sentinel]:
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, Sentinel):
            return events, event
        events.append(event)


class ConnectionPair:
    """A client and a server connection joined in memory, as h11's tests do it."""

    def __init__(self, host: str = "example.com", port: int | None = None) -> None:
        self.client = ClientConnection(host, port)
        self.server = ServerConnection()
        self.wire_to_server: list[bytes] = []
        self.wire_to_client: list[bytes] = []

    def to_server(self) -> list[Event]:
        data = self.client.data_to_send()
        self.wire_to_server.append(data)
        return feed(self.server, data)

    def to_client(self) -> list[Event]:
        data = self.server.data_to_send()
        self.wire_to_client.append(data)
        return feed(self.client, data)


__all__ = ["NEED_DATA", "PAUSED", "ConnectionPair", "events_until_blocked", "feed"]
