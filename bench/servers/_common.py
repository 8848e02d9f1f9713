"""What every benchmark server serves, and the flags they share.

Each script in this directory binds 127.0.0.1 and answers the same four endpoints:

    GET  /      -> 200 text/plain "Hello, world!" (13 bytes)
    GET  /64k   -> 200 application/octet-stream, 65,536 bytes (BODY_64K)
    POST /echo  -> 200 application/json, the request body echoed back
    anything else -> 404 text/plain "not found"

The ASGI servers (uvicorn, hypercorn, anycorn) all run the one raw ASGI app below, so they
differ only in the server. Access logs are off everywhere: a benchmark measures the server,
not its logging.
"""

from __future__ import annotations

import argparse

HELLO = b"Hello, world!"
# A pattern rather than one repeated byte, so a truncated or shifted body fails the check.
BODY_64K = bytes(range(256)) * 256
NOT_FOUND = b"not found"
assert len(HELLO) == 13
assert len(BODY_64K) == 65_536

HOST = "127.0.0.1"


def parse_args(
    description: str | None, *, idle_timeout: bool = False, **choices: tuple[str, ...]
) -> argparse.Namespace:
    """``--port N`` (required), one ``--<name>`` per choice list (first value is the default),
    and ``--idle-timeout S`` for servers whose keep-alive idle timeout can be set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    if idle_timeout:
        parser.add_argument(
            "--idle-timeout",
            type=float,
            default=None,
            help="keep-alive idle timeout in seconds (default: the server's own default)",
        )
    for name, values in choices.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=values, default=values[0])
    return parser.parse_args()


def route(method: str, path: str) -> tuple[int, bytes, bytes | None]:
    """(status, content-type, fixed body) for a request; body None means echo the request body."""
    if path == "/" and method == "GET":
        return 200, b"text/plain", HELLO
    if path == "/64k" and method == "GET":
        return 200, b"application/octet-stream", BODY_64K
    if path == "/echo" and method == "POST":
        return 200, b"application/json", None
    return 404, b"text/plain", NOT_FOUND


def h11_answer(h11, conn, request, chunks: list[bytes]) -> bytes:  # type: ignore[no-untyped-def]
    """The bytes a bare h11 server (of module ``h11``: h11 or h11_mypyc) answers
    ``request`` with, its body received in ``chunks``: the route's response, whole."""
    status, content_type, body = route(request.method.decode(), request.target.decode())
    if body is None:
        body = b"".join(chunks)
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    out: bytes = conn.send(h11.Response(status_code=status, headers=headers))
    out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    return out


async def asgi_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """The raw ASGI app shared by uvicorn, hypercorn and anycorn (no framework on top)."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind != "http":
        return
    status, content_type, body = route(scope["method"], scope["path"])
    if body is None:
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
