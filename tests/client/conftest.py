"""Fixtures for the client tests: real servers on 127.0.0.1, started once per session.

``servers``: uvicorn and hypercorn serving :mod:`tests.client.app` (plain HTTP), uvicorn
with a trustme certificate (``https``) and uvicorn requiring a client certificate
(``mtls``), all in one subprocess (:mod:`tests.client.serve_app`). ``raw_server``: a
factory of :class:`RawServer` threads for byte-exact and misbehaving servers, each
stopped when its test ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.subprocesses import env_without_coverage

from .rawserver import Handler, RawServer

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str  # certificate and key in one PEM file
    client_cert: str
    client_key: str


@dataclass(frozen=True)
class Servers:
    uvicorn: str
    hypercorn: str
    https: str
    mtls: str
    certs: Certificates

    def url(self, name: str) -> str:
        return str(getattr(self, name))


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("client@example.org")
    paths = {
        "ca_file": directory / "ca.pem",
        "cert_file": directory / "server.pem",
        "key_file": directory / "server.key",
        "client_cert_file": directory / "client.pem",
        "client_cert": directory / "client-cert.pem",
        "client_key": directory / "client-key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca_file"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert_file"]))
    server.private_key_pem.write_to_path(str(paths["key_file"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client_cert_file"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return Certificates(ca=ca, **{name: str(path) for name, path in paths.items()})


@pytest.fixture(scope="session")
def servers(certs: Certificates) -> Iterator[Servers]:
    # The servers are not what is measured: keep coverage out of their process.
    env = env_without_coverage(PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "serve_app.py"),
            certs.cert_file,
            certs.key_file,
            certs.ca_file,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the servers print their ports once listening
        if not line:
            raise RuntimeError("The test servers did not start; see the output above.")
        ports = json.loads(line)
        yield Servers(
            uvicorn=f"http://127.0.0.1:{ports['uvicorn']}",
            hypercorn=f"http://127.0.0.1:{ports['hypercorn']}",
            https=f"https://localhost:{ports['https']}",
            mtls=f"https://localhost:{ports['mtls']}",
            certs=certs,
        )
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the servers stop when their stdin closes
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(params=["uvicorn", "hypercorn"])
def base_url(request: pytest.FixtureRequest, servers: Servers) -> str:
    """Each test using it runs against uvicorn and against hypercorn."""
    return servers.url(request.param)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    started: list[RawServer] = []

    def start(handler: Handler, host: str = "127.0.0.1") -> RawServer:
        server = RawServer(handler, host)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
