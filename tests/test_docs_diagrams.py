"""The state diagrams of the docs (docs/gen_diagrams.py) against the code they describe.

The HTTP/1.1 diagrams are read from the tables of ``sansnet.protocol._state`` and cannot
drift. The WebSocket states live in code, so the generator lists the transitions as data;
here a real ``WebSocketConnection`` is driven through every state and every trigger, for
both roles, and the state changes it makes must be exactly that list.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from sansnet.errors import LocalProtocolError
from sansnet.protocol import _state
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


def test_http_diagrams_cover_both_tables() -> None:
    for role in (_state.CLIENT, _state.SERVER):
        rows = gen.http_transitions(role)
        drawn = {(source, target) for source, target, _, _ in rows}
        for state, moves in _state.EVENT_TRIGGERED_TRANSITIONS[role].items():
            for target in moves.values():
                assert (state.name, target.name) in drawn
        name = gen.ROLE_NAMES[role]
        for who, source, target, _ in _state.STATE_TRIGGERED_TRANSITIONS:
            if who in (name, "either"):
                assert (source.name, target.name) in drawn
        diagram = gen.http_diagram(role)
        assert diagram.startswith("```mermaid\nflowchart TD\n")
        for state in _state.EVENT_TRIGGERED_TRANSITIONS[role]:
            assert f"{state.name}([{state.name}])" in diagram


def test_markers_expand_and_unknown_ones_fail() -> None:
    page = "intro\n<!-- generated: websocket-table -->\nend\n"
    assert "| `OPEN` | `CLOSING` | close() called |" in gen.expand(page)
    with pytest.raises(ValueError, match="Unknown generated block"):
        gen.expand("<!-- generated: nope -->\n")
