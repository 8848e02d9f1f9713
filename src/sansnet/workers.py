"""Several worker processes serving one port, under a supervisor: ``sansnet serve
--workers N`` and :func:`run`.

A sansnet server keeps no state between connections, so it scales as every production
Python server does: N processes on one machine, each with its own event loop, sharing
the listening port. The kernel spreads connections among them (``SO_REUSEPORT``, where
the OS has it); elsewhere the supervisor binds the socket once and every worker accepts
on the inherited descriptor.

The supervisor (this process, no event loop):

* starts N workers (``python -m sansnet.workers``), and reports the address once every
  one of them listens;
* restarts a worker that dies, after a back-off (0.5 s, doubled on each crash in a row
  up to 10 s, reset once a worker has run for 10 s);
* gives up, stops the others and returns 1 when workers keep dying as they start
  (5 crashes in a row before listening): a broken app should fail loudly, not loop;
* on SIGTERM or Ctrl-C (SIGINT), sends SIGTERM to every worker, which stops gracefully
  (stops accepting, lets in-flight requests finish within ``drain_timeout``, closes
  WebSockets with 1001), waits ``drain_timeout`` + 5 s (the app's own, when it is a
  ServeConfig), kills what is left, returns 0. While it waits, another SIGTERM is
  ignored; another Ctrl-C ends the wait (KeyboardInterrupt), the socket released all
  the same;
* on SIGHUP, restarts the workers gracefully (as gunicorn does): each is replaced by a
  new one, which imports the app afresh, and is sent SIGTERM once its replacement
  listens; the socket is kept throughout.

A worker is :func:`sansnet.serve` on the backend asked for (asyncio, uvloop or trio)
with the app imported from ``module:attribute`` (a request handler or a
:class:`~sansnet.ServeConfig`), so the app must be importable in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import quote

from .codecs import json_encode
from .errors import BindError, InvalidArgument
from .models import ServeRequest, ServeResponse
from .transport.listen import UNIX_SOCKET_MODE, _bind_error, _claim_unix_path
from .websocket import WebSocket

__all__ = ["WorkerSpec", "cpu_count", "load_app", "run"]

READY_TIMEOUT = 30.0  # a worker must listen within this
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_AFTER = 0.5, 10.0, 10.0
MAX_START_CRASHES = 5
POLL = 0.05


def cpu_count() -> int:
    """The CPUs this process may run on (``--workers 0`` / ``auto``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS, Windows


@dataclass
class WorkerSpec:
    """What every worker serves: ``app`` (``"module:attribute"``; or ``"echo"``, or
    ``"static:DIRECTORY"``), where (``port`` and ``address``, or ``uds``), the backend
    (``asyncio``, ``uvloop`` or ``trio``) and :class:`~sansnet.ServeConfig` options
    that are plain data (``trusted_proxies``, ``access_log``, ``drain_timeout``...).
    ``handler_defaults`` are options for an app that is not a ServeConfig (a request
    handler, the echo service, a directory); a ServeConfig app keeps its own values of
    them, and ``options`` override both."""

    app: str
    port: int = 8000
    address: str = "127.0.0.1"
    uds: str | None = None
    backend: str = "asyncio"
    options: dict[str, Any] = field(default_factory=dict)
    handler_defaults: dict[str, Any] = field(default_factory=dict)


def load_app(target: str) -> Any:
    """The object ``"module:attribute"`` names (attributes may be dotted). Raises
    :class:`~sansnet.InvalidArgument` saying what is missing."""
    module_name, colon, attribute = target.partition(":")
    if os.getcwd() not in sys.path:  # as uvicorn: the app is found from where you are
        sys.path.insert(0, os.getcwd())
    if not colon or not module_name or not attribute:
        raise InvalidArgument(f"{target!r} is not an app: write module:attribute (myapp:handler).")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"Could not import {module_name!r} for {target!r}: {exc}.") from exc
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise InvalidArgument(f"{module_name!r} has no attribute {attribute!r}.") from None
    return value


async def echo_request(request: ServeRequest) -> ServeResponse:
    """The echo service: the request, described as JSON."""
    body: Any
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        body = {"hex": request.body.hex()}
    description = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": dict(request.headers.items()),
        "body": body,
        "client": f"{request.ip}:{request.port}",
    }
    return ServeResponse(
        200, {"Content-Type": "application/json"}, json_encode(description, pretty=True) + "\n"
    )


async def echo_socket(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def _config(spec: WorkerSpec) -> Any:
    from .server import ServeConfig, _config

    options: dict[str, Any] = {"address": spec.address, "uds": spec.uds, **spec.options}
    handler_options = {**spec.handler_defaults, **options}
    if spec.app == "echo":
        return ServeConfig(
            handle_request=echo_request, handle_web_socket=echo_socket, **handler_options
        )
    if spec.app.startswith("static:"):
        from .static import StaticFiles

        return ServeConfig(handle_request=StaticFiles(spec.app[7:]), **handler_options)
    app = load_app(spec.app)
    if isinstance(app, ServeConfig):
        return replace(app, **options)
    return _config(app, handler_options)


# ================================================================================ worker


def _worker_main(spec: WorkerSpec, ready_fd: int, inherited_fd: int | None) -> None:
    """One worker: serve until SIGTERM/SIGINT, then stop gracefully."""
    import logging

    import anyio

    from .server import Server

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group:
    # the supervisor turns it into one SIGTERM per worker; a hang-up (a terminal that
    # closes) too: the supervisor restarts us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = _config(spec)

    if inherited_fd is not None:
        config = replace(config, uds=None)  # the supervisor bound it: accept on its socket

    async def serve() -> None:
        server = Server(spec.port, config)
        if inherited_fd is not None:
            server.inherited_socket = socket.socket(fileno=inherited_fd)
        elif spec.uds is None:
            server.reuse_port = True
        # A second SIGTERM while we drain (systemd's KillMode=control-group signals us
        # and the supervisor does too) is ignored: the receiver stays open through the
        # drain and takes it on asyncio; trio, as the receiver closes, hands one it
        # still holds to the handler it found (SIG_DFL: status -15), so that is a no-op.
        signal.signal(signal.SIGTERM, _ignore_signal)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with server, anyio.create_task_group() as group:
                os.write(ready_fd, b"1")
                os.close(ready_fd)
                group.start_soon(_stop_when_orphaned, group.cancel_scope)
                async for _ in signals:
                    break
                group.cancel_scope.cancel()

    backend, options = spec.backend, {}
    if backend == "uvloop":
        backend, options = "asyncio", {"use_uvloop": True}
    anyio.run(serve, backend=backend, backend_options=options)


def _ignore_signal(number: int, frame: object) -> None:
    """A signal that comes while a worker stops: ignored (see _worker_main)."""


async def _stop_when_orphaned(scope: Any) -> None:
    """A supervisor killed without a chance to stop its workers (SIGKILL, a crash)
    leaves them to init: each notices within a second and stops gracefully, so no
    worker outlives its supervisor holding the port."""
    import anyio

    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - polls the parent pid
        await anyio.sleep(1.0)
    scope.cancel()


# ============================================================================ supervisor


class _Slot:
    """One worker position: its current process and its crash history."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_fd: int | None = None
        self.ready = False
        self.started = 0.0
        self.crashes = 0  # in a row (a worker that ran 10 s resets it)
        self.start_crashes = 0  # in a row, each before the worker listened
        self.restart_at: float | None = None
        # after SIGHUP: the worker this one replaces, serving until this one listens
        self.old: subprocess.Popen[bytes] | None = None


def _bind_unix(path: str) -> socket.socket:
    """The Unix socket every worker accepts on: bound once here (mode 0o666, as
    :func:`~sansnet.transport.listen.listen_unix`), removed when the supervisor ends."""
    _claim_unix_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, UNIX_SOCKET_MODE)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(f"Can't listen on {path}: {exc.strerror or exc}.") from None
    sock.set_inheritable(True)
    return sock


def _reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


class Supervisor:
    """Runs ``workers`` copies of ``spec``; see the module's docstring for the rules.
    Loads the app in this process as a worker will (an app that cannot be imported or
    configured raises :class:`~sansnet.InvalidArgument` here): its ``drain_timeout``
    decides how long a stop waits for the workers before killing them."""

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int,
        *,
        reuse_port: bool | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InvalidArgument(f"workers must be an int >= 0 (0: one per CPU), not {workers!r}.")
        port = spec.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            # (as serve() says it; bind() would raise OverflowError, not a usage error)
            raise InvalidArgument(f"port must be an int from 0 to 65535, not {port!r}.")
        self.spec = spec
        self.count = workers or cpu_count()
        self.reuse_port = _reuse_port_supported() if reuse_port is None else reuse_port
        self.announce = announce or (lambda text: print(text, file=sys.stderr, flush=True))
        # The config every worker will build, built once here: the app is imported in
        # this process too (an app that cannot be imported fails here, not in N
        # workers). Its drain_timeout (the app's own when a ServeConfig, unless options
        # give one) sets how long a stop waits before killing; its host is the address
        # as serve() reads it ("http://" and IPv6 brackets gone). Known before any
        # worker starts, unlike a value each worker would report once ready: a stop can
        # come while a worker is still starting, and a worker that never gets ready
        # must be waited for all the same.
        config = _config(spec)
        self.host: str = config.host
        self.scheme = "https" if config.tls is not None else "http"  # as Server.scheme
        self.stop_timeout = float(config.drain_timeout) + 5.0
        self._stop_requested = False
        self._restart_requested = False
        self._retiring: list[tuple[subprocess.Popen[bytes], float]] = []  # and deadlines
        self._socket: socket.socket | None = None
        self._uds_inode: int | None = None
        self.slots = [_Slot() for _ in range(self.count)]
        # the back-off (seconds) and the give-up rule; tests make them shorter
        self.backoff_first, self.backoff_max = BACKOFF_FIRST, BACKOFF_MAX
        self.max_start_crashes = MAX_START_CRASHES

    # ------------------------------------------------------------------ the socket

    def _bind(self) -> None:
        """Reserve the port (and learn it, for port 0) before any worker starts; with
        SO_REUSEPORT the socket is bound but never listens (the kernel gives
        connections only to listening sockets), otherwise it is the one every worker
        accepts on.

        With SO_REUSEPORT, the address must be free as it is without ``--workers``: a
        socket bound with SO_REUSEPORT joins any other of the same user on that address,
        so a second supervisor on a port in use would start and take part of the first
        one's connections. So the reservation is bound *without* SO_REUSEPORT (the bind
        fails if anything holds the address: a listening socket, or another supervisor's
        reservation), and only then, on the bound socket, is SO_REUSEPORT set and
        SO_REUSEADDR cleared: Linux checks a later bind against the flags the bound
        sockets have at that time. Our workers (SO_REUSEPORT, same user) can then bind,
        and a worker restarted after a crash still can while its siblings hold the port;
        a server binding without SO_REUSEPORT cannot, and neither can another
        supervisor, even before our workers listen (with SO_REUSEADDR left on, Linux
        lets a second bind through while every socket on the port is only bound).
        SO_REUSEADDR is on for the bind itself, so that connections left in TIME_WAIT
        by a server that just stopped do not hold the port. One socket does the check
        and keeps the reservation: binding a probe and closing it would leave a moment
        between the check and the workers' binds in which another supervisor could
        pass the same check. A process of the same user binding with SO_REUSEPORT
        itself can still join the group: that is what SO_REUSEPORT is."""
        spec = self.spec
        if spec.uds is not None:
            self._socket = _bind_unix(spec.uds)
            self._uds_inode = os.stat(spec.uds).st_ino
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:  # "::" is IPv6 only, as serve() binds it
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, spec.port))
            if self.reuse_port:  # the workers may join now, and nobody else
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            else:
                sock.listen(2048)
                sock.set_inheritable(True)
        except OSError as exc:
            sock.close()
            raise _bind_error(exc, self.host, spec.port) from None
        self._socket = sock
        self.spec = replace(spec, port=sock.getsockname()[1])

    @property
    def url(self) -> str:
        spec = self.spec
        if spec.uds is not None:
            return f"{self.scheme}+unix://{quote(spec.uds, safe='')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{spec.port}"

    # ------------------------------------------------------------------ workers

    def _start(self, slot: _Slot) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        pass_fds = [write_fd]
        inherited = None
        if self._socket is not None and (self.spec.uds is not None or not self.reuse_port):
            inherited = self._socket.fileno()
            pass_fds.append(inherited)
        payload = json.dumps({"spec": asdict(self.spec), "ready": write_fd, "sock": inherited})
        slot.process = subprocess.Popen(
            [sys.executable, "-m", "sansnet.workers", payload], pass_fds=pass_fds
        )
        os.close(write_fd)
        slot.ready_fd = read_fd
        slot.ready = False
        slot.started = time.monotonic()
        slot.restart_at = None

    def _check_ready(self, slot: _Slot) -> None:
        if slot.ready or slot.ready_fd is None:
            return
        try:
            if os.read(slot.ready_fd, 1):
                slot.ready = True
                slot.start_crashes = 0
                os.close(slot.ready_fd)
                slot.ready_fd = None
                if slot.old is not None:  # replaced: it stops now
                    self._retire(slot.old)
                    slot.old = None
        except BlockingIOError:
            pass

    def _reap(self, slot: _Slot) -> bool:
        """Whether the slot's worker died; if so, schedules its restart after the
        back-off. False while it runs (or while it waits for its restart)."""
        process = slot.process
        if process is None or process.poll() is None:
            return False
        self._check_ready(slot)  # it may have said ready just before dying
        if slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None
        healthy = slot.ready and time.monotonic() - slot.started >= HEALTHY_AFTER
        slot.crashes = 1 if healthy else slot.crashes + 1
        slot.start_crashes = 0 if slot.ready else slot.start_crashes + 1
        delay = min(self.backoff_max, self.backoff_first * 2 ** (slot.crashes - 1))
        self.announce(
            f"worker {process.pid} exited with {process.returncode}"
            f"{'' if slot.ready else ' before listening'}; restarting in {delay:g} s"
        )
        slot.process = None
        slot.restart_at = time.monotonic() + delay
        return True

    def request_stop(self, *_: object) -> None:
        self._stop_requested = True

    def request_restart(self, *_: object) -> None:
        self._restart_requested = True

    def _restart_all(self) -> None:
        """SIGHUP: a new worker in every slot. One that listens keeps serving until its
        replacement does (then :meth:`_check_ready` retires it); one still starting
        serves nobody yet and stops now. A slot waiting for its restart after a crash
        starts a new one then anyway."""
        self.announce("Restarting the workers (SIGHUP)...")
        for slot in self.slots:
            if slot.process is None:
                continue
            if slot.ready and slot.process.poll() is None:
                slot.old = slot.process
            else:
                self._retire(slot.process)
            if slot.ready_fd is not None:
                os.close(slot.ready_fd)
                slot.ready_fd = None
            self._start(slot)

    def _retire(self, process: subprocess.Popen[bytes]) -> None:
        """Stop a worker gracefully (SIGTERM); :meth:`_reap_retired` kills it if it is
        still there ``drain_timeout`` + 5 s later."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        self._retiring.append((process, time.monotonic() + self.stop_timeout))

    def _reap_retired(self, now: float) -> None:
        for process, deadline in list(self._retiring):
            if process.poll() is not None:
                self._retiring.remove((process, deadline))
            elif now >= deadline:
                process.kill()

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (SIGHUP restarts the workers). Returns 0 after
        a graceful stop, 1 when the workers keep dying as they start. Raises :class:`~sansnet.BindError` if the
        address cannot be bound."""
        self._bind()
        previous = {
            number: signal.signal(number, handler)
            for number, handler in (
                (signal.SIGTERM, self.request_stop),
                (signal.SIGINT, self.request_stop),
                (signal.SIGHUP, self.request_restart),
            )
        }
        try:
            for slot in self.slots:
                self._start(slot)
            return self._supervise()
        finally:
            # A SIGTERM while the workers stop is ignored until the socket is released:
            # the stop under way is already the graceful one, and its wait is bounded
            # (drain_timeout + 5 s). The previous handler (SIG_DFL, as a rule) would
            # kill us in the middle: the --uds file left behind, and under systemd's
            # KillMode=mixed the draining workers killed with us. Whoever wants it
            # faster has a second Ctrl-C (below), or SIGKILL.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nothing to restart any more
            if self._stop_requested:
                # A second Ctrl-C interrupts the wait below (KeyboardInterrupt), even
                # when SIGINT was ignored as we started (a background job of a shell
                # without job control): the first one stopped us all the same. Announced
                # only now: before, one that came in between was taken for the first.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                self.announce("Stopping the workers...")
            else:
                signal.signal(signal.SIGINT, previous[signal.SIGINT])
            try:
                self._stop_all()
            finally:  # a second Ctrl-C while the workers drain still frees the socket
                self._release_socket()
                for number, handler in previous.items():
                    signal.signal(number, handler)

    def _release_socket(self) -> None:
        """Close the socket bound in :meth:`_bind`; remove the Unix socket file, if it
        is still ours."""
        if self._socket is not None:
            self._socket.close()
        uds = self.spec.uds
        if uds is not None and self._uds_inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(uds).st_ino == self._uds_inode:
                    os.unlink(uds)

    def _supervise(self) -> int:
        announced = False
        restarting = False
        started = time.monotonic()
        while not self._stop_requested:
            if self._restart_requested:
                self._restart_requested = False
                self._restart_all()
                restarting = True
            now = time.monotonic()
            self._reap_retired(now)
            for slot in self.slots:
                self._check_ready(slot)
                if slot.old is not None and slot.old.poll() is not None:
                    self.announce(
                        f"worker {slot.old.pid} exited with {slot.old.returncode}"
                        " while its replacement started"
                    )
                    slot.old = None
                if self._reap(slot) and slot.start_crashes >= self.max_start_crashes:
                    self.announce(
                        f"workers keep dying as they start ({slot.start_crashes} times in a "
                        "row): giving up. Run the app without --workers to see why."
                    )
                    return 1
                if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._start(slot)
            if not announced:
                if all(slot.ready for slot in self.slots):
                    self.announce(
                        f"Serving {self.spec.app} on {self.url} with {self.count} workers "
                        f"({self.spec.backend}; pids "
                        f"{' '.join(str(s.process.pid) for s in self.slots if s.process)})"
                        " (Ctrl-C to stop)"
                    )
                    announced = True
                elif now - started > READY_TIMEOUT + self.backoff_max * self.max_start_crashes:
                    self.announce("the workers did not start listening: giving up.")
                    return 1
            if restarting and all(slot.ready and slot.old is None for slot in self.slots):
                self.announce(f"Workers restarted (pids {' '.join(map(str, self.pids()))})")
                restarting = False
            time.sleep(POLL)
        return 0  # run() announces the stop once Ctrl-C interrupts again

    def _stop_all(self) -> None:
        for slot in self.slots:  # the old ones a restart left serving too
            for process in (slot.process, slot.old):
                if process is not None:
                    self._retire(process)
            slot.old = None
        for process, deadline in self._retiring:  # each SIGTERM'd once, then waited for
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._retiring = []
        for slot in self.slots:
            if slot.ready_fd is not None:
                os.close(slot.ready_fd)
                slot.ready_fd = None

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]


def run(
    app: str,
    *,
    port: int = 8000,
    address: str = "127.0.0.1",
    uds: str | None = None,
    workers: int = 0,
    backend: str = "asyncio",
    **options: Any,
) -> int:
    """Serve ``app`` (``"module:attribute"``: a request handler or a ServeConfig) with
    ``workers`` processes (0: one per CPU) until SIGTERM or Ctrl-C; blocks, and returns
    the exit status (0 after a graceful stop). ``options`` are ServeConfig fields that
    are plain data (``trusted_proxies``, ``drain_timeout``, ``access_log``, limits
    given as numbers...), passed to every worker as JSON.
    """
    if backend not in ("asyncio", "uvloop", "trio"):
        raise InvalidArgument(f"backend must be asyncio, uvloop or trio, not {backend!r}.")
    spec = WorkerSpec(app, port, address, uds, backend, dict(options))
    try:
        json.dumps(spec.options)
    except TypeError as exc:
        raise InvalidArgument(f"worker options must be plain data (JSON): {exc}.") from None
    return Supervisor(spec, workers).run()  # which loads the app first: see there


def _main(argv: list[str]) -> None:  # pragma: no cover - runs in the worker processes
    payload = json.loads(argv[0])
    _worker_main(WorkerSpec(**payload["spec"]), payload["ready"], payload["sock"])


if __name__ == "__main__":  # pragma: no cover - the worker processes
    _main(sys.argv[1:])
