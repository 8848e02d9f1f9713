"""The sansnet command line, end to end as a subprocess: exit codes, stdout and stderr,
the progress bar on a pseudo-terminal and its absence on a pipe."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sansnet
from sansnet import blocking
from sansnet.cli import _serve_spec, build_parser, main
from sansnet.protocol.forwarded import TrustedProxies
from sansnet.workers import _config as worker_config

SANSNET = [sys.executable, "-m", "sansnet"]
BIG = os.urandom(3 * 1024 * 1024)


def app(request: sansnet.ServeRequest) -> sansnet.ServeResponse:
    if request.path == "/json":
        return sansnet.ServeResponse(
            200, {"Content-Type": "application/json"}, '{"b":[1,2],"a":"x"}'
        )
    if request.path == "/missing":
        return sansnet.ServeResponse(404, None, "nothing here")
    if request.path == "/big":
        return sansnet.ServeResponse(
            200,
            {"Content-Length": str(len(BIG))},
            iter([BIG[i : i + 65536] for i in range(0, len(BIG), 65536)]),
        )
    if request.path == "/redirect":
        return sansnet.ServeResponse(302, {"Location": "/json"})
    return sansnet.ServeResponse(200, {"X-Method": request.method}, request.body or b"plain text")


async def echo(ws: sansnet.WebSocket) -> None:
    if ws.request is not None and ws.request.path == "/bye":
        await ws.send("bye")
        await ws.close()
        return
    async for message in ws:
        await ws.send(message)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handle = blocking.serve(0, blocking.ServeConfig(handle_request=app, handle_web_socket=echo))
    yield handle.url
    handle.stop()


def run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SANSNET, *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def run_on_terminal(*args: str, timeout: float = 60) -> tuple[int, bytes]:
    """Run with stdout and stderr on a pseudo-terminal; return (exit code, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [*SANSNET, *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(10), output


def test_request_prints_head_to_stderr_and_body_to_stdout(server: str) -> None:
    result = run("request", server + "/hello", "-X", "PUT", "-d", "data", "-H", "X-A: 1")
    assert result.returncode == 0
    assert result.stdout == b"data"
    assert result.stderr.startswith(b"HTTP/1.1 200 OK\n")
    assert b"X-Method: PUT" in result.stderr


def test_request_json_body_and_verbose_heads(server: str) -> None:
    result = run("request", server + "/echo", "--json", '{"k": [1]}', "-v")
    assert result.returncode == 0
    assert result.stdout == b'{"k": [1]}'  # as given
    assert b"> POST /echo HTTP/1.1" in result.stderr
    assert b"> Content-Type: application/json" in result.stderr
    assert b"< HTTP/1.1 200 OK" in result.stderr


def test_request_data_from_a_file(server: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"from a file")
    assert run("request", server + "/echo", "-d", f"@{upload}").stdout == b"from a file"


def test_json_is_pretty_printed_on_a_terminal_only(server: str) -> None:
    assert run("request", server + "/json").stdout == b'{"b":[1,2],"a":"x"}'
    code, output = run_on_terminal("request", server + "/json")
    assert code == 0
    assert b'{\r\n  "a": "x",\r\n  "b": [\r\n    1,' in output


def test_exit_codes(server: str) -> None:
    assert run("request", server + "/missing").returncode == 4
    assert run("request", server + "/redirect", "--no-redirects").returncode == 4
    assert run("request", server + "/redirect").stdout == b'{"b":[1,2],"a":"x"}'
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = run("request", f"http://127.0.0.1:{port}/")
    assert refused.returncode == 3
    assert refused.stderr.startswith(b"sansnet: Could not connect")
    assert b"Traceback" not in refused.stderr
    bad = run("request", server, "-H", "no colon")
    assert bad.returncode == 2
    assert b"-H takes 'Name: value'" in bad.stderr
    assert run("request", "ftp://x/").returncode == 2
    for option, value, said in (
        ("--timeout", "-1", b"argument --timeout: expected a positive number of seconds"),
        ("--timeout", "soon", b"argument --timeout: expected a positive number of seconds"),
        ("--json", "{bad", b"argument --json: not valid JSON"),
    ):
        usage = run("request", server, option, value)
        assert (usage.returncode, said in usage.stderr) == (2, True), usage.stderr
    assert run("nonsense").returncode == 2
    assert run().returncode == 2


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("X Y: a", b"sansnet: -H 'X Y: a': Illegal header name b'X Y'"),
        ("X: a\x01b", b"sansnet: -H 'X: a\\x01b': The value of header 'X'"),
    ],
)
def test_a_header_that_cannot_be_sent_is_a_usage_error(header: str, said: bytes) -> None:
    # A name with a space or a value with a control character exited 5 (a protocol
    # error) though the mistake is the command line's: it is exit 2, one line, and
    # nothing reaches the server.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = run("request", f"http://127.0.0.1:{port}/", "-H", header)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(said), result.stderr
    assert result.stderr.count(b"\n") == 1
    assert result.stdout == b""


def test_a_timeout_names_the_option_to_change() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    port = listener.getsockname()[1]
    try:
        result = run("request", f"http://127.0.0.1:{port}/", "--timeout", "0.3")
    finally:
        listener.close()
    assert result.returncode == 3
    assert result.stderr.endswith(b"Allow more time with --timeout SECONDS.\n"), result.stderr
    assert b"Timeout(" not in result.stderr
    assert b"timeout=" not in result.stderr


def test_protocol_errors_exit_5() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        connection.close()

    thread = threading.Thread(target=garbage)
    thread.start()
    result = run("request", f"http://127.0.0.1:{port}/")
    thread.join(10)
    listener.close()
    assert result.returncode == 5
    assert b"does not speak HTTP/1.1" in result.stderr


def test_download_with_a_progress_bar_on_a_terminal(server: str, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    code, output = run_on_terminal("request", server + "/big", "-o", str(target))
    assert code == 0
    assert target.read_bytes() == BIG
    assert b"big.bin" in output
    assert b"MB/s" in output or b"kB/s" in output  # rate
    assert b"3.1/3.1 MB" in output  # size
    assert f"saved {len(BIG)} bytes".encode() in output


def test_download_without_a_progress_bar_on_a_pipe(server: str, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    result = run("request", server + "/big", "-o", str(target))
    assert result.returncode == 0
    assert target.read_bytes() == BIG
    assert b"MB/s" not in result.stderr
    assert f"saved {len(BIG)} bytes".encode() in result.stderr


def test_socket_reads_stdin_when_not_a_terminal(server: str) -> None:
    url = server.replace("http", "ws", 1)
    result = run("socket", url, "--wait", "1", stdin="first\nsecond\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"first\nsecond\n"


def test_socket_sends_a_line_longer_than_a_read_whole(server: str) -> None:
    """stdin is read 64 KiB at a time: a line spread over several reads is one message,
    and a last line without a newline is sent too."""
    url = server.replace("http", "ws", 1)
    long_line = "é" * 100_000  # 200,000 bytes of UTF-8, split mid-character by the reads
    result = run("socket", url, "--wait", "2", stdin=f"first\n{long_line}\nlast")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"first\n{long_line}\nlast\n"


def test_socket_ends_when_the_server_closes_while_stdin_is_open(server: str) -> None:
    """The server closes; stdin has not ended (a user who has typed nothing): the command
    ends at once. The read of stdin was left in a thread of anyio's, which the
    interpreter waited for at exit, until stdin had a line."""
    process = subprocess.Popen(
        [*SANSNET, "socket", server.replace("http", "ws", 1) + "/bye"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.wait(timeout=20) == 0  # stdin stays open
    finally:
        process.kill()
        stdout, stderr = process.communicate()
    assert stdout == b"bye\n", stderr


def run_with_stdin_closed(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run with descriptor 0 closed (``<&-``, as some service managers start programs):
    Python's sys.stdin is then None."""
    return subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", *SANSNET, *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_socket_and_tcp_take_a_closed_stdin_as_empty_input(server: str) -> None:
    """Issue: `sansnet tcp HOST PORT <&-` and `sansnet socket URL <&-` printed a traceback
    ('NoneType' object has no attribute 'isatty'). A closed stdin is empty input: nothing
    is sent (tcp half-closes at once), and the peer's answers are shown."""

    def count_then_answer(stream: blocking.BlockingTcpStream) -> None:
        received = b""
        while chunk := stream.read(timeout=10):
            received += chunk
        stream.write(b"read %d bytes, then the end\n" % len(received))

    handle = blocking.tcp.serve(0, count_then_answer)
    try:
        result = run_with_stdin_closed("tcp", "127.0.0.1", str(handle.port))
    finally:
        handle.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"read 0 bytes, then the end\n"
    assert result.stderr == b""
    result = run_with_stdin_closed("socket", server.replace("http", "ws", 1) + "/bye")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"bye\n"
    assert result.stderr == b""
    result = run_with_stdin_closed("socket", server.replace("http", "ws", 1), "--wait", "0.2")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_socket_refused_handshake_exits_4(server: str) -> None:
    result = run("socket", server.replace("http", "ws", 1) + "/missing", stdin="")
    assert result.returncode in (0, 4)  # this server answers WebSockets on every path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_serve_a_directory_and_stop_on_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "data.txt").write_text("0123456789")
    port = _free_port()
    process = subprocess.Popen(
        [*SANSNET, "serve", str(tmp_path), "--port", str(port)], stderr=subprocess.PIPE
    )
    try:
        _wait_for(port)
        base = f"http://127.0.0.1:{port}"
        assert blocking.request(base + "/").text == "<h1>home</h1>"
        ranged = blocking.request(base + "/data.txt", headers={"Range": "bytes=2-4"})
        assert (ranged.status_code, ranged.body) == (206, b"234")
        etag = ranged.headers["etag"]
        assert (
            blocking.request(base + "/data.txt", headers={"If-None-Match": etag}).status_code == 304
        )
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"Serving " in stderr
    assert b'"GET /data.txt HTTP/1.1" 206' in stderr  # the access log
    assert b"Stopped." in stderr


def test_serve_without_the_access_log(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("0123456789")
    port = _free_port()
    process = subprocess.Popen(
        [*SANSNET, "serve", str(tmp_path), "--port", str(port), "--no-access-log"],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port)
        assert blocking.request(f"http://127.0.0.1:{port}/data.txt").body == b"0123456789"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"Serving " in stderr
    assert b"Stopped." in stderr
    assert b"GET /data.txt" not in stderr


@pytest.mark.parametrize(
    ("target", "flag", "effective"),
    [
        (None, None, True),  # the echo service: on, as uvicorn's default
        ("DIR", None, True),  # a directory: on
        ("cli_apps:handler", None, True),  # a handler: on
        ("cli_apps:handler", "--access-log", True),
        ("cli_apps:handler", "--no-access-log", False),
        ("cli_apps:quiet", None, False),  # a ServeConfig keeps its own setting...
        ("cli_apps:loud", None, True),
        ("cli_apps:quiet", "--access-log", True),  # ...unless the option is given
        ("cli_apps:loud", "--no-access-log", False),
    ],
)
def test_the_access_log_option_and_a_serve_config_of_its_own(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str | None,
    flag: str | None,
    effective: bool,
) -> None:
    (tmp_path / "cli_apps.py").write_text(
        "import sansnet\n"
        "def handler(request):\n"
        "    return 'hi'\n"
        "quiet = sansnet.ServeConfig(handle_request=handler)\n"
        "loud = sansnet.ServeConfig(handle_request=handler, access_log=True)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cli_apps", raising=False)  # this test's file, gone after
    target = str(tmp_path) if target == "DIR" else target
    argv = ["serve", *([target] if target else []), *([flag] if flag else [])]
    spec = _serve_spec(build_parser().parse_args(argv))
    assert "cli_apps" not in sys.modules  # the app is imported where it is served
    assert worker_config(spec).access_log is effective


@pytest.mark.parametrize(
    ("value", "trusted"),
    [("127.0.0.1,", True), ("10.0.0.0/8, unix,", True), (",", False), ("", False)],
)
def test_trusted_proxies_on_the_command_line_skip_empty_entries(value: str, trusted: bool) -> None:
    """Issue: --trusted-proxies "127.0.0.1," failed (an empty entry), while an empty
    --trusted-proxies was skipped. Empty entries are skipped, as in a ServeConfig str."""
    spec = _serve_spec(build_parser().parse_args(["serve", "--trusted-proxies", value]))
    proxies = TrustedProxies(worker_config(spec).trusted_proxies)
    assert bool(proxies) is trusted
    assert ("127.0.0.1" in proxies) is (value == "127.0.0.1,")


def test_an_app_that_configures_logging_as_it_is_imported_keeps_the_access_log(
    tmp_path: Path,
) -> None:
    # The app is imported after `sansnet serve` has set up logging, so its own
    # basicConfig() is the no-op it would be under uvicorn.
    (tmp_path / "loggingapp.py").write_text(
        "import logging\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "def handler(request):\n"
        "    return 'hi'\n"
    )
    port = _free_port()
    process = subprocess.Popen(
        [*SANSNET, "serve", "loggingapp:handler", "--port", str(port)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port)
        assert blocking.request(f"http://127.0.0.1:{port}/here").text == "hi"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b'"GET /here HTTP/1.1" 200' in stderr


def test_serve_the_echo_service(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen([*SANSNET, "serve", "--port", str(port)], stderr=subprocess.PIPE)
    try:
        _wait_for(port)
        answer = blocking.request(f"http://127.0.0.1:{port}/p?q=1", method="POST", body=b"\xff")
        assert answer.json()["query"] == {"q": "1"}
        assert answer.json()["body"] == {"hex": "ff"}
        with blocking.socket(f"ws://127.0.0.1:{port}/") as ws:
            ws.send("ping")
            assert ws.next() == "ping"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="signals: checked on Linux")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_serve_a_second_signal_while_draining_is_ignored(
    tmp_path: Path, backend: str, number: signal.Signals
) -> None:
    """Issue: on trio a second SIGTERM during the graceful stop killed `sansnet serve`
    (status -15) once the drain was over: trio delivers the signals its receiver still
    holds as the receiver closes. On asyncio it was ignored (status 0); now on both, and
    a second Ctrl-C as well."""
    (tmp_path / "slowapp.py").write_text(
        "import sys\n"
        "import anyio\n"
        "async def handler(request):\n"
        "    sys.stderr.write('in the slow handler\\n')\n"
        "    sys.stderr.flush()\n"
        "    await anyio.sleep(2)\n"
        "    return 'slow'\n"
    )
    port = _free_port()
    process = subprocess.Popen(
        [*SANSNET, "serve", "slowapp:handler", "--port", str(port), "--backend", backend],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        lines.extend(process.stderr)

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 20
        while not any(text in line for line in list(lines)):
            assert time.monotonic() < deadline, "".join(lines)
            assert process.poll() is None, "".join(lines)
            time.sleep(0.02)

    reader = threading.Thread(target=read)
    reader.start()
    answers: list[str] = []
    request = threading.Thread(
        target=lambda: answers.append(
            blocking.request(f"http://127.0.0.1:{port}/", timeout=15).text
        )
    )
    try:
        _wait_for(port)
        request.start()
        wait_for("in the slow handler")
        process.send_signal(number)
        wait_for("Stopping...")
        process.send_signal(number)
        status = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
        assert process.stderr is not None
        process.stderr.close()
        if request.ident is not None:  # started
            request.join(20)
    assert status == 0, "".join(lines)
    assert answers == ["slow"]
    assert "Stopped." in "".join(lines)


def test_demo_runs_green() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"All steps passed.\n")
    for step in (
        b"Request JSON",
        b"Follow a redirect",
        b"Decode a compressed body",
        b"Stream a download",
        b"Echo over a WebSocket",
        b"JSON and URL codecs",
    ):
        assert step in result.stdout


def test_version_and_help_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--version"])
    version = capsys.readouterr().out.strip()
    assert version.startswith(f"sansnet {sansnet.__version__} ({sansnet.protocol.H11_BUILD} ")
    assert ", wsproto " in version


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]])
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_a_port_out_of_range_is_a_one_line_usage_error(
    workers: list[str], port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", port, *workers]) == 2
    error = capsys.readouterr().err
    assert error == f"sansnet: port must be an int from 0 to 65535, not {port}.\n"


@pytest.mark.parametrize("value", ["", "/tmp/a\x00b"])
def test_serve_a_bad_uds_is_a_one_line_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue: `sansnet serve --uds ''` ended in a traceback (an IndexError inside
    asyncio's create_unix_server) with exit code 1."""
    assert main(["serve", "--uds", value]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sansnet: ServeConfig.uds must be")
    assert error.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "٨٠٨٠"],  # Arabic-Indic digits: int() reads 8080
        ["serve", "--port", " 8080"],
        ["serve", "--port", "8_080"],
        ["serve", "--workers", "٢"],
        ["tcp", "--listen", "٨٠"],
    ],
)
def test_numbers_on_the_command_line_are_ascii_digits(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue: `str.isdigit` and argparse's `int` took other scripts' digits, so
    `--port ٨٠٨٠` served on 8080; the usage error names the value instead."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert repr(argv[-1]) in capsys.readouterr().err


@pytest.mark.parametrize("port", ["٨٠", "²"])
def test_tcp_takes_a_port_in_ascii_digits(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`sansnet tcp HOST ²` ended in "invalid literal for int()" (isdigit is true for
    a superscript, which int() refuses), and `HOST ٨٠` connected to port 80."""
    assert main(["tcp", "127.0.0.1", port]) == 2
    assert capsys.readouterr().err == (
        "sansnet: sansnet tcp needs HOST PORT to connect to (or --listen PORT to listen).\n"
    )


def run_with_closed(redirection: str, *args: str) -> subprocess.Popen[bytes]:
    """Start the command with a standard descriptor closed (``2>&-``, ``>&-``): Python's
    sys.stderr or sys.stdout is then None."""
    return subprocess.Popen(
        ["sh", "-c", f'exec "$@" {redirection}', "sh", *SANSNET, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_closed_stdout_or_stderr_discards_what_goes_there(server: str) -> None:
    """Issue: `sansnet request URL 2>&-` and `sansnet serve >&-` crashed with a traceback
    (AttributeError: 'NoneType' object has no attribute 'isatty'), exit 1. A closed
    stream is a non-terminal that discards its output; the command still runs."""
    process = run_with_closed("2>&-", "request", server + "/hello", "-d", "body")
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout, stderr) == (0, b"body", b"")
    process = run_with_closed(">&-", "request", server + "/missing")
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 4, stderr
    assert stderr.startswith(b"HTTP/1.1 404 Not Found\n")
    assert b"Traceback" not in stderr
    port = _free_port()
    process = run_with_closed(">&- 2>&-", "serve", "--port", str(port))
    try:
        _wait_for(port)
        assert blocking.request(f"http://127.0.0.1:{port}/", method="POST", body=b"x").ok
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout, stderr) == (0, b"", b"")


def test_request_writes_the_body_to_stdout_as_it_arrives() -> None:
    """Issue: without -o, `sansnet request` read the whole body into memory and wrote
    nothing until its end (a 400 MiB body grew the process to 942 MB; a slow stream
    showed nothing). The server here sends part of the body, then waits: the first part
    must already be on stdout."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    go_on = threading.Event()

    def serve_in_two_parts() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(20)
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 12\r\n\r\n[1, 2, 3,"
            )
            go_on.wait(20)
            connection.sendall(b" 4]")

    thread = threading.Thread(target=serve_in_two_parts)
    thread.start()
    process = subprocess.Popen(
        [*SANSNET, "request", f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = b""
    deadline = time.monotonic() + 15
    try:
        while len(first) < 9 and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                first += chunk
    finally:
        go_on.set()
        rest, stderr = process.communicate(timeout=30)
        thread.join(30)
        listener.close()
    assert first == b"[1, 2, 3,", stderr
    assert (process.returncode, rest) == (0, b" 4]")


def test_json_is_sent_exactly_as_given(server: str) -> None:
    """Issue: --json decoded the text and encoded it again: keys re-sorted, duplicates
    dropped, and a valid 30-digit integer or 1e400 failed with exit 5. The text is
    checked to be JSON, then sent as given (UTF-8), with Content-Type application/json,
    as curl --json does."""
    given = '{"b": 1, "a": 2, "a": 3, "big": 123456789012345678901234567890, "x": 1e400, "é": -0.0}'
    result = run("request", server + "/echo", "--json", given, "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout == given.encode()
    assert b"> POST /echo HTTP/1.1" in result.stderr
    assert b"> Content-Type: application/json" in result.stderr
    typed = run("request", server + "/echo", "--json", "[1]", "-H", "Content-Type: a/b+json", "-v")
    assert typed.stdout == b"[1]"
    assert typed.stderr.count(b"> Content-Type:") == 1
    assert b"> Content-Type: a/b+json" in typed.stderr
    for value in ("NaN", "[1, Infinity]", "{", "", "[1] [2]"):
        usage = run("request", server + "/echo", "--json", value)
        assert usage.returncode == 2, (value, usage.stderr)
        assert b"argument --json: not valid JSON" in usage.stderr, usage.stderr
        assert b"Traceback" not in usage.stderr


def run_into_a_closed_pipe(
    *args: str, stream: str = "stdout"
) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout (or stderr) a pipe whose reader has gone, as in `| head -c 10`
    once head has exited: every write to it fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        other = subprocess.PIPE
        return subprocess.run(
            [*SANSNET, *args],
            stdout=write_end if stream == "stdout" else other,
            stderr=write_end if stream == "stderr" else other,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_closed_stdout_pipe_stops_quietly_with_23(server: str) -> None:
    """Issue: a broken pipe on stdout was exit 2, "usage error", with the message
    '[Errno 32] Broken pipe'. The reader has gone: nothing to say, status 23 (curl's
    "failure writing output"), no traceback and no 'Exception ignored' at exit."""
    for args in (("request", server + "/big"), ("request", server + "/hello"), ("demo",)):
        result = run_into_a_closed_pipe(*args)
        assert result.returncode == 23, (args, result.stderr)
        assert b"sansnet:" not in result.stderr, result.stderr
        assert b"Traceback" not in result.stderr
        assert b"Exception ignored" not in result.stderr
    helped = run_into_a_closed_pipe("request", "--help")
    assert (helped.returncode, helped.stderr) == (0, b"")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_an_output_that_cannot_be_written_is_exit_23_with_a_message(
    server: str, tmp_path: Path
) -> None:
    """Issue: ENOSPC on stdout was exit 2, "usage error". It is 23 with one line."""
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*SANSNET, "request", server + "/big"],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert result.returncode == 23
    assert result.stderr.endswith(
        b"\nsansnet: could not write to stdout: No space left on device\n"
    )
    saved = run("request", server + "/big", "-o", "/dev/full")
    assert saved.returncode == 23
    assert saved.stderr.endswith(b"sansnet: could not write /dev/full: No space left on device\n")
    nowhere = run("request", server + "/big", "-o", str(tmp_path / "no" / "such"))
    assert nowhere.returncode == 23
    assert b"No such file or directory" in nowhere.stderr


def test_a_closed_stderr_pipe_keeps_the_exit_status(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: with stderr a closed pipe, the error handler's own message raised
    BrokenPipeError out of main() (exit 1 instead of 3). Messages that cannot be written
    are dropped; the status is the command's."""
    assert run_into_a_closed_pipe("request", server + "/hello", stream="stderr").returncode == 0
    down = run_into_a_closed_pipe("request", f"http://127.0.0.1:{_free_port()}/", stream="stderr")
    assert (down.returncode, down.stdout) == (3, b"")
    read_end, write_end = os.pipe()
    os.close(read_end)
    broken = open(write_end, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", broken)
    try:
        assert main(["request", f"http://127.0.0.1:{_free_port()}/"]) == 3
    finally:
        monkeypatch.undo()
        try:
            broken.close()
        except OSError:
            pass


def test_data_at_dash_reads_the_body_from_stdin(server: str, tmp_path: Path) -> None:
    """Issue: `-d @-` failed with "No such file or directory: '-'"; curl reads stdin."""
    body = b"from stdin\n\x00\xff binary too"
    result = subprocess.run(
        [*SANSNET, "request", server + "/echo", "-d", "@-"],
        input=body,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, body), result.stderr
    assert b"X-Method: POST" in result.stderr
    upload = tmp_path / "-"  # a file named "-" is read by its path
    upload.write_bytes(b"a file named -")
    assert run("request", server + "/echo", "-d", f"@{upload}").stdout == b"a file named -"
    closed = run_with_stdin_closed("request", server + "/echo", "-d", "@-", "-X", "PUT")
    assert (closed.returncode, closed.stdout) == (0, b"plain text"), closed.stderr  # empty


def test_bytes_that_are_not_utf8_in_arguments_are_sent_as_given() -> None:
    """Issue: non-UTF-8 bytes in -d or -H (surrogate-escaped by Python's argv decoding)
    failed with advice to "pass bytes", which a command-line user cannot follow. They
    are sent as given, as curl does; so is UTF-8 text in a header value."""

    def mirror(request: sansnet.ServeRequest) -> sansnet.ServeResponse:
        name = request.headers.get("x-name", "")
        return sansnet.ServeResponse(200, None, name.encode("latin-1") + b"|" + request.body)

    handle = blocking.serve(0, mirror)
    try:
        for header, data in ((b"caf\xe9", b"na\xefve \xff"), ("café".encode(), "naïve".encode())):
            result = subprocess.run(
                [*SANSNET, "request", handle.url, "-H", b"X-Name: " + header, "-d", data],
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert (result.returncode, result.stdout) == (0, header + b"|" + data), result.stderr
        name = subprocess.run(
            [*SANSNET, "request", handle.url, "-H", b"X\xe9: v"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert name.returncode == 2  # a name is a token: not what a CLI user can "pass"
        assert b"Illegal header name b'X\\xe9'" in name.stderr, name.stderr
        assert b"Pass bytes" not in name.stderr
    finally:
        handle.stop()


def test_socket_sends_a_line_that_is_not_utf8_as_a_binary_message(server: str) -> None:
    """Issue: `sansnet socket` decoded stdin with errors="replace": bytes that are not
    UTF-8 were silently sent as U+FFFD. Such a line is a binary message of its bytes (the
    echo shows it in hex); UTF-8 lines are still text messages."""
    result = subprocess.run(
        [*SANSNET, "socket", server.replace("http", "ws", 1), "--wait", "2"],
        input=b"caf\xe9 \x00\xff\ncaf\xc3\xa9\nlast \xfe",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"63 61 66 e9 20 00 ff\ncaf\xc3\xa9\n6c 61 73 74 20 fe\n"


def test_error_advice_names_the_options_not_python_arguments(tmp_path: Path) -> None:
    """Issue: errors gave Python-API advice ("Pass verify= ... or verify=False", "pass
    proxy=None", "pass follow_redirects=False") that a command-line user cannot follow:
    as with --timeout, the advice names the options (-k, --no-proxy, --no-redirects)."""
    import trustme

    ca = trustme.CA()
    server_pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(server_pem)

    def nothing(stream: blocking.BlockingTcpStream) -> None:
        pass

    tls = blocking.tcp.serve(0, nothing, tls=str(server_pem))
    loop = blocking.serve(0, lambda request: sansnet.ServeResponse(302, {"Location": "/again"}))
    try:
        untrusted = (
            run("request", f"https://127.0.0.1:{tls.port}/"),
            run("socket", f"wss://127.0.0.1:{tls.port}/", stdin=""),
            run("tcp", "127.0.0.1", str(tls.port), "--tls", stdin=""),
        )
        redirected = run("request", loop.url + "/start")
    finally:
        tls.stop()
        loop.stop()
    for result in untrusted:
        assert result.returncode == 3, result.stderr
        assert b"could not be verified" in result.stderr
        assert result.stderr.endswith(b"Use -k (--insecure) to skip the check.\n"), result.stderr
        assert b"verify=" not in result.stderr
    proxied = run(
        "request", "http://example.invalid/", "--proxy", f"http://127.0.0.1:{_free_port()}"
    )
    assert proxied.returncode == 3, proxied.stderr
    assert b"(--proxy or the *_PROXY environment variables)" in proxied.stderr
    assert b"use --no-proxy to connect directly." in proxied.stderr
    assert b"proxy=" not in proxied.stderr
    assert redirected.returncode == 5, redirected.stderr
    assert redirected.stderr.endswith(b"; use --no-redirects to get the redirect itself.\n")
    assert b"follow_redirects=" not in redirected.stderr


def test_every_python_advice_rewritten_is_still_the_librarys() -> None:
    """The rewritten phrases are the library's own: one reworded there would silently
    reach the command line as Python advice again."""
    from sansnet.cli import _CLI_ADVICE

    sources = (
        " ".join(
            " ".join(path.read_text(encoding="utf-8").split())
            for path in Path(sansnet.__file__).parent.rglob("*.py")
            if path.name != "cli.py"
        )
        .replace('" "', "")
        .replace('" f"', "")
    )
    for python, _option in _CLI_ADVICE:
        assert python in sources, python


@pytest.mark.parametrize(
    ("content_type", "chunks", "written"),
    [
        # whole and small: pretty-printed
        ("application/json", [b'{"a":', b"[1]}"], [b'{\n  "a": [\n    1\n  ]\n}\n']),
        ("application/problem+json", [b"[1]"], [b"[\n  1\n]\n"]),
        ("application/json", [b"{bad"], [b"{bad"]),  # not JSON after all: as sent
        # past the limit (16 bytes here): what was held, then the rest as it comes
        ("application/json", [b'{"a": "12345', b'678901234"}'], [b'{"a": "12345678901234"}']),
        (
            "application/json",
            [b'{"a": "1234567890', b"123456", b'7"}'],
            [b'{"a": "1234567890', b"123456", b'7"}'],
        ),
        # a stream of JSON texts is never held
        ("application/x-ndjson", [b"[1]\n", b"[2]\n"], [b"[1]\n", b"[2]\n"]),
    ],
)
def test_json_on_a_terminal_is_held_up_to_a_limit(
    monkeypatch: pytest.MonkeyPatch,
    content_type: str,
    chunks: list[bytes],
    written: list[bytes],
) -> None:
    import anyio

    from sansnet import cli

    class Body:
        headers = sansnet.Headers({"Content-Type": content_type})

        async def pieces(self) -> Any:
            for chunk in chunks:
                yield chunk

        def aiter_bytes(self) -> Any:
            return self.pieces()

    output = cli.Output()
    output.out_tty = True
    got: list[bytes] = []
    monkeypatch.setattr(output, "data", got.append)
    monkeypatch.setattr(cli, "PRETTY_JSON_LIMIT", 16)
    anyio.run(cli._write_body, Body(), output)
    assert got == written
