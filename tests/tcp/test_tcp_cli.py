"""``sansnet tcp``: the netcat-like pipe (plain and TLS) and ``--listen`` (an echo
service), run as a user runs them, in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
import trustme

import sansnet as net

from .peers import free_port, one_connection, socat_echo

pytestmark = pytest.mark.anyio

SANSNET = [sys.executable, "-m", "sansnet"]


async def test_the_pipe_sends_stdin_and_prints_the_answer() -> None:
    """The end of stdin half-closes the stream, so socat's echo ends and we exit 0."""
    with socat_echo() as port:
        result = await anyio.run_process(
            [*SANSNET, "tcp", "127.0.0.1", str(port)], input=b"line one\nline two\n", check=False
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"line one\nline two\n"


async def test_the_pipe_over_tls_waits_for_answers_then_closes(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(server_pem)
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_pem)
    with socat_echo(tls=(str(server_pem), "")) as port:
        command = [*SANSNET, "tcp", "127.0.0.1", str(port), "--tls", "--wait", "0.5"]
        refused = await anyio.run_process(command, input=b"x\n", check=False)
        trusted = await anyio.run_process(
            command,
            input=b"secret\n",
            check=False,
            env={**os.environ, "SSL_CERT_FILE": str(ca_pem)},
        )
    assert refused.returncode == 3
    assert b"could not be verified" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout == b"secret\n"


async def test_the_pipe_ends_when_the_peer_does_while_stdin_is_open() -> None:
    """As netcat: the peer finishes, the pipe exits, though stdin has not ended (the read
    of stdin was left in a thread of anyio's, which the interpreter waited for at exit)."""

    def answer_then_close(connection: socket.socket) -> None:
        assert connection.recv(100) == b"hi\n"
        connection.sendall(b"hello\n")
        time.sleep(0.5)  # the pipe is back to reading stdin

    with one_connection(answer_then_close) as port:
        async with await anyio.open_process([*SANSNET, "tcp", "127.0.0.1", str(port)]) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            with anyio.fail_after(20):
                await process.stdin.send(b"hi\n")
                assert await process.stdout.receive() == b"hello\n"
                code = await process.wait()  # stdin stays open
    assert code == 0


async def test_usage_errors() -> None:
    result = await anyio.run_process([*SANSNET, "tcp", "127.0.0.1"], check=False)
    assert result.returncode == 2
    assert b"needs HOST PORT" in result.stderr
    port = free_port()  # nothing listens there
    result = await anyio.run_process([*SANSNET, "tcp", "127.0.0.1", str(port)], check=False)
    assert result.returncode == 3
    assert b"refused" in result.stderr


async def test_listen_echoes_until_sigterm() -> None:
    async with await anyio.open_process(
        [*SANSNET, "tcp", "--listen", "0"], stdout=subprocess.DEVNULL
    ) as process:
        assert process.stderr is not None
        banner = b""
        with anyio.fail_after(10):
            while b"\n" not in banner:
                banner += await process.stderr.receive()
        match = re.search(rb"tcp://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        async with await net.tcp.connect("127.0.0.1", int(match.group(1))) as stream:
            await stream.write(b"echo me")
            assert await stream.read(timeout=5) == b"echo me"
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0


async def test_a_connection_reset_is_one_line_and_exit_3() -> None:
    """The peer resets while the pipe still reads stdin: the error comes from the task
    that reads the stream, and is reported as any network error (it escaped as an
    exception group's traceback, exit 1)."""
    greeted = threading.Event()

    def greet_then_reset(connection: socket.socket) -> None:
        connection.sendall(b"hello\n")
        greeted.wait(20)  # the pipe has printed it: it is connected and reading
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with one_connection(greet_then_reset) as port:
        try:
            async with await anyio.open_process(
                [*SANSNET, "tcp", "127.0.0.1", str(port)]
            ) as process:
                assert process.stdout is not None
                assert process.stderr is not None
                with anyio.fail_after(20):
                    assert await process.stdout.receive() == b"hello\n"
                    greeted.set()
                    code = await process.wait()  # stdin stays open: only the reset ends it
                    stderr = b"".join([chunk async for chunk in process.stderr])
        finally:
            greeted.set()  # (before the thread is joined, whatever happened)
    assert code == 3, stderr
    assert b"Traceback" not in stderr
    assert stderr.startswith(b"sansnet: The connection to 127.0.0.1:"), stderr
    assert stderr.count(b"\n") == 1, stderr
