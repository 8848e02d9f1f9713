"""HTTP client benchmark: sansnet against httpx, aiohttp and http.client, side by side.

    python bench/bench_client.py [--quick]

Every client fetches the same 13-byte body ("Hello, world!") from one nginx on
127.0.0.1 (started here with its own minimal config in a temporary directory, on a
free port, and stopped after; ``apt-get install nginx`` if it is missing):

* sequential: 2,000 GETs one after the other on one keep-alive connection;
* concurrent: 20 tasks x 200 GETs sharing one client (http.client: not applicable).

Targets (issue #17), on asyncio: sequential >= 3x httpx, concurrent >= 10x httpx (httpx
runs on h11 too); on h11_mypyc (the speedups extra) also >= 1.0x aiohttp in both. The h11
build is the one sansnet finds: run again with SANSNET_PURE_H11=1 for the pure-h11
figures. sansnet is also measured on uvloop and trio. Each figure is the best of ``ROUNDS`` runs after a warm-up run, the clients
taking turns within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anyio
from _harness import machine, table

import sansnet
from sansnet.protocol import H11_BUILD

BODY = b"Hello, world!"
SEQUENTIAL = 2000
TASKS, PER_TASK = 20, 200
ROUNDS = 5

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "Hello, world!";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """nginx on 127.0.0.1 with a throwaway config; a context manager."""

    def __init__(self) -> None:
        self.binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        if self.binary is None:
            raise SystemExit(
                "nginx is not installed: `apt-get install -y nginx` (Debian) to run this "
                "benchmark. Nothing was measured."
            )
        directory = self._dir.name
        conf = Path(directory) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=directory, port=self.port))
        self._process = subprocess.Popen(
            [self.binary, "-c", str(conf), "-p", directory, "-e", f"{directory}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(500):  # at most 5 s
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if sock.recv(1024).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                time.sleep(0.01)
        self.__exit__()
        raise SystemExit("nginx did not start; see its error.log.")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._dir.cleanup()


# ------------------------------------------------------------------------- clients
# Each returns the seconds taken; every response body is checked.


async def sansnet_sequential(url: str) -> float:
    async with sansnet.Client() as client:
        await client.request(url)  # connect outside the timed loop
        started = time.perf_counter()
        for _ in range(SEQUENTIAL):
            response = await client.request(url)
            assert response.body == BODY
        return time.perf_counter() - started


async def sansnet_concurrent(url: str) -> float:
    async with sansnet.Client() as client:
        await client.request(url)

        async def worker() -> None:
            for _ in range(PER_TASK):
                response = await client.request(url)
                assert response.body == BODY

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(worker)
        return time.perf_counter() - started


async def httpx_sequential(url: str) -> float:
    import httpx

    async with httpx.AsyncClient() as client:
        await client.get(url)
        started = time.perf_counter()
        for _ in range(SEQUENTIAL):
            response = await client.get(url)
            assert response.content == BODY
        return time.perf_counter() - started


async def httpx_concurrent(url: str) -> float:
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=TASKS)
    async with httpx.AsyncClient(limits=limits) as client:
        await client.get(url)

        async def worker() -> None:
            for _ in range(PER_TASK):
                response = await client.get(url)
                assert response.content == BODY

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return time.perf_counter() - started


async def aiohttp_sequential(url: str) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            await response.read()
        started = time.perf_counter()
        for _ in range(SEQUENTIAL):
            async with session.get(url) as response:
                assert await response.read() == BODY
        return time.perf_counter() - started


async def aiohttp_concurrent(url: str) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            await response.read()

        async def worker() -> None:
            for _ in range(PER_TASK):
                async with session.get(url) as response:
                    assert await response.read() == BODY

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return time.perf_counter() - started


def stdlib_sequential(url: str) -> float:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/")
    connection.getresponse().read()
    started = time.perf_counter()
    for _ in range(SEQUENTIAL):
        connection.request("GET", "/")
        assert connection.getresponse().read() == BODY
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


# ------------------------------------------------------------------------- running


def interleaved_best(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The best time of each run over ``rounds`` rounds, the runs taking turns within
    each round, so that a noisy neighbour on the machine slows them all alike."""
    for run in runs.values():
        run()  # warm-up: imports, caches, first connections
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            best[name] = min(best[name], run())
    return best


def on(backend: str, func: Callable[[str], Awaitable[float]], url: str) -> Callable[[], float]:
    if backend == "uvloop":
        return lambda: anyio.run(func, url, backend="asyncio", backend_options={"use_uvloop": True})
    return lambda: anyio.run(func, url, backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    args = parser.parse_args()
    rounds = 2 if args.quick else ROUNDS
    with Nginx() as server:
        url = server.url
        cases: list[tuple[str, Callable[[], float], Callable[[], float] | None]] = [
            (
                "sansnet (asyncio)",
                on("asyncio", sansnet_sequential, url),
                on("asyncio", sansnet_concurrent, url),
            ),
            (
                "sansnet (uvloop)",
                on("uvloop", sansnet_sequential, url),
                on("uvloop", sansnet_concurrent, url),
            ),
            (
                "sansnet (trio)",
                on("trio", sansnet_sequential, url),
                on("trio", sansnet_concurrent, url),
            ),
            (
                "httpx (asyncio)",
                on("asyncio", httpx_sequential, url),
                on("asyncio", httpx_concurrent, url),
            ),
            (
                "aiohttp (asyncio)",
                on("asyncio", aiohttp_sequential, url),
                on("asyncio", aiohttp_concurrent, url),
            ),
            ("http.client (sync)", lambda: stdlib_sequential(url), None),
        ]
        seq_times = interleaved_best({name: seq for name, seq, _ in cases}, rounds)
        print("measured the sequential runs", file=sys.stderr, flush=True)
        conc_times = interleaved_best({name: conc for name, _, conc in cases if conc}, rounds)
        sequential = {name: SEQUENTIAL / elapsed for name, elapsed in seq_times.items()}
        concurrent = {name: TASKS * PER_TASK / elapsed for name, elapsed in conc_times.items()}

    ours = "sansnet (asyncio)"
    rows = []
    for name, seq_rate in sequential.items():
        conc_rate = concurrent.get(name)
        rows.append(
            [
                name,
                f"{seq_rate:,.0f}",
                f"{sequential[ours] / seq_rate:.2f}x",
                f"{conc_rate:,.0f}" if conc_rate else "n/a",
                f"{concurrent[ours] / conc_rate:.2f}x" if conc_rate else "n/a",
            ]
        )
    print(f"\n{machine()}; sansnet on {H11_BUILD}; nginx on 127.0.0.1; best of {rounds} runs")
    print(
        table(
            f"GET of a 13-byte body: {SEQUENTIAL} sequential; {TASKS} tasks x {PER_TASK} concurrent",
            ["client", "sequential req/s", "sansnet/it", "concurrent req/s", "sansnet/it"],
            rows,
        )
    )
    checks = [
        ("sequential vs httpx", sequential[ours] / sequential["httpx (asyncio)"], 3.0),
        ("concurrent vs httpx", concurrent[ours] / concurrent["httpx (asyncio)"], 10.0),
    ]
    if H11_BUILD == "h11_mypyc":  # the aiohttp targets are set for the compiled build
        checks += [
            ("sequential vs aiohttp", sequential[ours] / sequential["aiohttp (asyncio)"], 1.0),
            ("concurrent vs aiohttp", concurrent[ours] / concurrent["aiohttp (asyncio)"], 1.0),
        ]
    print(f"\nTargets (issue #17, asyncio, sansnet on {H11_BUILD}):")
    for label, ratio, target in checks:
        verdict = "met" if ratio >= target else "MISSED"
        print(f"  {label}: {ratio:.2f}x (target >= {target:.1f}x) {verdict}")


if __name__ == "__main__":
    main()
