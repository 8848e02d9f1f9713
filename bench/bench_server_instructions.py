"""HTTP server cost per request in CPU instructions, counted by callgrind: side by side,
and the same from run to run whatever else the machine is doing.

    python bench/bench_server_instructions.py                # the default servers (~6 min)
    python bench/bench_server_instructions.py --servers sansnet-asyncio,uvicorn-h11
    python bench/bench_server_instructions.py --requests 4000

bench_server.py measures requests per second with wrk, which is what a user sees, but on a
shared machine two runs of the same server can differ by 20% or more, enough to hide or
invent a change of a few percent. This benchmark counts instead: each server (the scripts of
bench/servers/, the same as bench_server.py's) runs under ``valgrind --tool=callgrind``; a
client in this process opens 10 keep-alive connections and sends ``GET /`` on each in turn
(the request wrk sends: the request line and Host) until a warm-up of 300 requests is done;
the counters are zeroed (``callgrind_control -z``), ``--requests`` more are sent, the
counters are dumped (``callgrind_control -d``), and the instructions executed in the server
process in between, divided by the requests, are its cost per request. Two runs of the same
server and code agree to within 0.1%.

What it does not count: time in the kernel (the ``send``/``recv`` system calls, the same work
for every server, about a quarter of a request's time in the wrk runs), cache misses and
branch mispredictions. So the ratios here are larger than the wrk ratios, and read as "user
space work per request"; they tell whether a change to sansnet made a request cheaper, and by
how much, without the noise. Rates in req/s stay bench_server.py's job.

Needs valgrind (``apt-get install -y valgrind``) and the peers of bench_server.py.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, parse_names, table, versions, wait_listening
from bench_server import SERVER_BY_NAME, SERVERS_DIR, ServerSpec, free_port

DEFAULT_SERVERS = (
    "uvicorn-h11",
    "hypercorn",
    "hypercorn-trio",
    "h11-protocol",
    "h11-mypyc-protocol",
    "sansnet-asyncio",
    "sansnet-asyncio-pure",
    "sansnet-trio",
    "sansnet-trio-pure",
)
REFERENCES = ("uvicorn-h11", "hypercorn", "hypercorn-trio")
CONNECTIONS = 10
WARMUP_REQUESTS = 300
START_TIMEOUT = 180.0  # seconds: a Python server importing its stack under valgrind is slow
IO_TIMEOUT = 60.0  # seconds for one response under valgrind
STOP_TIMEOUT = 30.0


def load(port: int, requests: int) -> None:
    """Send ``requests`` keep-alive ``GET /`` over CONNECTIONS connections, one request per
    connection at a time, reading each whole 13-byte answer before the next round."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    connections = [
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        for _ in range(CONNECTIONS)
    ]
    try:
        sent = 0
        while sent < requests:
            for connection in connections:
                connection.sendall(request)
            for connection in connections:
                received = b""
                while not received.endswith(b"Hello, world!"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"the server closed the connection: {received!r}")
                    received += chunk
            sent += CONNECTIONS
    finally:
        for connection in connections:
            connection.close()


def instructions_per_request(spec: ServerSpec, requests: int, folder: str) -> float:
    """Run ``spec`` under callgrind and count its instructions per request (see the module
    docstring)."""
    port = free_port()
    out = os.path.join(folder, f"{spec.name}.%p")
    environment = {**os.environ, **dict(spec.env)}
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(SERVERS_DIR / spec.script),
            *spec.args,
            "--port",
            str(port),
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_listening(port, process, START_TIMEOUT):
            raise RuntimeError(f"{spec.name} did not start listening")
        load(port, WARMUP_REQUESTS)
        subprocess.run(
            ["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True
        )
        load(port, requests)
        subprocess.run(
            ["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True
        )
        dump = f"{out.replace('%p', str(process.pid))}.1"
        deadline = time.monotonic() + STOP_TIMEOUT
        while not os.path.exists(dump) and time.monotonic() < deadline:
            time.sleep(0.1)
        text = Path(dump).read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction count in {dump}")
    return int(match.group(1)) / requests


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    names = parse_names(args.servers, SERVER_BY_NAME, "server")
    print(f"# HTTP server instructions per request — {machine()}")
    print("# " + versions(["sansnet", "uvicorn", "h11", "h11-mypyc", "hypercorn", "anyio", "trio"]))
    print(
        f"# callgrind; {CONNECTIONS} keep-alive connections, GET / (13-byte body), "
        f"{args.requests} requests counted after {WARMUP_REQUESTS}"
    )
    counts: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="sansnet-callgrind-") as folder:
        for name in names:
            try:
                counts[name] = instructions_per_request(SERVER_BY_NAME[name], args.requests, folder)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                counts[name] = f"failed: {exc}"
            value = counts[name]
            shown = f"{value:,.0f}" if isinstance(value, float) else value
            print(f"#   {name}: {shown}", flush=True)
            for leftover in glob.glob(os.path.join(folder, "*")):
                with contextlib.suppress(OSError):
                    os.remove(leftover)
    header = ["server", "instructions / request", *(f"{ref} / it" for ref in REFERENCES)]
    rows = []
    for name in names:
        value = counts[name]
        if not isinstance(value, float):
            rows.append([name, value, *([""] * len(REFERENCES))])
            continue
        ratios = []
        for reference in REFERENCES:
            other = counts.get(reference)
            ratios.append(f"{other / value:.2f}x" if isinstance(other, float) else "")
        rows.append([name, f"{value:,.0f}", *ratios])
    print(table("instructions per hello-world request (fewer is better)", header, rows))


if __name__ == "__main__":
    main()
