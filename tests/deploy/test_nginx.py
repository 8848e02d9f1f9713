"""Real nginx in front of a 2-worker sansnet server, with the configuration
docs/deployment.md recommends: HTTP requests, a streamed (chunked, unbuffered) upload,
a WebSocket echo through nginx's upgrade proxying, and ``ServeRequest.ip`` equal to the
real client's address via ``X-Forwarded-For`` (the client connects from 127.0.0.2, nginx
from 127.0.0.1), a client's own ``Forwarded`` and ``X-Forwarded-Host`` not believed;
then the same with the Unix socket upstream; and nginx's upstream keep-alive in use."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.tcp.peers import free_port

from .conftest import Served, serve_workers

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLIENT_IP = "127.0.0.2"  # all of 127.0.0.0/8 is loopback on Linux


CONFIG = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream sansnet {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://sansnet;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header Forwarded "";
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[int]:
    """nginx on 127.0.0.1:PORT proxying to ``upstream`` (``host:port`` or ``unix:PATH``)."""
    assert os.path.exists(NGINX), "needs nginx: apt-get install nginx (.ci/run does it)"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sn-nginx-") as prefix:
        user = "user root;" if os.geteuid() == 0 else ""
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(CONFIG.format(user=user, prefix=prefix, upstream=upstream, port=port))
        process = subprocess.Popen(
            [NGINX, "-p", prefix, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        errors = (Path(prefix) / "error.log").read_text(errors="replace")
                        raise AssertionError(f"nginx did not start: {errors}") from None
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.communicate(timeout=10)


def curl(*args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["curl", "-sS", "--fail", "--interface", CLIENT_IP, *args],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def websocket_echo(port: int, message: str) -> str:
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), source_address=(CLIENT_IP, 0))
    with connect(f"ws://127.0.0.1:{port}/ws", sock=sock, open_timeout=10) as ws:
        ws.send(message)
        return str(ws.recv(timeout=10))


def check_through_nginx(port: int, server: Served) -> None:
    workers = set(server.worker_pids())
    seen = set()
    for _ in range(30):
        answer = json.loads(curl(f"http://127.0.0.1:{port}/hello"))
        assert answer["ip"] == CLIENT_IP  # the real client, from X-Forwarded-For
        assert answer["scheme"] == "http"
        assert answer["host"] == "127.0.0.1"
        seen.add(answer["pid"])
    # A client's own Forwarded field, which would win over X-Forwarded-*, never
    # reaches the server: nginx clears it.
    spoof = "Forwarded: for=203.0.113.66;proto=https;host=evil.example"
    answer = json.loads(curl("-H", spoof, f"http://127.0.0.1:{port}/hello"))
    assert (answer["ip"], answer["scheme"], answer["host"]) == (CLIENT_IP, "http", "127.0.0.1")
    # Nor does a client's own X-Forwarded-Host: nginx sets it to the host it served
    # (it passed the client's through, and the server believed it: request.host and
    # url were the client's choice, past nginx's server_name).
    spoof = "X-Forwarded-Host: evil.example"
    answer = json.loads(curl("-H", spoof, f"http://127.0.0.1:{port}/hello"))
    assert (answer["ip"], answer["scheme"], answer["host"]) == (CLIENT_IP, "http", "127.0.0.1")
    assert seen <= workers
    upload = os.urandom(5 * 1024 * 1024)
    answer = json.loads(
        curl(
            "-T",
            "-",  # from stdin: curl streams it chunked, nginx passes it on unbuffered
            "-H",
            "Content-Type: application/octet-stream",
            f"http://127.0.0.1:{port}/upload",
            data=upload,
        )
    )
    assert answer["length"] == len(upload)
    assert answer["sha256"] == hashlib.sha256(upload).hexdigest()
    echoed = websocket_echo(port, "through nginx")
    assert echoed.startswith("through nginx from ")
    assert echoed.endswith(f" for {CLIENT_IP}")
    assert int(echoed.split()[3]) in workers


def test_nginx_in_front_of_two_workers_over_tcp(app_dir: Path, served: list[Served]) -> None:
    server = serve_workers(
        app_dir,
        "deployapp:app",
        "--workers",
        "2",
        "--port",
        "0",
        "--trusted-proxies",
        "127.0.0.1",
    )
    served.append(server)
    with nginx_in_front_of(f"127.0.0.1:{server.port}") as port:
        check_through_nginx(port, server)
    # without trusted_proxies the header is not believed: the peer is nginx
    assert server.stop() == 0
    plain = serve_workers(app_dir, "deployapp:app", "--workers", "2", "--port", "0")
    served.append(plain)
    with nginx_in_front_of(f"127.0.0.1:{plain.port}") as port:
        assert json.loads(curl(f"http://127.0.0.1:{port}/"))["ip"] == "127.0.0.1"


def test_nginx_keeps_its_connections_to_the_workers_alive(
    app_dir: Path, served: list[Served]
) -> None:
    """``keepalive 16`` in the upstream block takes effect: sequential requests through
    nginx reuse its connection to the server. The map gave ``Connection: close`` to
    every request without Upgrade, and the server closed each connection after one
    response: 20 requests, 20 connections. Counted at the server: without
    --trusted-proxies its access log names the peer, nginx, with its port."""
    server = serve_workers(
        app_dir, "deployapp:app", "--workers", "2", "--port", "0", "--access-log"
    )
    served.append(server)
    requests = 20
    with nginx_in_front_of(f"127.0.0.1:{server.port}") as port:
        for _ in range(requests):
            assert json.loads(curl(f"http://127.0.0.1:{port}/hello"))["ip"] == "127.0.0.1"
        server.wait_for('"GET /hello HTTP/1.1" 200', count=requests)
    ports = set(re.findall(r'127\.0\.0\.1:(\d+) - "GET /hello ', server.output()))
    assert 1 <= len(ports) <= 2, f"{requests} requests came on {len(ports)} connections"


def test_nginx_in_front_of_two_workers_over_a_unix_socket(
    app_dir: Path, served: list[Served]
) -> None:
    with tempfile.TemporaryDirectory(prefix="sn-") as folder:
        path = os.path.join(folder, "app.sock")
        server = serve_workers(
            app_dir,
            "deployapp:app",
            "--workers",
            "2",
            "--uds",
            path,
            "--trusted-proxies",
            "unix",
        )
        served.append(server)
        with nginx_in_front_of(f"unix:{path}") as port:
            check_through_nginx(port, server)
        assert server.stop() == 0
