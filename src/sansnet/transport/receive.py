"""The one way bytes go from a stream into an HTTP protocol object.

Every driver (client exchange, server session, WebSocket handshake) reads the same way:
ask the protocol for its next event; on NEED_DATA read once from the stream, within a
timeout, and hand what came to ``receive_data`` (the end of the stream to
``receive_eof``); ask again. :func:`receive` is the read-and-hand-over step, for loops
that do more between reads (trace a head, refresh a clock, answer 408);
:func:`receive_event` is the whole loop, for callers that only wait for the next event.

Timeouts and stream failures come out as the stream raises them
(:class:`~sansnet.ReadTimeout`, :class:`~sansnet.ReadError`); a caller that means
something more specific by them (a total deadline, a failed handshake) maps them where
it calls (httpcore's ``map_exceptions`` habit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sansnet.protocol import NEED_DATA

from .streams import READ_SIZE, NetworkStream

__all__ = ["EventSource", "receive", "receive_event"]


EventT = TypeVar("EventT", covariant=True)


class EventSource(Protocol[EventT]):
    """What :func:`receive` feeds: :class:`~sansnet.protocol.ClientConnection` and
    :class:`~sansnet.protocol.ServerConnection` both are one."""

    def next_event(self) -> EventT: ...

    def receive_data(self, data: bytes) -> None: ...

    def receive_eof(self) -> None: ...


async def receive(
    stream: NetworkStream, protocol: EventSource[object], timeout: float | None
) -> bool:
    """Read once from ``stream`` (at most :data:`READ_SIZE` bytes, waiting at most
    ``timeout`` seconds) and hand the bytes to ``protocol.receive_data``, or the end of
    the stream to ``protocol.receive_eof``. True if bytes came."""
    data = await stream.read(READ_SIZE, timeout)
    if data:
        protocol.receive_data(data)
        return True
    protocol.receive_eof()
    return False


async def receive_event(
    stream: NetworkStream,
    protocol: EventSource[EventT],
    timeout: Callable[[], float | None] | float | None,
) -> EventT:
    """``protocol.next_event()``, reading from ``stream`` for as long as it says
    NEED_DATA. ``timeout`` bounds each read; a function is asked before each read (a
    deadline that shrinks as reads go by)."""
    while (event := protocol.next_event()) is NEED_DATA:
        await receive(stream, protocol, timeout() if callable(timeout) else timeout)
    return event
