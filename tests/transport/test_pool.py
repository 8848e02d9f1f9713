"""ConnectionPool: each invariant of its module docstring, with in-memory connections
and a connector the test controls."""

from __future__ import annotations

import anyio
import pytest

from sansnet import InvalidArgument, PoolLimits, PoolTimeout
from sansnet.protocol import ClientConnection
from sansnet.transport.pool import ConnectionPool, Origin, PooledConnection
from sansnet.transport.streams import MemoryStream, memory_stream_pair

pytestmark = pytest.mark.anyio

A: Origin = ("http", "a.example", 80)
B: Origin = ("http", "b.example", 80)


class Connector:
    """Opens in-memory connections; ``gate`` (when set) holds every open until set;
    ``fail`` makes opens raise."""

    def __init__(self) -> None:
        self.opened = 0
        self.gate: anyio.Event | None = None
        self.fail: Exception | None = None
        self.servers: list[MemoryStream] = []
        self.contexts: list[object] = []

    async def __call__(
        self, origin: Origin, context: object
    ) -> tuple[MemoryStream, ClientConnection]:
        self.contexts.append(context)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.opened += 1
        client, server = memory_stream_pair()
        self.servers.append(server)
        return client, ClientConnection(origin[1], origin[2])


def make(**limits: object) -> tuple[ConnectionPool, Connector]:
    connector = Connector()
    return ConnectionPool(connector, PoolLimits(**limits)), connector  # type: ignore[arg-type]


async def test_reuse_and_counts() -> None:
    pool, connector = make()
    conn = await pool.acquire(A, context="ctx")
    assert connector.contexts == ["ctx"], "The context reaches the connector."
    assert (pool.total, pool.in_use, pool.idle) == (1, 1, 0)
    assert not conn.reused
    await pool.release(conn, reusable=True)
    assert (pool.total, pool.in_use, pool.idle) == (1, 0, 1)
    again = await pool.acquire(A)
    assert again is conn, "An idle connection is reused."
    assert again.reused
    await pool.release(again, reusable=True)
    await pool.release(again, reusable=True)  # a second release changes nothing
    assert pool.idle == 1, "Released twice, it is still pooled once."
    other = await pool.acquire(B)
    assert other is not conn, "Each origin has its own connections."
    await pool.release(other, reusable=False)
    assert (pool.total, pool.idle) == (1, 1)
    await pool.aclose()
    assert pool.total == 0


async def test_invariant_2_a_connection_serves_only_its_connector() -> None:
    """One pool, several connectors (a client's TLS settings, Unix sockets, proxies):
    the limits count them all, and an idle connection goes only to its own."""
    pool = ConnectionPool(None, PoolLimits(max_connections=2))
    with pytest.raises(TypeError, match="no connector of its own"):
        await pool.acquire(B)
    assert pool.total == 0, "Nothing is counted."
    first, second = Connector(), Connector()
    conn = await pool.acquire(A, connector=first)  # type: ignore[arg-type]
    await pool.release(conn, reusable=True)
    other = await pool.acquire(A, connector=second)  # type: ignore[arg-type]
    assert other is not conn, "Another connector's idle connection is not reused."
    assert (first.opened, second.opened) == (1, 1)
    await pool.release(other, reusable=True)
    assert await pool.acquire(A, connector=first) is conn  # type: ignore[arg-type]
    third = Connector()
    newest = await pool.acquire(A, connector=third)  # type: ignore[arg-type]
    assert pool.total == 2, "The idle connection of the second connector made room."
    assert (pool.in_use, pool.idle) == (2, 0)
    for held in (conn, newest):
        await pool.release(held, reusable=False)
    await pool.aclose()
    assert pool.total == 0


async def test_the_keepalive_budget_goes_to_the_connections_in_use() -> None:
    """Connections given back beyond max_keepalive take the place of the one idle the
    longest: connectors (or origins) used once do not keep the rest from reuse, and
    their idle lists do not pile up."""
    pool = ConnectionPool(None, PoolLimits(max_keepalive=3))
    for _ in range(10):  # one-off connectors, as a new SSLContext per request makes
        once = Connector()
        await pool.release(await pool.acquire(A, connector=once), reusable=True)  # type: ignore[arg-type]
    assert (pool.total, pool.idle, len(pool._idle)) == (3, 3, 3)
    mine = Connector()
    conn = await pool.acquire(A, connector=mine)  # type: ignore[arg-type]
    await pool.release(conn, reusable=True)
    assert (pool.total, pool.idle) == (3, 3), "The oldest idle connection made room."
    for _ in range(3):
        again = await pool.acquire(A, connector=mine)  # type: ignore[arg-type]
        assert again is conn, "The connection in use stays pooled."
        await pool.release(again, reusable=True)
    assert mine.opened == 1
    await pool.aclose()
    assert pool.total == 0
    assert not pool._idle


async def test_invariant_1_total_counts_connecting() -> None:
    pool, connector = make(max_connections=2)
    connector.gate = anyio.Event()
    conns: list[PooledConnection] = []

    async def take() -> None:
        conns.append(await pool.acquire(A))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        assert pool.total == 2, "Connections being opened count against the limit."
        assert pool.waiting == 1
        connector.gate.set()
        await anyio.wait_all_tasks_blocked()
        assert len(conns) == 2
        assert pool.total == 2
        await pool.release(conns[0], reusable=True)
    assert len(conns) == 3
    assert conns[2] is conns[0], "The waiter got the released connection."
    assert len({id(conn) for conn in conns[1:]}) == 2, "Invariant 2: never lent twice at once."
    for conn in conns[1:]:
        await pool.release(conn, reusable=False)
    assert pool.total == 0


async def test_invariant_3_cancelled_connect_frees_the_slot() -> None:
    pool, connector = make(max_connections=1)
    connector.gate = anyio.Event()
    with anyio.move_on_after(0.05):
        await pool.acquire(A)
    assert pool.total == 0, "A cancelled connect gives its slot back."
    connector.gate = None
    connector.fail = OSError("refused")
    with pytest.raises(OSError, match="refused"):
        await pool.acquire(A)
    assert pool.total == 0, "A failed connect gives its slot back."
    connector.fail = None
    conn = await pool.acquire(A)
    await pool.release(conn, reusable=True)


async def test_invariant_4_idle_connection_closed_by_peer() -> None:
    pool, connector = make()
    conn = await pool.acquire(A)
    await pool.release(conn, reusable=True)
    await connector.servers[0].aclose()  # the server closes the idle connection
    fresh = await pool.acquire(A)
    assert fresh is not conn, "A connection closed while idle is dropped."
    assert not fresh.reused
    assert conn.closed
    assert pool.total == 1
    await pool.release(fresh, reusable=True)
    await connector.servers[1].write(b"HTTP/1.1 200 OK\r\n")  # unsolicited bytes
    assert (await pool.acquire(A)) is not fresh, "So is one that received anything."


async def test_expiry_and_keepalive_limit() -> None:
    pool, _ = make(keepalive_expiry=0.0, max_keepalive=1)
    first, second = await pool.acquire(A), await pool.acquire(A)
    await pool.release(first, reusable=True)
    await pool.release(second, reusable=True)
    assert pool.idle == 1, "At most max_keepalive idle connections are kept."
    await anyio.sleep(0.01)
    third = await pool.acquire(A)
    assert third is not first, "An expired connection is not reused."
    assert pool.total == 1
    await pool.release(third, reusable=False)


async def test_not_reusable_protocol_state_is_closed() -> None:
    pool, _ = make()
    conn = await pool.acquire(A)
    conn.protocol.send_request("GET", "/")  # a cycle in flight: not reusable
    await pool.release(conn, reusable=True)
    assert pool.total == 0
    assert conn.closed


async def test_invariant_5_waiters_in_order_and_hand_on() -> None:
    pool, _ = make(max_connections=1)
    held = await pool.acquire(A)
    order: list[str] = []

    async def wait(name: str, timeout: float | None) -> None:
        try:
            conn = await pool.acquire(A, timeout=timeout)
        except PoolTimeout:
            order.append(f"{name} timed out")
            return
        order.append(name)
        await pool.release(conn, reusable=True)

    async with anyio.create_task_group() as group:
        group.start_soon(wait, "first", None)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(wait, "second", None)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pool.acquire(A)  # cancelled before waiting: leaves no trace
        assert pool.waiting == 2
        await pool.release(held, reusable=True)
    assert order == ["first", "second"], "Waiters are served first come, first served."
    assert pool.in_use == 0


async def test_woken_waiter_that_leaves_hands_the_slot_on() -> None:
    pool, _ = make(max_connections=1)
    held = await pool.acquire(A)
    got: list[PooledConnection] = []

    first_scope = anyio.CancelScope()

    async with anyio.create_task_group() as group:

        async def first() -> None:
            nonlocal first_scope
            with anyio.CancelScope() as first_scope:
                await pool.acquire(A)
                raise AssertionError("The first waiter was cancelled; it gets nothing.")

        async def second() -> None:
            got.append(await pool.acquire(A, timeout=5))

        group.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        first_scope.cancel()  # the first waiter is cancelled...
        await pool.release(held, reusable=True)  # ...and woken before it could leave
    assert got == [held], "The wake-up went on to the second waiter."
    await pool.release(held, reusable=True)


async def test_pool_timeout_message() -> None:
    pool, _ = make(max_connections=1)
    held = await pool.acquire(("http", "::1", 8080))
    with pytest.raises(PoolTimeout, match=r"\[::1\]:8080 became free within 0.01 s"):
        await pool.acquire(("http", "::1", 8080), timeout=0.01)
    assert pool.waiting == 0
    await pool.release(held, reusable=False)


async def test_eviction_of_other_origins() -> None:
    pool, _ = make(max_connections=2)
    a1, a2 = await pool.acquire(A), await pool.acquire(A)
    await pool.release(a1, reusable=True)
    await anyio.sleep(0.001)
    await pool.release(a2, reusable=True)
    b = await pool.acquire(B)
    assert a1.closed, "The oldest idle connection makes room."
    assert not a2.closed
    assert pool.total == 2
    await pool.release(b, reusable=True)
    await pool.aclose()


async def test_aclose_wakes_waiters_and_closes_later_releases() -> None:
    pool, _ = make(max_connections=1)
    held = await pool.acquire(A)
    errors: list[BaseException] = []

    async def wait() -> None:
        try:
            await pool.acquire(A)
        except RuntimeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        await pool.aclose()
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    await pool.release(held, reusable=True)
    assert held.closed, "A connection released after aclose is closed."
    assert pool.total == 0
    with pytest.raises(RuntimeError, match="closed"):
        await pool.acquire(A)


def test_limits_validation() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        PoolLimits(max_connections=0)
    with pytest.raises(ValueError, match="max_keepalive"):
        PoolLimits(max_keepalive=-1)


async def test_woken_waiter_that_loses_the_slot_keeps_its_turn() -> None:
    pool, _ = make(max_connections=1)
    held = await pool.acquire(A)
    got: list[str] = []

    async def wait(name: str) -> None:
        conn = await pool.acquire(A, timeout=5)
        got.append(name)
        await pool.release(conn, reusable=True)

    async with anyio.create_task_group() as group:
        group.start_soon(wait, "first")
        await anyio.wait_all_tasks_blocked()
        group.start_soon(wait, "second")
        await anyio.wait_all_tasks_blocked()
        await pool.release(held, reusable=False)  # frees the slot and wakes "first"...
        barging = await pool.acquire(A)  # ...but a newcomer takes it before it runs
        await anyio.wait_all_tasks_blocked()
        assert got == [], "Both waiters wait again."
        await pool.release(barging, reusable=True)
    assert got == ["first", "second"], "The woken waiter kept its place at the front."


async def test_two_releases_wake_two_waiters() -> None:
    pool, _ = make(max_connections=2)
    held = [await pool.acquire(A), await pool.acquire(A)]
    got: list[PooledConnection] = []

    async def wait() -> None:
        conn = await pool.acquire(A, timeout=5)
        got.append(conn)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        for conn in held:  # back to back: the second wake-up skips the first waiter
            await pool.release(conn, reusable=True)
    assert sorted(map(id, got)) == sorted(map(id, held))
    for conn in got:
        await pool.release(conn, reusable=False)


async def test_eviction_skips_origins_without_idle_connections() -> None:
    pool, _ = make(max_connections=2)
    a = await pool.acquire(A)
    await pool.release(a, reusable=True)
    a = await pool.acquire(A)  # A's idle list is now empty
    b = await pool.acquire(B)
    await pool.release(b, reusable=True)
    c = await pool.acquire(("http", "c.example", 80))
    assert b.closed, "The idle connection of B made room for C."
    assert not a.closed
    await pool.release(a, reusable=False)
    await pool.release(c, reusable=False)
    assert pool.total == 0


def test_a_pooled_connection_keeps_its_origin_in_one_place() -> None:
    """PooledConnection held its origin twice (``origin`` and ``key[1]``), free to
    disagree; ``origin`` is now read from ``key``, and a key for another origin is
    refused."""
    client, _ = memory_stream_pair()
    protocol = ClientConnection("a.example", 80)
    conn = PooledConnection(A, client, protocol)
    assert (conn.key, conn.origin) == ((None, A), A)
    connector = Connector()
    conn = PooledConnection(A, client, protocol, (connector, A))  # type: ignore[arg-type]
    assert (conn.key, conn.origin) == ((connector, A), A)
    with pytest.raises(InvalidArgument, match="another origin"):
        PooledConnection(A, client, protocol, (connector, B))  # type: ignore[arg-type]


async def test_fresh_skips_idle_connections_and_evicts_for_room() -> None:
    """acquire(fresh=True), the retry after a stale connection, never reuses one of
    its idle siblings; at max_connections it closes the oldest idle one for room."""
    pool, connector = make(max_connections=2)
    first, second = await pool.acquire(A), await pool.acquire(A)
    await pool.release(first, reusable=True)
    await pool.release(second, reusable=True)
    new = await pool.acquire(A, fresh=True)
    assert new not in (first, second)
    assert not new.reused
    assert connector.opened == 3
    assert first.closed, "The oldest idle one made room."
    assert not second.closed
    assert (pool.total, pool.idle) == (2, 1)
    await pool.release(new, reusable=True)
    await pool.aclose()
