"""The default client: one per event loop, reused by ``sansnet.request``, closed with
its loop without leaking a socket."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import anyio
import pytest

import sansnet
from sansnet.client import default_client

from .conftest import Servers

BACKENDS = [
    ("asyncio", {}),
    ("asyncio", {"use_uvloop": True}),
    ("trio", {}),
]
IDS = ["asyncio", "uvloop", "trio"]


@pytest.mark.anyio
async def test_default_client_is_reused(servers: Servers) -> None:
    first = await default_client()
    await sansnet.request(f"{servers.uvicorn}/status/200")
    await sansnet.request(f"{servers.uvicorn}/status/200")
    assert await default_client() is first, "One default client per event loop."
    assert first.pool.total >= 1, "Its connections are kept between calls."
    async with sansnet.stream(f"{servers.uvicorn}/chunks?n=3") as response:
        assert await response.aread() == b"piece 0;piece 1;piece 2;"


@pytest.mark.parametrize(("backend", "options"), BACKENDS, ids=IDS)
def test_two_event_loops_in_a_row(
    servers: Servers, backend: str, options: dict[str, object]
) -> None:
    clients = []

    async def main() -> int:
        clients.append(await default_client())
        response = await sansnet.request(f"{servers.uvicorn}/status/200")
        return response.status_code

    assert anyio.run(main, backend=backend, backend_options=options) == 200
    assert anyio.run(main, backend=backend, backend_options=options) == 200
    assert clients[0] is not clients[1], "Each event loop has its own default client."
    assert clients[0].closed, "The first loop's client was closed when its loop ended."


SCRIPT = textwrap.dedent(
    """
    import gc, sys
    import anyio, sansnet

    url = sys.argv[1]

    async def main():
        for path in ("/status/200", "/encoded/gzip", "/chunks?n=3"):
            response = await sansnet.request(url + path)
            assert response.ok, response
        async with sansnet.stream(url + "/stream?mib=1") as response:
            async for chunk in response.aiter_bytes():
                break  # left early: the connection is closed, not leaked

    for backend, options in [("asyncio", {}), ("asyncio", {"use_uvloop": True}), ("trio", {})]:
        for _ in range(2):
            anyio.run(main, backend=backend, backend_options=options)
        gc.collect()
        print("clean", backend, options)
    """
)


def test_nothing_leaks_when_the_loop_ends(servers: Servers) -> None:
    """Two event loops in a row on each backend, in a fresh interpreter where any
    ResourceWarning (an unclosed socket or transport) is an error."""
    env = {**os.environ, "PYTHONTRACEMALLOC": "1"}
    result = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", SCRIPT, servers.uvicorn],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("clean") == 3, result.stdout + result.stderr
    for marker in (
        "ResourceWarning",
        "unclosed",
        "Unclosed",
        "Exception ignored",
        "Task was destroyed",
    ):
        assert marker not in result.stderr, f"{marker} after the loop ended:\n{result.stderr}"
