"""The environment for a subprocess whose code is not what a test measures."""

from __future__ import annotations

import os


def env_without_coverage(**extra: str) -> dict[str, str]:
    """``os.environ`` plus ``extra``, without the variables that make coverage start in a
    Python subprocess (pyproject.toml's ``patch = ["subprocess"]`` sets them). For peers,
    fuzz harnesses and the Autobahn runs: tracing them costs minutes of CI time and adds
    nothing the in-process tests do not already cover."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COV_CORE_", "COVERAGE_"))
    }
    env.update(extra)
    return env
