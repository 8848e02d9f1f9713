"""The Autobahn|Testsuite, the standard WebSocket conformance suite, against sansnet's
server (fuzzingclient) and client (fuzzingserver), on asyncio and trio.

Every group runs but the permessage-deflate ones (12.*, 13.*), which take about nine
minutes per side on this machine; the full run is done by hand whenever the WebSocket
code changes (see docs/performance.md). The bar: no case fails, and no more NON-STRICT
cases than Node's ws (4).

The suite is the unmodified reference implementation, on Python 2.7, installed by
../shared/autobahn/setup.sh (AUTOBAHN_DIR overrides where it is).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.subprocesses import env_without_coverage

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [
    os.environ.get("AUTOBAHN_DIR", ""),
    "/work/shared/autobahn",
    str(ROOT.parent / "shared" / "autobahn"),
]
AUTOBAHN = next(
    (Path(p) for p in CANDIDATES if p and (Path(p) / "run_server_suite.sh").is_file()), None
)
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}
MAX_NON_STRICT = 4  # Node's ws

pytestmark = [
    pytest.mark.autobahn,
    pytest.mark.skipif(
        AUTOBAHN is None, reason="the Autobahn|Testsuite scripts are not on this machine"
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def results(index: Path) -> dict[str, dict[str, str]]:
    data = json.loads(index.read_text())
    assert len(data) == 1, f"expected one agent in {index}"
    cases: dict[str, dict[str, str]] = next(iter(data.values()))
    return cases


def check(cases: dict[str, dict[str, str]]) -> None:
    assert len(cases) == 301, f"{len(cases)} cases ran, expected 301"
    behaviors = Counter(case["behavior"] for case in cases.values())
    failing = sorted(case_id for case_id, case in cases.items() if case["behavior"] not in PASSING)
    assert failing == [], f"failing cases: {failing} ({dict(behaviors)})"
    assert behaviors["NON-STRICT"] <= MAX_NON_STRICT, dict(behaviors)


@dataclass
class Run:
    """One Autobahn run: the script's exit status and output, and its report folder."""

    returncode: int
    output: str
    outdir: Path


def run_server_suite(backend: str, outdir: Path) -> Run:
    """The fuzzingclient against sansnet's echo server (tests/autobahn/echo_server.py)."""
    assert AUTOBAHN is not None
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "autobahn" / "echo_server.py"), str(port), backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_without_coverage(),
    )
    assert server.stdout is not None
    with server, server.stdout:
        try:
            assert "listening" in server.stdout.readline()
            run = subprocess.run(
                [
                    str(AUTOBAHN / "run_server_suite.sh"),
                    str(port),
                    "--no-compression",
                    "--agent",
                    f"sansnet-{backend}",
                    "--outdir",
                    str(outdir),
                    "--timeout",
                    "600",
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        finally:
            server.terminate()
    return Run(run.returncode, run.stdout + run.stderr, outdir)


def run_client_suite(backend: str, outdir: Path) -> Run:
    """sansnet's client (tests/autobahn/client.py) against the fuzzingserver."""
    assert AUTOBAHN is not None
    port = free_port()
    command = f"{sys.executable} {ROOT / 'tests' / 'autobahn' / 'client.py'} {backend}"
    run = subprocess.run(
        [
            str(AUTOBAHN / "run_client_suite.sh"),
            "--no-compression",
            "--port",
            str(port),
            "--outdir",
            str(outdir),
            "--timeout",
            "600",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env_without_coverage(AB_PORT=str(port)),
    )
    return Run(run.returncode, run.stdout + run.stderr, outdir)


SUITES = {"server": run_server_suite, "client": run_client_suite}


@pytest.fixture(scope="module")
def autobahn_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Every run the session selected, by test name, two at a time: each is one
    single-threaded wstest and one sansnet process, mostly taking turns, so two runs
    side by side take about the time of one on this 2-core machine. The sansnet side
    runs without coverage (tests/subprocesses.py): it is the conformance that is tested."""
    selected = [
        (side, backend)
        for side in SUITES
        for backend in ("asyncio", "trio")
        if f"test_{side}_conformance[{backend}]" in {item.name for item in request.session.items}
    ]

    # The folders are made here: tmp_path_factory is not for threads.
    jobs = [
        (side, backend, tmp_path_factory.mktemp(f"autobahn-{side}-{backend}"))
        for side, backend in selected
    ]
    # Installed once, before the runs: each run script installs the suite when it is
    # missing, and two doing it at once on a new machine broke each other's virtualenv
    # (FileNotFoundError in pip's copy). 0.4 s when it is installed already.
    assert AUTOBAHN is not None
    setup = subprocess.run(
        ["bash", str(AUTOBAHN / "setup.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env_without_coverage(),
        check=False,
    )
    if setup.returncode != 0:
        output = f"setup.sh failed ({setup.returncode}):\n{setup.stdout}{setup.stderr}"
        return {
            f"{side}-{backend}": Run(setup.returncode, output, outdir)
            for side, backend, outdir in jobs
        }

    def run(job: tuple[str, str, Path]) -> Run:
        """A run that could not be made (its server did not start...) fails its own
        test only, with the traceback, not the fixture of every test."""
        side, backend, outdir = job
        try:
            return SUITES[side](backend, outdir)
        except Exception:
            return Run(-1, traceback.format_exc(), outdir)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(run, jobs)
        return {
            f"{side}-{backend}": done for (side, backend, _), done in zip(jobs, runs, strict=True)
        }


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_server_conformance(backend: str, autobahn_runs: dict[str, Run]) -> None:
    run = autobahn_runs[f"server-{backend}"]
    assert run.returncode == 0, run.output
    check(results(run.outdir / "index.json"))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_client_conformance(backend: str, autobahn_runs: dict[str, Run]) -> None:
    run = autobahn_runs[f"client-{backend}"]
    assert run.returncode == 0, run.output
    check(results(run.outdir / "index.json"))
