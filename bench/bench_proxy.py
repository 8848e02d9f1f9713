"""HTTP client benchmark through a forward proxy: sansnet against httpx and aiohttp.

    python bench/bench_proxy.py [--quick] [--connect] [--requests N]
                                [--proxy-server squid|tinyproxy]

Every client fetches the same 13-byte body ("Hello, world!") from one nginx on 127.0.0.1
(bench_client's, started the same way) through one proxy on 127.0.0.1 (no auth, its own
minimal config in a temporary directory, on a free port): ``--proxy-server`` squid (the
default when installed) or tinyproxy (``apt-get install nginx squid tinyproxy``);
``--requests`` (1,000) GETs one after the other on one client:

* plain (default): ``http://`` URLs, which the proxy forwards (absolute-form requests).
  squid 5 keeps the client's connection alive (and its own to nginx). tinyproxy 1.11
  closes the client's connection after every forwarded response (without a
  ``Connection: close``), so each request opens a new connection to the proxy, and the
  proxy one to nginx; through tinyproxy every client sends ``Connection: close``, since
  reusing the connection races tinyproxy's close (httpx lost that race);
* ``--connect``: ``https://`` URLs (nginx with a trustme certificate, each client
  verifying it with the trustme CA), tunnelled with ``CONNECT``: one tunnel, kept alive.

Rows: sansnet (``sansnet.Client(proxy=PROXY_URL)``), httpx (``httpx.AsyncClient(proxy=)``),
aiohttp (``session.get(url, proxy=)``), all on asyncio; for reference, a raw asyncio
stream writing prebuilt request bytes through the same proxy (no HTTP library: the
ceiling the proxy and nginx leave to any client) and sansnet without the proxy. Each
figure is the best of ``ROUNDS`` runs after a warm-up run, the clients taking turns
within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, versions, wait_listening
from bench_client import BODY, NGINX_CONF, Nginx, free_port

import sansnet
from sansnet.protocol import H11_BUILD

REQUESTS = 1000
ROUNDS = 5

TINYPROXY_CONF = """\
Listen 127.0.0.1
Port {port}
Timeout 600
MaxClients 100
LogFile "{dir}/tinyproxy.log"
LogLevel Warning
Allow 127.0.0.1
"""

TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location / {{
            default_type text/plain;
            return 200 "Hello, world!";
        }}
    }}
}}
"""


class TlsNginx(Nginx):
    """bench_client's nginx, plus an HTTPS server on a second port with a trustme
    certificate for 127.0.0.1; ``tls_url`` and ``client_context`` (trusting its CA)."""

    def __init__(self) -> None:
        super().__init__()
        import trustme

        self.tls_port = free_port()
        self.tls_url = f"https://127.0.0.1:{self.tls_port}/"
        self._ca = trustme.CA()
        self.client_context = ssl.create_default_context()
        self._ca.configure_trust(self.client_context)

    def __enter__(self) -> TlsNginx:
        if self.binary is None:
            raise SystemExit(
                "nginx is not installed: `apt-get install -y nginx`. Nothing was measured."
            )
        directory = self._dir.name
        cert = self._ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(f"{directory}/cert.pem")
        cert.private_key_pem.write_to_path(f"{directory}/key.pem")
        conf = NGINX_CONF.format(dir=directory, port=self.port).rstrip().removesuffix("}")
        conf += TLS_SERVER.format(port=self.tls_port, dir=directory)  # closes the http block
        Path(directory, "nginx.conf").write_text(conf)
        self._process = subprocess.Popen(
            [
                self.binary,
                "-c",
                f"{directory}/nginx.conf",
                "-p",
                directory,
                "-e",
                f"{directory}/error.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(500):  # at most 5 s
            try:
                raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=1)
                with raw, self.client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if tls.recv(1024).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                time.sleep(0.01)
        self.__exit__()
        raise SystemExit("nginx (TLS) did not start; see its error.log.")


SQUID_CONF = """\
http_port 127.0.0.1:{port}
visible_hostname localhost
pid_filename none
coredump_dir {dir}
cache_log stdio:{dir}/cache.log
access_log none
cache_store_log none
cache deny all
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
shutdown_lifetime 0 seconds
client_persistent_connections on
server_persistent_connections on
acl bench_clients src 127.0.0.1/32
http_access allow bench_clients
http_access deny all
"""


def squid_binary() -> str | None:
    return shutil.which("squid") or shutil.which("squid", path="/usr/sbin")


class Squid:
    """squid 5 in the foreground (``-N``) on 127.0.0.1 with a throwaway config: no
    cache, no access log, keep-alive both sides, no auth, CONNECT to any port; a
    context manager. As root it runs as the ``proxy`` user, who gets the directory."""

    name = "squid"
    closes_after_forwarding = False

    def __init__(self) -> None:
        self.binary = squid_binary()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-squid-")
        self._service = f"bench{self.port}"  # -n: its shared memory segments' names
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Squid:
        if self.binary is None:
            raise SystemExit(
                "squid is not installed: `apt-get install -y squid` (Debian), or "
                "--proxy-server tinyproxy. Nothing was measured."
            )
        directory = Path(self._dir.name)
        (directory / "squid.conf").write_text(SQUID_CONF.format(port=self.port, dir=directory))
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("proxy")
            for path in (directory, *directory.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._process = subprocess.Popen(
            [self.binary, "-N", "-n", self._service, "-f", f"{directory}/squid.conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait_listening(self.port, self._process, 15):
            return self
        log = (directory / "cache.log").read_text(errors="replace")[-2000:]
        self.__exit__()
        raise SystemExit(f"squid did not start:\n{log}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.kill()  # shutdown_lifetime 0 would do, SIGKILL does it now
            self._process.wait(5)
        for segment in Path("/dev/shm").glob(f"{self._service}-*.shm"):
            segment.unlink(missing_ok=True)
        self._dir.cleanup()


class Tinyproxy:
    """tinyproxy on 127.0.0.1 with a throwaway config (no auth, CONNECT to any port);
    a context manager."""

    name = "tinyproxy"
    closes_after_forwarding = True

    def __init__(self) -> None:
        self.binary = shutil.which("tinyproxy")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-tinyproxy-")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Tinyproxy:
        if self.binary is None:
            raise SystemExit(
                "tinyproxy is not installed: `apt-get install -y tinyproxy` (Debian) to run "
                "this benchmark. Nothing was measured."
            )
        conf = Path(self._dir.name) / "tinyproxy.conf"
        conf.write_text(TINYPROXY_CONF.format(port=self.port, dir=self._dir.name))
        self._process = subprocess.Popen(
            [self.binary, "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait_listening(self.port, self._process, 5):
            return self
        self.__exit__()
        raise SystemExit("tinyproxy did not start; see its log in " + self._dir.name)

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._dir.cleanup()


# ------------------------------------------------------------------------- clients
# Each returns the seconds taken for ``REQUESTS`` GETs; every response body is checked.


async def sansnet_run(
    url: str, proxy: str | None, context: ssl.SSLContext | None, headers: dict[str, str]
) -> tuple[float, float]:
    options: dict[str, Any] = {"headers": headers}
    if context is not None:
        options["verify"] = context
    if proxy is not None:
        options["proxy"] = proxy  # the proxy API this benchmark is for
    async with sansnet.Client(**options) as client:
        await client.request(url)  # connect outside the timed loop
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(REQUESTS):
            response = await client.request(url)
            assert response.body == BODY
        return time.perf_counter() - started, time.process_time() - cpu


async def httpx_run(
    url: str, proxy: str | None, context: ssl.SSLContext | None, headers: dict[str, str]
) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient(proxy=proxy, verify=context or True, headers=headers) as client:
        await client.get(url)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(REQUESTS):
            response = await client.get(url)
            assert response.content == BODY
        return time.perf_counter() - started, time.process_time() - cpu


async def aiohttp_run(
    url: str, proxy: str | None, context: ssl.SSLContext | None, headers: dict[str, str]
) -> tuple[float, float]:
    import aiohttp

    ssl_option: ssl.SSLContext | bool = context or True
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url, proxy=proxy, ssl=ssl_option) as response:
            await response.read()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(REQUESTS):
            async with session.get(url, proxy=proxy, ssl=ssl_option) as response:
                assert await response.read() == BODY
        return time.perf_counter() - started, time.process_time() - cpu


async def raw_run(
    url: str, proxy: str | None, context: ssl.SSLContext | None, headers: dict[str, str]
) -> tuple[float, float]:
    """The proxy's ceiling: request bytes built once, written on an asyncio stream, each
    response read by its Content-Length; no HTTP library on the client side. What the
    proxy and nginx cost, with as little of a client as can be."""
    assert proxy is not None
    split, via = urlsplit(url), urlsplit(proxy)
    authority = f"{split.hostname}:{split.port}"
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    target = split.path or "/" if context is not None else url
    request = f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n{fields}\r\n".encode()
    reconnect = headers.get("Connection") == "close"

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(via.hostname, via.port)
        if context is not None:
            writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.split(b" ", 2)[1] == b"200", head
            await writer.start_tls(context, server_hostname=split.hostname)
        return reader, writer

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert found is not None, head
        assert await reader.readexactly(int(found.group(1))) == BODY

    reader, writer = await connect()
    await one(reader, writer)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(REQUESTS):
        if reconnect:
            writer.close()
            reader, writer = await connect()
        await one(reader, writer)
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    writer.close()
    return elapsed


Run = Callable[
    [str, "str | None", "ssl.SSLContext | None", dict[str, str]],
    Coroutine[Any, Any, tuple[float, float]],
]


def interleaved_best_pairs(
    runs: dict[str, Callable[[], tuple[float, float]]], rounds: int
) -> dict[str, tuple[float, float]]:
    """bench_client's interleaved_best for runs that return (wall, CPU) seconds: the
    best of each over ``rounds`` rounds, taken separately, the runs taking turns."""
    for run in runs.values():
        run()  # warm-up: imports, caches, first connections
    best = dict.fromkeys(runs, (float("inf"), float("inf")))
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            wall, cpu = run()
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


# ------------------------------------------------------------------------- running


def main() -> None:
    global REQUESTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    parser.add_argument(
        "--connect", action="store_true", help="https through CONNECT instead of plain http"
    )
    parser.add_argument("--requests", type=int, default=REQUESTS, help="GETs per run")
    parser.add_argument(
        "--proxy-server",
        choices=["squid", "tinyproxy"],
        default="squid" if squid_binary() else "tinyproxy",
        help="the proxy (default: squid if installed, else tinyproxy)",
    )
    args = parser.parse_args()
    REQUESTS = args.requests
    rounds = 2 if args.quick else ROUNDS
    proxy_server = Squid() if args.proxy_server == "squid" else Tinyproxy()
    with TlsNginx() if args.connect else Nginx() as server, proxy_server as proxy:
        if isinstance(server, TlsNginx):
            url, context = server.tls_url, server.client_context
        else:
            url, context = server.url, None

        def on_asyncio(run: Run, via: str | None) -> Callable[[], tuple[float, float]]:
            # tinyproxy closes after each forwarded response without saying so: a client
            # reusing the connection races that close (httpx 0.29 lost it with "Server
            # disconnected without sending a response"), so through tinyproxy in plain
            # mode every client asks for the close itself; squid keeps alive
            forwarded = via is not None and not args.connect
            close = forwarded and proxy.closes_after_forwarding
            headers = {"Connection": "close"} if close else {}
            return lambda: asyncio.run(run(url, via, context, headers))

        runs = {
            "sansnet": on_asyncio(sansnet_run, proxy.url),
            "httpx": on_asyncio(httpx_run, proxy.url),
            "aiohttp": on_asyncio(aiohttp_run, proxy.url),
            "raw stream (the proxy's ceiling)": on_asyncio(raw_run, proxy.url),
            "sansnet, no proxy": on_asyncio(sansnet_run, None),
        }
        times = interleaved_best_pairs(runs, rounds)
    rates = {name: REQUESTS / wall for name, (wall, _) in times.items()}
    cpu = {name: 1e6 * used / REQUESTS for name, (_, used) in times.items()}

    ours, our_cpu = rates["sansnet"], cpu["sansnet"]
    rows = [
        [
            name,
            f"{rate:,.0f}",
            f"{ours / rate:.2f}x",
            f"{cpu[name]:,.0f}",
            f"{cpu[name] / our_cpu:.2f}x",
        ]
        for name, rate in rates.items()
    ]
    if args.connect:
        mode = "https through CONNECT (one tunnel)"
    elif proxy.closes_after_forwarding:
        mode = "http forwarded (Connection: close: a connection a request)"
    else:
        mode = "http forwarded (kept alive)"
    print(
        f"\n{machine()}; sansnet on {H11_BUILD}; nginx and {proxy.name} on 127.0.0.1; "
        f"best of {rounds} runs; asyncio"
    )
    print(versions(["httpx", "aiohttp"]))
    print(
        table(
            f"{REQUESTS} sequential GETs of a 13-byte body through {proxy.name}, {mode}",
            ["client", "req/s", "sansnet/it", "client CPU us/req", "CPU it/sansnet"],
            rows,
        )
    )
    print(
        "req/s is bounded by the proxy (the raw stream row is its ceiling); the client's own "
        "cost is its CPU per request, measured in the benchmark process (time.process_time): "
        "'CPU it/sansnet' is how many times sansnet's CPU a request costs that client."
    )


if __name__ == "__main__":
    main()
