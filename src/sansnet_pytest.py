"""sansnet's pytest plugin, registered with the ``pytest11`` entry point as ``sansnet``.

Fixtures (use them in ``@pytest.mark.anyio`` tests; they work on asyncio and trio):

* ``net_recorder``: a fresh :class:`sansnet.testing.WireRecorder`, to pass to
  ``sansnet.testing.serve(..., recorder=net_recorder)``.
* ``net_mock``: a :class:`sansnet.testing.MockRouter` installed as the client of
  :func:`sansnet.request` and :func:`sansnet.stream` for the whole test; add routes
  with ``net_mock.add("GET", url, json=...)``; ``net_mock.requests`` lists what was
  sent; a request no route matches fails the test.

This module lives outside the ``sansnet`` package and imports it only when a fixture
is used, so loading the plugin costs nothing and does not import sansnet before a
coverage tool starts measuring it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sansnet.testing import MockRouter, WireRecorder


@pytest.fixture
def net_recorder() -> WireRecorder:
    """A recorder of the bytes each side writes on in-memory connections."""
    from sansnet.testing import WireRecorder

    return WireRecorder()


@pytest.fixture
async def net_mock() -> AsyncIterator[MockRouter]:
    """Routes for sansnet.request inside this test; unmatched requests fail it."""
    from sansnet.testing import MockRouter, mock

    router = MockRouter()
    async with mock(router):
        yield router
