"""Shared fixtures: every async test runs on asyncio, on asyncio with uvloop (where
installed), and on trio, through the anyio pytest plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

pytest_plugins = ["pytester"]  # for the tests of sansnet's own pytest plugin

_BACKENDS: list[Any] = [pytest.param(("asyncio", {}), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))
_BACKENDS.append(pytest.param(("trio", {}), id="trio"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param
