"""Shared fixtures: every async test runs on asyncio, on asyncio with uvloop (where
installed), and on trio, through the anyio pytest plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

_BACKENDS: list[Any] = [pytest.param(("asyncio", {}), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))
_BACKENDS.append(pytest.param(("trio", {}), id="trio"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Resolve an "autojump" clock request (trio's MockClock) per test."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        backend = callspec.params.get("anyio_backend")
        if isinstance(backend, tuple) and backend[1].get("clock") == "autojump":
            import trio.testing

            backend[1]["clock"] = trio.testing.MockClock(autojump_threshold=0)
