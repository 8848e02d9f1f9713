"""The event loop's clock, read cheaply.

``anyio.current_time()`` looks the backend up on every call (a few microseconds); the
loop's own clock is the same for a fraction of that: asyncio's ``loop.time()`` and
trio's ``current_time()`` (which follows trio's testing clocks, so autojump works).
"""

from __future__ import annotations

import asyncio
import sys

import anyio

__all__ = ["now"]

_get_running_loop = asyncio.get_running_loop


def now() -> float:
    """The current time of the running event loop, in seconds."""
    try:
        return _get_running_loop().time()
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return float(trio.current_time())
        except RuntimeError:  # pragma: no cover - trio imported but not running here
            pass
    return anyio.current_time()  # pragma: no cover - another anyio backend
