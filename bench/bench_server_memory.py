"""HTTP server memory benchmark: RSS growth per idle keep-alive connection, sansnet beside its
peers in the same run.

    python bench/bench_server_memory.py                  # 1,000 connections per server
    python bench/bench_server_memory.py --servers sansnet-asyncio,uvicorn-h11 --connections 2000

For each server (the scripts in bench/servers/, started as bench_server.py starts them): start
it, check it answers every endpoint correctly, warm it up with a few short-lived connections,
read its VmRSS from /proc/PID/status, then open N connections that each send one keep-alive
`GET /`, read the whole response and stay open, idle. After a short settle, read VmRSS again,
count how many connections the server still holds open, close them all, stop the server.
Reported: RSS before and after, and the growth per connection in KiB.

Servers whose keep-alive idle timeout can be set get --idle-timeout 120 so they keep the idle
connections for the whole measurement; the others (sansnet, the bare ones) keep their own
default, and the "open" column shows whether they kept every connection.

Target (issue #6): sansnet grows by at most 32 KiB per idle keep-alive connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, parse_names, pinning_available, table, versions
from bench_server import (
    PEER_PACKAGES,
    SERVER_BY_NAME,
    SERVER_CPU,
    RunningServer,
    ServerUnavailable,
    check_server,
)
from servers._common import HELLO, HOST

DEFAULT_SERVERS = ("sansnet-asyncio", "uvicorn-h11", "uvicorn-httptools", "hypercorn")
TARGET_KIB = 32.0
TARGET_SERVERS = ("sansnet-asyncio", "sansnet-uvloop", "sansnet-trio")
IDLE_TIMEOUT = 120.0  # for servers that take --idle-timeout: longer than any measurement
OPEN_TIMEOUT = 60.0  # seconds to open and prime all connections
WARMUP_CONNECTIONS = 50
SETTLE_SECONDS = 1.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])  # "VmRSS:   12345 kB"
    raise RuntimeError(f"no VmRSS for process {pid}")


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-file limit (inherited by the servers we start) to at least
    ``needed`` if the hard limit allows; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response with a Content-Length body (all our servers send one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200") or body != HELLO:
        raise RuntimeError(f"unexpected response: {head[:40]!r} {body[:40]!r}")
    return body


async def open_primed(
    port: int, count: int, concurrency: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections, each having sent one keep-alive request and read its response."""
    gate = asyncio.Semaphore(concurrency)
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.open_connection(HOST, port)
            connections.append((reader, writer))
            writer.write(REQUEST)
            await read_response(reader)

    try:
        await asyncio.gather(*(one() for _ in range(count)))
    except BaseException:
        await close_all(connections)
        raise
    return connections


async def close_all(connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in connections:
        writer.close()
    for _, writer in connections:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


@dataclass
class Result:
    before_kib: int = 0
    after_kib: int = 0
    still_open: int = 0
    seconds_to_open: float = 0.0
    note: str = ""

    def per_connection_kib(self, count: int) -> float:
        return (self.after_kib - self.before_kib) / count


async def measure(server: RunningServer, count: int, concurrency: int) -> Result:
    # Warm-up: the first connections pay for lazy imports, caches and free lists.
    warm = await open_primed(server.port, WARMUP_CONNECTIONS, concurrency)
    await close_all(warm)
    await asyncio.sleep(SETTLE_SECONDS)
    before = rss_kib(server.pid)

    started = time.monotonic()
    connections = await asyncio.wait_for(open_primed(server.port, count, concurrency), OPEN_TIMEOUT)
    seconds_to_open = time.monotonic() - started
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_kib(server.pid)
        # A connection the server closed has seen EOF by now (its response was read in full).
        still_open = sum(1 for reader, _ in connections if not reader.at_eof())
    finally:
        await close_all(connections)
    return Result(before, after, still_open, seconds_to_open)


def bench_one(name: str, count: int, concurrency: int, pin: bool) -> Result:
    spec = SERVER_BY_NAME[name]
    extra = ("--idle-timeout", f"{IDLE_TIMEOUT:g}") if spec.idle_timeout else ()
    try:
        with RunningServer(spec, pin, extra) as server:
            problems = check_server(server.port)
            if problems:
                return Result(note="wrong answers, not measured: " + "; ".join(problems[:3]))
            try:
                return asyncio.run(measure(server, count, concurrency))
            except (
                OSError,
                RuntimeError,
                asyncio.TimeoutError,
                asyncio.IncompleteReadError,
            ) as exc:
                alive = "" if server.alive() else f" (server gone: {server.failure()})"
                return Result(note=f"failed: {type(exc).__name__}: {exc}{alive}"[:300])
    except ServerUnavailable as exc:
        return Result(note=str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma list (default {','.join(DEFAULT_SERVERS)}; any of bench_server.py --list)",
    )
    parser.add_argument("--connections", type=int, default=1000, help="idle connections (1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="connects in flight (50)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server with taskset")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 10_000:
        raise SystemExit("--connections must be 1..10000")
    if not 1 <= args.concurrency <= 1000:
        raise SystemExit("--concurrency must be 1..1000")
    names = parse_names(args.servers, SERVER_BY_NAME, "server")
    pin = not args.no_pin and pinning_available(SERVER_CPU)
    needed = args.connections + WARMUP_CONNECTIONS + 256
    limit = raise_fd_limit(needed)
    if limit < needed:
        raise SystemExit(f"open-file limit {limit} is below the {needed} this run needs")

    print(f"# HTTP server memory per idle keep-alive connection — {machine()}")
    print(f"# {versions(PEER_PACKAGES)}")
    print(
        f"# {args.connections} connections per server, each one GET / then idle; "
        f"RSS from /proc/PID/status; open-file limit {limit}; "
        + (f"server pinned to CPU {SERVER_CPU}" if pin else "not pinned"),
        flush=True,
    )
    rows = []
    results: dict[str, Result] = {}
    for name in names:
        result = bench_one(name, args.connections, args.concurrency, pin)
        results[name] = result
        if result.note:
            rows.append([name, "-", "-", "-", "-", result.note])
            print(f"#   {name}: {result.note}", flush=True)
            continue
        per = result.per_connection_kib(args.connections)
        notes = []
        if result.still_open < args.connections:
            notes.append(
                f"server closed {args.connections - result.still_open} idle connections "
                "before the measurement"
            )
        if name in TARGET_SERVERS:
            notes.append(
                f"target <= {TARGET_KIB:g} KiB: {'met' if per <= TARGET_KIB else 'NOT met'}"
            )
        rows.append(
            [
                name,
                f"{result.before_kib / 1024:.1f} MiB",
                f"{result.after_kib / 1024:.1f} MiB",
                f"{per:.1f}",
                f"{result.still_open}/{args.connections}",
                "; ".join(notes),
            ]
        )
        print(
            f"#   {name}: {per:.1f} KiB per connection (opened in {result.seconds_to_open:.1f} s)",
            flush=True,
        )
    print(
        table(
            f"RSS growth for {args.connections} idle keep-alive connections",
            ["server", "RSS before", "RSS after", "KiB per connection", "open", "notes"],
            rows,
        )
    )
    reference = results.get("uvicorn-h11")
    if reference is not None and not reference.note:
        base = reference.per_connection_kib(args.connections)
        lines = [
            f"- {name}: {results[name].per_connection_kib(args.connections) / base:.2f}x"
            for name in TARGET_SERVERS
            if name in results and not results[name].note and base > 0
        ]
        if lines:
            print("\nMemory per connection relative to uvicorn-h11 (same run):")
            print("\n".join(lines))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
