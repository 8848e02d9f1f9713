"""The client's keep-alive connection pool.

Invariants (each has a test in ``tests/transport/test_pool.py``):

1. ``total`` counts every connection that exists or is being opened: idle, in use,
   or connecting. It never exceeds ``max_connections``.
2. A connection is in exactly one place: the idle list of its origin and connector, or
   the hands of one request. The pool never gives the same connection to two requests,
   nor a connection opened by one connector to a request that asks another (a client's
   transports share one pool: TLS settings, Unix socket or proxy differ by connector).
3. Every :meth:`ConnectionPool.acquire` that returns is matched by exactly one
   :meth:`ConnectionPool.release`; the request driver calls it in a ``finally`` block.
   All bookkeeping in ``acquire`` and ``release`` happens before their first ``await``
   or in blocks that cannot be interrupted, so cancelling a task at any await point
   (waiting for a slot, connecting, writing, reading, closing) cannot leak a slot. This
   is the failure mode of httpcore issue 1093, where cancelled requests left slots
   counted as busy until the pool timed out for everyone.
4. An idle connection whose peer closed it (or sent anything) while it sat in the pool
   is detected by :meth:`NetworkStream.is_readable` and discarded, never reused.
5. Waiters are served first come, first served: a waiter that was woken but lost the
   slot to a newcomer waits again at the front; a waiter that gives up (timeout or
   cancellation) after being woken passes the wake-up on, so a free slot never goes
   unnoticed.

The bookkeeping is plain synchronous code: no lock is taken on the hot path.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from sansnet.errors import InvalidArgument, PoolTimeout, UsageError
from sansnet.protocol.http11 import ClientConnection

from .clock import clock, now
from .streams import NetworkStream

__all__ = ["ConnectionPool", "Origin", "PoolLimits", "PooledConnection"]

Origin = tuple[str, str, int]  # (scheme, host, port)


def _describe(origin: Origin) -> str:
    host, port = origin[1], origin[2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """How many connections a client keeps.

    ``max_connections``: open at once, across all origins (requests beyond wait up to
    the pool timeout). ``max_keepalive``: idle connections kept for reuse (a connection
    given back beyond it takes the place of the one idle the longest).
    ``keepalive_expiry``: seconds an idle connection is kept.
    """

    max_connections: int = 100
    max_keepalive: int = 20
    keepalive_expiry: float = 5.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise InvalidArgument("PoolLimits.max_connections must be at least 1.")
        if self.max_keepalive < 0:
            raise InvalidArgument("PoolLimits.max_keepalive must be at least 0.")


class PooledConnection:
    """A connection lent by the pool: the stream and its HTTP/1.1 protocol object.

    ``key`` is where it idles in its pool: (connector, origin); None for (None, origin).
    """

    __slots__ = (
        "clock",
        "closed",
        "dropped",
        "idle",
        "idle_since",
        "key",
        "protocol",
        "reused",
        "stream",
    )

    def __init__(
        self,
        origin: Origin,
        stream: NetworkStream,
        protocol: ClientConnection,
        key: tuple[Connector | None, Origin] | None = None,
    ) -> None:
        if key is not None and key[1] != origin:
            raise InvalidArgument(
                f"The pool key {key!r} is for another origin than {origin!r}; pass "
                "key=(connector, origin) with the same origin, or no key."
            )
        self.key = key if key is not None else (None, origin)
        self.stream = stream
        self.protocol = protocol
        self.clock: Callable[[], float] = now
        """The time on the event loop the connection belongs to, for ``idle_since``: the
        pool sets the loop's own clock (:func:`~sansnet.transport.clock.clock`)."""
        self.idle_since = 0.0
        self.reused = False
        self.closed = False
        self.idle = False
        self.dropped = False
        """Closed by :meth:`ConnectionPool.aclose` while lent: its request failed with the
        client's closing, not because of the server."""

    @property
    def origin(self) -> Origin:
        """(scheme, host, port): the second half of ``key``, kept in one place."""
        return self.key[1]


Connector = Callable[[Origin, Any], Awaitable[tuple[NetworkStream, ClientConnection]]]
"""Opens a connection to an origin; the second argument is the ``context`` given to
:meth:`ConnectionPool.acquire` (the client passes its timeouts)."""


class ConnectionPool:
    """Lends connections per origin; see the module docstring for the invariants.

    ``connector`` opens a connection; an :meth:`acquire` may name another one, and then
    gets only connections that one opened. That is how a client's transports (its
    default one, and one per TLS setting, Unix socket or proxy a request asks for)
    share one pool, so ``limits`` hold for the client as a whole."""

    def __init__(self, connector: Connector | None, limits: PoolLimits | None = None) -> None:
        self.limits = limits if limits is not None else PoolLimits()
        self._connector = connector
        self._idle: dict[tuple[Connector | None, Origin], list[PooledConnection]] = {}
        self._idle_count = 0
        self._waiters: deque[anyio.Event] = deque()
        self._lent: set[PooledConnection] = set()  # in the hands of a request
        self.total = 0
        self.closed = False

    @property
    def idle(self) -> int:
        """Idle connections kept for reuse."""
        return self._idle_count

    @property
    def in_use(self) -> int:
        """Connections lent out or being opened."""
        return self.total - self._idle_count

    @property
    def waiting(self) -> int:
        """Requests waiting for a free slot."""
        return len(self._waiters)

    async def acquire(
        self,
        origin: Origin,
        *,
        timeout: float | None = None,
        context: Any = None,
        connector: Connector | None = None,
        fresh: bool = False,
    ) -> PooledConnection:
        """A connection to ``origin``: a live idle one, or a new one if a slot is free
        (opened by ``connector``, or the pool's own, which gets ``context``), else wait
        up to ``timeout`` seconds for one (then :class:`~sansnet.PoolTimeout`). An idle
        connection is only reused by the connector that opened it. ``fresh``: always a
        new connection, never an idle one (the retry after a stale connection: its idle
        siblings may have been closed by the server at the same time).

        The caller must pass the result to :meth:`release` exactly once, in a
        ``finally`` block or equivalent.
        """
        deadline = math.nan  # computed on the first wait
        woken = False
        key = (connector, origin)
        while True:
            if self.closed:
                raise UsageError("The client is closed; make a new one.")
            idle = None if fresh else self._idle.get(key)
            if idle:
                conn = idle.pop()  # the most recently used first: the likeliest alive
                if not idle:
                    del self._idle[key]  # no empty lists: keys never pile up
                self._idle_count -= 1
                conn.idle = False
                if self._alive(conn):
                    conn.reused = True
                    self._lent.add(conn)
                    return conn
                self._forget(conn)  # expired, or its peer closed it
                await conn.stream.aclose()  # held by no one: cancelling here leaks nothing
                continue
            if self.total < self.limits.max_connections:
                return await self._open(key, context)
            victim = self._evict_one()
            if victim is not None:
                await victim.stream.aclose()
                continue
            if deadline != deadline:  # NaN: not computed yet
                deadline = math.inf if timeout is None else now() + timeout
            await self._wait(deadline, timeout, origin, first=woken)
            woken = True

    def _alive(self, conn: PooledConnection) -> bool:
        return (
            conn.clock() - conn.idle_since <= self.limits.keepalive_expiry
            and not conn.stream.is_readable()
        )

    async def _open(self, key: tuple[Connector | None, Origin], context: Any) -> PooledConnection:
        connector, origin = key
        connect = connector if connector is not None else self._connector
        if connect is None:
            raise InvalidArgument("This pool has no connector of its own: pass one to acquire().")
        self.total += 1  # reserve the slot before the first await
        try:
            stream, protocol = await connect(origin, context)
        except BaseException:
            self.total -= 1
            self._wake_one()
            raise
        conn = PooledConnection(origin, stream, protocol, key)
        conn.clock = clock()
        if self.closed:  # the client was closed while this connection was being opened
            self._forget(conn)
            await stream.aclose()
            raise UsageError("The client was closed while connecting; make a new one.")
        self._lent.add(conn)
        return conn

    def _evict_one(self) -> PooledConnection | None:
        """Free a slot held by an idle connection to another origin or connector (the
        oldest)."""
        oldest: PooledConnection | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is None:
            return None
        connections = self._idle[oldest.key]
        connections.remove(oldest)
        if not connections:
            del self._idle[oldest.key]
        self._idle_count -= 1
        oldest.idle = False
        self._forget(oldest)
        return oldest

    async def _wait(
        self, deadline: float, timeout: float | None, origin: Origin, *, first: bool
    ) -> None:
        """Wait until a slot may be free: woken by a release, or PoolTimeout at
        ``deadline``. ``first``: queue at the front (a waiter that was woken before but
        lost the slot keeps its turn)."""
        event = anyio.Event()
        if first:
            self._waiters.appendleft(event)
        else:
            self._waiters.append(event)
        woken = False
        try:
            with anyio.fail_after(max(0.0, deadline - now()) if timeout is not None else None):
                await event.wait()
            woken = True
        except TimeoutError:
            raise PoolTimeout(
                f"No connection to {_describe(origin)} became free within {timeout} s "
                f"({self.limits.max_connections} are in use); raise max_connections or the "
                "pool timeout, or send fewer requests at once."
            ) from None
        finally:
            self._waiters.remove(event)  # only this method removes waiters
            if event.is_set() and not woken and not self.closed:
                # Woken, but leaving without the slot (cancelled, timed out): hand it on.
                self._wake_one()

    def _wake_one(self) -> None:
        for event in self._waiters:
            if not event.is_set():
                event.set()
                return

    def _forget(self, conn: PooledConnection) -> None:
        """Stop counting ``conn`` (not closed yet, held by no one else)."""
        conn.closed = True
        self.total -= 1
        self._wake_one()

    async def release(self, conn: PooledConnection, *, reusable: bool) -> None:
        """Give a connection back: kept for reuse if ``reusable`` (the response was read
        to the end) and the protocol allows it, else closed; with ``reusable`` False
        (an error, a cancellation, a body not read to the end) it is aborted, dropping
        anything not yet sent. Never raises."""
        self._lent.discard(conn)
        if conn.closed or conn.idle:
            return  # released already, or dropped by aclose()
        if (
            reusable
            and not self.closed
            and conn.protocol.reusable
            and self.limits.max_keepalive > 0
        ):
            victim = None
            if self._idle_count >= self.limits.max_keepalive:
                # Keep the connection just used; close the one idle the longest (an
                # origin or a TLS setting not asked for lately must not hold the
                # keep-alive budget of those that are).
                victim = self._evict_one()
            conn.idle_since = conn.clock()
            conn.idle = True
            self._idle.setdefault(conn.key, []).append(conn)
            self._idle_count += 1
            self._wake_one()
            if victim is not None:
                await victim.stream.aclose()
            return
        self._forget(conn)
        if not reusable:
            # Broken, cancelled or left mid-message: drop it at once rather than wait
            # for a peer that may never take our unsent bytes.
            conn.stream.abort()
        await conn.stream.aclose()

    async def _close_all(self, connections: list[PooledConnection]) -> None:
        for conn in connections:
            await conn.stream.aclose()

    async def aclose(self) -> None:
        """Close every connection: the idle ones, and those in use (as httpx does), whose
        requests then fail with :class:`~sansnet.UsageError` rather than wait on a
        socket nobody will close; requests waiting for a slot fail alike at once, and a
        connect in progress when it completes (within the connect timeout)."""
        self.closed = True
        idle = [conn for connections in self._idle.values() for conn in connections]
        self._idle.clear()
        self._idle_count = 0
        for conn in idle:
            conn.idle = False
            self._forget(conn)
        lent = list(self._lent)
        self._lent.clear()
        for conn in lent:
            conn.dropped = True
            self._forget(conn)
            conn.stream.abort()  # the request waiting on it wakes up now
        for event in self._waiters:
            event.set()
        await self._close_all(idle + lent)
