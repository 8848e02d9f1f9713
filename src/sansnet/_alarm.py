"""An alarm for the WebSocket's keepalive on trio: a deadline kept by a task of its
own, so that a read waiting for the peer needs no cancel scope of its own.

trio's only timer is a cancel scope, and entering and leaving one costs about as much as
the wait itself: with a scope around each read that waits, a 49-byte echo cost a third
more. The WebSocket reads without a bound instead, arms the alarm for its keepalive
deadline (a float comparison when it is armed already for that time), and the alarm's
task, at that time, does what the read's timeout would have done (see
``WebSocket._on_alarm``).

The invariant: **at any time, the alarm wakes at the earliest deadline armed since it
last fired, or earlier** (its task then looks again). Its task exists only while a
deadline is armed; it ends when it has fired with nothing armed again, and at once on
:meth:`Alarm.stop`. It is a trio system task: it holds no nursery open, and trio cancels
it when the run ends.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Alarm"]


class Alarm:
    """Call ``fire()`` in a trio system task once the earliest armed deadline (trio's
    clock, :func:`trio.current_time`) has passed. ``fire`` must not raise: an exception
    out of a system task ends the whole trio run. Create, arm and stop it from within
    the trio run."""

    __slots__ = ("_due", "_fire", "_running", "_scope", "_stopped", "_trio")

    def __init__(self, trio: Any, fire: Callable[[], Awaitable[None]]) -> None:
        self._trio = trio
        self._fire = fire
        self._due = math.inf  # the earliest deadline armed and not yet fired
        self._running = False  # a task runs (sleeping, or in fire())
        self._scope: Any = None  # the task's sleep, while it sleeps
        self._stopped = False

    def arm(self, deadline: float) -> None:
        """Fire at ``deadline`` at the latest (a later deadline than one armed already
        changes nothing)."""
        if deadline >= self._due:
            return
        self._due = deadline
        if self._stopped:
            return
        if not self._running:
            self._running = True
            self._trio.lowlevel.spawn_system_task(self._run, name="sansnet WebSocket alarm")
        elif self._scope is not None:
            self._scope.deadline = deadline  # wakes the sleeping task earlier

    def stop(self) -> None:
        """Never fire again; the task, if any, ends now (or once ``fire()`` returns)."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def _run(self) -> None:
        trio = self._trio
        try:
            while not self._stopped:
                due = self._due
                if due == math.inf:
                    return  # nothing armed: the next arm() starts a task again
                if trio.current_time() < due:
                    with trio.CancelScope(deadline=due) as self._scope:
                        await trio.sleep_forever()
                    self._scope = None
                    continue  # due, armed earlier meanwhile, or stopped: look again
                self._due = math.inf
                await self._fire()
        finally:
            self._running = False
            self._scope = None
