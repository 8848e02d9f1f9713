"""Raw TCP throughput: ``sansnet.tcp.connect`` against a bare asyncio
``StreamReader``/``StreamWriter`` pair (and anyio on trio), moving the same bytes to and
from the same local peer.

    python bench/bench_tcp.py                   # 256 MiB each way, best of 3 rounds
    python bench/bench_tcp.py --mib 64 --rounds 1

The peer (an ``asyncio.Protocol`` in its own process) is a sink for ``up`` (it counts
what arrives until EOF, then answers the count) and a source for ``down`` (it sends the
number of bytes asked for, then closes). Each client runs in a fresh process, one after
the other, writing or reading 64 KiB at a time; both processes are pinned to their own
CPU when ``taskset`` allows it. The time runs from connect to the last byte (up: the
sink's count back). Target (issue #18): sansnet >= 0.8x the asyncio streams.

Reading the down column: plain asyncio hands the protocol ~64 KiB chunks, which a 64 KiB
read returns as they are; uvloop hands over ~248 KiB chunks, so each 64 KiB read is a
copied slice (sansnet-uvloop down is ~0.5x for that reason; 256 KiB reads avoid it).
Run-to-run spread on a shared 2-vCPU VM is large (the baseline moved 2.7-3.8 GB/s up):
compare rows within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, pinning_available, table, target_line, versions

CHUNK = 64 * 1024
CLIENTS = {
    "asyncio-streams": ("asyncio", False),
    "sansnet-asyncio": ("asyncio", False),
    "sansnet-uvloop": ("asyncio", True),
    "anyio-trio": ("trio", False),
    "sansnet-trio": ("trio", False),
}
BASELINE = "asyncio-streams"


# ------------------------------------------------------------------------------ the peer


class Peer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.head = b""
        self.mode: bytes | None = None
        self.count = 0
        self.to_send = 0
        self.paused = False

    def data_received(self, data: bytes) -> None:
        if self.mode is None:
            self.head += data
            if len(self.head) < 9:
                return
            self.mode, self.to_send = self.head[:1], struct.unpack("!Q", self.head[1:9])[0]
            data = self.head[9:]
            if self.mode == b"D":
                self.send_more()
                return
        self.count += len(data)

    def eof_received(self) -> bool:
        if self.mode == b"U":
            self.transport.write(struct.pack("!Q", self.count))
        return False  # asyncio closes once the count is sent

    def send_more(self) -> None:
        block = bytes(CHUNK)
        while self.to_send and not self.paused:
            size = min(CHUNK, self.to_send)
            self.transport.write(block if size == CHUNK else block[:size])
            self.to_send -= size
        if not self.to_send and not self.transport.is_closing():
            self.transport.write_eof()  # the client reads the end, then closes; so do we

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.send_more()


async def run_peer(port_file: str) -> None:
    server = await asyncio.get_running_loop().create_server(Peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))  # noqa: ASYNC240 - once, before serving
    await server.serve_forever()


# ---------------------------------------------------------------------------- clients


def request(direction: str, size: int) -> bytes:
    return (b"U" if direction == "up" else b"D") + struct.pack("!Q", size)


async def asyncio_streams(port: int, direction: str, size: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(direction, size))
    if direction == "up":
        block, sent = bytes(CHUNK), 0
        while sent < size:
            writer.write(block)
            await writer.drain()
            sent += CHUNK
        writer.write_eof()
        answer = await reader.readexactly(8)
        writer.close()
        return int(struct.unpack("!Q", answer)[0])
    received = 0
    while chunk := await reader.read(CHUNK):
        received += len(chunk)
    writer.close()
    return received


async def sansnet_tcp(port: int, direction: str, size: int) -> int:
    import sansnet

    async with await sansnet.tcp.connect("127.0.0.1", port) as stream:
        await stream.write(request(direction, size))
        if direction == "up":
            block, sent = bytes(CHUNK), 0
            while sent < size:
                await stream.write(block)
                sent += CHUNK
            await stream.send_eof()
            answer = b""
            while len(answer) < 8:
                answer += await stream.read(8 - len(answer))
            return int(struct.unpack("!Q", answer)[0])
        received = 0
        while chunk := await stream.read(CHUNK):
            received += len(chunk)
        return received


async def anyio_stream(port: int, direction: str, size: int) -> int:
    import anyio

    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request(direction, size))
        if direction == "up":
            block, sent = bytes(CHUNK), 0
            while sent < size:
                await stream.send(block)
                sent += CHUNK
            await stream.send_eof()
            answer = b""
            while len(answer) < 8:
                answer += await stream.receive(8 - len(answer))
            return int(struct.unpack("!Q", answer)[0])
        received = 0
        try:
            while True:
                received += len(await stream.receive(CHUNK))
        except anyio.EndOfStream:
            return received


def run_client(name: str, port: int, direction: str, size: int) -> float:
    import anyio

    import sansnet  # imported before the clock starts, as every client's modules

    backend, uvloop = CLIENTS[name]
    function = {"asyncio-streams": asyncio_streams, "anyio-trio": anyio_stream}.get(
        name, sansnet_tcp
    )
    options = {"use_uvloop": True} if uvloop else {}

    async def timed() -> tuple[int, float]:
        started = time.perf_counter()
        moved = await function(port, direction, size)
        return moved, time.perf_counter() - started

    assert sansnet.tcp.connect is not None
    moved, elapsed = anyio.run(timed, backend=backend, backend_options=options)
    if moved != size:
        raise SystemExit(f"{name} {direction}: moved {moved} bytes, expected {size}")
    return elapsed


# ------------------------------------------------------------------------------- main


def pinned(command: list[str], cpu: str, pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *command] if pin else command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB each way (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--direction", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    if args.peer:
        asyncio.run(run_peer(args.peer))
        return
    if args.client:
        print(run_client(args.client, args.port, args.direction, size))
        return

    pin = not args.no_pin and pinning_available("0", "1")
    port_file = Path(f"/tmp/bench_tcp_port.{os.getpid()}")
    me = [sys.executable, __file__, "--mib", str(args.mib)]
    peer = subprocess.Popen(pinned([*me, "--peer", str(port_file)], "1", pin))
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or peer.poll() is not None:
                raise SystemExit("the peer did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for direction in ("up", "down"):
                for name in CLIENTS:
                    command = [*me, "--client", name, "--port", str(port)]
                    command += ["--direction", direction]
                    output = subprocess.run(
                        pinned(command, "0", pin), capture_output=True, text=True, check=True
                    ).stdout
                    seconds = float(output.strip().splitlines()[-1])
                    key = (name, direction)
                    best[key] = min(best.get(key, float("inf")), seconds)
    finally:
        peer.terminate()
        peer.wait(10)
        port_file.unlink(missing_ok=True)

    print(f"machine: {machine()}; {versions(['anyio', 'trio', 'uvloop'])}")
    print(f"{args.mib} MiB each way, 64 KiB writes/reads, best of {args.rounds}; pinned: {pin}")
    rows = []
    for name in CLIENTS:
        row = [name]
        for direction in ("up", "down"):
            seconds = best[(name, direction)]
            ratio = best[(BASELINE, direction)] / seconds
            row += [f"{args.mib / seconds:,.0f}", f"{ratio:.2f}x"]
        rows.append(row)
    header = ["client", "up MiB/s", f"up vs {BASELINE}", "down MiB/s", f"down vs {BASELINE}"]
    print(table("TCP throughput", header, rows))
    print()
    for direction in ("up", "down"):
        ratio = best[(BASELINE, direction)] / best[("sansnet-asyncio", direction)]
        print(target_line(f"sansnet-asyncio {direction} vs {BASELINE}", ratio, 0.8, []))


if __name__ == "__main__":
    main()
