"""The event loop's clock, read cheaply.

``anyio.current_time()`` looks the backend up on every call (a few microseconds); on
asyncio the loop's own ``time()`` is the same clock for a fraction of that. On trio
(and its testing clocks) anyio's function is used, so autojump clocks keep working.
"""

from __future__ import annotations

import asyncio

import anyio

__all__ = ["now"]

_get_running_loop = asyncio.get_running_loop


def now() -> float:
    """The current time of the running event loop, in seconds."""
    try:
        return _get_running_loop().time()
    except RuntimeError:
        return anyio.current_time()
