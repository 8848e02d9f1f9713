"""WebSocket benchmark: echo round trips between a client and a server of the same library,
sansnet beside websockets, aiohttp, trio-websocket and a bare wsproto-on-anyio pair.

    python bench/bench_websocket.py                     # default libraries, both workloads
    python bench/bench_websocket.py --quick             # 2,000 small / 10 large messages
    python bench/bench_websocket.py --rounds 3          # best of 3 (the numbers for the note)
    python bench/bench_websocket.py --libraries sansnet-asyncio,websockets --workloads small
    python bench/bench_websocket.py --list              # libraries (with extra uvloop/trio rows)

Workloads, compression off, one connection, one message in flight at a time:
    small   10,000 sequential 49-byte text messages, each echoed back   -> messages/s
    large   50 sequential 1 MiB binary messages, each echoed back       -> MiB/s (of messages)

For each library, in each round: its echo server (bench/servers/ws_peers.py) starts in a
subprocess pinned to CPU 1 (`taskset -c 1`); for each workload a client of the same library
starts in another subprocess pinned to CPU 0, connects, sends a warm-up (untimed), then the
timed messages, checking every echo's type, length and content (a wrong echo stops the run,
and the row reads "wrong echo, not measured"), and reports its wall time and the CPU used by
the server, by the client and by the rest of the machine meanwhile. Then the server stops.
Separate processes on separate CPUs measure every library the same way, and keep a slow
client from eating the server's CPU (and the other way round). Every step is bounded in time.

Targets (issue #17, sansnet on wsproto), evaluated from the same run: small messages,
sansnet-asyncio >= 0.8x websockets and sansnet-trio >= 2x trio-websocket (also on wsproto);
1 MiB, sansnet-trio >= 3x trio-websocket. The 1 MiB ratio to websockets (which masks in C
where wsproto masks in Python) is in the table's "vs websockets" column.
The ratios are measured side by side, never assumed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
    table,
    target_line,
    versions,
)

PEERS = Path(__file__).resolve().parent / "servers" / "ws_peers.py"
NOT_AVAILABLE_EXIT = 3  # what ws_peers.py exits with when sansnet is missing
SERVER_CPU, CLIENT_CPU = "1", "0"
START_TIMEOUT = 20.0  # seconds for a server to listen
STOP_TIMEOUT = 5.0  # seconds after SIGTERM (then SIGKILL)
CLIENT_GRACE = 60.0  # seconds a client may take beyond its expected time
NOISY_OTHER_CPU = 0.25
MiB = 1024 * 1024
# --fixed-malloc: glibc's mmap threshold pinned at its dynamic maximum (32 MiB), and the
# trim threshold at twice that, as glibc itself would set them after freeing a big block.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * MiB), "MALLOC_TRIM_THRESHOLD_": str(64 * MiB)}


@dataclass(frozen=True)
class Library:
    name: str
    loop: str  # asyncio, uvloop or trio
    default: bool = True


LIBRARIES: tuple[Library, ...] = (
    Library("sansnet-asyncio", "asyncio"),
    Library("sansnet-uvloop", "uvloop"),
    Library("sansnet-trio", "trio"),
    Library("websockets", "asyncio"),
    Library("aiohttp", "asyncio"),
    Library("trio-websocket", "trio"),
    Library("wsproto-anyio", "asyncio"),
    # Only with --libraries: the peers on uvloop/trio, for a like-for-like loop.
    Library("websockets-uvloop", "uvloop", default=False),
    Library("aiohttp-uvloop", "uvloop", default=False),
    Library("wsproto-anyio-trio", "trio", default=False),
    # sansnet on trio with keepalive pings off, like trio-websocket (which has none).
    Library("sansnet-trio-nopings", "trio", default=False),
)
LIBRARY_BY_NAME = {library.name: library for library in LIBRARIES}


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    count: int
    quick_count: int
    warmup: int
    unit: str
    seconds_per_message: float  # a generous bound, for the client's timeout


WORKLOADS: tuple[Workload, ...] = (
    Workload("small", "49-byte text messages, sequential echo", 10_000, 2_000, 500, "msg/s", 0.005),
    Workload("large", "1 MiB binary messages, sequential echo", 50, 10, 3, "MiB/s", 0.5),
)
WORKLOAD_BY_NAME = {workload.name: workload for workload in WORKLOADS}

REFERENCES = ("websockets", "aiohttp", "trio-websocket")
# (workload, row, reference, goal) from issue #17
PEER_PACKAGES = (
    "sansnet",
    "websockets",
    "aiohttp",
    "trio-websocket",
    "wsproto",
    "anyio",
    "trio",
    "uvloop",
)
TARGETS = (
    ("small", "sansnet-asyncio", "websockets", 0.8),
    ("small", "sansnet-trio", "trio-websocket", 2.0),
    ("large", "sansnet-trio", "trio-websocket", 3.0),
)


# ---------------------------------------------------------------- processes


class ServerUnavailable(Exception):
    """The server exited or never listened; str() is the reason for the table."""


class EchoServer:
    """One library's echo server as a subprocess: start, learn its port, stop."""

    def __init__(self, library: Library, pin: bool) -> None:
        self.library = library
        self.pin = pin
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.port = 0

    def __enter__(self) -> EchoServer:
        command = [sys.executable, str(PEERS), "server", "--library", self.library.name]
        if self.pin:
            command = ["taskset", "-c", SERVER_CPU, *command]
        self.log = tempfile.TemporaryFile()  # closed in __exit__
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log
        )
        try:
            self.port = self._wait_listening()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_listening(self) -> int:
        process = self.process
        assert process is not None
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerUnavailable(f"did not listen within {START_TIMEOUT:.0f} s")
            ready, _, _ = select.select([process.stdout], [], [], left)
            if ready:
                chunk = os.read(process.stdout.fileno(), 1)
                if not chunk:
                    process.wait(STOP_TIMEOUT)
                    raise ServerUnavailable(self.failure())
                line += chunk
        words = line.split()
        if len(words) != 2 or words[0] != b"LISTENING":
            raise ServerUnavailable(f"unexpected output: {line[:80]!r}")
        return int(words[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def failure(self) -> str:
        assert self.process is not None
        code = self.process.returncode
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {code}"
        if code == NOT_AVAILABLE_EXIT and last.startswith("not available"):
            return last
        return f"exited with status {code}: {last[:200]}"

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None


# ---------------------------------------------------------------- measurement


@dataclass
class Measurement:
    rate: float = 0.0  # msg/s or MiB/s
    messages: int = 0
    elapsed: float = 0.0
    p50_us: float = 0.0
    p99_us: float = 0.0
    server_cpu: float | None = None  # shares of one CPU during the timed run
    client_cpu: float | None = None
    other_cpu: float | None = None
    note: str = ""  # set instead of numbers when nothing was measured

    @property
    def measured(self) -> bool:
        return not self.note


def run_client(
    library: Library, workload: Workload, count: int, server: EchoServer, pin: bool
) -> Measurement:
    command = [
        sys.executable,
        str(PEERS),
        "client",
        "--library",
        library.name,
        "--port",
        str(server.port),
        "--workload",
        workload.name,
        "--count",
        str(count),
        "--warmup",
        str(workload.warmup),
        "--server-pid",
        str(server.pid),
    ]
    if pin:
        command = ["taskset", "-c", CLIENT_CPU, *command]
    timeout = CLIENT_GRACE + (count + workload.warmup) * workload.seconds_per_message
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Measurement(note=f"client did not finish within {timeout:.0f} s")
    data = None
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
    if data is None:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        return Measurement(note=f"client failed (exit {done.returncode}): {last[:200]}")
    if "error" in data:
        return Measurement(note=f"not measured: {data['error'][:200]}")
    elapsed = data["elapsed"]
    window = data["window"] or elapsed
    messages = data["messages"]
    if workload.name == "small":
        rate = messages / elapsed
    else:
        rate = messages * data["message_bytes"] / MiB / elapsed
    server_cpu = data["server_cpu"] / window if data["server_cpu"] is not None else None
    client_cpu = data["client_cpu"] / window if data["client_cpu"] is not None else None
    other_cpu = None
    if data["machine_busy"] is not None and server_cpu is not None and client_cpu is not None:
        other_cpu = max(0.0, data["machine_busy"] / window - server_cpu - client_cpu)
    return Measurement(
        rate=rate,
        messages=messages,
        elapsed=elapsed,
        p50_us=data["p50_us"],
        p99_us=data["p99_us"],
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=other_cpu,
    )


def bench_library(
    library: Library, workloads: Sequence[Workload], counts: dict[str, int], pin: bool
) -> dict[str, Measurement]:
    """Every workload against one server of the library, started once."""
    try:
        with EchoServer(library, pin) as server:
            results = {}
            for workload in workloads:
                if not server.alive():
                    results[workload.name] = Measurement(note="server died: " + server.failure())
                    continue
                result = run_client(library, workload, counts[workload.name], server, pin)
                if not server.alive():
                    result = Measurement(note="server died: " + server.failure())
                results[workload.name] = result
            return results
    except ServerUnavailable as exc:
        return {workload.name: Measurement(note=str(exc)) for workload in workloads}


def wait_quiet(limit: float) -> str:
    """Wait (at most ``limit`` s) until the machine spends under NOISY_OTHER_CPU of a CPU
    over one second; returns a note when it never did."""
    deadline = time.monotonic() + limit
    busy = 0.0
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        after = machine_busy_seconds()
        if before is None or after is None:
            return ""
        busy = after - before
        if busy < NOISY_OTHER_CPU:
            return ""
        if time.monotonic() >= deadline:
            return f"machine still busy ({busy:.0%} of a CPU) after waiting {limit:.0f} s"


def best(a: Measurement | None, b: Measurement) -> Measurement:
    """Across rounds keep the fastest measured run (the one the machine disturbed least)."""
    if a is None or (b.measured and (not a.measured or b.rate > a.rate)):
        return b
    return a


# ---------------------------------------------------------------- reporting


def fmt_rate(value: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def ratio(results: dict[str, Measurement], row: str, reference: str) -> float | None:
    a, b = results.get(row), results.get(reference)
    if a is None or b is None or not a.measured or not b.measured or not b.rate:
        return None
    return a.rate / b.rate


def workload_table(
    workload: Workload, count: int, names: Sequence[str], results: dict[str, Measurement]
) -> str:
    rows = []
    for name in names:
        result = results[name]
        library = LIBRARY_BY_NAME[name]
        if not result.measured:
            rows.append([name, library.loop, "-", "-", "-", "", "", "", "", result.note])
            continue
        cells = []
        for reference in REFERENCES:
            value = ratio(results, name, reference) if name != reference else None
            cells.append("" if value is None else f"{value:.2f}x")
        notes = []
        if result.other_cpu is not None and result.other_cpu > NOISY_OTHER_CPU:
            notes.append(f"busy machine: {result.other_cpu:.0%} of a CPU used by others")
        rows.append(
            [
                name,
                library.loop,
                fmt_rate(result.rate, workload.unit),
                f"{fmt_us(result.p50_us)} / {fmt_us(result.p99_us)}",
                "/".join(
                    fmt_share(x) for x in (result.server_cpu, result.client_cpu, result.other_cpu)
                ),
                *cells,
                "; ".join(notes),
            ]
        )
    return table(
        f"{workload.title}: {count:,} messages",
        [
            "library",
            "loop",
            workload.unit,
            "round trip p50 / p99",
            "CPU % srv/cli/other",
            *(f"vs {reference}" for reference in REFERENCES),
            "notes",
        ],
        rows,
    )


def target_lines(by_workload: dict[str, dict[str, Measurement]]) -> list[str]:
    lines = []
    for workload, row, reference, goal in TARGETS:
        results = by_workload.get(workload)
        if results is None:
            continue
        why = [f"{name} not run" for name in (row, reference) if name not in results]
        why += [
            f"{name}: {results[name].note}"
            for name in (row, reference)
            if name in results and not results[name].measured
        ]
        label = f"- {workload}: {row} vs {reference}"
        lines.append(target_line(label, ratio(results, row, reference), goal, why))
    return lines


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 small / 10 large messages")
    parser.add_argument("--libraries", help="comma list of libraries (default: the default set)")
    parser.add_argument("--workloads", help="comma list: small,large (default: both)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run everything N times, keep each row's best (1)"
    )
    parser.add_argument("--small", type=int, help="messages in the small workload (10,000)")
    parser.add_argument("--large", type=int, help="messages in the large workload (50)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--fixed-malloc",
        action="store_true",
        help="run every peer with glibc's mmap threshold fixed at 32 MiB (see README)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="before each library, wait up to S s for the machine to go idle (0: don't)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--list", action="store_true", help="list libraries and workloads, exit")
    args = parser.parse_args(argv)

    if args.list:
        for library in LIBRARIES:
            extra = "" if library.default else "   (only with --libraries)"
            print(f"library   {library.name:20} {library.loop}{extra}")
        for workload in WORKLOADS:
            print(f"workload  {workload.name:20} {workload.title}, {workload.count:,} messages")
        return
    if not 1 <= args.rounds <= 10:
        raise SystemExit("--rounds must be between 1 and 10")
    if not 0 <= args.wait_quiet <= 3600:
        raise SystemExit("--wait-quiet must be between 0 and 3600 seconds")
    names = (
        parse_names(args.libraries, LIBRARY_BY_NAME, "library")
        if args.libraries
        else [library.name for library in LIBRARIES if library.default]
    )
    workloads = [
        WORKLOAD_BY_NAME[name]
        for name in (
            parse_names(args.workloads, WORKLOAD_BY_NAME, "workload")
            if args.workloads
            else list(WORKLOAD_BY_NAME)
        )
    ]
    counts = {w.name: (w.quick_count if args.quick else w.count) for w in workloads}
    for name, override in (("small", args.small), ("large", args.large)):
        if override is not None and name in counts:
            if not 1 <= override <= 1_000_000:
                raise SystemExit(f"--{name} must be between 1 and 1,000,000")
            counts[name] = override
    pin = not args.no_pin and pinning_available(SERVER_CPU, CLIENT_CPU)
    if args.fixed_malloc:
        os.environ.update(FIXED_MALLOC)  # inherited by every server and client

    print(f"# WebSocket echo benchmark — {machine()}")
    print(f"# {versions(PEER_PACKAGES)}")
    print(
        f"# servers pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU} (taskset)"
        if pin
        else "# not pinned (taskset missing, fewer than 2 CPUs, or --no-pin)"
    )
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(
        "# glibc malloc: "
        + (" ".join(f"{k}={v}" for k, v in sorted(malloc.items())) if malloc else "defaults")
    )
    print(
        f"# {len(names)} libraries x {len(workloads)} workloads x {args.rounds} round(s); "
        + ", ".join(
            f"{w.name}: {counts[w.name]:,} messages (+{w.warmup} warm-up)" for w in workloads
        )
        + f"; load average before: {load_average()}",
        flush=True,
    )

    by_workload: dict[str, dict[str, Measurement]] = {w.name: {} for w in workloads}
    for round_number in range(1, args.rounds + 1):
        for name in names:
            if args.wait_quiet > 0:
                note = wait_quiet(args.wait_quiet)
                if note:
                    print(f"#   {note}", flush=True)
            started = time.monotonic()
            results = bench_library(LIBRARY_BY_NAME[name], workloads, counts, pin)
            for workload_name, result in results.items():
                rows = by_workload[workload_name]
                rows[name] = best(rows.get(name), result)
            status = ", ".join(
                f"{WORKLOAD_BY_NAME[w].name} "
                + (fmt_rate(r.rate, WORKLOAD_BY_NAME[w].unit) if r.measured else r.note)
                for w, r in results.items()
            )
            prefix = f"round {round_number}: " if args.rounds > 1 else ""
            print(f"#   {prefix}{name}: {status} ({time.monotonic() - started:.0f} s)", flush=True)

    for workload in workloads:
        print(workload_table(workload, counts[workload.name], names, by_workload[workload.name]))
    lines = target_lines(by_workload)
    if lines:
        print("\nTargets (issue #17, measured in this run):")
        print("\n".join(lines))
    print(
        f"\n# load average after: {load_average()}. msg/s and MiB/s count echoed messages "
        "(1 MiB echoed = 1 MiB, though it crosses the wire twice). 'CPU % srv/cli/other': "
        "the share of one CPU used during the timed run by the server process, by the client "
        "process, and by everything else (other processes and kernel time charged to neither); "
        f"rows with other > {NOISY_OTHER_CPU:.0%} ran on a busy machine. The server's share "
        "is read from /proc in clock ticks (10 ms), so it is coarse for short runs."
    )
    if args.json:
        payload = {
            "machine": machine(),
            "versions": versions(PEER_PACKAGES),
            "rounds": args.rounds,
            "counts": counts,
            "pinned": pin,
            "results": {
                workload: {
                    name: {
                        "rate": r.rate if r.measured else None,
                        "unit": WORKLOAD_BY_NAME[workload].unit,
                        "messages": r.messages,
                        "elapsed_s": r.elapsed,
                        "p50_us": r.p50_us,
                        "p99_us": r.p99_us,
                        "server_cpu": r.server_cpu,
                        "client_cpu": r.client_cpu,
                        "other_cpu": r.other_cpu,
                        "note": r.note,
                    }
                    for name, r in rows.items()
                }
                for workload, rows in by_workload.items()
            },
            "targets": target_lines(by_workload),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
