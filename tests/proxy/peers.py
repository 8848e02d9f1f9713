"""Real proxy servers for the proxy tests, each on 127.0.0.1 and a free port, each
stopped by its context manager:

* ``tinyproxy()``: tinyproxy 1.11, an HTTP forward proxy that also tunnels ``CONNECT`` to
  any port (the config has no ``ConnectPort`` line, which tinyproxy 1.11 reads as "every
  port"), with ``BasicAuth`` when ``auth`` is given. tinyproxy's config grammar takes
  only ``[a-z0-9._]`` in a password (a space, ``-``, ``!``, ``%`` or ``:`` are syntax
  errors, quoted or not), hence ``HTTP_AUTH``'s password. Beware: tinyproxy closes the
  client's connection after every forwarded (non-``CONNECT``) response *without* a
  ``Connection: close``, so a client's pooled connection to it is always stale; a
  ``CONNECT`` tunnel stays open.
* ``socks5_server(auth=None)``: microsocks (SOCKS5 only; ``-u/-P`` username/password
  auth, any bytes in the password, spaces included).
* ``socks4a_server()``: OpenSSH's dynamic forwarding (``ssh -D``), which speaks SOCKS4,
  SOCKS4a (the server resolves the host name) and SOCKS5 without auth, over an ``sshd
  -i`` that the ssh client runs as its ``ProxyCommand`` (no sshd listens anywhere).
  Neither dante 1.4.2 nor pproxy 2.7.9 does SOCKS4a: both read the 0.0.0.x address as
  the destination and never read the host name.

``ProxyServer.connections()`` counts the client connections the proxy itself logged as
accepted (tinyproxy: ``Connect (file descriptor N)``; microsocks: ``client[N] ...:
connected to``, one per tunnel it opened, so a connection refused at the auth step is not
counted; ``ssh -v``: ``Connection to port P forwarding to socks port 0 requested.``). The
log is appended to across ``restart()``, so the count is cumulative."""

from __future__ import annotations

import getpass
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

# (program, Debian package) of every program started here; .ci/run installs them
PACKAGES = {
    "tinyproxy": "tinyproxy",
    "microsocks": "microsocks",
    "ssh": "openssh-client",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}
HTTP_AUTH = ("alice", "s3cret.pass")  # tinyproxy rejects "s3cret pass" (see above)
SOCKS_AUTH = ("alice", "s3cret pass")  # microsocks takes the space
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None and os.access(f"/usr/sbin/{program}", os.X_OK):
        path = f"/usr/sbin/{program}"  # sshd, outside a non-root PATH
    if path is None:
        package = PACKAGES.get(program, program)
        pytest.fail(f"{program} is not installed: `apt-get install {package}` (.ci/run does it).")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProxyServer:
    """A proxy server process (and how to start it again): its URL, its credentials,
    the connections it logged."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    command: list[str]
    log: Path
    marker: str  # a line of the log holding this is one accepted connection
    log_stderr: bool  # the program logs to its stderr (else to ``log`` itself)
    probe_logged: bool  # the port probe of start() shows in connections()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        userinfo = ""
        if self.username is not None:
            userinfo = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@"
        return f"{self.scheme}://{userinfo}{self.host}:{self.port}"

    def connections(self) -> int:
        """How many client connections the proxy has accepted so far, by its own log."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(self.marker in line for line in text.splitlines())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        assert self.process is None, "already running"
        before = self.connections()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log if self.log_stderr else subprocess.DEVNULL,
                stderr=log if self.log_stderr else subprocess.DEVNULL,
                start_new_session=True,  # stop() kills the group: ssh's sshd child too
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                status = self.process.returncode
                self.process = None
                raise RuntimeError(
                    f"{self.command[0]} exited with {status} before listening:\n{self.log_text()}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"nothing listens on {self.host}:{self.port} after {START_TIMEOUT:g} s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.02)
        if self.probe_logged:  # wait until the probe is counted: counts start settled
            deadline = time.monotonic() + START_TIMEOUT
            while self.connections() <= before:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{self.command[0]} never logged its probe:\n{self.log_text()}"
                    )
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGKILL (the whole process group), as a proxy that dies; waits for it."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        """Kill it (-9) and start it again on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextmanager
def _running(server: ProxyServer) -> Iterator[ProxyServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


TINYPROXY_CONF = """\
Listen 127.0.0.1
Port {port}
Timeout 600
MaxClients 100
LogFile "{log}"
LogLevel Connect
Allow 127.0.0.1
{auth}
"""


@contextmanager
def tinyproxy(auth: tuple[str, str] | None = None) -> Iterator[ProxyServer]:
    """tinyproxy in the foreground (``-d``) with its own config. No ``User``/``Group``:
    it keeps the user it was started as (as root it only logs a warning)."""
    binary = require("tinyproxy")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sn-tinyproxy-") as folder:
        log = Path(folder) / "tinyproxy.log"
        conf = Path(folder) / "tinyproxy.conf"
        conf.write_text(
            TINYPROXY_CONF.format(
                port=port, log=log, auth=f"BasicAuth {auth[0]} {auth[1]}" if auth else ""
            )
        )
        server = ProxyServer(
            scheme="http",
            host="127.0.0.1",
            port=port,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
            command=[binary, "-d", "-c", str(conf)],
            log=log,
            marker="Connect (file descriptor",
            log_stderr=False,
            probe_logged=True,
        )
        with _running(server):
            yield server


@contextmanager
def socks5_server(auth: tuple[str, str] | None = None) -> Iterator[ProxyServer]:
    """microsocks on 127.0.0.1 (SOCKS5; username/password auth when ``auth`` is given)."""
    binary = require("microsocks")
    port = free_port()
    command = [binary, "-i", "127.0.0.1", "-p", str(port)]
    if auth is not None:
        command += ["-u", auth[0], "-P", auth[1]]
    with tempfile.TemporaryDirectory(prefix="sn-microsocks-") as folder:
        server = ProxyServer(
            scheme="socks5",
            host="127.0.0.1",
            port=port,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
            command=command,
            log=Path(folder) / "microsocks.log",
            marker=": connected to ",
            log_stderr=True,
            probe_logged=False,
        )
        with _running(server):
            yield server


SSHD_CONFIG = """\
HostKey {folder}/host_key
AuthorizedKeysFile {folder}/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
LogLevel ERROR
"""


@contextmanager
def socks4a_server() -> Iterator[ProxyServer]:
    """``ssh -N -D 127.0.0.1:PORT`` to an ``sshd -i`` it runs itself (``ProxyCommand``),
    with throwaway keys: a SOCKS4a (and SOCKS4/SOCKS5) server without auth. Its
    ``connections()`` start at 1: the port probe that waited for it is one."""
    ssh, sshd, keygen = require("ssh"), require("sshd"), require("ssh-keygen")
    port = free_port()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
    with tempfile.TemporaryDirectory(prefix="sn-ssh-socks-") as folder:
        for name in ("host_key", "user_key"):
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-f", f"{folder}/{name}"],
                check=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
        shutil.copy(f"{folder}/user_key.pub", f"{folder}/authorized_keys")
        os.chmod(f"{folder}/authorized_keys", 0o600)
        Path(folder, "sshd_config").write_text(SSHD_CONFIG.format(folder=folder))
        command = [
            ssh,
            "-N",
            "-v",
            "-F",
            "/dev/null",
            "-D",
            f"127.0.0.1:{port}",
            "-i",
            f"{folder}/user_key",
            "-o",
            f"ProxyCommand={sshd} -i -e -f {folder}/sshd_config",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            f"{getpass.getuser()}@127.0.0.1",
        ]
        server = ProxyServer(
            scheme="socks4a",
            host="127.0.0.1",
            port=port,
            username=None,
            password=None,
            command=command,
            log=Path(folder) / "ssh.log",
            marker=f"Connection to port {port} forwarding to socks port 0 requested.",
            log_stderr=True,
            probe_logged=True,
        )
        with _running(server):
            yield server


# ---------------------------------------------------------------- an origin server


class _Origin(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; any GET answers JSON: the path, the request headers, the
    peer's address as the origin saw it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "peer": list(self.client_address),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextmanager
def http_origin() -> Iterator[str]:
    """A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a thread; yields its base URL
    (``http://127.0.0.1:PORT``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT)
