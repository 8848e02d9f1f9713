"""sansnet.blocking: the API without await, from plain threads, concurrently, and at
interpreter exit."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

import anyio
import pytest

import sansnet
from sansnet import blocking

T = TypeVar("T")


def hello(request: sansnet.ServeRequest) -> str:
    return f"hello {request.path}"


async def echo(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def test_serve_request_stream_socket_without_await() -> None:
    config = blocking.ServeConfig(handle_request=hello, handle_web_socket=echo)
    handle = blocking.serve(0, config)  # returns at once, serves in the background
    try:
        response = blocking.request(handle.url + "/one")
        assert response.text == "hello /one"
        first_pool = blocking.portal()
        response = blocking.request(handle.url + "/two", method="POST", body="x")
        assert response.ok
        assert blocking.portal() is first_pool  # one loop, reused
        with blocking.stream(handle.url + "/streamed") as streamed:
            assert streamed.ok
            assert b"".join(streamed.iter_bytes()) == b"hello /streamed"
        with blocking.stream(handle.url + "/read") as streamed:
            assert streamed.read() == b"hello /read"
        with blocking.socket(handle.url.replace("http", "ws") + "/ws") as ws:
            ws.send("text")
            assert ws.next() == "text"
            ws.send(b"bytes")
            assert ws.next(timeout=5) == b"bytes"
            assert ws.ping() >= 0
            assert ws.subprotocol is None
            with pytest.raises(sansnet.ReadTimeout):  # typed: it was anyio's bare TimeoutError
                ws.next(timeout=0.05)
            with pytest.raises(sansnet.InvalidArgument, match="timeout"):
                ws.next(timeout="5")  # type: ignore[arg-type]  # was a bare TypeError
            ws.send("still open")
            assert ws.next(timeout=5) == "still open"
            ws.close()
            assert (ws.close_code, ws.close_reason) == (1000, "")
            assert list(ws) == []
    finally:
        handle.stop()
    assert handle.stopped
    with pytest.raises(sansnet.ServerStoppedError):
        handle.stop()
    with pytest.raises(sansnet.ConnectError):
        blocking.request(handle.url, timeout=2)


def test_codecs_are_reexported() -> None:
    assert blocking.json_encode({"a": 1}) == '{"a":1}'
    assert blocking.url_decode(blocking.url_encode("a b")) == "a b"
    assert blocking.json_decode("null") is None


def test_from_many_threads_at_once() -> None:
    with blocking.serve(0, hello) as handle:
        assert "BlockingServeHandle" in repr(handle)

        def fetch(index: int) -> str:
            return blocking.request(f"{handle.url}/{index}").text

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(fetch, range(40)))
    assert results == [f"hello /{index}" for index in range(40)]


@pytest.mark.anyio
async def test_calling_from_inside_an_event_loop_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="inside a running"):
        blocking.request("http://127.0.0.1:1/")


def in_a_thread_with_watchdog(function: Callable[[], T], timeout: float = 30) -> T:
    """``function()`` in a daemon thread, waited for at most ``timeout`` seconds: a
    deadlock fails the test instead of hanging the suite."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # reported to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still blocked after {timeout} s: a deadlock"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_methods_called_inside_a_running_event_loop_raise_usage_error(backend: str) -> None:
    """Review: the methods of blocking objects did not check for a running event loop
    as the functions do: inside asyncio.run() they blocked that loop (a TCP read whose
    peer ran on it deadlocked), and stop() stopped the server. Now each one raises
    UsageError before touching anything, and the objects serve on outside the loop."""
    config = blocking.ServeConfig(handle_request=hello, handle_web_socket=echo)
    handle = blocking.serve(0, config)
    tcp_handle = blocking.tcp.serve(0, shout)
    ws = blocking.socket(f"ws://127.0.0.1:{handle.port}/")
    stream = blocking.tcp.connect("127.0.0.1", tcp_handle.port)
    with blocking.stream(handle.url + "/streamed") as response:
        calls: dict[str, Callable[[], object]] = {
            "ws.send": lambda: ws.send("x"),
            "ws.next": lambda: ws.next(timeout=1),
            "ws.ping": ws.ping,
            "ws.close": ws.close,
            "ws.__exit__": lambda: ws.__exit__(None, None, None),
            "tcp.write": lambda: stream.write(b"x"),
            "tcp.read": lambda: stream.read(timeout=1),
            "tcp.send_eof": stream.send_eof,
            "tcp.close": stream.close,
            "response.read": response.read,
            "response.iter_bytes": lambda: next(response.iter_bytes()),
            "handle.stop": handle.stop,
            "handle.__exit__": lambda: handle.__exit__(None, None, None),
            "shutdown": blocking.shutdown,
        }

        async def call_each() -> dict[str, str]:
            raised = {}
            for name, call in calls.items():
                try:
                    call()
                    raised[name] = "returned"
                except Exception as exc:
                    raised[name] = f"{type(exc).__name__}: {exc}"
            return raised

        raised = in_a_thread_with_watchdog(lambda: anyio.run(call_each, backend=backend))
        for name, outcome in raised.items():
            assert outcome.startswith("UsageError: sansnet.blocking was called from inside"), (
                name,
                outcome,
            )
        assert response.read() == b"hello /streamed"  # all untouched
    assert not handle.stopped
    ws.send("still open")
    assert ws.next(timeout=5) == "still open"
    stream.write(b"still open")
    assert stream.read(timeout=5) == b"STILL OPEN"
    ws.close()
    stream.close()
    handle.stop()
    tcp_handle.stop()


def test_a_tcp_read_inside_the_loop_serving_its_peer_raises_instead_of_deadlocking() -> None:
    """Review (b_deadlock.py): a BlockingTcpStream read inside the asyncio loop that runs
    its peer's handler blocked that loop, so the peer never answered: a deadlock (here
    bounded by the read's timeout and the watchdog). Now UsageError at once."""

    async def echo_tcp(peer: sansnet.tcp.TcpStream) -> None:
        async for chunk in peer:
            await peer.write(chunk)

    async def main() -> str:
        async with sansnet.tcp.serve(0, echo_tcp) as server:
            stream = await anyio.to_thread.run_sync(
                lambda: blocking.tcp.connect("127.0.0.1", server.port)
            )
            try:
                with pytest.raises(sansnet.UsageError, match="inside a running event loop"):
                    stream.write(b"ping")
                with pytest.raises(sansnet.UsageError, match="inside a running event loop"):
                    stream.read(timeout=5)
                await anyio.to_thread.run_sync(stream.write, b"ping")  # from a thread: fine
                return await anyio.to_thread.run_sync(lambda: stream.read(timeout=5).decode())
            finally:
                await anyio.to_thread.run_sync(stream.close)

    assert in_a_thread_with_watchdog(lambda: asyncio.run(main())) == "ping"


def test_methods_called_on_the_background_loop_raise_usage_error() -> None:
    """Review: an async def handler (running on the background loop's own thread) that
    called a blocking method got anyio's bare RuntimeError ("This method cannot be
    called from the event loop thread"); now UsageError, which says what to do."""
    tcp_handle = blocking.tcp.serve(0, shout)
    stream = blocking.tcp.connect("127.0.0.1", tcp_handle.port)
    servers: list[blocking.BlockingServeHandle] = []

    async def handler(request: sansnet.ServeRequest) -> str:
        raised = []
        for call in (lambda: stream.write(b"x"), stream.close, servers[0].stop):
            try:
                call()
                raised.append("returned")
            except Exception as exc:
                raised.append(f"{type(exc).__name__}: {exc}")
        return "\n".join(raised)

    with blocking.serve(0, handler) as handle:
        servers.append(handle)
        text = in_a_thread_with_watchdog(lambda: blocking.request(handle.url, timeout=10).text)
        assert not handle.stopped
    lines = text.splitlines()
    assert len(lines) == 3, text
    for line in lines:
        assert line.startswith("UsageError: sansnet.blocking was called on its own event loop"), (
            text
        )
    stream.write(b"still open")
    assert stream.read(timeout=5) == b"STILL OPEN"
    stream.close()
    tcp_handle.stop()


def test_shutdown_and_restart() -> None:
    blocking.request  # noqa: B018 - the module is importable without starting anything
    with blocking.serve(0, hello) as handle:
        assert blocking.request(handle.url).ok
    blocking.shutdown()
    blocking.shutdown()  # a second call is harmless
    with blocking.serve(0, hello) as handle:  # a new loop starts on demand
        assert blocking.request(handle.url).ok


def test_stop_after_shutdown_raises_server_stopped_error() -> None:
    """shutdown() stopped the server: stop() says so as a second stop() does (it raised
    RuntimeError, 'This portal is not running')."""
    handle = blocking.serve(0, hello)
    blocking.shutdown()
    assert handle.stopped
    with pytest.raises(sansnet.ServerStoppedError, match="already stopped"):
        handle.stop()
    handle.__exit__(None, None, None)  # `with` leaves it alone
    with blocking.serve(0, hello) as handle:  # a new loop serves on
        assert blocking.request(handle.url).ok


def shout(stream: blocking.BlockingTcpStream) -> None:
    for chunk in stream:
        stream.write(chunk.upper())


def test_streams_and_sockets_after_shutdown_act_closed() -> None:
    """shutdown() closes the TCP streams and WebSockets still open; using them afterwards
    raises the errors of a closed one, and closing them again is harmless (every call
    raised RuntimeError, 'This portal is not running', and their sockets stayed open)."""
    config = blocking.ServeConfig(handle_request=hello, handle_web_socket=echo)
    handle = blocking.serve(0, config)
    tcp_handle = blocking.tcp.serve(0, shout)
    ws = blocking.socket(f"ws://127.0.0.1:{handle.port}/")
    stream = blocking.tcp.connect("127.0.0.1", tcp_handle.port)
    ws.send("hi")
    assert ws.next(timeout=5) == "hi"
    stream.write("hi")
    assert stream.read(timeout=5) == b"HI"
    blocking.shutdown()

    assert stream.closed
    with pytest.raises(sansnet.ReadError, match="shutdown"):
        stream.read()
    with pytest.raises(sansnet.WriteError, match="shutdown"):
        stream.write(b"more")
    with pytest.raises(sansnet.ReadError, match="shutdown"):
        list(stream)  # as iterating a closed TcpStream does
    stream.send_eof()
    stream.close()
    stream.__exit__(None, None, None)

    assert ws.close_code == 1001  # going away
    with pytest.raises(sansnet.ConnectionClosed, match="shutdown"):
        ws.send("more")
    with pytest.raises(sansnet.ConnectionClosed):
        ws.ping()
    assert ws.next() is None
    assert ws.next(timeout=1) is None
    assert list(ws) == []
    ws.close()
    ws.__exit__(None, None, None)
    with blocking.serve(0, hello) as handle:  # a new loop serves on
        assert blocking.request(handle.url).ok


def test_a_streamed_response_after_shutdown_raises_read_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """shutdown() inside `with blocking.stream(...)`: reading raises ReadError, as for a
    TCP stream it closed, and the block ends quietly. Reading and leaving the block
    raised RuntimeError ('This portal is not running'), and a block never left raised it
    again when garbage collected ('Exception ignored in: <generator object stream>')."""
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: unraisable.append(repr(info)))
    big = "x" * 1_000_000

    handle = blocking.serve(0, hello)
    with blocking.stream(handle.url + "/unread") as response:
        blocking.shutdown()
        with pytest.raises(sansnet.ReadError, match="shutdown"):
            response.read()
        with pytest.raises(sansnet.ReadError, match="shutdown"):
            list(response.iter_bytes())  # it said "read it inside the async with block"

    handle = blocking.serve(0, lambda request: big)
    with blocking.stream(handle.url) as response:
        chunks = response.iter_bytes()
        assert next(chunks)
        blocking.shutdown()  # closes the response before it waits for the server
        with pytest.raises(sansnet.ReadError, match="shutdown"):
            next(chunks)
    assert handle.stopped

    handle = blocking.serve(0, hello)
    with pytest.raises(KeyError), blocking.stream(handle.url) as response:
        blocking.shutdown()
        raise KeyError("the block's own error comes out")

    handle = blocking.serve(0, hello)
    manager = blocking.stream(handle.url)
    manager.__enter__()  # a block never left
    blocking.shutdown()
    del manager
    gc.collect()
    assert unraisable == []

    with blocking.serve(0, hello) as handle, blocking.stream(handle.url) as response:
        assert response.read() == b"hello /"  # a new loop serves on


def run_at_exit_script(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter in development mode (ResourceWarnings shown);
    it must exit with 0."""
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_interpreter_exit_stops_servers_and_closes_connections() -> None:
    script = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("error", ResourceWarning)
        from sansnet import blocking
        handle = blocking.serve(0, lambda request: "bye")
        print(blocking.request(handle.url).text, flush=True)
        # no stop(): exit must shut the loop, the server and the pooled connection down
        """
    )
    result = run_at_exit_script(script)
    assert result.stdout == "bye\n"
    assert "ResourceWarning" not in result.stderr
    assert "Traceback" not in result.stderr


def test_interpreter_exit_closes_the_streams_and_sockets_left_open() -> None:
    script = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("error", ResourceWarning)
        from sansnet import blocking
        async def echo(ws):
            async for message in ws:
                await ws.send(message)
        def shout(stream):
            for chunk in stream:
                stream.write(chunk.upper())
        config = blocking.ServeConfig(handle_request=lambda request: "", handle_web_socket=echo)
        handle = blocking.serve(0, config)
        tcp_handle = blocking.tcp.serve(0, shout)
        ws = blocking.socket(f"ws://127.0.0.1:{handle.port}/")
        stream = blocking.tcp.connect("127.0.0.1", tcp_handle.port)
        ws.send("a")
        stream.write("b")
        print(ws.next(timeout=5), stream.read(timeout=5), flush=True)
        # no close(): exit closes them (it left their sockets open, and each server
        # waited drain_timeout for the handler its own client kept busy)
        """
    )
    result = run_at_exit_script(script)
    assert result.stdout == "a b'B'\n"
    assert "ResourceWarning" not in result.stderr
    assert "Traceback" not in result.stderr


def test_threads_do_not_leak() -> None:
    """Serving and fetching again and again starts no thread that stays. Independent of
    the tests before it: it counted threads before its first call, so it failed alone
    (the portal's thread and an idle worker thread are started once and kept, anyio
    keeping an idle worker 10 s) and passed after tests that had started them. Now a
    first round starts what is kept; then only the threads that the next rounds start
    count, each given a bounded time to end (an earlier test's ending meanwhile does not
    matter)."""

    def round_trip() -> None:
        with blocking.serve(0, hello) as handle:
            assert blocking.request(handle.url).text == "hello /"

    round_trip()  # starts the portal's thread and a worker thread, kept for reuse
    before = set(threading.enumerate())
    for _ in range(5):
        round_trip()
    deadline = time.monotonic() + 5
    while (started := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not started, f"threads still running after 5 round trips: {sorted(map(str, started))}"


def test_a_plain_handler_may_call_the_blocking_client() -> None:
    """Issue #22: a Lune-style proxy answered 500 ("called from inside a running event
    loop"): plain handlers now run in worker threads."""
    with blocking.serve(0, hello) as upstream:

        def proxy(request: sansnet.ServeRequest) -> str:
            return "proxied " + blocking.request(upstream.url + request.path).text

        with blocking.serve(0, proxy) as front:
            response = blocking.request(front.url + "/x")
    assert (response.status_code, response.text) == (200, "proxied hello /x")


def test_a_slow_plain_handler_stalls_nobody_else() -> None:
    """Issue #22: a handler blocking in time.sleep delayed every other request and
    every other thread's blocking calls. This one blocks until the others are done:
    with the event loop blocked they could never finish (bounded by the joins)."""
    release = threading.Event()
    entered = threading.Event()

    def handler(request: sansnet.ServeRequest) -> str:
        if request.path == "/slow":
            entered.set()
            assert release.wait(30), "never released"
            return "slow"
        return "fast"

    results: dict[str, str] = {}
    with blocking.serve(0, handler) as handle:
        slow = threading.Thread(
            target=lambda: results.setdefault("slow", blocking.request(handle.url + "/slow").text)
        )
        slow.start()
        assert entered.wait(10)
        fast = threading.Thread(
            target=lambda: results.setdefault("fast", blocking.request(handle.url + "/").text)
        )
        fast.start()
        fast.join(10)
        assert results.get("fast") == "fast"  # answered while /slow still blocks
        release.set()
        slow.join(10)
    assert results == {"fast": "fast", "slow": "slow"}


def wait_until_refused(url: str) -> None:
    """The server at ``url`` finished stopping: nothing listens on its port."""
    deadline = time.monotonic() + 10
    while True:
        try:
            blocking.request(url, timeout=1)
        except sansnet.ConnectError:
            return
        assert time.monotonic() < deadline, f"{url} still answers"
        time.sleep(0.05)


def test_stop_from_a_plain_handler_returns_at_once_and_the_request_is_answered() -> None:
    """Review: stop() from a plain handler (in its worker thread) waited for the server
    to finish, that is for the handler itself, until drain_timeout cancelled it: the
    request got no answer. As with sansnet.ServeHandle.stop, it now starts the stop and
    returns at once; the request is answered (Connection: close), then the server stops."""
    stopped_before_it_returned: list[bool] = []

    def handler(request: sansnet.ServeRequest) -> str:
        handle.stop()
        # Returned before the server stopped (it waits for this very handler).
        stopped_before_it_returned.append(handle._done.done())
        return "bye"

    handle = blocking.serve(0, handler, drain_timeout=5)
    response = blocking.request(handle.url, timeout=30)
    assert (response.status_code, response.text) == (200, "bye")
    assert response.headers.get("connection") == "close"
    assert stopped_before_it_returned == [False]  # not after the 5 s drain_timeout
    assert handle.stopped
    with pytest.raises(sansnet.ServerStoppedError, match="already stopped"):
        handle.stop()
    wait_until_refused(handle.url)
    handle._done.result(timeout=30)
    for _ in range(500):  # the done callback may run just after result() returns
        if handle not in blocking._servers:
            break
        time.sleep(0.01)
    assert handle not in blocking._servers, "Once stopped, shutdown() has nothing to wait for."


def test_a_script_that_exits_once_a_handler_stopped_the_server_still_drains() -> None:
    """Review: a script that waits for ``handle.stopped`` and then ends, the stop having
    come from a handler, cut the drain at exit: the request that asked for the stop and
    one still in flight both got no answer. shutdown() at exit now waits for it."""
    script = textwrap.dedent(
        """
        import time
        from sansnet import blocking
        def handler(request):
            if request.path == "/quit":
                handle.stop()
                time.sleep(0.2)  # work after asking for the stop
                return "bye"
            time.sleep(1)  # in flight when the stop comes
            return "slow done"
        handle = blocking.serve(0, handler)
        print(handle.port, flush=True)
        while not handle.stopped:
            time.sleep(0.02)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{int(server.stdout.readline())}"
            answers: dict[str, object] = {}

            def get(path: str) -> None:
                try:
                    answers[path] = blocking.request(url + path, timeout=20).text
                except sansnet.NetError as exc:
                    answers[path] = exc

            slow = threading.Thread(target=get, args=("/slow",))
            slow.start()
            time.sleep(0.2)  # the slow request is in its handler
            get("/quit")
            slow.join(30)
            assert answers == {"/quit": "bye", "/slow": "slow done"}
            assert server.wait(30) == 0
        finally:
            server.kill()


def test_stop_from_a_plain_tcp_handler_returns_at_once_and_the_handler_writes_on() -> None:
    """Review: the same for blocking.tcp.serve: the client read b"" after drain_timeout
    instead of the handler's b"bye"."""
    stopped_before_it_returned: list[bool] = []

    def handler(stream: blocking.BlockingTcpStream) -> None:
        handle.stop()
        stopped_before_it_returned.append(handle._done.done())
        stream.write(b"bye")

    handle = blocking.tcp.serve(0, handler, drain_timeout=5)
    with blocking.tcp.connect("127.0.0.1", handle.port) as stream:
        assert stream.read(timeout=30) == b"bye"
    assert stopped_before_it_returned == [False]
    assert handle.stopped
    wait_until_refused(f"http://127.0.0.1:{handle.port}/")


def test_stop_from_another_thread_waits_for_the_handlers() -> None:
    """stop() from outside the server's handlers still returns only once the server
    has stopped: after the handler still running has answered."""
    entered = threading.Event()
    release = threading.Event()

    def handler(request: sansnet.ServeRequest) -> str:
        entered.set()
        assert release.wait(30), "never released"
        return "late"

    handle = blocking.serve(0, handler)
    results: dict[str, str] = {}
    client = threading.Thread(
        target=lambda: results.setdefault("r", blocking.request(handle.url).text)
    )
    client.start()
    assert entered.wait(10)
    threading.Timer(0.3, release.set).start()
    start = time.monotonic()
    handle.stop()
    assert time.monotonic() - start >= 0.25  # waited for the handler
    client.join(10)
    assert results == {"r": "late"}


def test_max_threads_bounds_the_plain_handlers_running_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def handler(request: sansnet.ServeRequest) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.05)
        with lock:
            running -= 1
        return "ok"

    with blocking.serve(0, handler, max_threads=2) as handle, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: blocking.request(handle.url).text, range(12)))
    assert answers == ["ok"] * 12
    assert 1 <= peak <= 2
    with pytest.raises(sansnet.InvalidArgument, match="max_threads"):
        blocking.serve(0, handler, max_threads=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_loop() -> None:
    """Issue: a child forked after the first blocking call inherited the parent's portal
    but not its thread: the child's first call (and its exit, whose atexit shutdown()
    called that portal) waited forever for a loop that did not exist there. The child
    now forgets the parent's loop: its calls start a loop of its own, and what it
    inherited (a server handle, a WebSocket) acts stopped and closed there."""
    script = textwrap.dedent(
        """
        import os, signal, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads
        from sansnet import blocking
        async def echo(ws):
            async for message in ws:
                await ws.send(message)
        config = blocking.ServeConfig(handle_request=lambda request: "parent", handle_web_socket=echo)
        handle = blocking.serve(0, config)
        ws = blocking.socket(f"ws://127.0.0.1:{handle.port}/")
        print(blocking.request(handle.url).text, flush=True)
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)  # a hang fails the test, not the suite
            print("child sees", blocking.request(handle.url).text, flush=True)
            with blocking.serve(0, lambda request: "child") as own:
                print("child serves", blocking.request(own.url).text, flush=True)
            print("inherited", handle.stopped, ws.next(timeout=1), flush=True)
            handle.stop() if not handle.stopped else None
            sys.exit(0)  # atexit: shutdown() of the child's own loop
        _, status = os.waitpid(pid, 0)
        print("child status", status, flush=True)
        ws.send("still open")
        print("parent", blocking.request(handle.url).text, ws.next(timeout=5), flush=True)
        """
    )
    result = run_at_exit_script(script)
    assert result.stdout.splitlines() == [
        "parent",
        "child sees parent",
        "child serves child",
        "inherited True None",
        "child status 0",
        "parent parent still open",
    ], result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_that_never_calls_exits_without_a_traceback() -> None:
    """Review (b_fork_mp.py): a child forked after a blocking call (by os.fork or a
    multiprocessing fork Process) that never touched sansnet printed, as it exited,
    'Exception ignored in: <async_generator object _lifetime>': the parent's loop's
    default client, finalized during the child's teardown. The blocking loop now owns
    and closes its default client itself: no async generator is left to finalize."""
    script = textwrap.dedent(
        """
        import multiprocessing, os, signal, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads
        from sansnet import blocking

        def work(x):
            return x * 2

        if __name__ == "__main__":
            handle = blocking.serve(0, lambda request: "parent")
            print(blocking.request(handle.url).text, flush=True)
            process = multiprocessing.get_context("fork").Process(target=work, args=(1,))
            process.start()
            process.join(20)
            print("process", process.exitcode, flush=True)
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a hang fails the test, not the suite
                sys.exit(0)  # a plain child that exits normally
            _, status = os.waitpid(pid, 0)
            print("child status", status, flush=True)
        """
    )
    result = run_at_exit_script(script)
    assert result.stdout.splitlines() == ["parent", "process 0", "child status 0"], result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_call_from_an_atexit_handler_after_shutdown_exits_without_a_traceback() -> None:
    """Review (b_atexit.py): an atexit handler registered before sansnet.blocking was
    imported runs after blocking's own shutdown(); its calls start a new loop (as the
    docs say), which nobody shuts down: interpreter teardown then printed 'Exception
    ignored in: <async_generator object _lifetime>'. Now the exit is quiet."""
    script = textwrap.dedent(
        """
        import atexit, signal
        signal.alarm(30)  # a hang fails the test, not the suite

        def late():
            from sansnet import blocking
            async def echo(ws):
                async for message in ws:
                    await ws.send(message)
            config = blocking.ServeConfig(handle_request=lambda request: "late", handle_web_socket=echo)
            handle = blocking.serve(0, config)
            print("atexit", blocking.request(handle.url).text, flush=True)
            ws = blocking.socket(f"ws://127.0.0.1:{handle.port}/")
            ws.send("x")
            print("atexit ws", ws.next(timeout=5), flush=True)

        atexit.register(late)  # runs after blocking's own atexit shutdown()
        from sansnet import blocking
        handle = blocking.serve(0, lambda request: "main")
        print(blocking.request(handle.url).text, flush=True)
        """
    )
    result = run_at_exit_script(script)
    assert result.stdout.splitlines() == ["main", "atexit late", "atexit ws x"], result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# ======================================================= an interrupted call cancels its task

needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")


class Interrupted(Exception):
    """What a signal handler of the caller raises (as Ctrl-C raises KeyboardInterrupt)."""


@contextmanager
def interrupt_after(seconds: float, error: BaseException) -> Iterator[None]:
    """Raise ``error`` in this (the main) thread after ``seconds``, from a SIGALRM handler."""

    def raise_it(signum: int, frame: FrameType | None) -> None:
        raise error

    previous = signal.signal(signal.SIGALRM, raise_it)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def slow_server(answer: Callable[[socket.socket], None]) -> Iterator[tuple[str, threading.Event]]:
    """A server on 127.0.0.1 that reads one request head, calls ``answer`` on the
    connection, then never answers more: it sets the event yielded once the client
    closed the connection (within 10 s)."""
    listener = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(10)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(65536)
                answer(connection)
                while connection.recv(65536):
                    pass
                closed.set()
            except OSError:  # a timeout: the client kept the connection open
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", closed
    finally:
        listener.close()
        thread.join(15)


def pool_in_use() -> int:
    async def in_use() -> int:
        return (await sansnet.client.default_client()).pool.in_use

    return blocking.portal().call(in_use)


@needs_alarm
def test_an_interrupted_request_is_cancelled_on_the_loop() -> None:
    """Ctrl-C while request() waits: the request on the background loop is cancelled,
    its connection closed and its pool slot freed before the KeyboardInterrupt reaches
    the caller, unchanged (it ran on: the POST was answered after the caller gave up,
    its connection held meanwhile)."""
    interrupt = KeyboardInterrupt()
    with slow_server(lambda connection: None) as (url, closed):
        with pytest.raises(KeyboardInterrupt) as raised, interrupt_after(0.3, interrupt):
            blocking.request(url, method="POST", body=b"charge-card", timeout=None)
        assert raised.value is interrupt
        assert pool_in_use() == 0
        assert closed.wait(10)


@needs_alarm
def test_a_stream_interrupted_before_its_head_is_cancelled_on_the_loop() -> None:
    """An exception raised in the caller's thread while stream() waits for the head
    leaves no task behind: the connection is closed and its pool slot freed (the
    context manager was entered later in the background and never left, until
    shutdown())."""
    interrupt = Interrupted("alarm")
    with slow_server(lambda connection: None) as (url, closed):
        with (
            pytest.raises(Interrupted) as raised,
            interrupt_after(0.3, interrupt),
            blocking.stream(url, timeout=None),
        ):
            pytest.fail("no response head was sent")  # pragma: no cover
        assert raised.value is interrupt
        assert pool_in_use() == 0
        assert closed.wait(10)


def tasks_on_the_loop() -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return blocking.portal().call(count)


@needs_alarm
def test_an_interrupt_while_reading_a_streamed_body_cancels_the_read() -> None:
    """An interrupt while iter_bytes() waits for the next piece cancels that read on the
    loop (it waited on, while the block's exit closed the response), then the block's
    exit closes the connection."""

    def head_and_half_the_body(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")

    interrupt = Interrupted("alarm")
    with slow_server(head_and_half_the_body) as (url, closed):
        chunks = []
        with pytest.raises(Interrupted) as raised, blocking.stream(url, timeout=None) as response:
            tasks = tasks_on_the_loop()
            try:
                with interrupt_after(0.3, interrupt):
                    chunks.extend(response.iter_bytes())
            finally:
                assert tasks_on_the_loop() == tasks  # the read of the rest is gone
        assert raised.value is interrupt
        assert chunks == [b"hello"]
        assert pool_in_use() == 0
        assert closed.wait(10)


@needs_alarm
def test_an_interrupted_tcp_read_is_cancelled_on_the_loop() -> None:
    """The read given up on is no longer waiting on the loop: the next read gets the
    next bytes (the abandoned one took them)."""
    received = threading.Event()

    def send_when_asked(stream: blocking.BlockingTcpStream) -> None:
        received.wait(10)
        stream.write(b"after")
        stream.read()

    with (
        blocking.tcp.serve(0, send_when_asked) as server,
        blocking.tcp.connect("127.0.0.1", server.port) as stream,
    ):
        with pytest.raises(Interrupted), interrupt_after(0.3, Interrupted("alarm")):
            stream.read()
        received.set()
        assert stream.read(timeout=10) == b"after"


# ================================================= a call running when shutdown() is called


def raised_when_shut_down_while_waiting(call: Callable[[str], object]) -> BaseException | None:
    """Run ``call(url)`` in a thread against a server that never answers, call
    shutdown() once the request reached it, and return what ``call`` raised (None if
    it returned); bounded: a call still waiting fails the test."""
    asked = threading.Event()
    outcome: list[BaseException | None] = []
    with slow_server(lambda connection: asked.set()) as (url, _):

        def run() -> None:
            try:
                call(url)
            except BaseException as exc:  # reported to the test
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert asked.wait(10), "the call never reached the server"
        blocking.shutdown()
        thread.join(15)
        assert not thread.is_alive(), "the call still waits after shutdown()"
    return outcome[0]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda url: blocking.request(url, timeout=None), id="request"),
        pytest.param(lambda url: blocking.stream(url, timeout=None).__enter__(), id="stream"),
        pytest.param(lambda url: blocking.socket(url.replace("http", "ws")), id="socket"),
    ],
)
def test_a_call_running_when_shutdown_is_called_raises_usage_error(
    call: Callable[[str], object],
) -> None:
    """Review (b_shutdown_inflight.py): a call still waiting when another thread called
    shutdown() got a bare concurrent.futures.CancelledError (request, socket), or even
    asyncio's CancelledError, a BaseException (stream). Now a UsageError that says
    shutdown() was called; the next call starts a new loop."""
    raised = raised_when_shut_down_while_waiting(call)
    assert isinstance(raised, sansnet.UsageError), repr(raised)
    assert "shutdown() was called" in str(raised)
    with blocking.serve(0, hello) as handle:  # a new loop serves on
        assert blocking.request(handle.url).ok


def test_calls_racing_with_shutdown_raise_only_sansnet_errors() -> None:
    """Review (b_shutdown_race.py): requests from several threads while shutdown() is
    called again and again: some got a bare CancelledError (the loop stopped under them)
    or anyio's "This portal is not running". Now each either succeeds or raises a
    sansnet error."""
    # A server apart from the background loop, which the shutdowns stop again and again.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]

    def answer_forever() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            head = b""
            try:
                while data := connection.recv(65536):
                    head += data
                    while b"\r\n\r\n" in head:
                        _, head = head.split(b"\r\n\r\n", 1)
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except OSError:
                pass

    threading.Thread(target=answer_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    seen: list[BaseException] = []
    done = threading.Event()
    answered = [0]

    def work() -> None:
        while not done.is_set():
            try:
                blocking.request(url, timeout=10)
                answered[0] += 1
            except BaseException as exc:  # reported to the test
                seen.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(30):
            time.sleep(0.02)
            blocking.shutdown()
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
        listener.close()
    assert not any(thread.is_alive() for thread in threads)
    assert answered[0] > 0
    assert all(isinstance(exc, sansnet.NetError) for exc in seen), {repr(exc) for exc in seen}


def test_a_stop_waiting_when_shutdown_is_called_returns_as_the_server_stopped() -> None:
    """A stop() waiting for a handler to finish when another thread called shutdown()
    got a bare CancelledError; shutdown() stopped the server, so stop() returns."""
    release = threading.Event()
    entered = threading.Event()

    def handler(request: sansnet.ServeRequest) -> str:
        entered.set()
        release.wait(20)
        return "late"

    handle = blocking.serve(0, handler)
    outcome: list[object] = []

    def run(call: Callable[[], object]) -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    asking = threading.Thread(target=run, args=(lambda: blocking.request(handle.url),))
    asking.start()
    try:
        assert entered.wait(10)
        stopping = threading.Thread(target=run, args=(handle.stop,), daemon=True)
        stopping.start()
        deadline = time.monotonic() + 10
        while not handle.stopped and time.monotonic() < deadline:  # stop() is draining
            time.sleep(0.01)
        blocking.shutdown()
        stopping.join(15)
        assert not stopping.is_alive()
    finally:
        release.set()
        asking.join(15)
    assert handle.stopped
    assert None in outcome, outcome  # what stop() returned
    assert all(isinstance(item, sansnet.NetError | None) for item in outcome), outcome
