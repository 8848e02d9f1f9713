"""The ``sansnet`` command line (also ``python -m sansnet``).

    sansnet request URL [-X METHOD] [-H 'Name: value']... [-d DATA | --json JSON]
                        [-o FILE] [--no-decompress] [--no-redirects] [--timeout S] [-v]
    sansnet serve [APP | DIR] [--port 8000] [--address 127.0.0.1] [--uds PATH]
                  [--workers N] [--backend asyncio|uvloop|trio] [--trusted-proxies LIST]
                  [--access-log | --no-access-log]
    sansnet socket URL [--wait S]
    sansnet tcp HOST PORT [--tls] [-k] [--wait S]      stdin -> the stream -> stdout
    sansnet tcp --listen PORT [--address A] [--tls-cert PEM]   an echo service
    sansnet demo

``request`` writes the body to stdout as it arrives (``-o FILE`` saves it instead); on a
terminal, a JSON body (application/json or +json) of up to 16 MiB is pretty-printed
once whole. ``--json TEXT`` is checked to be JSON, then sent exactly as given (UTF-8).
``-d @FILE`` sends a file and ``-d @-`` stdin; ``-d`` and ``-H`` bytes that are not
UTF-8 are sent as given, as curl does.

Exit codes: 0 success (a 2xx answer); 2 usage error; 3 network, TLS or timeout error,
or an address that cannot be listened on; 4 an HTTP answer other than 2xx, or a refused
WebSocket handshake; 5 a protocol or decoding error; 23 the output could not be written
(stdout, or ``-o FILE``: a full disk, a closed pipe), as curl's 23. When stdout is a
pipe whose reader has gone (``| head``, a pager that quit), the command stops quietly
with 23, without a message. Errors are one line on stderr, never a traceback, their
advice naming options (-k, --no-proxy, --no-redirects, --timeout), not Python
arguments; when stderr itself cannot be written, they are dropped and the exit status
is unchanged.

``socket`` and ``tcp`` send what stdin holds (``socket``: one message per line, a text
message when the line is UTF-8, else a binary one of its bytes; a binary message
received is shown in hex). A closed stdin (``<&-``, as some service managers start a
program) is empty input: nothing is sent, and the peer's answers are still shown. A
closed stdout or stderr (``>&-``, ``2>&-``) discards what would be written there, as
``>/dev/null`` would: the command still runs. Colour and progress bars come from
``rich`` when it is installed (``pip install 'sansnet[cli]'``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from . import __version__, tcp
from ._lifecycle import ListeningServer
from .client import Client, StreamingResponse, Timeout
from .codecs import json_decode, json_encode, url_decode, url_encode
from .errors import (
    HandshakeError,
    InvalidArgument,
    InvalidURL,
    LocalProtocolError,
    NetError,
    ServerError,
    TimeoutError,
    TransportError,
)
from .models import ServeRequest, ServeResponse
from .protocol import Headers, check_fields
from .proxies import FROM_ENVIRONMENT, FromEnvironment
from .server import ServeConfig, serve
from .websocket import socket
from .workers import Supervisor, WorkerSpec, echo_socket
from .workers import _config as worker_config

EXIT_OK, EXIT_USAGE, EXIT_NETWORK, EXIT_HTTP, EXIT_PROTOCOL = 0, 2, 3, 4, 5
EXIT_WRITE = 23  # as curl's "failure writing output"

try:  # the cli extra
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    HAVE_RICH = True
except ImportError:  # pragma: no cover - the dev and cli extras install rich
    HAVE_RICH = False


class _OutputError(Exception):
    """The output (stdout, or -o FILE) could not be written: exit status 23."""

    def __init__(self, where: str, error: OSError) -> None:
        super().__init__(f"could not write {where}: {error.strerror or error}")
        self.error = error


def _discard(stream: Any) -> None:
    """Point ``stream``'s descriptor at the null device, after a write to it failed:
    what is still buffered goes nowhere when the interpreter flushes it at exit (a
    failed flush there prints "Exception ignored" and makes the exit status 120)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)
    except (OSError, ValueError, AttributeError):  # no descriptor (an in-memory stream)
        pass


class Output:
    """Where the command line writes: stdout for data, stderr for everything else.

    stderr is best effort: when it cannot be written (a closed pipe, a full disk),
    messages are dropped and the command goes on, its exit status its own. stdout is
    the command's product: a write that fails raises :class:`_OutputError`."""

    def __init__(self) -> None:
        self.err_tty = sys.stderr.isatty()
        self.out_tty = sys.stdout.isatty()
        self.console: Any = Console(stderr=True, highlight=False) if HAVE_RICH else None

    def info(self, text: str, style: str = "") -> None:
        try:
            if self.console is not None and self.err_tty and style:
                self.console.print(text, style=style, markup=False)
            else:
                print(text, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # ValueError: a closed file
            _discard(sys.stderr)

    def error(self, text: str) -> None:
        self.info(f"sansnet: {text}", "bold red")

    def data(self, data: bytes) -> None:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError as error:
            _discard(sys.stdout)
            raise _OutputError("to stdout", error) from None


# =============================================================================== request


def _as_given(text: str) -> str | bytes:
    """An argument as the bytes given when it is not ASCII (see :func:`os.fsencode`)."""
    return text if text.isascii() else os.fsencode(text)


def _headers(values: Sequence[str]) -> Headers:
    """The -H fields, each checked as the client will check it: a name that is not a
    token or a value with a control character is a usage error, before any I/O."""
    headers = Headers()
    for value in values:
        name, colon, rest = value.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"-H takes 'Name: value', not {value!r}.")
        # What is not ASCII goes as the bytes given, as curl sends it: UTF-8 text as
        # UTF-8, other bytes (surrogate-escaped by argv decoding) as they were. (Such a
        # name is not a token: h11 refuses it as an illegal header name.)
        field = (_as_given(name.strip()), _as_given(rest.strip()))
        try:
            check_fields([field])
        except LocalProtocolError as error:
            raise InvalidArgument(f"-H {value!r}: {error}") from None
        headers.add(name.strip(), field[1])  # a token (checked): ASCII, a str
    return headers


async def _data_argument(text: str) -> str | bytes:
    """-d's body, as curl's: ``@-`` all of stdin (empty when it is closed), ``@FILE``
    the file's bytes, anything else the text given, sent as UTF-8 (Content-Type
    text/plain; charset=utf-8), or as the bytes given when they are not UTF-8 (Python
    decodes argv with surrogateescape; ``os.fsencode`` gives the bytes back)."""
    if text == "@-":
        if sys.stdin is None:
            return b""
        # Blocking is fine here: nothing else runs yet, and Ctrl-C interrupts the read.
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        return await anyio.Path(text[1:]).read_bytes()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def _show_head(output: Output, prefix: str, head: bytes) -> None:
    for line in head.decode("latin-1").split("\r\n"):
        if line:
            output.info(f"{prefix} {line}", "cyan" if prefix == ">" else "green")


class _Progress:
    """A download progress bar on stderr (rich, or a plain line), only on a terminal."""

    def __init__(self, output: Output, total: int | None, label: str) -> None:
        self.enabled = output.err_tty
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if self.enabled and HAVE_RICH:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=output.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)

    def advance(self, size: int) -> None:
        self.done += size
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=size)
        else:  # pragma: no cover - without rich
            rate = self.done / max(1e-6, time.monotonic() - self.started)
            print(f"\r{self.done} bytes, {rate / 1e6:.1f} MB/s", end="", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled:  # pragma: no cover - without rich
            print(file=sys.stderr)


async def _request(args: argparse.Namespace, output: Output) -> int:
    headers = _headers(args.header)
    options: dict[str, Any] = {
        "method": args.method
        or ("POST" if args.data is not None or args.json is not None else "GET"),
        "headers": headers,
        "decompress": not args.no_decompress,
        "follow_redirects": not args.no_redirects,
        "timeout": Timeout.of(args.timeout),
    }
    if args.data is not None:
        options["body"] = await _data_argument(args.data)
    elif args.json is not None:
        options["body"] = args.json.text
        if "content-type" not in headers:
            headers.add("Content-Type", "application/json")

    def trace(kind: str, head: bytes) -> None:
        if args.verbose:
            _show_head(output, ">" if kind == "request" else "<", head)

    async with (
        Client(trace=trace, verify=not args.insecure, proxy=_proxy_option(args)) as client,
        client.stream(args.url, **options) as response,
    ):
        if not args.verbose:
            output.info(
                f"HTTP/{response.http_version} {response.status_code} {response.status_message}",
                "bold",
            )
            for name, value in response.headers.raw_items():
                output.info(f"{name}: {value}", "dim")
        if args.output:
            length = response.headers.get("content-length")
            progress = _Progress(
                output,
                int(length) if length and _is_decimal(length) else None,
                Path(args.output).name,
            )
            try:
                try:
                    file = await anyio.open_file(args.output, "wb")
                except OSError as error:
                    raise _OutputError(args.output, error) from None
                async with file:
                    async for chunk in response.aiter_bytes():
                        try:
                            await file.write(chunk)
                        except OSError as error:
                            raise _OutputError(args.output, error) from None
                        progress.advance(len(chunk))
            finally:
                progress.close()
            output.info(f"saved {progress.done} bytes to {args.output}", "green")
        else:
            await _write_body(response, output)
    return EXIT_OK if response.ok else EXIT_HTTP


PRETTY_JSON_LIMIT = 16 * 1024 * 1024
"""The largest JSON body pretty-printed on a terminal: a larger one is shown as sent."""


def _is_json(content_type: str) -> bool:
    """application/json or a +json type: one JSON text, which can be pretty-printed
    (not application/x-ndjson and other streams of texts, which are shown as they come)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _write_body(response: StreamingResponse, output: Output) -> None:
    """The body to stdout piece by piece as it arrives, as curl does: never all in
    memory. Only a JSON body on a terminal is held, to be pretty-printed once whole; if
    it grows past PRETTY_JSON_LIMIT, what was held is written and the rest streams."""
    chunks = response.aiter_bytes()
    if output.out_tty and _is_json(response.headers.get("content-type", "")):
        held = bytearray()
        async for chunk in chunks:
            held += chunk
            if len(held) > PRETTY_JSON_LIMIT:
                output.data(bytes(held))
                break
        else:
            body = bytes(held)
            if body:
                try:
                    body = (json_encode(json_decode(body), pretty=True) + "\n").encode()
                except NetError:
                    pass
            output.data(body)
            return
    async for chunk in chunks:
        output.data(chunk)


# ================================================================================= serve


def _serve_spec(args: argparse.Namespace) -> WorkerSpec:
    """What ``sansnet serve`` serves, in the form every worker process can rebuild."""
    target = args.target
    if target is None:
        app = "echo"
    elif Path(target).is_dir():
        app = f"static:{target}"
    elif ":" in target:
        app = target
    else:
        raise InvalidArgument(
            f"{target!r} is neither a directory nor an app (module:attribute, as myapp:handler)."
        )
    options: dict[str, Any] = {}
    # The access log is on unless told otherwise (as uvicorn's), but a ServeConfig app
    # keeps its own setting. Decided where the app is loaded (after logging is set up),
    # not here: importing it now could let it configure logging first.
    handler_defaults: dict[str, Any] = {"access_log": True}
    if args.access_log is not None:
        options["access_log"] = args.access_log
    if args.trusted_proxies:
        # as a str: ServeConfig splits it at commas, skipping empty entries ("a,")
        options["trusted_proxies"] = args.trusted_proxies
    return WorkerSpec(
        app, args.port, args.address, args.uds, args.backend, options, handler_defaults
    )


def _describe_app(app: str) -> str:
    if app == "echo":
        return "the echo service (HTTP and WebSocket)"
    if app.startswith("static:"):
        return str(Path(app[7:]).resolve())
    return app


async def _serve(spec: WorkerSpec, output: Output) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = worker_config(spec)
    banner = f"Serving {_describe_app(spec.app)} on"
    return await _serve_until_signal(serve(spec.port, config), banner, output)


def _serve_workers(spec: WorkerSpec, workers: int, output: Output) -> int:
    # Supervisor() loads the app: one that cannot be imported fails here, not in N workers
    return Supervisor(spec, workers, announce=lambda text: output.info(text, "bold")).run()


def _ignore_signal(number: int, frame: object) -> None:
    """A signal that comes while ``sansnet serve`` stops: ignored (see below)."""


async def _serve_until_signal(server: ListeningServer, banner: str, output: Output) -> int:
    """Run ``server`` until Ctrl-C or SIGTERM, then stop it gracefully. A second one
    while it drains is ignored: the drain goes on (``drain_timeout`` bounds it), status
    0. The signal receiver stays open through the drain and takes it (asyncio); trio,
    as the receiver closes, delivers a signal it still holds to the handler it found
    when it opened, which would kill us (SIG_DFL, status -15) or raise
    KeyboardInterrupt (status 130) after the drain: so the handlers it finds are
    no-ops of ours, and ours are replaced by the previous ones only once it is closed."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, _ignore_signal) for number in numbers}
    try:
        with anyio.open_signal_receiver(*numbers) as signals:
            async with server as handle:
                output.info(f"{banner} {handle.url} (Ctrl-C to stop)", "bold")
                async for _ in signals:
                    output.info("Stopping...", "yellow")
                    break
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    output.info("Stopped.", "yellow")
    return EXIT_OK


# ================================================================================= stdin


def _stdin_is_terminal() -> bool:
    """Whether a person types stdin; False for a pipe or a file, and for a closed stdin
    (``<&-``: ``sys.stdin`` is None), which :func:`_stdin_chunks` reads as empty."""
    return sys.stdin is not None and sys.stdin.isatty()


@asynccontextmanager
async def _stdin_chunks() -> AsyncIterator[Callable[[], Awaitable[bytes]]]:
    """An async function that returns the next bytes on stdin (b"" at its end).

    Each read blocks in a daemon thread of its own: ``socket`` and ``tcp`` end when the
    peer does, with a read still waiting for the user, and a thread of anyio's (not a
    daemon) would keep the process alive at exit until stdin had a line or ended. The
    read is ``os.read`` of the descriptor: no buffered-file lock is left held.

    A closed stdin (``sys.stdin`` is None) is empty: descriptor 0 is never read then,
    as a socket we opened may have been given that number."""
    if sys.stdin is None:

        async def nothing() -> bytes:
            await anyio.lowlevel.checkpoint()
            return b""

        yield nothing
        return
    async with BlockingPortal() as portal:

        async def read() -> bytes:
            done = anyio.Event()
            outcome: list[Any] = []

            def run() -> None:
                try:
                    outcome.append(os.read(sys.stdin.fileno(), 65536))
                except BaseException as error:  # raised in the caller
                    outcome.append(error)
                try:
                    portal.call(done.set)
                except RuntimeError:  # the command is over: nobody waits for this read
                    pass

            threading.Thread(target=run, name="sansnet-stdin", daemon=True).start()
            await done.wait()
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            chunk: bytes = outcome[0]
            return chunk

        yield read


# ================================================================================ socket


def _message(line: bytes) -> str | bytes:
    """A line of stdin as the message to send: a text message when it is UTF-8, else a
    binary message of the bytes as they are (never text with U+FFFD in their place)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line


def _show_message(output: Output, message: str | bytes) -> None:
    if isinstance(message, bytes):
        output.data(message.hex(" ").encode() + b"\n")
    else:
        output.data(message.encode("utf-8") + b"\n")


def _proxy_option(args: argparse.Namespace) -> str | FromEnvironment | None:
    """--proxy URL, --no-proxy (None), or the environment (the default)."""
    if args.no_proxy:
        return None
    return args.proxy if args.proxy is not None else FROM_ENVIRONMENT


def _add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="through this proxy: http://, https://, socks5://, socks5h://, socks4a:// "
        "(user:password@ in the URL); default: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY",
    )
    group.add_argument(
        "--no-proxy", action="store_true", help="connect directly, whatever the environment says"
    )


async def _socket(args: argparse.Namespace, output: Output) -> int:
    ws = await socket(
        args.url, verify=not args.insecure, timeout=args.timeout, proxy=_proxy_option(args)
    )
    interactive = _stdin_is_terminal()
    if interactive:
        output.info(f"Connected to {args.url}; type lines to send them, Ctrl-D to close.", "bold")
    async with _stdin_chunks() as read_stdin, anyio.create_task_group() as group:

        async def receive() -> None:
            while (message := await ws.next()) is not None:
                _show_message(output, message)
            group.cancel_scope.cancel()

        group.start_soon(receive)
        # The line read so far, in pieces: a line longer than a chunk is joined once,
        # when its newline comes (rescanning it per chunk would be quadratic).
        pieces: list[bytes] = []
        while chunk := await read_stdin():
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                pieces.append(chunk[start:end])
                await ws.send(_message(b"".join(pieces)))
                pieces.clear()
                start = end + 1
            if start < len(chunk):
                pieces.append(chunk[start:])
        if pieces:
            await ws.send(_message(b"".join(pieces)))
        if not interactive:
            with anyio.move_on_after(args.wait):
                await anyio.sleep_forever()  # answers to what we sent may still arrive
        if not ws.closed:
            await ws.close()
        group.cancel_scope.cancel()
    if ws.close_code not in (1000, 1005):
        output.error(f"the WebSocket closed with code {ws.close_code} {ws.close_reason}".rstrip())
        return EXIT_PROTOCOL
    return EXIT_OK


# =================================================================================== tcp


async def _tcp(args: argparse.Namespace, output: Output) -> int:
    if args.listen is not None:
        return await _tcp_listen(args, output)
    if len(args.target) != 2 or not _is_decimal(args.target[1]):
        raise InvalidArgument(
            "sansnet tcp needs HOST PORT to connect to (or --listen PORT to listen)."
        )
    host, port = args.target[0], int(args.target[1])
    stream = await tcp.connect(
        host, port, tls=args.tls, verify=not args.insecure, timeout=args.timeout
    )
    if _stdin_is_terminal():
        output.info(f"Connected to {host}:{port}; Ctrl-D ends what you send.", "bold")
    async with stream, _stdin_chunks() as read_stdin, anyio.create_task_group() as group:

        async def receive() -> None:
            async for chunk in stream:
                output.data(chunk)
            group.cancel_scope.cancel()  # the peer is done: so are we, as netcat

        group.start_soon(receive)
        while chunk := await read_stdin():
            await stream.write(chunk)
        if stream.tls is None:
            await stream.send_eof()  # the peer reads the end; its answers still arrive
            await anyio.sleep_forever()  # until receive() sees the peer's end
        with anyio.move_on_after(args.wait):  # TLS has no half-close: wait, then close
            await anyio.sleep_forever()
        group.cancel_scope.cancel()
    return EXIT_OK


async def _echo_stream(stream: tcp.TcpStream) -> None:
    async for chunk in stream:
        await stream.write(chunk)


async def _tcp_listen(args: argparse.Namespace, output: Output) -> int:
    server = tcp.serve(args.listen, _echo_stream, address=args.address, tls=args.tls_cert)
    return await _serve_until_signal(server, "Echoing TCP on", output)


# ================================================================================== demo


DEMO_PAYLOAD = b"sansnet streams this body in pieces. " * 220_000  # about 8 MB


async def _demo_handler(request: ServeRequest) -> ServeResponse | str:
    if request.path == "/json":
        return ServeResponse(
            200,
            {"Content-Type": "application/json"},
            json_encode({"hello": "world", "query": request.query}),
        )
    if request.path == "/redirect":
        return ServeResponse(302, {"Location": "/json?from=redirect"}, "")
    if request.path == "/compressed":
        return ServeResponse(
            200,
            {"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            gzip.compress(b"squeezed! " * 1000),
        )
    if request.path == "/download":

        def pieces() -> Any:
            for start in range(0, len(DEMO_PAYLOAD), 65536):
                yield DEMO_PAYLOAD[start : start + 65536]

        return ServeResponse(200, {"Content-Length": str(len(DEMO_PAYLOAD))}, pieces())
    return ServeResponse(404, None, "not found")


async def _demo(output: Output) -> int:
    output.data(
        f"sansnet {__version__} demo: a local server, a client and a WebSocket, no network needed\n\n".encode()
    )
    steps: list[tuple[str, Callable[[], Any]]] = []
    config = ServeConfig(handle_request=_demo_handler, handle_web_socket=echo_socket)
    async with serve(0, config) as handle, Client() as client:
        url = handle.url

        async def step_serve() -> list[str]:
            return [f"sansnet.serve(0, config) is listening on {url}"]

        async def step_json() -> list[str]:
            response = await client.request(url + "/json?lang=python")
            return [
                f"GET /json -> {response.status_code} {response.status_message}",
                f"json() = {response.json()}",
            ]

        async def step_redirect() -> list[str]:
            response = await client.request(url + "/redirect")
            return [f"GET /redirect -> followed to {response.url}", f"json() = {response.json()}"]

        async def step_compressed() -> list[str]:
            response = await client.request(url + "/compressed")
            return [
                f"GET /compressed: {len(response.body)} bytes after gzip decoding",
                f"Content-Encoding removed from the headers: {'content-encoding' not in response.headers}",
            ]

        async def step_stream() -> list[str]:
            async with client.stream(url + "/download") as response:
                progress = _Progress(output, int(response.headers["content-length"]), "download")
                try:
                    async for chunk in response.aiter_bytes():
                        progress.advance(len(chunk))
                finally:
                    progress.close()
            return [f"streamed {progress.done:,} bytes in pieces, never all in memory"]

        async def step_socket() -> list[str]:
            async with await socket(url.replace("http", "ws", 1) + "/echo") as ws:
                lines = []
                for message in ("hello", b"\x00\x01binary", "🚀 " * 3):
                    await ws.send(message)
                    lines.append(f"sent {message!r:24} echoed {await ws.next()!r}")
                latency = await ws.ping()
                lines.append(f"ping answered in {latency * 1000:.2f} ms")
            lines.append(f"closed with code {ws.close_code}")
            return lines

        async def step_codecs() -> list[str]:
            lune = "🚀 This string will be encoded."
            encoded = url_encode(lune)
            value = {"name": "sansnet", "nan": float("nan"), "tags": ["http", "websocket"]}
            return [
                f"json_encode({value!r})",
                f"  -> {json_encode(value)}",
                f"url_encode({lune!r})",
                f"  -> {encoded}",
                f"url_decode(...) == original: {url_decode(encoded) == lune}",
            ]

        steps = [
            ("Start a server", step_serve),
            ("Request JSON", step_json),
            ("Follow a redirect", step_redirect),
            ("Decode a compressed body", step_compressed),
            ("Stream a download", step_stream),
            ("Echo over a WebSocket", step_socket),
            ("JSON and URL codecs", step_codecs),
        ]
        for title, action in steps:
            started = time.perf_counter()
            lines = await action()
            elapsed = (time.perf_counter() - started) * 1000
            output.data(f"* {title}  ({elapsed:.1f} ms)\n".encode())
            for line in lines:
                output.data(f"    {line}\n".encode())
    output.data(b"\nAll steps passed.\n")
    return EXIT_OK


# ================================================================================= main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sansnet", description="HTTP, WebSocket and TCP from the command line."
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    request = commands.add_parser("request", help="send an HTTP request, print the answer")
    request.add_argument("url")
    request.add_argument("-X", "--method", help="the method (default GET, or POST with a body)")
    request.add_argument(
        "-H", "--header", action="append", default=[], help="'Name: value', repeatable"
    )
    body = request.add_mutually_exclusive_group()
    body.add_argument(
        "-d", "--data", help="the body (@FILE reads a file, @- reads stdin), sent as given"
    )
    body.add_argument(
        "--json",
        type=_json_argument,
        help="a JSON body, sent as given (sets Content-Type: application/json)",
    )
    request.add_argument(
        "-o", "--output", help="save the body to FILE, with a progress bar on a terminal"
    )
    request.add_argument(
        "--no-decompress", action="store_true", help="keep gzip/br/zstd bodies as sent"
    )
    request.add_argument("--no-redirects", action="store_true", help="do not follow redirects")
    request.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="the connect, read and write timeout; no limit on the whole request (default 30)",
    )
    request.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify TLS certificates"
    )
    request.add_argument(
        "-v", "--verbose", action="store_true", help="show the heads as sent and received"
    )
    _add_proxy_arguments(request)

    serve_parser = commands.add_parser(
        "serve", help="serve an app (module:attribute), a directory, or an echo service"
    )
    serve_parser.add_argument(
        "target",
        nargs="?",
        metavar="APP_OR_DIR",
        help="module:attribute (a request handler or a ServeConfig), or a directory "
        "(default: an echo service)",
    )
    serve_parser.add_argument("--port", type=_integer, default=8000)
    serve_parser.add_argument("--address", default="127.0.0.1")
    serve_parser.add_argument("--uds", metavar="PATH", help="listen on a Unix domain socket")
    serve_parser.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="N worker processes sharing the port, supervised (0 or auto: one per CPU)",
    )
    serve_parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    serve_parser.add_argument(
        "--trusted-proxies",
        metavar="LIST",
        help="comma-separated proxy addresses/networks whose X-Forwarded-*/Forwarded "
        'fields are believed ("*": all, "unix": Unix socket peers)',
    )
    serve_parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one line per request on stderr (default: on, or the ServeConfig's "
        "access_log when APP is one); --no-access-log turns it off",
    )

    socket_parser = commands.add_parser("socket", help="an interactive WebSocket session")
    socket_parser.add_argument("url")
    socket_parser.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        default=2.0,
        help="seconds to wait for answers after stdin ends (not on a terminal)",
    )
    socket_parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="connect timeout (default 10)",
    )
    socket_parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify TLS certificates"
    )
    _add_proxy_arguments(socket_parser)

    tcp_parser = commands.add_parser(
        "tcp", help="a raw TCP/TLS pipe between stdin/stdout and HOST PORT, or an echo listener"
    )
    tcp_parser.add_argument("target", nargs="*", metavar="HOST PORT")
    tcp_parser.add_argument("--tls", action="store_true", help="connect with TLS")
    tcp_parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify TLS certificates"
    )
    tcp_parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="connect timeout (default 10)",
    )
    tcp_parser.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        default=2.0,
        help="with --tls: seconds to wait for answers after stdin ends (default 2)",
    )
    tcp_parser.add_argument(
        "--listen", type=_integer, metavar="PORT", help="listen on PORT (0: any) and echo"
    )
    tcp_parser.add_argument("--address", default="127.0.0.1", help="with --listen")
    tcp_parser.add_argument(
        "--tls-cert", metavar="PEM", help="with --listen: serve TLS with this cert+key file"
    )

    commands.add_parser("demo", help="a short tour of sansnet that needs no network")
    return parser


def _run(function: Callable[..., Any], *args: Any) -> int:
    return _run_on("asyncio", function, *args)


def _run_on(backend: str, function: Callable[..., Any], *args: Any) -> int:
    """Run ``function`` on ``backend``; an error raised in a task group (``socket`` and
    ``tcp`` read and write in two tasks) comes out bare, so main() reports it in one line."""
    options = {"use_uvloop": True} if backend == "uvloop" else {}
    name = "trio" if backend == "trio" else "asyncio"
    try:
        result: int = anyio.run(function, *args, backend=name, backend_options=options)
    except BaseExceptionGroup as group:
        raise _first_error(group) from group
    return result


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error inside (nested) exception groups."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _is_decimal(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes other scripts' digits (int() reads
    "٨٠" as 80) and superscripts (which int() refuses)."""
    return text.isascii() and text.isdigit()


def _integer(text: str) -> int:
    """--port, --listen: a whole number in ASCII digits (argparse's int() also takes
    other scripts' digits, spaces around, "+" and "_"); the range is checked later."""
    digits = text[1:] if text.startswith("-") else text
    if not _is_decimal(digits):
        raise argparse.ArgumentTypeError(f"expected a number in ASCII digits, not {text!r}")
    return int(text)


def _workers(text: str) -> int:
    """--workers: a count, or 0 / auto for one per CPU."""
    if text == "auto":
        return 0
    if not _is_decimal(text):
        raise argparse.ArgumentTypeError(f"expected a number of workers or auto, not {text!r}")
    return int(text)


def _version() -> str:
    """``sansnet X (h11 BUILD Y, wsproto Z)``: which engines this install drives."""
    from importlib.metadata import version

    from .protocol import H11_BUILD

    h11 = version(H11_BUILD.replace("_", "-"))
    return f"sansnet {__version__} ({H11_BUILD} {h11}, wsproto {version('wsproto')})"


def _seconds(text: str) -> float:
    """A duration option: argparse reports a bad one with the option's name."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


@dataclass(frozen=True)
class _JSONArgument:
    text: bytes


def _not_json(name: str) -> Any:
    raise argparse.ArgumentTypeError(f"not valid JSON: {name} is not JSON")


def _json_argument(text: str) -> _JSONArgument:
    """--json's text, checked now so that a mistake is a usage error naming --json, and
    sent exactly as given, in UTF-8, as ``curl --json`` does: never decoded and encoded
    again, which would reorder keys, drop duplicates and round big numbers. The check
    is RFC 8259's grammar: numbers are not converted (1e400 and 30-digit integers are
    JSON), NaN and Infinity are not JSON."""
    raw = os.fsencode(text)  # the bytes given: undecodable argv bytes come back as such
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: not UTF-8 (byte {error.start}, 0x{raw[error.start]:02X})"
        ) from None
    try:
        json.loads(decoded, parse_int=str, parse_float=str, parse_constant=_not_json)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    return _JSONArgument(raw)


def _open_closed_streams() -> None:
    """A stdout or stderr that the command was started without (``>&-``, ``2>&-``: Python
    makes it None) is a non-terminal that discards what is written: the command runs as
    it would with ``>/dev/null``. Opening the null device also takes the lowest free
    descriptor (the closed one, unless stdin is closed too), so no socket opened later
    gets it."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


# The library's advice names Python arguments; on the command line the knobs are options.
_CLI_ADVICE: tuple[tuple[str, str], ...] = (
    (
        "Pass verify= a CA bundle that trusts it, or verify=False to skip the check.",
        "Use -k (--insecure) to skip the check.",
    ),
    (
        "(proxy= or the *_PROXY environment variables), or pass proxy=None to connect directly.",
        "(--proxy or the *_PROXY environment variables), or use --no-proxy to connect directly.",
    ),
    ("(NO_PROXY, or proxy=None)", "(NO_PROXY, or --no-proxy)"),
    (
        "raise max_redirects or pass follow_redirects=False.",
        "use --no-redirects to get the redirect itself.",
    ),
    ("Pass follow_redirects=False to get the", "Use --no-redirects to get the"),
    (
        "Pass allow_insecure_redirects=True to follow it.",
        "Use --no-redirects to get the redirect itself.",
    ),
)


def _for_the_command_line(message: str) -> str:
    """An error's message with its advice about Python arguments given as options."""
    for python, option in _CLI_ADVICE:
        message = message.replace(python, option)
    return message


def _flush_standard_streams() -> None:
    """Flush stdout and stderr now, where a failure can be handled: one at exit would
    print "Exception ignored" and make the exit status 120 (as after --help into a
    closed pipe)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            _discard(stream)


def main(argv: Sequence[str] | None = None) -> int:
    _open_closed_streams()
    try:
        return _main(argv)
    finally:
        _flush_standard_streams()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    output = Output()
    try:
        if args.command == "request":
            return _run(_request, args, output)
        if args.command == "serve":
            spec = _serve_spec(args)
            if args.workers is not None:
                return _serve_workers(spec, args.workers, output)
            return _run_on(spec.backend, _serve, spec, output)
        if args.command == "socket":
            return _run(_socket, args, output)
        if args.command == "tcp":
            return _run(_tcp, args, output)
        if args.command == "demo":
            return _run(_demo, output)
    except _OutputError as error:
        if not isinstance(error.error, BrokenPipeError):
            output.error(str(error))
        # else the reader has gone (`| head`, a pager that quit): nothing to say
        return EXIT_WRITE
    except HandshakeError as error:
        output.error(_for_the_command_line(str(error)))
        return EXIT_HTTP
    except TimeoutError as error:
        # The library's advice names Python arguments; here the knob is an option.
        said = str(error).split(";")[0].rstrip(".")
        output.error(f"{said}. Allow more time with --timeout SECONDS.")
        return EXIT_NETWORK
    except (TransportError, ServerError) as error:
        output.error(_for_the_command_line(str(error)))
        return EXIT_NETWORK
    except (InvalidURL, InvalidArgument) as error:
        output.error(_for_the_command_line(str(error)))
        return EXIT_USAGE
    except NetError as error:
        output.error(_for_the_command_line(str(error)))
        return EXIT_PROTOCOL
    except (ValueError, TypeError, OSError) as error:
        output.error(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    parser.print_help(sys.stderr)
    return EXIT_USAGE
