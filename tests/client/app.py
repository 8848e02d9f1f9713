"""The ASGI application the client tests talk to, served by uvicorn and hypercorn.

Plain ASGI (no framework), so what the client sees is what these servers do with it:

* ``/status/{code}``: that status, body ``status {code}``.
* ``/echo``: any method; a JSON description of the request (method, raw path and
  query, parsed query pairs, headers as pairs, body as text and its length and hash).
* ``/redirect/{n}``: a chain: 302 to ``/redirect/{n-1}`` (absolute URLs when
  ``?absolute=1``), then 200 ``done`` at 0.
* ``/redirect-to?url=U&status=S``: a redirect with ``Location: U`` (status 302 by
  default), after reading the request body.
* ``/encoded/{coding}``: :data:`TEXT` compressed with gzip, deflate (zlib),
  deflate-raw (sent as ``deflate``), br or zstd; ``/encoded/unknown`` says
  ``Content-Encoding: compress``.
* ``/encoded-pieces/{coding}``: the same, chunked, 3 bytes per chunk.
* ``/zeros.gz?mib=N``: N MiB of zeros, gzip-compressed.
* ``/chunks?n=N``: N pieces without a Content-Length (the servers send them chunked).
* ``/stream?mib=N``: N MiB in 1 MiB pieces, chunked, produced as it is sent.
* ``/slow?delay=S``: waits S seconds before answering.
* ``/slow-body?pieces=N&delay=S``: the head at once, then a piece every S seconds.
* ``/barrier?n=N&key=K&timeout=T``: answers 200 once N requests with key K are all
  waiting at once, or 504 after T seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import brotli

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # Python < 3.14
    from backports import zstd

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TEXT = ("Hello, compressed world! " * 200).encode()
MiB = 1024 * 1024
_PIECE = b"x" * MiB


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": ("gzip", gzip.compress(TEXT)),
    "deflate": ("deflate", zlib.compress(TEXT)),
    "deflate-raw": ("deflate", _raw_deflate(TEXT)),
    "br": ("br", brotli.compress(TEXT)),
    "zstd": ("zstd", zstd.compress(TEXT)),
    "unknown": ("compress", b"not really compressed"),
}

_barriers: dict[str, tuple[int, asyncio.Event]] = {}


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    fields = headers if headers is not None else [(b"content-type", b"text/plain")]
    if status not in (204, 304):
        fields = [*fields, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _origin(scope: Scope) -> str:
    host = dict(scope["headers"]).get(b"host", b"").decode()
    return f"{scope['scheme']}://{host}"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))

    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        await _read_body(receive)
        await _respond(send, code, b"" if code in (204, 304) else f"status {code}".encode())

    elif path == "/echo":
        body = await _read_body(receive)
        description = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "query": parse_qsl(scope["query_string"].decode(), keep_blank_values=True),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("utf-8", errors="replace"),
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "scheme": scope["scheme"],
        }
        await _respond(
            send, 200, json.dumps(description).encode(), [(b"content-type", b"application/json")]
        )

    elif path.startswith("/redirect/"):
        n = int(path.rsplit("/", 1)[1])
        await _read_body(receive)
        if n <= 0:
            await _respond(send, 200, b"done")
            return
        location = f"/redirect/{n - 1}"
        if query.get("absolute"):
            location = f"{_origin(scope)}{location}?absolute=1"
        await _respond(send, 302, b"", [(b"location", location.encode())])

    elif path.endswith("/redirect-to"):  # also under any prefix, for relative Locations
        status = int(query.get("status", "302"))
        await _read_body(receive)  # else the server may reset the connection under the client
        await _respond(send, status, b"see elsewhere", [(b"location", query["url"].encode())])

    elif path.startswith("/encoded/"):
        coding, data = ENCODED[path.rsplit("/", 1)[1]]
        await _respond(
            send,
            200,
            data,
            [(b"content-type", b"text/plain"), (b"content-encoding", coding.encode())],
        )

    elif path.startswith("/encoded-pieces/"):  # the encoded body 3 bytes at a time, chunked
        coding, data = ENCODED[path.rsplit("/", 1)[1]]
        headers = [(b"content-encoding", coding.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(data), 3):
            await send({"type": "http.response.body", "body": data[i : i + 3], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    elif path == "/zeros.gz":  # N MiB of zeros, gzip-compressed into a few KiB
        data = gzip.compress(bytes(int(query["mib"]) * MiB))
        await _respond(
            send,
            200,
            data,
            [(b"content-type", b"application/octet-stream"), (b"content-encoding", b"gzip")],
        )

    elif path == "/chunks":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(int(query.get("n", "5"))):
            await send({"type": "http.response.body", "body": b"piece %d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(int(query["mib"])):
            await send({"type": "http.response.body", "body": _PIECE, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    elif path == "/slow":
        await asyncio.sleep(float(query["delay"]))
        await _respond(send, 200, b"slow")

    elif path == "/slow-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(int(query["pieces"])):
            await asyncio.sleep(float(query["delay"]))
            await send({"type": "http.response.body", "body": b"p%d" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    elif path == "/barrier":
        n, key, timeout = int(query["n"]), query["key"], float(query.get("timeout", "5"))
        count, event = _barriers.get(key, (0, asyncio.Event()))
        _barriers[key] = (count + 1, event)
        if count + 1 >= n:
            event.set()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            await _respond(send, 504, b"the barrier was not reached")
        else:
            await _respond(send, 200, f"{n} arrived".encode())

    else:
        await _respond(send, 404, b"no such route")
