"""Shared helpers for the benchmarks: time callables side by side, print ratio tables.

Every benchmark runs sansnet and its peers in the same process and the same run, and
reports ratios, never absolute pass/fail thresholds.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {cpu}"


def per_call(func: Callable[[], object], *, budget: float = 0.4, repeat: int = 7) -> float:
    """Seconds per call of ``func``: the best of ``repeat`` timed loops of ``budget`` s."""
    number = 1
    while True:  # calibrate the loop count
        started = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - started
        if elapsed >= budget / 10:
            break
        number *= 4
    number = max(1, int(number * (budget / 10) / elapsed * 10 / repeat) or 1)
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(number):
                func()
            best = min(best, (time.perf_counter() - started) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.2f} ms"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join([f"\n### {title}\n", line, rule, *body])


# ---------------------------------------------------------------- processes and the machine


def pinning_available(*cpus: str) -> bool:
    """Whether ``taskset`` exists and this process may run on every one of ``cpus``."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return {int(cpu) for cpu in cpus} <= os.sched_getaffinity(0)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process so far (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields after "pid (comm)": state is fields[0], utime fields[11], stime fields[12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU time spent busy on all CPUs so far (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def versions(packages: Iterable[str]) -> str:
    """ "name version" for each package, or "(not installed)"."""
    parts = []
    for package in packages:
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} (not installed)")
    return ", ".join(parts)


# ---------------------------------------------------------------- reporting


def fmt_share(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.0f}"


def parse_names(text: str, known: Mapping[str, object], what: str) -> list[str]:
    """A comma-separated list of names, each one of ``known`` (else exit with a message)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def target_line(label: str, value: float | None, goal: float, why_not: Sequence[str]) -> str:
    """One line of the targets summary: the measured ratio against its goal, or why
    there is none (``why_not``: rows not run or not measured)."""
    if value is not None:
        verdict = "met" if value >= goal else "NOT met"
        return f"{label}: {value:.2f}x, target >= {goal:g}x: {verdict}"
    return f"{label}: target >= {goal:g}x, n/a ({'; '.join(why_not)})"


def wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait until something accepts connections on 127.0.0.1:``port``: True, or False
    when ``process`` exited first or ``seconds`` went by."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False
