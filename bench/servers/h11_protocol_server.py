"""The ceiling on h11: bare h11 (or h11_mypyc) on a raw ``asyncio.Protocol``.

    python bench/servers/h11_protocol_server.py --port 8000 --h11 h11|h11_mypyc --loop asyncio|uvloop

Each connection drives one h11 connection from ``data_received``: feed the bytes, answer
every complete request (the same routes as every server here), start the next cycle, close
when h11 says so. No task per connection, no timeouts, no limits beyond h11's, no checks of
its own: every server that runs each request through h11 does at least this work, so its
rate is what such a server can reach on this machine.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from _common import HOST, h11_answer, parse_args


def protocol_class(h11: Any) -> type[asyncio.Protocol]:
    class H11Protocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.conn = h11.Connection(h11.SERVER)
            self.transport: asyncio.Transport | None = None
            self.request: Any = None
            self.chunks: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            conn = self.conn
            transport = self.transport
            assert transport is not None
            try:
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    kind = type(event)
                    if kind is h11.Request:
                        self.request = event
                        self.chunks = []
                    elif kind is h11.Data:
                        self.chunks.append(event.data)
                    elif kind is h11.EndOfMessage:
                        out = h11_answer(h11, conn, self.request, self.chunks)
                        transport.write(out)
                        if conn.our_state is h11.MUST_CLOSE:
                            transport.close()
                            return
                        conn.start_next_cycle()
                    elif event is h11.NEED_DATA:
                        return
                    else:  # PAUSED can't happen after start_next_cycle; ConnectionClosed
                        transport.close()
                        return
            except h11.ProtocolError:
                transport.close()

        def eof_received(self) -> bool | None:
            return None  # close the transport

    return H11Protocol


async def serve(port: int, h11: Any) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol_class(h11), HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args(__doc__, h11=("h11", "h11_mypyc"), loop=("asyncio", "uvloop"))
    h11 = importlib.import_module(args.h11)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.port, h11))
    else:
        asyncio.run(serve(args.port, h11))


if __name__ == "__main__":
    main()
