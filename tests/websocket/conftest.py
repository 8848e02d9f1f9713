from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from .peers import node_ws_available, node_ws_server, websockets_server


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def websockets_port() -> Iterator[int]:
    with websockets_server() as port:
        yield port


@pytest.fixture(scope="session")
def websockets_tls_port(server_ssl_context: ssl.SSLContext) -> Iterator[int]:
    with websockets_server(server_ssl_context) as port:
        yield port


@pytest.fixture(scope="session")
def node_port() -> Iterator[int]:
    if not node_ws_available():
        pytest.fail(
            "Node's ws package could not be installed with npm (needed by the interop tests)."
        )
    with node_ws_server() as port:
        yield port
