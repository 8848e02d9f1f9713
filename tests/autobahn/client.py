"""A sansnet WebSocket client loop for the Autobahn|Testsuite fuzzingserver.

    python tests/autobahn/client.py [asyncio|uvloop|trio]

Reads the case count from $AB_URL (default ws://127.0.0.1:9001), runs every case
echoing each message back, then asks for the report. Library defaults throughout.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

import anyio

import sansnet

BASE = os.environ.get("AB_URL", "ws://127.0.0.1:9001")
AGENT = os.environ.get("AB_AGENT", "sansnet")


async def run_case(url: str) -> None:
    try:
        ws = await sansnet.socket(url)
    except sansnet.NetError as error:
        print(f"{url}: {error}", flush=True)
        return
    async with ws:
        async for message in ws:
            try:
                await ws.send(message)
            except sansnet.ConnectionClosed:
                break


async def main() -> None:
    ws = await sansnet.socket(f"{BASE}/getCaseCount")
    count = int(await ws.next() or 0)
    await ws.close()
    print(f"sansnet {sansnet.__version__} client: {count} cases", flush=True)
    for case in range(1, count + 1):
        await run_case(f"{BASE}/runCase?case={case}&agent={quote(AGENT)}")
    ws = await sansnet.socket(f"{BASE}/updateReports?agent={quote(AGENT)}")
    await ws.next()
    await ws.close()


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    options = {"use_uvloop": True} if backend == "uvloop" else {}
    anyio.run(main, backend="trio" if backend == "trio" else "asyncio", backend_options=options)
