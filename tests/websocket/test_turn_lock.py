"""The lock a WebSocket's readers and writers take turns with on trio (TurnLock): turns
in order of arrival, and a waiter cancelled before or as its turn comes never keeps the
lock from the others."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from sansnet._turn_lock import TurnLock

pytestmark = pytest.mark.anyio


async def test_turns_go_in_order_and_cancelled_waiters_give_theirs_up() -> None:
    lock = TurnLock(anyio.lowlevel.checkpoint_if_cancelled)
    order: list[str] = []
    scopes: dict[str, anyio.CancelScope] = {}

    async def take(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes[name] = scope
            async with lock:
                order.append(name)
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        async with lock:
            assert lock.locked()
            for name in ("a", "b", "c", "d"):
                tg.start_soon(take, name)
                await anyio.wait_all_tasks_blocked()  # each waits, in this order
            scopes["b"].cancel()  # cancelled while it waits: it leaves the queue
            await anyio.wait_all_tasks_blocked()
        # Released: the lock is a's now; a is cancelled before it runs (on asyncio it
        # then passes its turn on; on trio it runs and gives the lock up at its checkpoint).
        scopes["a"].cancel()
    assert "b" not in order
    assert order[-2:] == ["c", "d"]
    assert not lock.locked()


async def test_a_cancelled_task_does_not_take_a_free_lock() -> None:
    lock = TurnLock(anyio.lowlevel.checkpoint_if_cancelled)
    with anyio.CancelScope() as scope:
        scope.cancel()
        async with lock:
            pytest.fail("a cancelled task took the lock")  # pragma: no cover
    assert not lock.locked()
