"""Serve :mod:`app` with uvicorn and hypercorn, in one process, on 127.0.0.1.

    python serve_app.py CERTFILE KEYFILE CAFILE

Binds four sockets on free ports: ``uvicorn`` (plain HTTP), ``hypercorn`` (plain
HTTP), ``https`` (uvicorn with CERTFILE/KEYFILE) and ``mtls`` (uvicorn that also
requires a client certificate issued by CAFILE); prints their ports as one JSON line
once all are listening, and serves until its standard input is closed (so it never
outlives the test session that started it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import sys
from pathlib import Path

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app import app


def _listen() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0), backlog=256)
    sock.set_inheritable(True)
    return sock


async def main(certfile: str, keyfile: str, cafile: str) -> None:
    logging.disable(logging.WARNING)  # servers log client disconnects the tests cause
    loop = asyncio.get_running_loop()
    sockets = {name: _listen() for name in ("uvicorn", "hypercorn", "https", "mtls")}
    common = {"lifespan": "off", "log_level": "critical", "access_log": False}
    servers = [
        uvicorn.Server(uvicorn.Config(app, **common)),  # type: ignore[arg-type]
        uvicorn.Server(
            uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, **common)  # type: ignore[arg-type]
        ),
        uvicorn.Server(
            uvicorn.Config(
                app,
                ssl_certfile=certfile,
                ssl_keyfile=keyfile,
                ssl_ca_certs=cafile,
                ssl_cert_reqs=ssl.CERT_REQUIRED,
                **common,  # type: ignore[arg-type]
            )
        ),
    ]
    for server in servers:
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    stop = asyncio.Event()
    config = HypercornConfig()
    config.bind = [f"fd://{sockets['hypercorn'].fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.loglevel = "CRITICAL"
    tasks = [
        asyncio.ensure_future(servers[0].serve(sockets=[sockets["uvicorn"]])),
        asyncio.ensure_future(servers[1].serve(sockets=[sockets["https"]])),
        asyncio.ensure_future(servers[2].serve(sockets=[sockets["mtls"]])),
        asyncio.ensure_future(hypercorn_serve(app, config, shutdown_trigger=stop.wait)),  # type: ignore[arg-type]
    ]
    for _ in range(500):
        if all(server.started for server in servers):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # hypercorn has no started flag; its socket is already bound
    ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
    print(json.dumps(ports), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    for server in servers:
        server.should_exit = True
    stop.set()
    await asyncio.wait(tasks, timeout=5)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
