"""Shared helpers for the benchmarks: time callables side by side, print ratio tables.

Every benchmark runs sansnet and its peers in the same process and the same run, and
reports ratios, never absolute pass/fail thresholds.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from collections.abc import Callable, Sequence


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
