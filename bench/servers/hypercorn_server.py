"""Hypercorn serving the shared raw ASGI app, with its asyncio or its trio worker.

python bench/servers/hypercorn_server.py --port 8000 --worker asyncio|trio
"""

from __future__ import annotations

from _common import HOST, asgi_app, parse_args
from hypercorn.config import Config


def main() -> None:
    args = parse_args(__doc__, idle_timeout=True, worker=("asyncio", "trio"))
    config = Config()
    config.bind = [f"{HOST}:{args.port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    if args.idle_timeout is not None:
        config.keep_alive_timeout = args.idle_timeout
    if args.worker == "trio":
        import trio
        from hypercorn.trio import serve as trio_serve

        trio.run(trio_serve, asgi_app, config)
    else:
        import asyncio

        from hypercorn.asyncio import serve as asyncio_serve

        asyncio.run(asyncio_serve(asgi_app, config))


if __name__ == "__main__":
    main()
