"""The state tables: every row of STATE_TRIGGERED_TRANSITIONS is exercised, and the
event table refuses what it does not list."""

from __future__ import annotations

import pytest

from sansnet.errors import LocalProtocolError
from sansnet.protocol._state import (
    CLIENT,
    CLOSE,
    CLOSED,
    DATA,
    DONE,
    END,
    ERROR,
    EVENT_TRIGGERED_TRANSITIONS,
    IDLE,
    INFORMATIONAL,
    MIGHT_SWITCH_PROTOCOL,
    MUST_CLOSE,
    REQUEST,
    RESPONSE,
    SEND_BODY,
    SEND_RESPONSE,
    SERVER,
    STATE_TRIGGERED_TRANSITIONS,
    SWITCH,
    SWITCHED_PROTOCOL,
    ConnectionState,
)


def cycle(state: ConnectionState) -> None:
    state.process_event(CLIENT, REQUEST)
    state.process_event(CLIENT, END)
    state.process_event(SERVER, RESPONSE)
    state.process_event(SERVER, END)


def test_a_keep_alive_cycle() -> None:
    state = ConnectionState()
    state.process_event(CLIENT, REQUEST)
    assert state.states == {CLIENT: SEND_BODY, SERVER: SEND_RESPONSE}
    state.process_event(CLIENT, DATA)
    state.process_event(CLIENT, END)
    state.process_event(SERVER, INFORMATIONAL)
    state.process_event(SERVER, RESPONSE)
    state.process_event(SERVER, DATA)
    state.process_event(SERVER, END)
    assert state.states == {CLIENT: DONE, SERVER: DONE}
    state.start_next_cycle()
    assert state.states == {CLIENT: IDLE, SERVER: IDLE}


def test_every_state_triggered_row() -> None:
    seen = set()
    # client DONE -> MIGHT_SWITCH_PROTOCOL -> SWITCHED_PROTOCOL
    state = ConnectionState()
    state.process_event(CLIENT, REQUEST)
    state.propose_upgrade()
    state.process_event(CLIENT, END)
    assert state.states[CLIENT] is MIGHT_SWITCH_PROTOCOL
    seen.add(0)
    assert state.allows(SERVER, SWITCH)
    state.process_event(SERVER, SWITCH)
    assert state.states == {CLIENT: SWITCHED_PROTOCOL, SERVER: SWITCHED_PROTOCOL}
    seen |= {1, 3}
    # MIGHT_SWITCH_PROTOCOL -> DONE when the server answers normally
    state = ConnectionState()
    state.process_event(CLIENT, REQUEST)
    state.propose_upgrade()
    state.process_event(CLIENT, END)
    state.process_event(SERVER, RESPONSE)
    assert state.states[CLIENT] is DONE
    assert not state.allows(SERVER, SWITCH)
    seen.add(2)
    # DONE -> MUST_CLOSE when keep-alive is off
    state = ConnectionState()
    state.disable_keep_alive()
    cycle(state)
    assert state.states == {CLIENT: MUST_CLOSE, SERVER: MUST_CLOSE}
    seen.add(4)
    # DONE -> MUST_CLOSE when the other side closed
    state = ConnectionState()
    cycle(state)
    state.states[SERVER] = MUST_CLOSE
    state.process_event(SERVER, CLOSE)
    assert state.states == {CLIENT: MUST_CLOSE, SERVER: CLOSED}
    seen.add(5)
    # IDLE -> MUST_CLOSE when the other side closed
    state = ConnectionState()
    state.process_event(CLIENT, CLOSE)
    assert state.states == {CLIENT: CLOSED, SERVER: MUST_CLOSE}
    state = ConnectionState()
    state.process_event(SERVER, CLOSE)
    assert state.states == {CLIENT: MUST_CLOSE, SERVER: CLOSED}
    seen.add(6)
    assert seen == set(range(len(STATE_TRIGGERED_TRANSITIONS)))


def test_unlisted_events_are_refused() -> None:
    state = ConnectionState()
    with pytest.raises(LocalProtocolError, match="Can't handle a data event from the client"):
        state.process_event(CLIENT, DATA)
    with pytest.raises(LocalProtocolError, match="did not propose"):
        state.states[SERVER] = SEND_RESPONSE
        state.process_event(SERVER, SWITCH)


def test_next_cycle_needs_both_done_and_keep_alive() -> None:
    state = ConnectionState()
    with pytest.raises(LocalProtocolError, match="Not ready"):
        state.start_next_cycle()
    cycle(state)
    state.keep_alive = False
    with pytest.raises(LocalProtocolError, match="keep-alive is off"):
        state.start_next_cycle()


def test_errors_are_terminal() -> None:
    state = ConnectionState()
    state.process_event(CLIENT, REQUEST)
    state.process_error(CLIENT)
    assert state.states[CLIENT] is ERROR
    assert EVENT_TRIGGERED_TRANSITIONS[CLIENT][ERROR] == {}
    assert state.describe() == "client ERROR, server SEND_RESPONSE"
