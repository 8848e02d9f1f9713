"""The app bench_workers.py serves with ``sansnet serve workers_app:handler --workers N``:
bench_server.py's hello route (13 bytes, text/plain), everything else 404."""

from __future__ import annotations

from _common import HELLO

import sansnet

_HELLO = HELLO.decode()


async def handler(request: sansnet.ServeRequest) -> str | sansnet.ServeResponse:
    if request.path == "/":
        return _HELLO
    return sansnet.ServeResponse(404, body="Not Found")
