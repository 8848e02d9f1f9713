"""State diagrams of sansnet's connections, generated from the code, never drawn by hand.

* HTTP/1.1: the engine drives h11, so the diagrams are h11's own state machine, read
  from ``h11._state`` of the build the engine uses (``sansnet.protocol._h11``):
  ``EVENT_TRIGGERED_TRANSITIONS`` (solid arrows) and ``STATE_TRIGGERED_TRANSITIONS``
  (dotted arrows), one diagram per role. The state-triggered rules h11 writes as code
  are listed here as data (:data:`CODE_STATE_TRIGGERED`, dotted too) and checked by
  ``tests/test_docs_diagrams.py`` on real connections. The state names are sansnet's
  (``sansnet.protocol.IDLE`` and so on), which map one to one onto h11's.
* WebSocket: :class:`~sansnet.protocol.websocket.WebSocketConnection` keeps its state in
  code, not in a table, so the edges it implements are listed here as data
  (:data:`WEBSOCKET_TRANSITIONS`) and ``tests/test_docs_diagrams.py`` drives a real
  connection through every state and trigger to check the list is exact.

Used as a MkDocs hook (``hooks:`` in mkdocs.yml): a page line ``<!-- generated: NAME -->``
is replaced by the diagram or table NAME. ``python docs/gen_diagrams.py`` prints them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sansnet.protocol._h11 import h11

# ----------------------------------------------------------------------------- HTTP/1.1

H11_STATE: Any = h11._state
"""h11's ``_state`` module, of the build the engine drives (``h11_mypyc`` or ``h11``)."""

ROLE_NAMES = {h11.CLIENT: "client", h11.SERVER: "server"}

SWITCH_LABELS = {
    "_SWITCH_UPGRADE": "101 accepting the Upgrade",
    "_SWITCH_CONNECT": "2xx accepting the CONNECT",
}
"""What h11's switch sentinels mean, where an event-table key pairs one with an event."""

CODE_STATE_TRIGGERED = (
    ("client", "DONE", "MIGHT_SWITCH_PROTOCOL", "its request proposed a switch"),
    ("client", "MIGHT_SWITCH_PROTOCOL", "DONE", "the server answered without switching"),
    ("client", "DONE", "MUST_CLOSE", "keep-alive is off"),
    ("server", "DONE", "MUST_CLOSE", "keep-alive is off"),
)
"""(role, from, to, condition): the state-triggered rules h11 writes as code, not in
``STATE_TRIGGERED_TRANSITIONS`` (``ConnectionState._fire_state_triggered_transitions``:
pending switch proposals move a DONE client to MIGHT_SWITCH_PROTOCOL and back to DONE
once none is left; keep-alive off turns DONE into MUST_CLOSE). Listed here as data;
``tests/test_docs_diagrams.py`` drives a real ``ServerConnection`` and
``ClientConnection`` through each of them."""

EVENT, STATE, CODE = "event", "state", "code"
KIND_NAMES = {
    EVENT: "`EVENT_TRIGGERED_TRANSITIONS`",
    STATE: "`STATE_TRIGGERED_TRANSITIONS`",
    CODE: "h11 code (`CODE_STATE_TRIGGERED`)",
}


def name_of(thing: Any) -> str:
    """The name of an h11 sentinel or event class (both builds: classes)."""
    return str(thing.__name__)


def event_label(key: Any, code: Callable[[str], str] = str) -> str:
    """How a key of ``EVENT_TRIGGERED_TRANSITIONS`` reads on an arrow: an event class,
    or (event class, role) for a move made by the other side's event, or (event class,
    switch sentinel) for the response that accepts a protocol switch."""
    if not isinstance(key, tuple):
        return code(name_of(key))
    event_type, qualifier = key
    qualifier_name = name_of(qualifier)
    if qualifier in ROLE_NAMES:
        return f"the {ROLE_NAMES[qualifier]}'s {code(name_of(event_type))}"
    meaning = SWITCH_LABELS.get(qualifier_name, "")
    return f"{code(name_of(event_type))} {meaning} ({code(qualifier_name)})".replace("  ", " ")


def http_edges(role_name: str, code: Callable[[str], str] = str) -> list[tuple[str, str, str, str]]:
    """(from, to, label, kind) for one role ("client" or "server"), one row per rule:
    h11's two tables, then the rules h11 writes as code."""
    role = next(r for r, name in ROLE_NAMES.items() if name == role_name)
    rows = []
    for state, moves in H11_STATE.EVENT_TRIGGERED_TRANSITIONS[role].items():
        for key, target in moves.items():
            rows.append((name_of(state), name_of(target), event_label(key, code), EVENT))
    index = 0 if role is h11.CLIENT else 1
    other = ROLE_NAMES[h11.SERVER if role is h11.CLIENT else h11.CLIENT]
    for joint, changes in H11_STATE.STATE_TRIGGERED_TRANSITIONS.items():
        if role in changes:
            condition = f"the {other} is {code(name_of(joint[1 - index]))}"
            rows.append((name_of(joint[index]), name_of(changes[role]), condition, STATE))
    for who, source, target, condition in CODE_STATE_TRIGGERED:
        if who == role_name:
            rows.append((source, target, condition, CODE))
    return rows


def http_transitions(role_name: str) -> list[tuple[str, str, str, bool]]:
    """(from, to, label, event_triggered) for one role: the rows of :func:`http_edges`,
    those with the same source, target and solidity sharing one arrow."""
    edges: dict[tuple[str, str, bool], list[str]] = {}
    for source, target, label, kind in http_edges(role_name):
        edges.setdefault((source, target, kind == EVENT), []).append(label)
    return [
        (source, target, " / ".join(labels), solid)
        for (source, target, solid), labels in edges.items()
    ]


def http_states(role_name: str) -> list[str]:
    role = next(r for r, name in ROLE_NAMES.items() if name == role_name)
    states = [name_of(state) for state in H11_STATE.EVENT_TRIGGERED_TRANSITIONS[role]]
    for source, target, _, _ in http_edges(role_name):
        states.extend(state for state in (source, target) if state not in states)
    return states


def _mermaid_flowchart(
    states: list[str], rows: list[tuple[str, str, str, bool]], initial: str
) -> str:
    lines = ["```mermaid", "flowchart TD", f"    start(( )) --> {initial}"]
    lines.extend(f"    {state}([{state}])" for state in states)
    for source, target, label, solid in rows:
        text = label.replace('"', "'")
        arrow = f'-- "{text}" -->' if solid else f'-. "{text}" .->'
        lines.append(f"    {source} {arrow} {target}")
    lines.append("```")
    return "\n".join(lines)


def http_diagram(role_name: str) -> str:
    return _mermaid_flowchart(http_states(role_name), http_transitions(role_name), "IDLE")


def http_table(role_name: str) -> str:
    lines = ["| from | to | when | kind |", "|---|---|---|---|"]
    for source, target, label, kind in http_edges(role_name, code=lambda name: f"`{name}`"):
        lines.append(f"| `{source}` | `{target}` | {label} | {KIND_NAMES[kind]} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- WebSocket

WEBSOCKET_STATES = ("OPEN", "CLOSING", "CLOSED")
"""The states of ``sansnet.protocol.websocket.connection``, in order."""

WEBSOCKET_TRIGGERS = {
    "close": "close() called",
    "peer_close": "the peer's close frame",
    "violation": "the peer breaks the protocol",
    "eof": "end of stream",
}
"""What can move a WebSocket connection, by the name the test uses for each."""

WEBSOCKET_TRANSITIONS = (
    ("OPEN", "CLOSING", "close"),
    ("OPEN", "CLOSED", "peer_close"),
    ("OPEN", "CLOSED", "violation"),
    ("OPEN", "CLOSED", "eof"),
    ("CLOSING", "CLOSED", "peer_close"),
    ("CLOSING", "CLOSED", "violation"),
    ("CLOSING", "CLOSED", "eof"),
)
"""(from, to, trigger): every state change ``WebSocketConnection`` makes. Anything
else (messages, pings, pongs, sending; close() when not OPEN, which raises) leaves the
state as it is. Checked edge by edge by ``tests/test_docs_diagrams.py``."""


def websocket_diagram() -> str:
    edges: dict[tuple[str, str], list[str]] = {}
    for source, target, trigger in WEBSOCKET_TRANSITIONS:
        edges.setdefault((source, target), []).append(WEBSOCKET_TRIGGERS[trigger])
    rows = [
        (source, target, " / ".join(labels), True) for (source, target), labels in edges.items()
    ]
    return _mermaid_flowchart(list(WEBSOCKET_STATES), rows, "OPEN")


def websocket_table() -> str:
    lines = ["| from | to | when |", "|---|---|---|"]
    for source, target, trigger in WEBSOCKET_TRANSITIONS:
        lines.append(f"| `{source}` | `{target}` | {WEBSOCKET_TRIGGERS[trigger]} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- output

GENERATED: dict[str, Callable[[], str]] = {
    "http-client-diagram": lambda: http_diagram("client"),
    "http-server-diagram": lambda: http_diagram("server"),
    "http-client-table": lambda: http_table("client"),
    "http-server-table": lambda: http_table("server"),
    "websocket-diagram": websocket_diagram,
    "websocket-table": websocket_table,
}

MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.M)


def expand(markdown: str) -> str:
    """Replace every ``<!-- generated: NAME -->`` line; an unknown NAME is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATED:
            raise ValueError(f"Unknown generated block {name!r}; known: {sorted(GENERATED)}.")
        return GENERATED[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """The MkDocs hook."""
    return expand(markdown)


if __name__ == "__main__":
    for name, make in GENERATED.items():
        print(f"<!-- {name} -->\n{make()}\n")
