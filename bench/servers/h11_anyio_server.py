"""A bare h11-on-anyio loop: what a minimal server on the same building blocks as sansnet
(an h11-style sans-IO engine driven by anyio streams) does without any of sansnet's features.

    python bench/servers/h11_anyio_server.py --port 8000 --backend asyncio|uvloop|trio

One task per connection: read, feed h11, answer each complete request, start the next cycle;
close when h11 says the connection must close or the peer goes away. No timeouts or limits
beyond h11's own.
"""

from __future__ import annotations

import anyio
import h11
from _common import HOST, h11_answer, parse_args
from anyio.abc import SocketStream

READ_SIZE = 65_536


async def handle(stream: SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive(READ_SIZE)
                    conn.receive_data(data)
                    continue
                if type(event) is h11.Request:
                    chunks = []
                    while True:
                        part = conn.next_event()
                        if part is h11.NEED_DATA:
                            conn.receive_data(await stream.receive(READ_SIZE))
                        elif type(part) is h11.Data:
                            chunks.append(part.data)
                        elif type(part) is h11.EndOfMessage:
                            break
                        else:
                            return
                    out = h11_answer(h11, conn, event, chunks)
                    await stream.send(out)
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                    continue
                return  # ConnectionClosed, or anything unexpected: drop the connection
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            h11.ProtocolError,
        ):
            return


async def serve(port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=port, backlog=1024)
    await listener.serve(handle)


def main() -> None:
    args = parse_args(__doc__, backend=("asyncio", "uvloop", "trio"))
    if args.backend == "uvloop":
        anyio.run(serve, args.port, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(serve, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
