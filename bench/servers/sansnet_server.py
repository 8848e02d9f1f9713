"""sansnet's own server (``sansnet.serve``) on asyncio, uvloop or trio.

    python bench/servers/sansnet_server.py --port 8000 --backend asyncio|uvloop|trio

If this sansnet build has no server yet (``sansnet.serve`` / ``sansnet.ServeResponse``
missing, or the package fails to import), it prints ``not available (<error>)`` on stderr
and exits with status 3, which bench_server.py reports as such instead of a number.
"""

from __future__ import annotations

import sys

from _common import BODY_64K, HELLO, HOST, NOT_FOUND, parse_args

NOT_AVAILABLE = 3  # exit status bench_server.py reads as "sansnet: not available"


def main() -> None:
    args = parse_args(__doc__, backend=("asyncio", "uvloop", "trio"))
    try:
        import anyio

        import sansnet

        serve = sansnet.serve
        ServeConfig = sansnet.ServeConfig
        ServeResponse = sansnet.ServeResponse
    except (ImportError, AttributeError) as exc:
        print(f"not available ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
        sys.exit(NOT_AVAILABLE)

    hello = HELLO.decode()
    not_found = NOT_FOUND.decode()

    # A response object per request, as an application would write it.
    async def handler(request):  # type: ignore[no-untyped-def]  # request: sansnet.ServeRequest
        path = request.path
        if path == "/" and request.method == "GET":
            return hello  # str -> 200 text/plain
        if path == "/64k" and request.method == "GET":
            return ServeResponse(body=BODY_64K)  # status defaults to 200
        if path == "/echo" and request.method == "POST":
            return ServeResponse(headers={"content-type": "application/json"}, body=request.body)
        return ServeResponse(status=404, body=not_found)

    async def run(port: int) -> None:
        async with serve(port, ServeConfig(handle_request=handler, address=HOST)):
            await anyio.sleep_forever()

    if args.backend == "uvloop":
        anyio.run(run, args.port, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(run, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
