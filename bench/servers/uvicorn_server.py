"""uvicorn serving the shared raw ASGI app.

    python bench/servers/uvicorn_server.py --port 8000 --http h11|httptools --loop asyncio|uvloop

The loop defaults to plain asyncio (uvicorn would pick uvloop itself when installed), so the
asyncio rows of the table compare servers on the same event loop.
"""

from __future__ import annotations

import math

import uvicorn
from _common import HOST, asgi_app, parse_args


def main() -> None:
    args = parse_args(
        __doc__, idle_timeout=True, http=("h11", "httptools"), loop=("asyncio", "uvloop")
    )
    options = {}
    if args.idle_timeout is not None:
        options["timeout_keep_alive"] = math.ceil(args.idle_timeout)
    config = uvicorn.Config(
        asgi_app,
        host=HOST,
        port=args.port,
        http=args.http,
        loop=args.loop,
        lifespan="off",
        access_log=False,
        log_level="warning",
        **options,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
