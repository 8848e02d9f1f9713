"""The state diagrams of the docs (docs/gen_diagrams.py) against the code they describe.

The HTTP/1.1 diagrams are read from h11's own tables (``h11._state`` of the build the
engine drives) and cannot drift from them; the rules h11 writes as code, which the
generator lists as data, are checked here on real ``ServerConnection`` and
``ClientConnection`` objects. The WebSocket states live in code, so the generator lists
the transitions as data; here a real ``WebSocketConnection`` is driven through every
state and every trigger, for both roles, and the state changes it makes must be exactly
that list.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import sansnet.protocol
from sansnet.errors import LocalProtocolError
from sansnet.protocol import (
    NEED_DATA,
    PAUSED,
    ClientConnection,
    EndOfMessage,
    ResponseHead,
    ServerConnection,
    http11,
)
from sansnet.protocol._h11 import h11
from sansnet.protocol.websocket import connection
from sansnet.protocol.websocket.connection import WebSocketConnection
from tests.protocol.ws_frames import encode_frame

ROOT = Path(__file__).resolve().parent.parent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_diagrams", ROOT / "docs" / "gen_diagrams.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_diagrams", module)
    spec.loader.exec_module(module)
    return module


gen = load_generator()

ROLES = ("client", "server")
OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9


def peer_frame(role: str, opcode: int, payload: bytes, *, rsv2: bool = False) -> bytes:
    """A frame as the peer of ``role`` sends it (a client's peer is a server: unmasked)."""
    return encode_frame(
        opcode,
        payload,
        rsv=0x20 if rsv2 else 0,
        mask=b"\x00\x00\x00\x00" if role == "server" else None,
    )


def drain(conn: WebSocketConnection) -> None:
    while conn.next_event() is not None:
        pass
    conn.data_to_send()


def in_state(role: str, name: str) -> WebSocketConnection:
    """A connection brought to state ``name`` the ordinary way."""
    conn = WebSocketConnection(role)  # type: ignore[arg-type]
    if name in ("CLOSING", "CLOSED"):
        conn.close(1000, "bye")
        conn.data_to_send()
    if name == "CLOSED":
        conn.receive_data(peer_frame(role, OP_CLOSE, (1000).to_bytes(2, "big")))
        drain(conn)
    assert conn.state is getattr(connection, name)
    return conn


def trigger_close(role: str, conn: WebSocketConnection) -> None:
    try:
        conn.close(1000)
    except LocalProtocolError:
        pass  # close() when not OPEN raises and changes nothing


def trigger_peer_close(role: str, conn: WebSocketConnection) -> None:
    conn.receive_data(peer_frame(role, OP_CLOSE, (1001).to_bytes(2, "big")))
    drain(conn)


def trigger_violation(role: str, conn: WebSocketConnection) -> None:
    conn.receive_data(peer_frame(role, OP_TEXT, b"x", rsv2=True))
    drain(conn)


def trigger_eof(role: str, conn: WebSocketConnection) -> None:
    conn.receive_eof()
    drain(conn)


def message(role: str, conn: WebSocketConnection) -> None:
    conn.receive_data(peer_frame(role, OP_TEXT, b"hello"))
    drain(conn)


def ping(role: str, conn: WebSocketConnection) -> None:
    conn.receive_data(peer_frame(role, OP_PING, b"?"))
    drain(conn)


def send(role: str, conn: WebSocketConnection) -> None:
    try:
        conn.send_text("hi")
    except LocalProtocolError:
        pass


TRIGGERS: dict[str, Callable[[str, WebSocketConnection], None]] = {
    "close": trigger_close,
    "peer_close": trigger_peer_close,
    "violation": trigger_violation,
    "eof": trigger_eof,
}
NEUTRAL: dict[str, Callable[[str, WebSocketConnection], None]] = {
    "message": message,
    "ping": ping,
    "send": send,
}


def test_every_documented_trigger_is_exercised() -> None:
    assert set(gen.WEBSOCKET_TRIGGERS) == set(TRIGGERS)
    assert [getattr(connection, name).name for name in gen.WEBSOCKET_STATES] == list(
        gen.WEBSOCKET_STATES
    )


@pytest.mark.parametrize("role", ROLES)
def test_websocket_transitions_are_exactly_the_documented_ones(role: str) -> None:
    seen = set()
    for source in gen.WEBSOCKET_STATES:
        for name, trigger in {**TRIGGERS, **NEUTRAL}.items():
            conn = in_state(role, source)
            trigger(role, conn)
            target = conn.state.name
            if target != source:
                assert name in TRIGGERS, f"{name} moved {source} -> {target}"
                seen.add((source, target, name))
    assert seen == set(gen.WEBSOCKET_TRANSITIONS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("source", "target", "trigger"), gen.WEBSOCKET_TRANSITIONS)
def test_each_websocket_edge(role: str, source: str, target: str, trigger: str) -> None:
    conn = in_state(role, source)
    TRIGGERS[trigger](role, conn)
    assert conn.state is getattr(connection, target)


# ----------------------------------------------------------------------------- HTTP/1.1

H11_ROLES = {"client": h11.CLIENT, "server": h11.SERVER}


@pytest.mark.parametrize("role", ROLES)
def test_http_diagrams_cover_h11s_tables(role: str) -> None:
    edges = {(source, target) for source, target, _, _ in gen.http_edges(role)}
    h11_role = H11_ROLES[role]
    table = h11._state.EVENT_TRIGGERED_TRANSITIONS[h11_role]
    for state, moves in table.items():
        for target in moves.values():
            assert (state.__name__, target.__name__) in edges
    index = 0 if role == "client" else 1
    for joint, changes in h11._state.STATE_TRIGGERED_TRANSITIONS.items():
        if h11_role in changes:
            assert (joint[index].__name__, changes[h11_role].__name__) in edges
    for who, source, target, _ in gen.CODE_STATE_TRIGGERED:
        if who == role:
            assert (source, target) in edges
    diagram = gen.http_diagram(role)
    assert diagram.startswith("```mermaid\nflowchart TD\n")
    for state in table:
        assert f"{state.__name__}([{state.__name__}])" in diagram
    assert len(gen.http_edges(role)) == sum(len(moves) for moves in table.values()) + sum(
        h11_role in changes for changes in h11._state.STATE_TRIGGERED_TRANSITIONS.values()
    ) + sum(who == role for who, _, _, _ in gen.CODE_STATE_TRIGGERED)


@pytest.mark.parametrize("role", ROLES)
def test_http_states_are_sansnets_own(role: str) -> None:
    """Every state drawn is a sansnet sentinel that the engine maps h11's state onto."""
    for name in gen.http_states(role):
        ours = getattr(sansnet.protocol, name)
        assert ours.name == name
        assert http11._STATES[getattr(h11, name)] is ours


def pump(conn: ServerConnection | ClientConnection) -> None:
    """Take events up to the end of a message (or until more bytes are needed)."""
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED or isinstance(event, EndOfMessage):
            return


UPGRADE = [("Connection", "Upgrade"), ("Upgrade", "websocket")]


def request_bytes(*fields: str) -> bytes:
    return b"\r\n".join([b"GET / HTTP/1.1", b"Host: x", *(f.encode() for f in fields), b"", b""])


def server_seeing_request(*fields: str) -> ServerConnection:
    conn = ServerConnection()
    conn.receive_data(request_bytes(*fields))
    pump(conn)
    return conn


def client_mid_request(response: bytes) -> ClientConnection:
    """A client still sending its request body when the whole response arrives."""
    conn = ClientConnection("x")
    conn.start_request("POST", "/", [("Content-Length", "5")])
    conn.receive_data(response)
    pump(conn)
    return conn


# For each rule h11 writes as code: ways of observing the role's state without the
# rule's condition and with it, on real connections (the server's view of the client,
# the client's own view, and so on).
Observation = Callable[[], tuple[str, str]]


def switch_proposed_server_view() -> tuple[str, str]:
    without = server_seeing_request().their_state.name
    with_ = server_seeing_request("Connection: Upgrade", "Upgrade: websocket").their_state.name
    return without, with_


def switch_proposed_client_view() -> tuple[str, str]:
    plain = ClientConnection("x")
    plain.send_request("GET", "/")
    upgrade = ClientConnection("x")
    upgrade.send_request("GET", "/", UPGRADE)
    return plain.our_state.name, upgrade.our_state.name


def answered_server_view() -> tuple[str, str]:
    conn = server_seeing_request("Connection: Upgrade", "Upgrade: websocket")
    before = conn.their_state.name
    conn.start_response(426, [("Content-Length", "0")])
    return before, conn.their_state.name


def answered_client_view() -> tuple[str, str]:
    conn = ClientConnection("x")
    conn.send_request("GET", "/", UPGRADE)
    before = conn.our_state.name
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert isinstance(conn.next_event(), ResponseHead)
    return before, conn.our_state.name


def client_keep_alive_server_view() -> tuple[str, str]:
    without = server_seeing_request().their_state.name
    return without, server_seeing_request("Connection: close").their_state.name


def client_keep_alive_client_view() -> tuple[str, str]:
    keep = ClientConnection("x")
    keep.send_request("GET", "/")
    close = ClientConnection("x")
    close.send_request("GET", "/", [("Connection", "close")])
    return keep.our_state.name, close.our_state.name


def server_keep_alive_client_view() -> tuple[str, str]:
    keep = client_mid_request(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    close = client_mid_request(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return keep.their_state.name, close.their_state.name


def server_keep_alive_server_view() -> tuple[str, str]:
    # Without the condition both sides reach DONE and the engine starts the next cycle
    # (IDLE); with it, the server stops at MUST_CLOSE.
    keep = server_seeing_request()
    keep.send_response(200, [], b"")
    close = server_seeing_request("Connection: close")
    close.send_response(200, [], b"")
    assert keep.our_state.name == "IDLE"
    return "DONE", close.our_state.name


CODE_RULE_OBSERVATIONS: dict[tuple[str, str, str], list[Observation]] = {
    ("client", "DONE", "MIGHT_SWITCH_PROTOCOL"): [
        switch_proposed_server_view,
        switch_proposed_client_view,
    ],
    ("client", "MIGHT_SWITCH_PROTOCOL", "DONE"): [answered_server_view, answered_client_view],
    ("client", "DONE", "MUST_CLOSE"): [
        client_keep_alive_server_view,
        client_keep_alive_client_view,
    ],
    ("server", "DONE", "MUST_CLOSE"): [
        server_keep_alive_client_view,
        server_keep_alive_server_view,
    ],
}


def test_every_code_rule_is_observed() -> None:
    rules = {(who, source, target) for who, source, target, _ in gen.CODE_STATE_TRIGGERED}
    assert rules == set(CODE_RULE_OBSERVATIONS)


@pytest.mark.parametrize(
    ("who", "source", "target", "condition"),
    gen.CODE_STATE_TRIGGERED,
    ids=[f"{who}-{source}-{target}" for who, source, target, _ in gen.CODE_STATE_TRIGGERED],
)
def test_code_rule_on_real_connections(who: str, source: str, target: str, condition: str) -> None:
    for observe in CODE_RULE_OBSERVATIONS[(who, source, target)]:
        assert observe() == (source, target), observe.__name__


def test_markers_expand_and_unknown_ones_fail() -> None:
    page = "intro\n<!-- generated: websocket-table -->\nend\n"
    assert "| `OPEN` | `CLOSING` | close() called |" in gen.expand(page)
    with pytest.raises(ValueError, match="Unknown generated block"):
        gen.expand("<!-- generated: nope -->\n")
