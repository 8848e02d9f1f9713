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


_PROXY_VARIABLES = [f"{name}_proxy" for name in ("http", "https", "ws", "wss", "all", "no")]


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests talk to servers on 127.0.0.1: a proxy set in the environment of the
    machine that runs them must not route them elsewhere. Tests of the environment's
    proxies set the variables they need (tests/proxy)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
