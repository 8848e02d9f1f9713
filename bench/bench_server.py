"""HTTP server benchmark: sansnet.serve against its peers, side by side, measured with wrk.

    python bench/bench_server.py                 # every default server, every scenario, 10 s runs
    python bench/bench_server.py --quick         # 3 s runs
    python bench/bench_server.py --servers sansnet-asyncio,uvicorn-h11 --scenarios hello
    python bench/bench_server.py --list          # the servers and scenarios it knows

Each server is a script in bench/servers/ that binds 127.0.0.1 and serves the same four
endpoints (see bench/servers/_common.py). For each server this starts the script as a
subprocess on a free port, pinned to CPU 1 (`taskset -c 1`) while wrk runs pinned to CPU 0,
waits until it answers, checks it answers every endpoint with the right bytes (a server that
does not is reported, not measured), warms it up, runs wrk once per scenario, checks it again,
and stops it. Then it prints one table per scenario: req/s, p99 latency, ratios against
uvicorn-h11 and hypercorn (and, for trio servers, against hypercorn-trio), and any wrk errors.

Scenarios (wrk -t1 -c50 unless told otherwise):
    hello        GET / with keep-alive, 13-byte body
    hello-close  GET / with `Connection: close` (a new connection per request)
    64k          GET /64k, a 65,536-byte body
    echo         POST /echo with a small JSON document, echoed back (servers/post_echo.lua)

Targets (issue #17, hello-world): sansnet on asyncio on pure h11 >= 1.3x uvicorn-h11 (which
runs on h11 too), on h11_mypyc >= 1.8x uvicorn-h11; sansnet >= 2.5x hypercorn on asyncio and on
trio. The `-pure` rows set SANSNET_PURE_H11=1. The ratios are measured in the same run, never
assumed.
If this sansnet build has no server yet, its rows say "not available (...)" and the rest of the
table still runs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    fmt_share,
    load_average,
    machine,
    machine_busy_seconds,
    parse_names,
    pinning_available,
    process_cpu_seconds,
    table,
    target_line,
    versions,
)
from servers._common import BODY_64K, HELLO, HOST

SERVERS_DIR = Path(__file__).resolve().parent / "servers"
NOT_AVAILABLE_EXIT = (
    3  # what bench/servers/sansnet_server.py exits with when sansnet.serve is missing
)

START_TIMEOUT = 20.0  # seconds for a server to answer its first request
REQUEST_TIMEOUT = 5.0  # seconds per request of the correctness check
STOP_TIMEOUT = 5.0  # seconds after SIGTERM (then SIGKILL, then as long again)
WRK_GRACE = 30.0  # seconds wrk may run past its -d before it is killed
WARMUP_SECONDS = 1
SERVER_CPU, WRK_CPU = "1", "0"
NOISY_OTHER_CPU = 0.25  # flag runs where the rest of the machine used more than this of a CPU

ECHO_DOCUMENT = (
    b'{"id":12345,"name":"sansnet","tags":["http","bench","echo"],"active":true,"score":9.5}'
)


# ---------------------------------------------------------------- servers and scenarios


@dataclass(frozen=True)
class ServerSpec:
    name: str
    script: str
    args: tuple[str, ...]
    backend: str  # "asyncio", "uvloop" or "trio": the event loop the server runs on
    idle_timeout: bool = False  # the script takes --idle-timeout
    default: bool = True  # in the default run (the others only with --servers)
    env: tuple[tuple[str, str], ...] = ()  # extra environment variables for the server


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("uvicorn-h11", "uvicorn_server.py", ("--http", "h11"), "asyncio", True),
    ServerSpec("uvicorn-httptools", "uvicorn_server.py", ("--http", "httptools"), "asyncio", True),
    ServerSpec("hypercorn", "hypercorn_server.py", ("--worker", "asyncio"), "asyncio", True),
    ServerSpec("hypercorn-trio", "hypercorn_server.py", ("--worker", "trio"), "trio", True),
    ServerSpec("anycorn", "anycorn_server.py", ("--backend", "asyncio"), "asyncio", True),
    ServerSpec("aiohttp", "aiohttp_server.py", ("--loop", "asyncio"), "asyncio", True),
    ServerSpec("asyncio-protocol", "asyncio_protocol_server.py", ("--loop", "asyncio"), "asyncio"),
    ServerSpec("h11-anyio", "h11_anyio_server.py", ("--backend", "asyncio"), "asyncio"),
    # The ceilings on h11: bare h11 and bare h11_mypyc on a raw asyncio.Protocol.
    ServerSpec("h11-protocol", "h11_protocol_server.py", ("--h11", "h11"), "asyncio"),
    ServerSpec("h11-mypyc-protocol", "h11_protocol_server.py", ("--h11", "h11_mypyc"), "asyncio"),
    # sansnet on the h11 build it finds (h11_mypyc with the speedups extra), and on pure
    # h11 (SANSNET_PURE_H11=1), the build uvicorn-h11 and hypercorn run on.
    ServerSpec("sansnet-asyncio", "sansnet_server.py", ("--backend", "asyncio"), "asyncio"),
    ServerSpec(
        "sansnet-asyncio-pure",
        "sansnet_server.py",
        ("--backend", "asyncio"),
        "asyncio",
        env=(("SANSNET_PURE_H11", "1"),),
    ),
    ServerSpec("sansnet-uvloop", "sansnet_server.py", ("--backend", "uvloop"), "uvloop"),
    ServerSpec("sansnet-trio", "sansnet_server.py", ("--backend", "trio"), "trio"),
    ServerSpec(
        "sansnet-trio-pure",
        "sansnet_server.py",
        ("--backend", "trio"),
        "trio",
        env=(("SANSNET_PURE_H11", "1"),),
    ),
    # Only with --servers: the same peers on uvloop or trio, for a like-for-like loop.
    ServerSpec(
        "uvicorn-httptools-uvloop",
        "uvicorn_server.py",
        ("--http", "httptools", "--loop", "uvloop"),
        "uvloop",
        True,
        default=False,
    ),
    ServerSpec(
        "aiohttp-uvloop", "aiohttp_server.py", ("--loop", "uvloop"), "uvloop", True, default=False
    ),
    ServerSpec(
        "asyncio-protocol-uvloop",
        "asyncio_protocol_server.py",
        ("--loop", "uvloop"),
        "uvloop",
        default=False,
    ),
    ServerSpec(
        "anycorn-trio", "anycorn_server.py", ("--backend", "trio"), "trio", True, default=False
    ),
    ServerSpec(
        "h11-anyio-trio", "h11_anyio_server.py", ("--backend", "trio"), "trio", default=False
    ),
)
SERVER_BY_NAME = {spec.name: spec for spec in SERVERS}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    script: str  # wrk Lua script in bench/servers/
    wrk_args: tuple[str, ...] = ()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "hello-world GET, keep-alive", "/", "wrk_report.lua"),
    Scenario(
        "hello-close",
        "hello-world GET, Connection: close",
        "/",
        "wrk_report.lua",
        ("-H", "Connection: close"),
    ),
    Scenario("64k", "GET with a 64 KiB body, keep-alive", "/64k", "wrk_report.lua"),
    Scenario("echo", "JSON POST echo, keep-alive", "/echo", "post_echo.lua"),
)
SCENARIO_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}

PEER_PACKAGES = (
    "sansnet",
    "uvicorn",
    "httptools",
    "h11",
    "h11-mypyc",
    "wsproto",
    "hypercorn",
    "anycorn",
    "aiohttp",
    "uvloop",
    "anyio",
    "trio",
)
# (row, reference, goal): the hello-world ratios issue #17 sets targets for. The
# sansnet-asyncio row runs on h11_mypyc when the speedups extra is installed.
TARGETS = (
    ("sansnet-asyncio-pure", "uvicorn-h11", 1.3),
    ("sansnet-asyncio", "uvicorn-h11", 1.8),
    ("sansnet-asyncio", "hypercorn", 2.5),
    ("sansnet-trio", "hypercorn-trio", 2.5),
)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ServerUnavailable(Exception):
    """The server script exited or never answered; str() is the reason for the table."""


@dataclass
class RunningServer:
    """One server script as a subprocess: start, wait until it answers, stop."""

    spec: ServerSpec
    pin: bool
    extra_args: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            str(SERVERS_DIR / self.spec.script),
            "--port",
            str(self.port),
            *self.spec.args,
            *self.extra_args,
        ]
        if self.pin:
            command = ["taskset", "-c", SERVER_CPU, *command]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **dict(self.spec.env)},
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        log = self.log
        if log is None:
            return ""
        log.seek(0)
        return log.read().decode(errors="replace")

    def failure(self) -> str:
        """Why the process is gone: the script's own last line, or its exit status."""
        assert self.process is not None
        code = self.process.returncode
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {code}"
        if code == NOT_AVAILABLE_EXIT and last.startswith("not available"):
            return last
        return f"exited with status {code}: {last[:200]}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServerUnavailable(self.failure())
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                    return
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"did not answer within {timeout:.0f} s on port {self.port}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> RunningServer:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------- correctness check


def _expect(problems: list[str], what: str, ok: bool, got: object) -> None:
    if not ok:
        problems.append(f"{what}: got {got!r}"[:160])


def check_server(port: int) -> list[str]:
    """Every endpoint answered with the right status and bytes, over one keep-alive
    connection, then `Connection: close` honoured. Returns the problems found (none = good)."""
    problems: list[str] = []
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        _expect(problems, "GET / status", response.status == 200, response.status)
        _expect(problems, "GET / body", body == HELLO, body[:40])
        content_type = response.getheader("content-type", "")
        _expect(problems, "GET / content-type", content_type.startswith("text/plain"), content_type)

        conn.request("GET", "/64k")
        response = conn.getresponse()
        body = response.read()
        _expect(problems, "GET /64k status", response.status == 200, response.status)
        _expect(problems, "GET /64k body", body == BODY_64K, f"{len(body)} bytes")

        conn.request(
            "POST", "/echo", body=ECHO_DOCUMENT, headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        body = response.read()
        _expect(problems, "POST /echo status", response.status == 200, response.status)
        _expect(problems, "POST /echo body", body == ECHO_DOCUMENT, body[:40])
        content_type = response.getheader("content-type", "")
        _expect(
            problems,
            "POST /echo content-type",
            content_type.startswith("application/json"),
            content_type,
        )

        conn.request("GET", "/no/such/page")
        response = conn.getresponse()
        response.read()
        _expect(problems, "GET /no/such/page status", response.status == 404, response.status)

        conn.request("GET", "/")  # the connection is still usable after a 404
        response = conn.getresponse()
        body = response.read()
        _expect(problems, "GET / after 404", (response.status, body) == (200, HELLO), body[:40])
    except (OSError, http.client.HTTPException) as exc:
        problems.append(f"keep-alive requests failed: {type(exc).__name__}: {exc}")
    finally:
        conn.close()

    # Connection: close -> the whole response, then the server closes the connection.
    try:
        with socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            received = b""
            deadline = time.monotonic() + REQUEST_TIMEOUT
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            else:
                problems.append("Connection: close: the server did not close the connection")
        _expect(
            problems,
            "Connection: close response",
            received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n\r\n" + HELLO),
            received[-60:],
        )
    except (OSError, TimeoutError) as exc:
        problems.append(f"Connection: close request failed: {type(exc).__name__}: {exc}")
    return problems


# ---------------------------------------------------------------- wrk


@dataclass
class Measurement:
    requests_per_second: float = 0.0
    p99_us: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    # CPU used while wrk ran, in shares of one CPU: the server process, wrk, and everything
    # else on the machine (other processes, plus kernel time charged to no process).
    server_cpu: float | None = None
    wrk_cpu: float | None = None
    other_cpu: float | None = None
    note: str = ""  # set instead of numbers when nothing was measured

    @property
    def measured(self) -> bool:
        return not self.note


def children_cpu_seconds() -> float:
    """CPU time of the children this process has waited for (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    port: int,
    scenario: Scenario,
    *,
    duration: float,
    threads: int,
    connections: int,
    pin: bool,
    server_pid: int | None = None,
) -> Measurement:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "-s",
        str(SERVERS_DIR / scenario.script),
        *scenario.wrk_args,
        f"http://{HOST}:{port}{scenario.path}",
    ]
    if pin:
        command = ["taskset", "-c", WRK_CPU, *command]
    server_before = process_cpu_seconds(server_pid) if server_pid else None
    busy_before = machine_busy_seconds()
    wrk_before = children_cpu_seconds()
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + WRK_GRACE, check=False
        )
    except subprocess.TimeoutExpired:
        return Measurement(note=f"wrk did not finish within {duration + WRK_GRACE:.0f} s")
    elapsed = time.monotonic() - started
    wrk_cpu = (children_cpu_seconds() - wrk_before) / elapsed
    server_after = process_cpu_seconds(server_pid) if server_pid else None
    busy_after = machine_busy_seconds()
    server_cpu = other_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = (server_after - server_before) / elapsed
        if busy_before is not None and busy_after is not None:
            other_cpu = max(0.0, (busy_after - busy_before) / elapsed - server_cpu - wrk_cpu)

    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return Measurement(
            note=f"wrk failed (exit {done.returncode}): {detail[-1] if detail else 'no output'}"
        )
    errors = {
        name: int(data[key])
        for name, key in (
            ("non-2xx/3xx", "non_2xx_3xx"),
            ("connect", "connect_errors"),
            ("read", "read_errors"),
            ("write", "write_errors"),
            ("timeout", "timeouts"),
        )
        if data[key]
    }
    if data["requests"] == 0:
        return Measurement(errors=errors, note="no request completed")
    return Measurement(
        requests_per_second=data["requests"] / (data["duration_us"] / 1e6),
        p99_us=float(data["latency_p99_us"]),
        errors=errors,
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
        other_cpu=other_cpu,
    )


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk ?"
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk ?"


# ---------------------------------------------------------------- reporting


def fmt_rps(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,.0f}"


def fmt_latency(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in errors.items())


def ratio(results: dict[str, Measurement], row: str, reference: str) -> float | None:
    a, b = results.get(row), results.get(reference)
    if a is None or b is None or not a.measured or not b.measured or not b.requests_per_second:
        return None
    return a.requests_per_second / b.requests_per_second


def scenario_table(
    scenario: Scenario, names: Sequence[str], results: dict[str, Measurement]
) -> str:
    rows = []
    for name in names:
        result = results[name]
        if not result.measured:
            rows.append([name, "-", "-", "", "", "", "", result.note])
            continue
        cells = []
        for reference in ("uvicorn-h11", "hypercorn", "hypercorn-trio"):
            if reference == "hypercorn-trio" and SERVER_BY_NAME[name].backend != "trio":
                cells.append("")
                continue
            value = ratio(results, name, reference)
            cells.append("" if value is None else f"{value:.2f}x")
        notes = []
        if result.errors:
            notes.append(f"wrk errors: {fmt_errors(result.errors)}")
        if result.other_cpu is not None and result.other_cpu > NOISY_OTHER_CPU:
            notes.append(f"busy machine: {result.other_cpu:.0%} of a CPU used by others")
        rows.append(
            [
                name,
                fmt_rps(result.requests_per_second),
                fmt_latency(result.p99_us),
                "/".join(
                    fmt_share(x) for x in (result.server_cpu, result.wrk_cpu, result.other_cpu)
                ),
                *cells,
                "; ".join(notes),
            ]
        )
    return table(
        scenario.title,
        [
            "server",
            "req/s",
            "p99",
            "CPU % srv/wrk/other",
            "vs uvicorn-h11",
            "vs hypercorn",
            "vs hypercorn-trio",
            "notes",
        ],
        rows,
    )


def target_lines(results: dict[str, Measurement]) -> list[str]:
    lines = []
    for row, reference, goal in TARGETS:
        why = [f"{name} not run" for name in (row, reference) if name not in results]
        why += [
            f"{name}: {results[name].note}"
            for name in (row, reference)
            if name in results and not results[name].measured
        ]
        lines.append(
            target_line(f"- {row} vs {reference}", ratio(results, row, reference), goal, why)
        )
    return lines


# ---------------------------------------------------------------- main


def bench_server(
    spec: ServerSpec,
    scenarios: Sequence[Scenario],
    *,
    duration: float,
    threads: int,
    connections: int,
    pin: bool,
) -> dict[str, Measurement]:
    """All scenarios against one server, started once. Returns scenario name -> result."""

    def everywhere(note: str) -> dict[str, Measurement]:
        return {scenario.name: Measurement(note=note) for scenario in scenarios}

    try:
        with RunningServer(spec, pin) as server:
            problems = check_server(server.port)
            if problems:
                return everywhere("wrong answers, not measured: " + "; ".join(problems[:3]))
            warm = run_wrk(
                server.port,
                SCENARIOS[0],
                duration=WARMUP_SECONDS,
                threads=threads,
                connections=connections,
                pin=pin,
            )
            if not warm.measured:
                return everywhere(f"warm-up failed: {warm.note}")
            results = {}
            for scenario in scenarios:
                if not server.alive():
                    results[scenario.name] = Measurement(note="server died: " + server.failure())
                    continue
                results[scenario.name] = run_wrk(
                    server.port,
                    scenario,
                    duration=duration,
                    threads=threads,
                    connections=connections,
                    pin=pin,
                    server_pid=server.pid,
                )
            # Check again: keep the numbers, but flag a server left answering wrongly.
            after = check_server(server.port) if server.alive() else ["server died"]
            if after:
                for result in results.values():
                    result.errors["broken after the run"] = len(after)
            return results
    except ServerUnavailable as exc:
        return everywhere(str(exc))


def best(a: Measurement | None, b: Measurement) -> Measurement:
    """Across rounds keep the fastest measured run (the one the machine disturbed least)."""
    if a is None or (
        b.measured and (not a.measured or b.requests_per_second > a.requests_per_second)
    ):
        return b
    return a


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs (overrides --duration)")
    parser.add_argument("--servers", help="comma list of servers (default: the default set)")
    parser.add_argument("--scenarios", help="comma list of scenarios (default: all)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole set this many times, keep each row's best run (1)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c (50)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--list", action="store_true", help="list servers and scenarios, exit")
    args = parser.parse_args(argv)

    if args.list:
        for spec in SERVERS:
            extra = "" if spec.default else "   (only with --servers)"
            print(f"server    {spec.name:26} {spec.script} {' '.join(spec.args)}{extra}")
        for scenario in SCENARIOS:
            print(f"scenario  {scenario.name:26} {scenario.title}")
        return

    duration = 3 if args.quick else args.duration
    if not 1 <= duration <= 600:
        raise SystemExit("--duration must be between 1 and 600 seconds")
    if not 1 <= args.rounds <= 10:
        raise SystemExit("--rounds must be between 1 and 10")
    if not 1 <= args.connections <= 10_000 or not 1 <= args.threads <= 64:
        raise SystemExit("--connections must be 1..10000 and --threads 1..64")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    names = (
        parse_names(args.servers, SERVER_BY_NAME, "server")
        if args.servers
        else [spec.name for spec in SERVERS if spec.default]
    )
    scenarios = [
        SCENARIO_BY_NAME[name]
        for name in (
            parse_names(args.scenarios, SCENARIO_BY_NAME, "scenario")
            if args.scenarios
            else list(SCENARIO_BY_NAME)
        )
    ]
    pin = not args.no_pin and pinning_available(SERVER_CPU, WRK_CPU)

    print(f"# HTTP server benchmark — {machine()}")
    print(
        f"# {wrk_version()}, -t{args.threads} -c{args.connections} -d{duration:g}s; {versions(PEER_PACKAGES)}"
    )
    print(
        f"# server pinned to CPU {SERVER_CPU}, wrk to CPU {WRK_CPU} (taskset)"
        if pin
        else "# not pinned (taskset missing, fewer than 2 CPUs, or --no-pin)"
    )
    estimate = args.rounds * len(names) * (WARMUP_SECONDS + len(scenarios) * duration + 2)
    print(
        f"# {len(names)} servers x {len(scenarios)} scenarios x {args.rounds} round(s), "
        f"about {estimate:.0f} s; load average before: {load_average()}",
        flush=True,
    )

    by_scenario: dict[str, dict[str, Measurement]] = {s.name: {} for s in scenarios}
    for round_number in range(1, args.rounds + 1):
        for name in names:
            started = time.monotonic()
            results = bench_server(
                SERVER_BY_NAME[name],
                scenarios,
                duration=duration,
                threads=args.threads,
                connections=args.connections,
                pin=pin,
            )
            for scenario_name, result in results.items():
                rows = by_scenario[scenario_name]
                rows[name] = best(rows.get(name), result)
            if any(result.measured for result in results.values()):
                status = ", ".join(
                    f"{scenario} {fmt_rps(r.requests_per_second) if r.measured else '-'}"
                    for scenario, r in results.items()
                )
            else:
                status = next(iter(results.values())).note
            prefix = f"round {round_number}: " if args.rounds > 1 else ""
            print(f"#   {prefix}{name}: {status} ({time.monotonic() - started:.0f} s)", flush=True)

    for scenario in scenarios:
        print(scenario_table(scenario, names, by_scenario[scenario.name]))
        if scenario.name == "hello":
            print("\nTargets (issue #17, hello-world, measured in this run):")
            print("\n".join(target_lines(by_scenario["hello"])))

    print(
        f"\n# load average after: {load_average()}. 'CPU % srv/wrk/other': the share of one CPU "
        "used while wrk ran by the server process, by wrk, and by everything else (other "
        "processes and kernel time charged to neither). The server is the bottleneck when "
        f"srv is near 100; rows with other > {NOISY_OTHER_CPU:.0%} ran on a busy machine."
    )
    if args.json:
        payload = {
            "machine": machine(),
            "wrk": wrk_version(),
            "versions": versions(PEER_PACKAGES),
            "duration_s": duration,
            "rounds": args.rounds,
            "threads": args.threads,
            "connections": args.connections,
            "pinned": pin,
            "results": {
                scenario: {
                    name: {
                        "requests_per_second": r.requests_per_second if r.measured else None,
                        "p99_us": r.p99_us if r.measured else None,
                        "server_cpu": r.server_cpu,
                        "wrk_cpu": r.wrk_cpu,
                        "other_cpu": r.other_cpu,
                        "errors": r.errors,
                        "note": r.note,
                    }
                    for name, r in rows.items()
                }
                for scenario, rows in by_scenario.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
