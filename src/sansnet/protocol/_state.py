"""The HTTP/1.1 connection state machine, as tables.

Rules of this module:

1. Everything that decides a state transition lives here, and as much of it as possible
   in the two tables below; the connection classes only report what happened.
2. This module knows nothing of parsing, bytes or roles' opinions: it sees abstract
   events ("the client sent a request head", "the server sent a 101") for either side,
   so both sides obey the same rules whether the event was sent or received.
3. The documentation's state diagrams are drawn from these tables
   (``docs/`` generates them), so the tables are the single source of truth.

Each side of a connection has its own state. A request/response cycle moves both from
IDLE to DONE; if both sides want to keep the connection alive they go back to IDLE
together, otherwise to MUST_CLOSE, and to CLOSED once closed. A request proposing an
upgrade leaves the client in MIGHT_SWITCH_PROTOCOL until the server either accepts
(101: both sides SWITCHED_PROTOCOL, the bytes that follow belong to another protocol)
or answers normally (the proposal is dropped).
"""

from __future__ import annotations

from typing import Final

from sansnet.errors import LocalProtocolError

from .events import Sentinel

__all__ = [
    "CLIENT",
    "CLOSED",
    "DONE",
    "ERROR",
    "EVENT_TRIGGERED_TRANSITIONS",
    "IDLE",
    "MIGHT_SWITCH_PROTOCOL",
    "MUST_CLOSE",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SERVER",
    "SWITCHED_PROTOCOL",
    "ConnectionState",
]

# Roles
CLIENT: Final = Sentinel("CLIENT")
SERVER: Final = Sentinel("SERVER")

# States
IDLE: Final = Sentinel("IDLE")
SEND_RESPONSE: Final = Sentinel("SEND_RESPONSE")
SEND_BODY: Final = Sentinel("SEND_BODY")
DONE: Final = Sentinel("DONE")
MUST_CLOSE: Final = Sentinel("MUST_CLOSE")
CLOSED: Final = Sentinel("CLOSED")
MIGHT_SWITCH_PROTOCOL: Final = Sentinel("MIGHT_SWITCH_PROTOCOL")
SWITCHED_PROTOCOL: Final = Sentinel("SWITCHED_PROTOCOL")
ERROR: Final = Sentinel("ERROR")

# Abstract event kinds, for either side.
REQUEST: Final = "request"  # a request head
INFORMATIONAL: Final = "informational"  # a 1xx response head other than an accepted 101
RESPONSE: Final = "response"  # a final (>= 200) response head
SWITCH: Final = "switch"  # a 101 response accepting the client's upgrade proposal
DATA: Final = "data"
END: Final = "end"  # end of message
CLOSE: Final = "close"  # the side closed its half of the connection

EVENT_TRIGGERED_TRANSITIONS: Final[dict[Sentinel, dict[Sentinel, dict[str, Sentinel]]]] = {
    CLIENT: {
        IDLE: {REQUEST: SEND_BODY, CLOSE: CLOSED},
        SEND_BODY: {DATA: SEND_BODY, END: DONE},
        DONE: {CLOSE: CLOSED},
        MUST_CLOSE: {CLOSE: CLOSED},
        CLOSED: {CLOSE: CLOSED},
        MIGHT_SWITCH_PROTOCOL: {},
        SWITCHED_PROTOCOL: {},
        ERROR: {},
    },
    SERVER: {
        # A server may answer before any request arrives only to refuse it (a 4xx for
        # bytes that never became a request); RESPONSE from IDLE covers that.
        IDLE: {RESPONSE: SEND_BODY, CLOSE: CLOSED},
        SEND_RESPONSE: {
            INFORMATIONAL: SEND_RESPONSE,
            RESPONSE: SEND_BODY,
            SWITCH: SWITCHED_PROTOCOL,
        },
        SEND_BODY: {DATA: SEND_BODY, END: DONE},
        DONE: {CLOSE: CLOSED},
        MUST_CLOSE: {CLOSE: CLOSED},
        CLOSED: {CLOSE: CLOSED},
        SWITCHED_PROTOCOL: {},
        ERROR: {},
    },
}
"""role -> state -> event kind -> next state. A missing entry is a protocol error."""

STATE_TRIGGERED_TRANSITIONS: Final[tuple[tuple[str, Sentinel, Sentinel, str], ...]] = (
    ("client", DONE, MIGHT_SWITCH_PROTOCOL, "its request proposed an upgrade"),
    ("client", MIGHT_SWITCH_PROTOCOL, SWITCHED_PROTOCOL, "the server switched"),
    ("client", MIGHT_SWITCH_PROTOCOL, DONE, "the server answered without switching"),
    ("server", IDLE, SEND_RESPONSE, "the client sent a request head"),
    ("either", DONE, MUST_CLOSE, "keep-alive is off"),
    ("either", DONE, MUST_CLOSE, "the other side is CLOSED"),
    ("either", IDLE, MUST_CLOSE, "the other side is CLOSED"),
)
"""(role, from, to, condition): transitions that follow from the states themselves,
applied after every event until nothing changes. Documentation and diagrams read this
table; ``ConnectionState._fire_state_triggered_transitions`` implements it and
``tests/protocol/test_state.py`` checks every row."""


class ConnectionState:
    """Both sides' states of one HTTP/1.1 connection, and the rules between them.

    Call :meth:`process_event` for every event either side sends (after checking it
    is allowed with :meth:`allows`), :meth:`disable_keep_alive` when either side asks
    to close, :meth:`propose_upgrade` when the client's request proposes a protocol
    switch, :meth:`process_error` when a side breaks the protocol, and
    :meth:`start_next_cycle` to reuse a connection whose sides are both DONE.
    """

    __slots__ = ("keep_alive", "states", "upgrade_proposed")

    def __init__(self) -> None:
        self.keep_alive = True
        self.upgrade_proposed = False
        self.states: dict[Sentinel, Sentinel] = {CLIENT: IDLE, SERVER: IDLE}

    def allows(self, role: Sentinel, kind: str) -> bool:
        """Whether ``role`` may produce an event of ``kind`` in its current state."""
        if kind == SWITCH and not self.upgrade_proposed:
            return False
        return kind in EVENT_TRIGGERED_TRANSITIONS[role][self.states[role]]

    def process_event(self, role: Sentinel, kind: str) -> None:
        """Record that ``role`` produced an event of ``kind``.

        Raises :class:`~sansnet.LocalProtocolError` if the tables forbid it; callers
        that handle a peer's event check :meth:`allows` first and raise a remote error.
        """
        state = self.states[role]
        try:
            new_state = EVENT_TRIGGERED_TRANSITIONS[role][state][kind]
        except KeyError:
            raise LocalProtocolError(
                f"Can't handle a {kind} event from the {role.name.lower()} in state {state.name}."
            ) from None
        if kind == SWITCH and not self.upgrade_proposed:
            raise LocalProtocolError("Can't switch protocols: the client did not propose it.")
        self.states[role] = new_state
        if kind == RESPONSE and role is SERVER:
            self.upgrade_proposed = False
        self._fire_state_triggered_transitions()

    def propose_upgrade(self) -> None:
        """The client's current request asks to switch protocols (Upgrade or CONNECT)."""
        self.upgrade_proposed = True

    def disable_keep_alive(self) -> None:
        """One side asked to close after this cycle (``Connection: close``, HTTP/1.0)."""
        self.keep_alive = False
        self._fire_state_triggered_transitions()

    def process_error(self, role: Sentinel) -> None:
        """``role`` broke the protocol: its side can do nothing more."""
        self.states[role] = ERROR
        self._fire_state_triggered_transitions()

    def start_next_cycle(self) -> None:
        """Both sides are DONE and keep-alive is on: make both IDLE for the next cycle."""
        if self.states != {CLIENT: DONE, SERVER: DONE}:
            raise LocalProtocolError(
                f"Not ready for a new request/response cycle: {self.describe()}."
            )
        if not self.keep_alive:
            raise LocalProtocolError("The connection must be closed: keep-alive is off.")
        self.states[CLIENT] = IDLE
        self.states[SERVER] = IDLE

    def describe(self) -> str:
        return f"client {self.states[CLIENT].name}, server {self.states[SERVER].name}"

    def _fire_state_triggered_transitions(self) -> None:
        """Apply STATE_TRIGGERED_TRANSITIONS until nothing changes."""
        states = self.states
        while True:
            client = before_client = states[CLIENT]
            server = before_server = states[SERVER]
            if client is DONE and self.upgrade_proposed:
                client = MIGHT_SWITCH_PROTOCOL
            elif client is MIGHT_SWITCH_PROTOCOL:
                if server is SWITCHED_PROTOCOL:
                    client = SWITCHED_PROTOCOL
                elif not self.upgrade_proposed:
                    client = DONE
            if server is IDLE and (client is SEND_BODY or client is DONE):
                server = SEND_RESPONSE
            if not self.keep_alive:
                if client is DONE:
                    client = MUST_CLOSE
                if server is DONE:
                    server = MUST_CLOSE
            if server is CLOSED and (client is DONE or client is IDLE):
                client = MUST_CLOSE
            if client is CLOSED and (server is DONE or server is IDLE):
                server = MUST_CLOSE
            if client is before_client and server is before_server:
                return
            states[CLIENT] = client
            states[SERVER] = server
