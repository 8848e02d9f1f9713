"""The ceiling: a bare ``asyncio.Protocol`` that parses no more than it needs to answer.

    python bench/servers/asyncio_protocol_server.py --port 8000 --loop asyncio|uvloop

It finds the end of each request head, reads the method and path from the request line and
Content-Length / Connection from the header lines, answers from prebuilt responses, keeps the
connection alive unless asked to close, and handles pipelined requests naively (answers every
complete request already in the buffer, in order). No validation, no chunked bodies, no
timeouts: it is a measuring stick for what the event loop allows, not a server to deploy.
"""

from __future__ import annotations

import asyncio

from _common import HOST, parse_args, route


def _head(status: int, content_type: bytes, length: int, close: bool) -> bytes:
    reason = b"OK" if status == 200 else b"Not Found"
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"server: bare-asyncio\r\n",
            b"content-type: " + content_type + b"\r\n",
            b"content-length: %d\r\n" % length,
            b"connection: close\r\n" if close else b"",
            b"\r\n",
        ]
    )


def _prebuilt(method: str, path: str, close: bool) -> bytes:
    status, content_type, body = route(method, path)
    assert body is not None
    return _head(status, content_type, len(body), close) + body


# (method, path, close) -> whole response; anything else is a 404 or an echo built per request.
PREBUILT = {
    (method, path, close): _prebuilt(method.decode(), path.decode(), close)
    for method, path in ((b"GET", b"/"), (b"GET", b"/64k"))
    for close in (False, True)
}
NOT_FOUND = {close: _prebuilt("GET", "/404", close) for close in (False, True)}


class HTTPProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "transport")

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        transport = self.transport
        assert transport is not None
        out = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ", 2)
            if len(parts) != 3:
                close = True
                out.append(NOT_FOUND[True])
                buffer = b""
                break
            method, path = parts[0], parts[1]
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop >= 0 else len(lower)].strip())
            close = b"\r\nconnection: close" in lower
            if len(buffer) < end + 4 + length:
                break  # body not all here yet: keep the whole request buffered
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            response = PREBUILT.get((method, path, close))
            if response is None:
                if method == b"POST" and path == b"/echo":
                    response = _head(200, b"application/json", len(body), close) + body
                else:
                    response = NOT_FOUND[close]
            out.append(response)
            if close:
                buffer = b""
                break
        self.buffer = buffer
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTPProtocol, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args(__doc__, loop=("asyncio", "uvloop"))
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
