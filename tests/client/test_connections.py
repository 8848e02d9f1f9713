"""Connection reuse: keep-alive, idle connections closed by the server, the retry on a
stale reused connection, and cancellation at every await point of a request."""

from __future__ import annotations

import contextlib
import gc
import socket
import ssl
import struct
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import pytest

import sansnet
from sansnet import PoolLimits, Timeout
from sansnet.transport import clock

from .conftest import Certificates, Servers
from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio

Start = Callable[..., RawServer]


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (at most 5 s): for states that depend on another thread."""
    for _ in range(500):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"Timed out waiting until {what}.")


async def test_keep_alive_and_concurrency(base_url: str) -> None:
    async with sansnet.Client() as client:
        for _ in range(5):
            assert (await client.request(f"{base_url}/status/200")).ok
        assert client.pool.total == 1, "Sequential requests share one connection."
        results: list[int] = []

        async def one(i: int) -> None:
            body = (await client.request(f"{base_url}/echo?i={i}")).json()
            results.append(int(dict(body["query"])["i"]))

        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(one, i)
        assert sorted(results) == list(range(20)), "Each task got its own response."
        assert client.pool.in_use == 0
        assert 1 <= client.pool.total <= 20


async def test_idle_connection_closed_by_server_is_not_reused(raw_server: Start) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(response(b"once"))  # keep-alive by default...
        conn.close()  # ...but closed as soon as it is idle

    server = raw_server(handler)
    async with sansnet.Client() as client:
        assert (await client.request(server.url)).body == b"once"
        assert client.pool.idle == 1
        [conn] = [c for idle in client.pool._idle.values() for c in idle]
        assert conn.origin == ("http", "127.0.0.1", server.port)
        await wait_for(conn.stream.is_readable, "the client sees the server's close")
        assert (await client.request(server.url)).body == b"once", "A fresh connection is used."
        assert server.accepted == 2
        assert len(server.requests) == 2, "No request went to the closed connection."


class _ServerTLS:
    """The server's end of a TLS session over ``lower`` (a socket, or another of these:
    TLS inside a proxy's TLS tunnel), through memory buffers: what it writes leaves
    only on :meth:`flush`, so a response and the close_notify after it go out in one
    TCP segment, and the client reads them from its socket together."""

    def __init__(self, lower: socket.socket | _ServerTLS, context: ssl.SSLContext) -> None:
        self.lower = lower
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self._until_done(self.tls.do_handshake)
        self.flush()

    def _until_done(self, method: Callable[..., bytes | None], *args: int) -> bytes | None:
        while True:
            try:
                return method(*args)
            except ssl.SSLWantReadError:
                self.flush()
                data = self.lower.recv(65536)
                if not data:
                    raise ConnectionResetError from None
                self.incoming.write(data)

    def recv(self, max_bytes: int) -> bytes:
        data = self._until_done(self.tls.read, max_bytes)
        assert data is not None
        return data

    def write(self, data: bytes) -> None:
        self.tls.write(data)

    def sendall(self, data: bytes) -> None:
        self.write(data)
        self.flush()

    def close_notify(self) -> None:
        """Queue our close_notify; the peer's is not waited for."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.lower.sendall(data)


def _server_context(certs: Certificates) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    return context


def _client_context(certs: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certs.ca_file)


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_an_idle_tls_connection_whose_server_sent_close_notify_is_not_reused(
    raw_server: Start, certs: Certificates, backend: str
) -> None:
    """The server answers, then sends its close_notify with the response, but its FIN
    only when the test ends. On trio (and with backend="anyio") the close_notify sat
    unread in anyio's TLS buffer, where is_readable() did not look: the idle connection
    was reused, and a POST (never retried) failed with RemoteProtocolError."""
    context = _server_context(certs)

    def handler(conn: socket.socket, server: RawServer) -> None:
        tls = _ServerTLS(conn, context)
        if server.read_request(tls) is None:  # type: ignore[arg-type]
            return
        tls.write(response(b"once"))
        tls.close_notify()
        tls.flush()
        server.event("end").wait(10)  # the FIN: when the test ends

    server = raw_server(handler)
    url = f"https://127.0.0.1:{server.port}/"
    async with sansnet.Client(verify=_client_context(certs), backend=backend) as client:  # type: ignore[arg-type]
        assert (await client.request(url, method="POST", body=b"1")).body == b"once"
        assert client.pool.idle == 1
        second = await client.request(url, method="POST", body=b"2")
        assert second.body == b"once", "A fresh connection is used."
    assert server.accepted == 2
    assert len(server.requests) == 2, "No request went to the closed connection."


@pytest.mark.parametrize("closing", ["origin", "proxy"])
async def test_an_idle_tunnel_whose_origin_or_proxy_sent_close_notify_is_not_reused(
    raw_server: Start, certs: Certificates, closing: str
) -> None:
    """TLS to the origin inside TLS to an https:// proxy (anyio's TLS streams on every
    backend): the origin's close_notify came in the proxy's TLS record with its
    response, the proxy's after it; either sat unread in its own TLS layer's buffer,
    and the idle tunnel was reused on asyncio and uvloop too."""
    context = _server_context(certs)

    def proxy(conn: socket.socket, server: RawServer) -> None:
        outer = _ServerTLS(conn, context)
        if server.read_request(outer) is None:  # type: ignore[arg-type]
            return
        outer.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        inner = _ServerTLS(outer, context)  # the origin, inside the tunnel
        if server.read_request(inner) is None:  # type: ignore[arg-type]
            return
        inner.write(response(b"once"))
        if closing == "origin":
            inner.close_notify()
        outer.write(inner.outgoing.read())
        if closing == "proxy":
            outer.close_notify()
        outer.flush()
        server.event("end").wait(10)  # the FIN: when the test ends

    server = raw_server(proxy)
    async with sansnet.Client(
        verify=_client_context(certs), proxy=f"https://127.0.0.1:{server.port}"
    ) as client:
        url = "https://127.0.0.1:1/"  # reached through the tunnel only
        assert (await client.request(url, method="POST", body=b"1")).body == b"once"
        assert client.pool.idle == 1
        second = await client.request(url, method="POST", body=b"2")
        assert second.body == b"once", "A fresh tunnel is used."
    assert server.accepted == 2
    assert [head.split(b" ", 1)[0] for head in server.requests] == [b"CONNECT", b"POST"] * 2


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_kept_across_event_loops_opens_a_new_connection(
    raw_server: Start, loop: str
) -> None:
    # pytest-asyncio's loop per test, or asyncio.run() twice: the idle connection of a
    # closed loop failed the next run's request with "Event loop is closed".
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response())

    server = raw_server(handler)
    client = sansnet.Client()

    async def one() -> None:
        assert (await client.request(server.url)).body == b"hello"
        assert client.pool.total == 1, "The connection of the closed loop was dropped."

    with warnings.catch_warnings():
        # asyncio closes the socket of a transport its closed loop left behind when the
        # transport is collected, with a ResourceWarning: what the test leaves behind.
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(3):
            anyio.run(one, backend="asyncio", backend_options={"use_uvloop": loop == "uvloop"})
        anyio.run(client.aclose, backend="asyncio")
        gc.collect()
    assert server.accepted == 3


async def test_keepalive_expiry(raw_server: Start) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response())

    server = raw_server(handler)
    async with sansnet.Client(limits=PoolLimits(keepalive_expiry=0.0)) as client:
        await client.request(server.url)
        await anyio.sleep(0.01)
        await client.request(server.url)
        assert server.accepted == 2, "An expired idle connection is not reused."
    async with sansnet.Client(limits=PoolLimits(max_keepalive=0)) as client:
        await client.request(server.url)
        assert client.pool.total == 0, "max_keepalive=0 keeps nothing."


async def test_a_request_looks_the_running_loop_up_once(
    raw_server: Start, anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Python 3.10 and 3.11 every lookup of asyncio's running loop is a getpid()
    # system call: the deadline and the pool read their loop's clock, looked up once.
    if anyio_backend_name != "asyncio":
        pytest.skip("trio has no asyncio loop to look up")

    def handler(conn: socket.socket, server: RawServer) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(response())

    server = raw_server(handler)
    lookups = 0
    lookup = clock._get_running_loop

    def counted() -> object:
        nonlocal lookups
        lookups += 1
        return lookup()

    async with sansnet.Client() as client:
        await client.request(server.url)  # connected, kept alive
        monkeypatch.setattr(clock, "_get_running_loop", counted)
        for _ in range(10):
            assert (await client.request(server.url)).ok
    assert server.accepted == 1
    assert lookups <= 10, f"{lookups} lookups of the running loop for 10 requests"


def _closes_on_second_request(conn: socket.socket, server: RawServer) -> None:
    """Answers the first request of each connection, then closes when the second
    arrives, as a server does when its idle timeout races with a new request."""
    if server.read_request(conn) is None:
        return
    conn.sendall(response(b"first"))
    server.read_request(conn)
    conn.close()


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", b"replayable"), ("DELETE", b"bytes can be replayed")],
)
async def test_retry_once_on_a_stale_reused_connection(
    raw_server: Start, method: str, body: bytes | None
) -> None:
    server = raw_server(_closes_on_second_request)
    async with sansnet.Client() as client:
        assert (await client.request(server.url)).body == b"first"
        result = await client.request(server.url, method=method, body=body)
        assert result.body == b"first", "The request was retried on a fresh connection."
    assert server.accepted == 2
    assert len(server.requests) == 3, "Sent twice: on the stale connection, then the fresh one."


async def test_no_retry_once_part_of_an_answer_arrived_though_the_upload_failed(
    raw_server: Start,
) -> None:
    """Issue: a PUT whose upload failed (the server reset the connection) was sent
    again although half a response head had arrived first: a request is retried only
    before any response byte (docs/api/client.md)."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        if server.read_request(conn) is None:
            return
        conn.sendall(response(b"first"))
        if server.read_request(conn, read_body=False) is None:
            return
        conn.recv(1000)  # a little of the body, then half a head, then a reset
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\nX-Ha")
        server.event("half sent").wait(0.3)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    server = raw_server(handler)
    async with sansnet.Client() as client:
        await client.request(server.url)
        with pytest.raises((sansnet.ReadError, sansnet.RemoteProtocolError)):
            await client.request(server.url, method="PUT", body=b"x" * 20_000_000)
    assert server.accepted == 1  # before: the PUT went again on a new connection
    assert len(server.requests) == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_no_retry_for_a_non_idempotent_method(raw_server: Start, method: str) -> None:
    server = raw_server(_closes_on_second_request)
    async with sansnet.Client() as client:
        await client.request(server.url)
        with pytest.raises(sansnet.RemoteProtocolError, match="without sending a response"):
            await client.request(server.url, method=method, body=b"amount=100")
        assert client.pool.total == 0
    assert server.accepted == 1, "The server may have applied it: it is not sent again."
    assert len(server.requests) == 2


async def test_no_retry_for_a_streamed_body(raw_server: Start) -> None:
    server = raw_server(_closes_on_second_request)

    async def body() -> AsyncIterator[bytes]:
        yield b"cannot be sent twice"

    async with sansnet.Client() as client:
        await client.request(server.url)
        with pytest.raises((sansnet.RemoteProtocolError, sansnet.ReadError, sansnet.WriteError)):
            await client.request(server.url, method="POST", body=body())
        assert client.pool.total == 0
    assert server.accepted == 1, "A streamed body is never retried."


async def test_the_retry_goes_on_a_fresh_connection(raw_server: Start) -> None:
    """Idle connections that went idle together are closed together by the server's
    idle timeout: the retry must not take a sibling of the stale one, which may be
    stale too, but open a new connection, as the docs promise."""
    server = raw_server(_closes_on_second_request)
    async with sansnet.Client() as client:
        async with client.stream(server.url) as first, client.stream(server.url) as second:
            assert await first.aread() == await second.aread() == b"first"
        assert client.pool.idle == 2
        assert (await client.request(server.url)).body == b"first"
        assert client.pool.idle == 2, "The fresh connection joined the one left idle."
    assert server.accepted == 3, "Two connections at first, then one for the retry."
    assert len(server.requests) == 4


async def test_no_second_retry(raw_server: Start) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        if server.read_request(conn) is not None and server.accepted == 1:
            conn.sendall(response(b"first"))
            server.read_request(conn)
        conn.close()  # every later connection closes without answering

    server = raw_server(handler)
    async with sansnet.Client() as client:
        await client.request(server.url)
        with pytest.raises(sansnet.RemoteProtocolError, match="without sending a response"):
            await client.request(server.url)
    assert server.accepted == 2, "One retry, on a fresh connection, and no more."


async def test_pool_evicts_idle_connections_of_other_origins(servers: Servers) -> None:
    async with sansnet.Client(limits=PoolLimits(max_connections=1)) as client:
        assert (await client.request(f"{servers.uvicorn}/status/200")).ok
        assert (await client.request(f"{servers.hypercorn}/status/200")).ok
        assert client.pool.total == 1
        assert client.pool.idle == 1


# ------------------------------------------------------------------------ cancellation


async def _cancel_when(request: Callable[[], object], ready: Callable[[], bool], what: str) -> None:
    """Start ``request`` in a task, wait until ``ready()``, cancel it, and check that
    it was cancelled there (not finished, not failed)."""
    outcome: list[str] = []

    async def run(scope_ready: anyio.Event) -> None:
        with anyio.CancelScope() as scope:
            cancel_scopes.append(scope)
            scope_ready.set()
            await request()  # type: ignore[misc]
            outcome.append("finished")
        if scope.cancelled_caught:
            outcome.append("cancelled")

    cancel_scopes: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as group:
        started = anyio.Event()
        group.start_soon(run, started)
        await started.wait()
        await wait_for(ready, what)
        cancel_scopes[0].cancel()
    assert outcome == ["cancelled"], f"The request was cancelled while {what}."


async def test_cancellation_at_every_await_point(servers: Servers, raw_server: Start) -> None:
    """httpcore issue 1093: cancelled requests must not leave pool slots counted as
    busy. Cancel at each await point, then prove the pool serves N requests at once."""
    n = 3
    limits = PoolLimits(max_connections=n)
    silent = raw_server(lambda conn, server: server.event("stop").wait(10))
    never_answers = raw_server(
        lambda conn, server: (server.read_request(conn), server.event("stop").wait(10))
    )
    uploads = 0

    def big_body() -> object:
        nonlocal uploads
        for _ in range(4096):
            uploads += 1
            yield b"u" * 65536

    async with sansnet.Client(limits=limits, timeout=Timeout(pool=5, read=10)) as client:
        pool = client.pool

        # 1. waiting for a pool slot: hold all N, then cancel the one waiting.
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(n):
                await stack.enter_async_context(client.stream(f"{servers.uvicorn}/status/200"))
            assert pool.in_use == n
            await _cancel_when(
                lambda: client.request(f"{servers.uvicorn}/status/201"),
                lambda: pool.waiting == 1,
                "waiting for a pool slot",
            )
            assert pool.waiting == 0
        assert pool.in_use == 0

        # 2. connecting: the TCP connection is up, the TLS handshake never answered.
        await _cancel_when(
            lambda: client.request(f"https://127.0.0.1:{silent.port}/"),
            lambda: silent.accepted == 1,
            "connecting",
        )
        assert pool.in_use == 0

        # 3. writing a big body to a server that does not read it.
        before = silent.accepted
        seen = [0, 0]

        def stuck() -> bool:  # the upload made progress, then stopped: blocked in write
            seen[0], seen[1] = seen[1], uploads
            return uploads > 4 and seen[0] == seen[1]

        await _cancel_when(
            lambda: client.request(silent.url, method="POST", body=big_body()),
            lambda: silent.accepted > before and stuck(),
            "writing the body",
        )
        assert pool.in_use == 0

        # 4. waiting for the response head.
        await _cancel_when(
            lambda: client.request(never_answers.url),
            never_answers.event("request").is_set,
            "waiting for the response head",
        )
        assert pool.in_use == 0

        # 5. reading the body (the head and a first piece have arrived).
        got_piece = threading.Event()

        async def read_slowly() -> None:
            async with client.stream(f"{servers.hypercorn}/slow-body?pieces=50&delay=0.2") as r:
                async for _ in r.aiter_bytes():
                    got_piece.set()

        await _cancel_when(read_slowly, got_piece.is_set, "reading the body")
        assert pool.in_use == 0

        # 6. after all that: N requests at once, each held until all N have arrived.
        assert pool.total <= n
        assert pool.waiting == 0
        key = uuid.uuid4().hex
        statuses: list[int] = []

        async def at_barrier() -> None:
            response = await client.request(f"{servers.uvicorn}/barrier?n={n}&key={key}&timeout=5")
            statuses.append(response.status_code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(n):
                    group.start_soon(at_barrier)
        assert statuses == [200] * n, "The pool still serves max_connections requests at once."
        assert pool.in_use == 0
        assert pool.waiting == 0
        assert pool.total == pool.idle <= n
    silent.event("stop").set()
    never_answers.event("stop").set()


async def test_a_connect_cancelled_as_it_completes_leaves_no_socket(raw_server: Start) -> None:
    """Cancel the request a few event loop steps into its connect, step by step: one of
    those lands just after the socket connected, before the connect returned. That
    socket must be closed then, not left open until the garbage collector finds it
    (asyncio's own happy eyeballs, loop.create_connection(happy_eyeballs_delay=...),
    drops it: CPython 3.11 to 3.13)."""
    server = raw_server(lambda conn, server: server.event("stop").wait(10))
    async with sansnet.Client() as client:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for steps in range(16):
                async with anyio.create_task_group() as group:

                    async def cancel_after(steps: int = steps) -> None:
                        for _ in range(steps):
                            await anyio.lowlevel.checkpoint()
                        group.cancel_scope.cancel()

                    group.start_soon(cancel_after)
                    await client.request(server.url)
                assert client.pool.total == 0
            gc.collect()
        leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaked == [], "A cancelled connect left its socket to the garbage collector."
    server.event("stop").set()


@pytest.mark.parametrize("stage", ["head", "body", "close-delimited-body"])
async def test_closing_the_client_ends_its_requests_in_flight(
    raw_server: Start, stage: str
) -> None:
    """As httpx does: aclose() closes the connections in use too, and a request on one
    (waiting for the head, or reading the body, with no timeout) raises a UsageError
    saying the client was closed, instead of waiting forever on an open socket."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        if server.read_request(conn) is not None:
            if stage == "body":  # the head and part of the body, then silence
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            elif stage == "close-delimited-body":  # a body that ends when we close
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart")
            server.event("release").wait(10)

    server = raw_server(handler)
    client = sansnet.Client(timeout=None)
    outcome: list[BaseException] = []

    head_arrived = anyio.Event()

    async def request() -> None:
        try:
            async with client.stream(server.url) as response:
                head_arrived.set()
                await response.aread()
        except Exception as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(request)
            await wait_for(lambda: server.requests != [], "the request arrived")
            if stage != "head":
                await head_arrived.wait()
                await anyio.sleep(0.05)  # the body read is waiting (nothing more comes)
            await client.aclose()
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], sansnet.UsageError), outcome
    assert "client was closed" in str(outcome[0])
    assert client.pool.total == 0
    assert client.pool.in_use == 0

    def closed_at_the_server() -> bool:  # an end of stream, or the reset of an abort
        try:
            return server.connections[0].recv(1) == b""
        except ConnectionResetError:
            return True

    assert closed_at_the_server(), "The client's socket is still open."
