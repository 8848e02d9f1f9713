"""Fixtures for the proxy tests: real proxy servers (tinyproxy, squid, microsocks,
``ssh -D``, see peers.py) and origin servers (http and https), all on 127.0.0.1.

The session-scoped proxies are shared: a test reads ``connections()`` before and after
(never an absolute count) and never stops or restarts them. A test that kills its proxy
(``stop()``, ``restart()``) takes a function-scoped one: ``fresh_http_proxy``,
``fresh_squid_proxy``, ``fresh_socks5_proxy``.

tinyproxy (``http_proxy*``) closes the client connection after every forwarded
response; squid (``squid_proxy*``) keeps it alive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .peers import (
    HTTP_AUTH,
    HTTP_AUTH_SQUID,
    SOCKS_AUTH,
    HttpsOrigin,
    ProxyServer,
    http_origin,
    https_origin,
    socks4a_server,
    socks5_server,
    squid,
    tinyproxy,
)


@pytest.fixture(scope="session")
def origin_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: any GET answers JSON (path, headers, peer)."""
    with http_origin() as url:
        yield url


@pytest.fixture(scope="session")
def https_origin_server() -> Iterator[HttpsOrigin]:
    """``.url``: ``https://localhost:PORT`` (the same JSON answers as ``origin_url``);
    ``.ca_file``, ``.client_context()``: trust its certificate (``localhost``,
    ``127.0.0.1``)."""
    with https_origin() as origin:
        yield origin


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
def squid_proxy() -> Iterator[ProxyServer]:
    """squid, no auth: ``http://127.0.0.1:PORT``; keeps client connections alive."""
    with squid() as server:
        yield server


@pytest.fixture(scope="session")
def squid_proxy_auth() -> Iterator[ProxyServer]:
    """squid with Basic auth alice / "s3cret pass":
    ``http://alice:s3cret%20pass@127.0.0.1:PORT``."""
    with squid(auth=HTTP_AUTH_SQUID) as server:
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
def fresh_squid_proxy() -> Iterator[ProxyServer]:
    """A squid of this test's own (no auth), free to stop() and restart() (about 0.1 s
    to start)."""
    with squid() as server:
        yield server


@pytest.fixture
def fresh_socks5_proxy() -> Iterator[ProxyServer]:
    """A microsocks of this test's own (no auth), free to stop() and restart()."""
    with socks5_server() as server:
        yield server
