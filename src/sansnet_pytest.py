"""sansnet's pytest plugin, registered with the ``pytest11`` entry point as ``sansnet``.

Fixtures (use them in ``@pytest.mark.anyio`` tests; they work on asyncio and trio):

* ``net_recorder``: a fresh :class:`sansnet.testing.WireRecorder`, to pass to
  ``sansnet.testing.serve(..., recorder=net_recorder)``.
* ``net_mock``: a :class:`sansnet.testing.MockRouter` installed as the client of
  :func:`sansnet.request` and :func:`sansnet.stream` for the whole test; add routes
  with ``net_mock.add("GET", url, json=...)``; ``net_mock.requests`` lists what was
  sent; a request no route matches fails the test.

Marker:

* ``@pytest.mark.net_virtual_time``: run an anyio test on virtual time, where every
  sleep and timeout completes at once as soon as all tasks wait (for tests on
  :func:`sansnet.testing.serve`, whose I/O is in memory): asyncio runs on
  :class:`sansnet.testing.VirtualTimeEventLoop`, trio on
  ``trio.testing.MockClock(autojump_threshold=0)``. A backend that brings its own loop
  (uvloop, or a ``loop_factory`` or ``clock`` you set) keeps its clock: real time for
  uvloop, whose clock cannot be replaced. The marker changes the value of a
  parametrized ``anyio_backend`` fixture (anyio's own is); a test whose
  ``anyio_backend`` is not parametrized fails with an explanation.

This module lives outside the ``sansnet`` package and imports it only when a fixture
is used, so loading the plugin costs nothing and does not import sansnet before a
coverage tool starts measuring it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import asyncio

    from sansnet.testing import MockRouter, WireRecorder

_VIRTUAL_TIME = "net_virtual_time"
_RESOLVED = "_sansnet_virtual_time"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_VIRTUAL_TIME}: run this anyio test on virtual time (asyncio: "
        "sansnet.testing.VirtualTimeEventLoop, trio: MockClock(autojump_threshold=0))",
    )


def _virtual_time_loop() -> asyncio.AbstractEventLoop:
    from sansnet.testing import VirtualTimeEventLoop

    return VirtualTimeEventLoop()


def _on_virtual_time(backend: Any) -> Any:
    """``backend`` (an anyio_backend value) with a virtual clock where it can have one."""
    name, options = (backend, {}) if isinstance(backend, str) else backend
    options = dict(options)
    if name == "asyncio" and not (options.get("use_uvloop") or options.get("loop_factory")):
        options["loop_factory"] = _virtual_time_loop
    elif name == "trio" and options.get("clock") is None:
        import trio.testing

        options["clock"] = trio.testing.MockClock(autojump_threshold=0)
    else:
        return backend
    return (name, options)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker(_VIRTUAL_TIME) is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "anyio_backend" in params:
            params["anyio_backend"] = _on_virtual_time(params["anyio_backend"])
            setattr(item, _RESOLVED, True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(_VIRTUAL_TIME) is not None and not hasattr(item, _RESOLVED):
        pytest.fail(
            f"{item.nodeid} is marked {_VIRTUAL_TIME}, but its anyio_backend fixture is not "
            "parametrized, so the marker cannot give it a virtual clock: give the fixture "
            "params (as anyio's own has) or set the clock in its value yourself "
            '(("asyncio", {"loop_factory": sansnet.testing.VirtualTimeEventLoop})).',
            pytrace=False,
        )


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
