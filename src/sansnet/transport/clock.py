"""The event loop's clock, read cheaply.

``anyio.current_time()`` looks the backend up on every call (a few microseconds); the
loop's own clock is the same for a fraction of that: asyncio's ``loop.time()`` and
trio's ``current_time()`` (which follows trio's testing clocks, so autojump works).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import anyio

__all__ = ["clock", "now"]

# asyncio's own lookup that returns None where get_running_loop() raises: on trio, a
# raised and caught RuntimeError was most of the cost of every call.
_get_running_loop = asyncio._get_running_loop


def now() -> float:
    """The current time of the running event loop, in seconds."""
    loop = _get_running_loop()
    if loop is not None:
        return loop.time()
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return float(trio.current_time())
        except RuntimeError:  # pragma: no cover - trio imported but not running here
            pass
    return anyio.current_time()  # pragma: no cover - another anyio backend


def clock() -> Callable[[], float]:
    """:func:`now` as a function tied to the running event loop: its ``loop.time`` on
    asyncio, :func:`now` itself elsewhere. For something that reads the time again and
    again on one loop (a request's deadline, a pooled connection): on Python 3.10 and
    3.11 each lookup of the running loop is a ``getpid()`` system call."""
    loop = _get_running_loop()
    if loop is not None:
        return loop.time
    return now
