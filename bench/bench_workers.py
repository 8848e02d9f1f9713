"""Workers: hello-world keep-alive with 1 and 2 sansnet worker processes, and uvicorn
(h11) with ``--workers 2`` beside them, on this machine, wrk on the same machine.

    python bench/bench_workers.py                  # 10 s runs, best of 3 rounds
    python bench/bench_workers.py --duration 3 --rounds 1

Servers: ``sansnet serve workers_app:handler --workers N`` (bench/servers/workers_app.py,
the same 13-byte body as bench_server.py's hello), and ``uvicorn _common:asgi_app
--workers 2 --http h11 --loop asyncio`` (the raw ASGI app of bench/servers/_common.py),
both without their access log (``--no-access-log``: each is on by default, and a log
line per request is a benchmark of the logging module).
wrk runs ``-t1 -c50`` unpinned: on a 2-core machine wrk takes a good part of one core,
so two workers cannot double one worker's rate; the ratio is bounded by wrk's own CPU.
Targets (issue #20): 2 workers >= 1.5x one worker, and >= 1.3x uvicorn-h11 --workers 2
(both on the plain asyncio loop; the uvloop row is for information).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import machine, table, target_line, versions

SANSNET = ["-m", "sansnet", "serve", "workers_app:handler", "--no-access-log"]
SERVERS = {
    "sansnet 1 worker": [*SANSNET, "--workers", "1"],
    "sansnet 2 workers": [*SANSNET, "--workers", "2"],
    "sansnet 2 workers uvloop": [*SANSNET, "--workers", "2", "--backend", "uvloop"],
    "uvicorn-h11 2 workers": [
        "-m",
        "uvicorn",
        "_common:asgi_app",
        "--workers",
        "2",
        "--http",
        "h11",
        "--loop",
        "asyncio",
        "--no-access-log",
        "--log-level",
        "warning",
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(name: str, port: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, *SERVERS[name], "--port", str(port)]
    if name.startswith("uvicorn"):
        args += ["--host", "127.0.0.1"]
    process = subprocess.Popen(
        args, cwd=HERE / "servers", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"Hello, world!" in probe.recv(4096):
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not answer on port {port}")


def measure(name: str, duration: int) -> float:
    port = free_port()
    process = start(name, port)
    try:
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t1", "-c50", "-d1s", url], capture_output=True, check=True)
        report = subprocess.run(
            ["wrk", "-t1", "-c50", f"-d{duration}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    errors = re.search(r"Socket errors: .*", report)
    if errors or "Non-2xx" in report:
        print(f"  {name}: {errors.group(0) if errors else 'non-2xx answers'}", file=sys.stderr)
    match = re.search(r"Requests/sec:\s+([\d.]+)", report)
    assert match, report
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    best = dict.fromkeys(SERVERS, 0.0)
    for _ in range(args.rounds):
        for name in SERVERS:
            best[name] = max(best[name], measure(name, args.duration))
    print(f"machine: {machine()}, {os.cpu_count()} CPUs; {versions(['uvicorn', 'h11'])}")
    print(f"wrk -t1 -c50 -d{args.duration}s, hello keep-alive, best of {args.rounds}")
    one = best["sansnet 1 worker"]
    rows = [[name, f"{rate:,.0f}", f"{rate / one:.2f}x"] for name, rate in best.items()]
    print(table("Workers", ["server", "req/s", "vs sansnet 1 worker"], rows))
    print()
    two = best["sansnet 2 workers"]
    print(target_line("sansnet 2 workers vs 1 worker", two / one, 1.5, []))
    uvicorn = best["uvicorn-h11 2 workers"]
    print(target_line("sansnet 2 workers vs uvicorn-h11 2 workers", two / uvicorn, 1.3, []))


if __name__ == "__main__":
    main()
