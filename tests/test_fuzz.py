"""The fuzz harnesses of fuzz/, run briefly: every crash input ever found is replayed
through its harness, then each harness fuzzes for a bounded time from the checked-in
corpus. Long runs are ``fuzz/run.sh HARNESS SECONDS`` (see fuzz/README.md).

A harness run fails the test when libFuzzer reports a crash, a timeout or a leak (a
non-zero exit), or when it did not get to run at all. The inputs a run finds go to a
temporary directory: the checked-in corpus is only read.

FUZZ_SECONDS (default 30) sets the wall-clock budget per harness; three run at a time.
Needs atheris (the dev extra installs it on CPython 3.11 to 3.13).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.protocol.test_fuzz_regressions import replayable
from tests.subprocesses import env_without_coverage

pytest.importorskip("atheris", reason="atheris is not installed for this Python")

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
HARNESSES = [
    "http_server",
    "http_client",
    "websocket",
    "content_decoders",
    "codecs",
    "differential",
]
SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))


@dataclass
class Run:
    returncode: int
    output: str

    def stat(self, name: str) -> int:
        found = re.search(rf"^stat::{name}:\s+(\d+)$", self.output, re.MULTILINE)
        assert found, f"libFuzzer printed no {name}:\n{self.output[-3000:]}"
        return int(found.group(1))


def libfuzzer(harness: str, *args: str, timeout: float) -> Run:
    done = subprocess.run(
        [sys.executable, str(FUZZ / f"{harness}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=FUZZ,
        env=env_without_coverage(),  # the harness instruments for libFuzzer itself
    )
    return Run(done.returncode, done.stdout + done.stderr)


def fuzz(harness: str, work: Path) -> Run:
    (work / harness).mkdir(parents=True)
    (work / f"{harness}-artifacts").mkdir()
    flags = [
        f"-max_total_time={SECONDS}",
        "-timeout=30",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={work / f'{harness}-artifacts'}/",
    ]
    if harness in ("http_server", "http_client", "differential"):
        flags.append(f"-dict={FUZZ / 'http.dict'}")
    return libfuzzer(
        harness,
        *flags,
        str(work / harness),
        str(FUZZ / "corpus" / harness),
        timeout=SECONDS + 300,
    )


@pytest.fixture(scope="module")
def fuzz_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """The bounded run of every harness selected (``-k``), three at a time (on 2 cores:
    ~20 CPU-seconds each)."""
    selected = {item.name for item in request.session.items}
    harnesses = [h for h in HARNESSES if f"test_bounded_fuzzing_finds_nothing[{h}]" in selected]
    work = tmp_path_factory.mktemp("fuzz")
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(harnesses, pool.map(lambda h: fuzz(h, work), harnesses), strict=True))


@pytest.mark.parametrize("harness", sorted({crash.harness for crash in replayable()}))
def test_crash_inputs_replay_cleanly(harness: str, tmp_path: Path) -> None:
    files = []
    for number, crash in enumerate(replayable()):
        if crash.harness == harness:
            path = tmp_path / f"crash-{number}"
            path.write_bytes(crash.fuzz_input)
            files.append(str(path))
    run = libfuzzer(harness, *files, timeout=300)
    assert run.returncode == 0, run.output[-3000:]
    assert run.output.count("Executed ") == len(files), run.output[-3000:]


@pytest.mark.parametrize("harness", HARNESSES)
def test_bounded_fuzzing_finds_nothing(harness: str, fuzz_runs: dict[str, Run]) -> None:
    run = fuzz_runs[harness]
    assert run.returncode == 0, f"{harness} found a crash:\n{run.output[-5000:]}"
    seeds = len(list((FUZZ / "corpus" / harness).iterdir()))
    # It really fuzzed: more inputs than the seeds it started from were executed.
    assert run.stat("number_of_executed_units") > seeds, run.output[-3000:]
