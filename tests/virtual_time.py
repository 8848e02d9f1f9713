"""``@on_virtual_time``: an in-memory test (on :func:`sansnet.testing.serve`) that runs
on asyncio and trio with virtual clocks, through the ``net_virtual_time`` marker of
sansnet's pytest plugin: every timeout in it fires as soon as all tasks wait, so a
test of a 1-second timeout takes no second at all, and no sleep is flaky.

uvloop is left out of these tests on purpose: nothing of uvloop runs on an in-memory
link (no uvloop transport is used), and its clock cannot be virtual, so it would only
add the real waits back. The tests of the TCP paths run on uvloop too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])


def on_virtual_time(test: F) -> F:
    """Run ``test`` on asyncio's VirtualTimeEventLoop and on trio's autojump clock."""
    test = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"], indirect=True)(test)
    return pytest.mark.net_virtual_time(test)
