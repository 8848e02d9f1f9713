"""State diagrams of sansnet's connections, generated from the code, never drawn by hand.

* HTTP/1.1: read from the tables of :mod:`sansnet.protocol._state`,
  ``EVENT_TRIGGERED_TRANSITIONS`` (solid arrows) and ``STATE_TRIGGERED_TRANSITIONS``
  (dotted arrows), one diagram per role.
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

from sansnet.protocol import _state
from sansnet.protocol.events import Sentinel

# ----------------------------------------------------------------------------- HTTP/1.1

EVENT_LABELS = {
    _state.REQUEST: "request head",
    _state.INFORMATIONAL: "1xx head",
    _state.RESPONSE: "final response head",
    _state.SWITCH: "101 accepting the upgrade",
    _state.DATA: "body data",
    _state.END: "end of message",
    _state.CLOSE: "closes its side",
}
"""How each abstract event kind of ``_state`` reads on an arrow (a kind missing here
is shown by its own name)."""

ROLE_NAMES = {_state.CLIENT: "client", _state.SERVER: "server"}


def http_transitions(role: Sentinel) -> list[tuple[str, str, str, bool]]:
    """(from, to, label, event_triggered) for one role, from the two tables, in order.
    Rows of one table with the same source and target share one arrow."""
    edges: dict[tuple[str, str, bool], list[str]] = {}
    for state, moves in _state.EVENT_TRIGGERED_TRANSITIONS[role].items():
        for kind, target in moves.items():
            label = EVENT_LABELS.get(kind, kind)
            edges.setdefault((state.name, target.name, True), []).append(label)
    name = ROLE_NAMES[role]
    for who, source, target, condition in _state.STATE_TRIGGERED_TRANSITIONS:
        if who in (name, "either"):
            edges.setdefault((source.name, target.name, False), []).append(condition)
    return [
        (source, target, " / ".join(labels), solid)
        for (source, target, solid), labels in edges.items()
    ]


def http_states(role: Sentinel) -> list[str]:
    return [state.name for state in _state.EVENT_TRIGGERED_TRANSITIONS[role]]


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


def http_diagram(role: Sentinel) -> str:
    return _mermaid_flowchart(http_states(role), http_transitions(role), _state.IDLE.name)


def http_table(role: Sentinel) -> str:
    lines = ["| from | to | when | kind |", "|---|---|---|---|"]
    for source, target, label, solid in http_transitions(role):
        kind = "`EVENT_TRIGGERED_TRANSITIONS`" if solid else "`STATE_TRIGGERED_TRANSITIONS`"
        lines.append(f"| `{source}` | `{target}` | {label} | {kind} |")
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
    "http-client-diagram": lambda: http_diagram(_state.CLIENT),
    "http-server-diagram": lambda: http_diagram(_state.SERVER),
    "http-client-table": lambda: http_table(_state.CLIENT),
    "http-server-table": lambda: http_table(_state.SERVER),
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
