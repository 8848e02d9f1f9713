"""Fixtures for the deployment tests: an importable app in a temporary directory, and
``sansnet serve ... --workers N`` run as a subprocess the way an operator runs it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP = textwrap.dedent(
    '''
    """The app the deployment tests serve."""
    import hashlib
    import os
    import sys
    import time

    import sansnet

    if os.environ.get("DEPLOY_APP_CRASH") and sys.argv[0].endswith("workers.py"):
        raise SystemExit(3)  # a worker that dies as it starts


    async def handle(request: sansnet.ServeRequest) -> str:
        if request.path == "/slow":  # ?seconds=N: how long (1 s by default)
            import anyio

            sys.stderr.write(f"in the slow handler of {os.getpid()}\\n")  # one write
            sys.stderr.flush()
            await anyio.sleep(float(request.query.get("seconds", "1")))
        elif request.path == "/block":  # a worker stuck in a blocking call: deaf to SIGTERM
            sys.stderr.write(f"blocked in {os.getpid()}\\n")
            sys.stderr.flush()
            time.sleep(float(request.query.get("seconds", "30")))
        return sansnet.json_encode(
            {
                "pid": os.getpid(),
                "ip": request.ip,
                "scheme": request.scheme,
                "host": request.host,
                "length": len(request.body),
                "sha256": hashlib.sha256(request.body).hexdigest(),
            }
        )


    async def echo(ws: sansnet.WebSocket) -> None:
        async for message in ws:
            await ws.send(f"{message} from {os.getpid()} for {ws.request.ip}")


    app = sansnet.ServeConfig(handle_request=handle, handle_web_socket=echo)
    # apps that drain for longer, or shorter, than the default 10 s
    long_drain = sansnet.ServeConfig(handle_request=handle, drain_timeout=30)
    short_drain = sansnet.ServeConfig(handle_request=handle, drain_timeout=0.5)
    '''
)


@pytest.fixture(scope="session")
def app_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sn-app-") as folder:
        (Path(folder) / "deployapp.py").write_text(APP)
        yield Path(folder)


class Served:
    """A running ``sansnet serve`` supervisor: its process, its URL, what it printed."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        url: str,
        lines: list[str],
        reader: threading.Thread,
    ) -> None:
        self.process = process
        self.url = url
        self.lines = lines
        self.reader = reader

    def close(self) -> None:
        """Stop it (gracefully if it still runs, then by force, workers included)."""
        if self.process.poll() is None:
            workers = self.worker_pids()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck supervisor
                self.process.kill()
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(10)
        self.reader.join(10)  # stderr at EOF (every worker gone): all it said is in lines
        if not self.reader.is_alive():
            assert self.process.stderr is not None
            self.process.stderr.close()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> None:
        """Wait until what it printed contains ``text`` ``count`` times (what a test waits
        for before acting, rather than sleep a guessed time)."""
        deadline = time.monotonic() + timeout
        # Counted in the whole output: two workers writing at once can share a line.
        while "\n".join(list(self.lines)).count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} x{count} not seen:\n{self.output()}"
            assert self.process.poll() is None, f"it exited:\n{self.output()}"
            time.sleep(0.02)

    def worker_pids(self) -> list[int]:
        """The supervisor's live children."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as an operator (or systemd) stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self.reader.join(10)
        return status


def serve_workers(
    app_dir: Path, *args: str, env: dict[str, str] | None = None, sigint: Any = None
) -> Served:
    """Start ``sansnet serve ARGS`` in ``app_dir`` and wait for its banner (20 s).
    ``sigint``: the SIGINT disposition it starts with (``signal.SIG_IGN``, as a
    background job of a shell without job control gets it); by default, Python's."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sansnet", "serve", *args],
        cwd=app_dir,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=None if sigint is None else lambda: signal.signal(signal.SIGINT, sigint),
    )
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving "):
                banner.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not banner.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            Served(process, "", lines, reader).close()
            raise AssertionError("sansnet serve did not start:\n" + "\n".join(lines))
    match = re.search(r"on (\S+) with", next(line for line in lines if line.startswith("Serving")))
    assert match
    return Served(process, match.group(1), lines, reader)


@pytest.fixture
def served(app_dir: Path) -> Iterator[list[Served]]:
    """Supervisors a test starts; any still running at the end are killed."""
    started: list[Served] = []
    yield started
    for item in started:
        item.close()
