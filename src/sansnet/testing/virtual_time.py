"""An asyncio event loop on virtual time, for tests: asyncio's answer to trio's
``MockClock(autojump_threshold=0)``.

Why: a test of a 30-second timeout should not take 30 seconds, and should not depend on
how busy the machine is. On this loop, ``loop.time()`` stands still while any callback
is ready to run; once every task waits and the nearest timer is *T* seconds away, the
clock jumps *T* ahead and the timer fires at once. Everything that reads the loop's
clock follows it: ``asyncio.sleep``, ``asyncio.timeout``, ``loop.call_later``, anyio's
``sleep``, ``move_on_after`` and ``fail_after``, and every timeout of sansnet
(connect, read, write, total, pool, server header/body/keep-alive/drain, WebSocket
ping/close).

The invariant, and what a caller must do: time jumps only when **no file descriptor is
ready** (polled without waiting, or for ``autojump_threshold`` real seconds) and no
callback is ready. So use it for code whose I/O is in memory, such as
:func:`sansnet.testing.serve`; a real socket or a worker thread that needs real time to
answer would see its timers fire before its answer comes. Raise
``autojump_threshold`` (real seconds of quiet before a jump) if some real I/O must
happen, as with trio's ``MockClock``.
"""

from __future__ import annotations

import asyncio
import math
import selectors

from sansnet.errors import InvalidArgument

__all__ = ["VirtualTimeEventLoop"]


class _JumpingSelector(selectors.DefaultSelector):
    """The platform's selector, which moves the loop's virtual clock instead of
    sleeping: the loop asks it to wait exactly until its nearest timer."""

    def __init__(self, loop: VirtualTimeEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:  # nothing scheduled, or something ready
            return super().select(timeout)
        ready = super().select(min(timeout, self._loop.autojump_threshold))
        if not ready:
            self._loop.advance(timeout)
        return ready


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio selector event loop whose clock is virtual (see the module's text).

    Use it as anyio's ``loop_factory``, with the anyio pytest plugin::

        @pytest.fixture
        def anyio_backend():
            return ("asyncio", {"loop_factory": sansnet.testing.VirtualTimeEventLoop})

    or ``anyio.run(main, backend_options={"loop_factory": VirtualTimeEventLoop})``, or
    ``asyncio.Runner(loop_factory=VirtualTimeEventLoop)``; the ``net_virtual_time``
    marker of sansnet's pytest plugin does it for you. ``loop.time()`` starts at 0.
    """

    def __new__(cls, autojump_threshold: float = 0.0) -> VirtualTimeEventLoop:
        # Checked before the loop exists: a half-built one would leak its selector
        # (ResourceWarning), or complain when collected that it has no _closed.
        _check_seconds(autojump_threshold, "autojump_threshold", infinite=True)
        if autojump_threshold < 0:
            raise InvalidArgument("autojump_threshold must not be negative.")
        return super().__new__(cls)

    def __init__(self, autojump_threshold: float = 0.0) -> None:
        self.autojump_threshold = autojump_threshold
        self._now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        """The virtual time, in seconds since the loop was made."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead (timers now due run on the next loop turn)."""
        _check_seconds(seconds, "seconds", infinite=False)
        if seconds < 0:
            raise InvalidArgument("The clock cannot go back: seconds must not be negative.")
        self._now += seconds

    def __repr__(self) -> str:
        return f"<VirtualTimeEventLoop time={self._now!r}>"


def _check_seconds(value: object, name: str, *, infinite: bool) -> None:
    """``value`` is a number of seconds (an int or a float, not NaN; infinite only if
    ``infinite``), else InvalidArgument: NaN or infinity would stop virtual time or make
    the clock NaN without a word."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number of seconds, not {value!r}.")
    if math.isnan(value):
        raise InvalidArgument(f"{name} must be a number of seconds, not NaN.")
    if not infinite and math.isinf(value):
        raise InvalidArgument(f"{name} must be a finite number of seconds, not {value!r}.")
