"""A sansnet WebSocket echo server for the Autobahn|Testsuite fuzzingclient.

    python tests/autobahn/echo_server.py PORT [asyncio|uvloop|trio]

Library defaults throughout (16 MiB messages and frames, permessage-deflate on).
"""

from __future__ import annotations

import sys

import anyio

import sansnet


async def echo(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    config = sansnet.ServeConfig(handle_web_socket=echo)
    async with sansnet.serve(port, config) as handle:
        print(f"listening on {handle.url}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    options = {"use_uvloop": True} if backend == "uvloop" else {}
    anyio.run(
        main,
        int(sys.argv[1]),
        backend="trio" if backend == "trio" else "asyncio",
        backend_options=options,
    )
