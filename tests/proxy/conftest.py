"""Fixtures for the proxy tests: real proxy servers (tinyproxy, microsocks, ``ssh -D``,
see peers.py) and an origin server, all on 127.0.0.1.

The session-scoped proxies are shared: a test reads ``connections()`` before and after
(never an absolute count) and never stops or restarts them. A test that kills its proxy
(``stop()``, ``restart()``) takes a function-scoped one: ``fresh_http_proxy``,
``fresh_socks5_proxy``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .peers import (
    HTTP_AUTH,
    SOCKS_AUTH,
    ProxyServer,
    http_origin,
    socks4a_server,
    socks5_server,
    tinyproxy,
)


@pytest.fixture(scope="session")
def origin_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: any GET answers JSON (path, headers, peer)."""
    with http_origin() as url:
        yield url


@pytest.fixture(scope="session")
def http_proxy() -> Iterator[ProxyServer]:
    """tinyproxy, no auth: ``http://127.0.0.1:PORT``."""
    with tinyproxy() as server:
        yield server


@pytest.fixture(scope="session")
def http_proxy_auth() -> Iterator[ProxyServer]:
    """tinyproxy with BasicAuth alice / s3cret.pass: ``http://alice:s3cret.pass@127.0.0.1:PORT``."""
    with tinyproxy(auth=HTTP_AUTH) as server:
        yield server


@pytest.fixture(scope="session")
def socks5_proxy() -> Iterator[ProxyServer]:
    """microsocks, no auth: ``socks5://127.0.0.1:PORT``."""
    with socks5_server() as server:
        yield server


@pytest.fixture(scope="session")
def socks5_proxy_auth() -> Iterator[ProxyServer]:
    """microsocks with alice / "s3cret pass": ``socks5://alice:s3cret%20pass@127.0.0.1:PORT``."""
    with socks5_server(auth=SOCKS_AUTH) as server:
        yield server


@pytest.fixture(scope="session")
def socks4a_proxy() -> Iterator[ProxyServer]:
    """``ssh -D`` (OpenSSH), no auth: ``socks4a://127.0.0.1:PORT``."""
    with socks4a_server() as server:
        yield server


@pytest.fixture
def fresh_http_proxy() -> Iterator[ProxyServer]:
    """A tinyproxy of this test's own (no auth), free to stop() and restart()."""
    with tinyproxy() as server:
        yield server


@pytest.fixture
def fresh_socks5_proxy() -> Iterator[ProxyServer]:
    """A microsocks of this test's own (no auth), free to stop() and restart()."""
    with socks5_server() as server:
        yield server
