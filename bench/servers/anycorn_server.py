"""anycorn (Hypercorn ported to anyio) serving the shared raw ASGI app, on asyncio or trio.

python bench/servers/anycorn_server.py --port 8000 --backend asyncio|trio
"""

from __future__ import annotations

import anyio
from _common import HOST, asgi_app, parse_args
from anycorn import Config, serve


def main() -> None:
    args = parse_args(__doc__, idle_timeout=True, backend=("asyncio", "trio"))
    config = Config()
    config.bind = [f"{HOST}:{args.port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    if args.idle_timeout is not None:
        config.keep_alive_timeout = args.idle_timeout
    anyio.run(serve, asgi_app, config, backend=args.backend)


if __name__ == "__main__":
    main()
