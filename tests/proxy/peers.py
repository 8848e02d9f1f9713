"""Real proxy servers for the proxy tests, each on 127.0.0.1 and a free port, each
stopped by its context manager (and two origins, ``http_origin()`` and
``https_origin()``):

* ``tinyproxy()``: tinyproxy 1.11, an HTTP forward proxy that also tunnels ``CONNECT`` to
  any port (the config has no ``ConnectPort`` line, which tinyproxy 1.11 reads as "every
  port"), with ``BasicAuth`` when ``auth`` is given. tinyproxy's config grammar takes
  only ``[a-z0-9._]`` in a password (a space, ``-``, ``!``, ``%`` or ``:`` are syntax
  errors, quoted or not), hence ``HTTP_AUTH``'s password. Beware: tinyproxy closes the
  client's connection after every forwarded (non-``CONNECT``) response *without* a
  ``Connection: close``, so a client's pooled connection to it is always stale; a
  ``CONNECT`` tunnel stays open.
* ``squid(auth=None)``: squid 5, an HTTP forward proxy that keeps client connections
  alive (plain forwarding too) and tunnels ``CONNECT`` to any port, with Basic auth
  (``basic_ncsa_auth``; a space in the password works) when ``auth`` is given.
* ``socks5_server(auth=None)``: microsocks (SOCKS5 only; ``-u/-P`` username/password
  auth, any bytes in the password, spaces included).
* ``socks4a_server()``: OpenSSH's dynamic forwarding (``ssh -D``), which speaks SOCKS4,
  SOCKS4a (the server resolves the host name) and SOCKS5 without auth, over an ``sshd
  -i`` that the ssh client runs as its ``ProxyCommand`` (no sshd listens anywhere).
  Neither dante 1.4.2 nor pproxy 2.7.9 does SOCKS4a: both read the 0.0.0.x address as
  the destination and never read the host name.

``ProxyServer.connections()`` counts the client connections the proxy itself logged as
accepted (tinyproxy: ``Connect (file descriptor N)``; squid: the distinct client
(address, port) pairs of its access log, see ``SquidServer``; microsocks: ``client[N] ...:
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
import ssl
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

from tests.tcp.peers import free_port, require

HTTP_AUTH = ("alice", "s3cret.pass")  # tinyproxy rejects "s3cret pass" (see above)
HTTP_AUTH_SQUID = ("alice", "s3cret pass")  # squid takes the space
SOCKS_AUTH = ("alice", "s3cret pass")  # microsocks takes the space
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


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
    start_timeout: float = START_TIMEOUT

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

    def quiet_connections(self, quiet: float = 0.5, limit: float = 5.0) -> int:
        """``connections()`` once it has not changed for ``quiet`` seconds (at most
        ``limit``): what a test reads before its own requests, since a proxy logs some
        connections only when they end (squid logs a tunnel when it closes), a little
        after the previous test closed them."""
        deadline = time.monotonic() + limit
        count = self.connections()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.connections()
            if now != count:
                count, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                break
        return count

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
        deadline = time.monotonic() + self.start_timeout
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
                        f"nothing listens on {self.host}:{self.port} after {self.start_timeout:g} s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.02)
        if self.probe_logged:  # wait until the probe is counted: counts start settled
            deadline = time.monotonic() + self.start_timeout
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
{extra}
"""


@contextmanager
def tinyproxy(
    auth: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
) -> Iterator[ProxyServer]:
    """tinyproxy in the foreground (``-d``) with its own config. No ``User``/``Group``:
    it keeps the user it was started as (as root it only logs a warning).
    ``connect_ports``: CONNECT only to these ports (tinyproxy answers 403 to others);
    none: to any port."""
    binary = require("tinyproxy")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sn-tinyproxy-") as folder:
        log = Path(folder) / "tinyproxy.log"
        conf = Path(folder) / "tinyproxy.conf"
        conf.write_text(
            TINYPROXY_CONF.format(
                port=port,
                log=log,
                auth=f"BasicAuth {auth[0]} {auth[1]}" if auth else "",
                extra="".join(f"ConnectPort {number}\n" for number in connect_ports),
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


SQUID_CONF = """\
http_port 127.0.0.1:{port}
visible_hostname localhost
pid_filename none
coredump_dir {folder}
cache_log stdio:{folder}/cache.log
logformat sansnet %ts.%03tu %>a %>p %Ss/%03>Hs %rm %ru %un
access_log stdio:{folder}/access.log sansnet
buffered_logs off
cache_store_log none
cache deny all
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
dns_nameservers 127.0.0.1
hosts_file /etc/hosts
shutdown_lifetime 0 seconds
client_persistent_connections on
server_persistent_connections on
acl sansnet_clients src 127.0.0.1/32
{auth}
http_access deny all
"""

SQUID_AUTH = """\
auth_param basic program {helper} {folder}/passwd
auth_param basic children 2
auth_param basic realm sansnet-squid
acl sansnet_authed proxy_auth REQUIRED
http_access allow sansnet_clients sansnet_authed"""

SQUID_HELPER = "/usr/lib/squid/basic_ncsa_auth"
SQUID_START_TIMEOUT = 15.0


@dataclass
class SquidServer(ProxyServer):
    """squid: its access log has a line per *request* (written when the request is done,
    a ``CONNECT`` when its tunnel closes), each with the client's address and source
    port (the ``sansnet`` logformat: ``%>a %>p``), and squid 5 also logs a connection
    closed before its first request (``NONE_NONE/000 ...
    error:transaction-end-before-headers``: start()'s probe is one). So
    ``connections()`` counts the distinct (address, port) pairs in it: the client
    connections squid accepted, once each has ended or carried a request. A source port
    that the client's system reuses for a later connection would count once: Linux
    hands out the ports to one destination in turn, so that takes some 28,000
    connections."""

    access_log: Path = field(default=Path("/dev/null"))
    cache_log: Path = field(default=Path("/dev/null"))
    service: str = "squid"  # squid -n: names its shared memory segments in /dev/shm

    def connections(self) -> int:
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return len({tuple(line.split()[1:3]) for line in text.splitlines() if line.strip()})

    def log_text(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in (self.log, self.cache_log, self.access_log)
            if path.exists()
        )

    def stop(self) -> None:
        super().stop()
        for segment in Path("/dev/shm").glob(f"{self.service}-*.shm"):  # left by a kill -9
            segment.unlink(missing_ok=True)


@contextmanager
def squid(auth: tuple[str, str] | None = None) -> Iterator[ProxyServer]:
    """squid 5 in the foreground (``-N``: no daemon, no kid processes) with its own
    config in a temporary directory: no cache (``cache deny all``, no ``cache_dir``),
    keep-alive to clients and to servers, ``CONNECT`` to any port (no ``Safe_ports`` /
    ``SSL_ports`` rules), clients on 127.0.0.1 only, host names from /etc/hosts (so
    ``localhost`` resolves without DNS). With ``auth``, Basic auth through squid's
    ``basic_ncsa_auth`` helper and an ``openssl passwd -apr1`` file: squid hands the
    helper the password URL-escaped, so a space in it works (``HTTP_AUTH_SQUID``). Started
    as root, squid runs as ``cache_effective_user`` (``proxy`` on Debian): the directory
    is handed to that user."""
    binary = require("squid")
    port = free_port()
    service = f"sansnet{port}"
    with tempfile.TemporaryDirectory(prefix="sn-squid-") as folder:
        auth_lines = "http_access allow sansnet_clients"
        if auth is not None:
            if not os.access(SQUID_HELPER, os.X_OK):
                pytest.fail(f"{SQUID_HELPER} is missing: `apt-get install squid`.")
            hashed = (
                subprocess.run(
                    ["openssl", "passwd", "-apr1", "-stdin"],
                    input=auth[1].encode(),
                    capture_output=True,
                    check=True,
                    timeout=30,
                )
                .stdout.decode()
                .strip()
            )
            Path(folder, "passwd").write_text(f"{auth[0]}:{hashed}\n")
            auth_lines = SQUID_AUTH.format(helper=SQUID_HELPER, folder=folder)
        Path(folder, "squid.conf").write_text(
            SQUID_CONF.format(port=port, folder=folder, auth=auth_lines)
        )
        if os.geteuid() == 0:  # squid drops to the proxy user: its logs must be writable
            import pwd

            user = pwd.getpwnam("proxy")
            for path in (Path(folder), *Path(folder).iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        server = SquidServer(
            scheme="http",
            host="127.0.0.1",
            port=port,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
            command=[binary, "-N", "-n", service, "-f", f"{folder}/squid.conf"],
            log=Path(folder) / "squid.out",
            marker="",  # connections() is SquidServer's own
            log_stderr=True,
            probe_logged=True,
            start_timeout=SQUID_START_TIMEOUT,
            access_log=Path(folder) / "access.log",
            cache_log=Path(folder) / "cache.log",
            service=service,
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
    ssh, sshd, keygen = (
        require("ssh", "openssh-client"),
        require("sshd", "openssh-server"),
        require("ssh-keygen", "openssh-client"),
    )
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
    wbufsize = 65536  # the head and the body in one write (else Nagle and a delayed ACK
    # on the proxy's side cost 40 ms a response); handle_one_request() flushes

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


@dataclass
class HttpsOrigin:
    """``url`` (``https://localhost:PORT``) and ``ca_file`` (the PEM of the CA that
    signed its certificate, for ``localhost`` and ``127.0.0.1``)."""

    url: str
    ca_file: str

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


@contextmanager
def https_origin() -> Iterator[HttpsOrigin]:
    """``http_origin()``'s server over TLS, a trustme certificate for ``localhost`` and
    ``127.0.0.1``. The handshake runs in the request's thread, not in accept()."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    server.daemon_threads = True
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    with tempfile.TemporaryDirectory(prefix="sn-origin-ca-") as folder:
        ca_file = f"{folder}/ca.pem"
        ca.cert_pem.write_to_path(ca_file)
        try:
            yield HttpsOrigin(f"https://localhost:{server.server_address[1]}", ca_file)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(STOP_TIMEOUT)
