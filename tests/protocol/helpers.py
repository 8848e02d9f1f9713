"""Helpers for driving sans-IO HTTP connections in tests, without sockets."""

from __future__ import annotations

from collections.abc import Sequence

from sansnet.protocol import (
    CLIENT,
    NEED_DATA,
    PAUSED,
    SERVER,
    ClientConnection,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    Limits,
    PeerClosed,
    RequestHead,
    ResponseHead,
    Sentinel,
    ServerConnection,
)
from sansnet.protocol.http11 import HTTPConnection


def feed(conn: HTTPConnection, data: bytes, *, eof: bool = False) -> list[Event]:
    """Give ``data`` to ``conn`` and return every event it produces; a protocol error
    is raised where it is found (``events_received()`` would return the events before
    it and raise on the next call)."""
    if data:
        conn.receive_data(data)
    if eof:
        conn.receive_eof()
    events: list[Event] = []
    while not isinstance(event := conn.next_event(), Sentinel):
        events.append(event)
        if isinstance(event, PeerClosed):
            break
    return events


def events_until_blocked(conn: HTTPConnection) -> tuple[list[Event], Sentinel]:
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, Sentinel):
            return events, event
        events.append(event)


class ConnectionPair:
    """A client and a server connection joined in memory, as h11's tests do it.

    ``send(role, events, expect=...)`` has one end send ``events`` (through its send
    methods: a head, data, the end of a message, or PeerClosed for the end of its
    stream), hands the bytes to the other end and checks the events it reads:
    ``expect="match"`` (the default) means the same events, else give the list.
    ``states(role)`` is where both ends stand as one end sees it, ``{CLIENT: ...,
    SERVER: ...}``: check it after each step, for both ends.
    """

    def __init__(
        self,
        host: str = "example.com",
        port: int | None = None,
        *,
        client_headers: Sequence[tuple[str, str]] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.client = ClientConnection(host, port, default_headers=client_headers)
        self.server = ServerConnection(limits)
        self.conn: dict[Sentinel, HTTPConnection] = {CLIENT: self.client, SERVER: self.server}
        self.wire_to_server: list[bytes] = []
        self.wire_to_client: list[bytes] = []

    def send(self, role: Sentinel, events: Event | list[Event], expect: object = "match") -> bytes:
        """``role`` sends ``events``; the other end must read ``expect``. Returns the
        bytes that went over."""
        sent = events if isinstance(events, list) else [events]
        sender = self.conn[role]
        closed = False
        for event in sent:
            if isinstance(event, PeerClosed):
                sender.send_eof()
                closed = True
            else:
                _send(sender, event)
        data = sender.data_to_send()
        (self.wire_to_server if role is CLIENT else self.wire_to_client).append(data)
        got = feed(self.conn[SERVER if role is CLIENT else CLIENT], data, eof=closed)
        if expect == "match":
            expect = sent
        assert got == (expect if isinstance(expect, list) else [expect])
        return data

    def states(self, role: Sentinel) -> dict[Sentinel, Sentinel]:
        """Where both ends stand as ``role``'s connection sees it (h11's ``states``)."""
        conn = self.conn[role]
        them = SERVER if role is CLIENT else CLIENT
        return {role: conn.our_state, them: conn.their_state}

    def to_server(self) -> list[Event]:
        data = self.client.data_to_send()
        self.wire_to_server.append(data)
        return feed(self.server, data)

    def to_client(self) -> list[Event]:
        data = self.server.data_to_send()
        self.wire_to_client.append(data)
        return feed(self.client, data)


def _send(conn: HTTPConnection, event: Event) -> None:
    """Send one event through the connection's own methods."""
    if isinstance(event, RequestHead):
        assert isinstance(conn, ClientConnection)
        conn.start_request(event.method, event.target, event.headers)
    elif isinstance(event, InformationalResponse):
        assert isinstance(conn, ServerConnection)
        conn.send_informational(event.status_code, event.headers)
    elif isinstance(event, ResponseHead):
        assert isinstance(conn, ServerConnection)
        conn.start_response(event.status_code, event.headers)
    elif isinstance(event, Data):
        conn.send_data(event.data)
    else:
        assert isinstance(event, EndOfMessage), event
        conn.send_end(event.trailers or None)


__all__ = ["NEED_DATA", "PAUSED", "ConnectionPair", "events_until_blocked", "feed"]
