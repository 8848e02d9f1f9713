"""aiohttp's own web server (aiohttp.web, no ASGI), on asyncio or uvloop.

python bench/servers/aiohttp_server.py --port 8000 --loop asyncio|uvloop
"""

from __future__ import annotations

import asyncio

from _common import BODY_64K, HELLO, HOST, NOT_FOUND, parse_args
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=HELLO, content_type="text/plain")


async def body_64k(request: web.Request) -> web.Response:
    return web.Response(body=BODY_64K, content_type="application/octet-stream")


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/json")


async def not_found(request: web.Request) -> web.Response:
    return web.Response(status=404, body=NOT_FOUND, content_type="text/plain")


async def serve(port: int, idle_timeout: float | None) -> None:
    app = web.Application()
    app.router.add_get("/", hello, allow_head=False)
    app.router.add_get("/64k", body_64k, allow_head=False)
    app.router.add_post("/echo", echo)
    app.router.add_route("*", "/{tail:.*}", not_found)
    options = {} if idle_timeout is None else {"keepalive_timeout": idle_timeout}
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        await asyncio.Event().wait()  # serve until the process is stopped
    finally:
        await runner.cleanup()


def main() -> None:
    args = parse_args(__doc__, idle_timeout=True, loop=("asyncio", "uvloop"))
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.port, args.idle_timeout))
    else:
        asyncio.run(serve(args.port, args.idle_timeout))


if __name__ == "__main__":
    main()
