"""Every failure gives the right typed error, saying what failed and where: bad input
(before any I/O), connecting, timeouts of each kind, servers that misbehave."""

from __future__ import annotations

import gzip
import math
import socket
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

import sansnet
from sansnet import PoolLimits, ServeRequest, ServeResponse, Timeout
from sansnet.protocol import ClientConnection
from sansnet.testing import serve
from sansnet.transport.streams import MemoryStream, memory_stream_pair
from tests.virtual_time import on_virtual_time

from .conftest import Servers
from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio

Start = Callable[..., RawServer]


def silent(conn: socket.socket, server: RawServer) -> None:
    """Accept, read nothing, answer nothing, until the test ends."""
    server.event("stop").wait(10)


def no_answer(conn: socket.socket, server: RawServer) -> None:
    """Read the request, then answer nothing until the test ends."""
    server.read_request(conn)
    server.event("stop").wait(10)


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"url": "ftp://example.org/"}, ValueError, "Unsupported URL scheme 'ftp'"),
        ({"url": "example.org/path"}, ValueError, "no scheme"),
        ({"url": "http:///path"}, ValueError, "no host"),
        ({"url": "http://exa mple.org/"}, ValueError, "Invalid host"),
        ({"url": "http://example.org:99999/"}, ValueError, "Invalid URL"),
        ({"url": "http://example.org:0/"}, ValueError, "port 0"),
        ({"url": "http://[::1/"}, ValueError, "Invalid URL"),
        ({"url": 42}, TypeError, "URL string or a FetchParams"),
        ({"url": {"method": "GET"}}, ValueError, "needs a 'url'"),
        ({"url": {"url": 42}}, TypeError, "must be a str"),
        ({"url": {"url": 42, "query": {"a": 1}}}, TypeError, "URL must be a str, not int"),
        ({"url": {"url": b"http://x/", "query": {"a": 1}}}, TypeError, "URL must be a str"),
        ({"headers": {"X-Evil": "a\r\nInjected: yes"}}, ValueError, "X-Evil"),
        ({"headers": {"X-Evil": "a\nb"}}, ValueError, "X-Evil"),
        ({"headers": {"Bad Name": "x"}}, ValueError, "Bad Name"),
        ({"headers": {"X-Nul": "a\x00b"}}, ValueError, "X-Nul"),
        ({"method": "GET /admin"}, ValueError, "Invalid method"),
        ({"method": "GE\r\nT"}, ValueError, "Invalid method"),
        ({"method": 3}, TypeError, "method must be a str"),
        ({"timeout": -1}, ValueError, "timeout must be a positive number"),
        ({"timeout": "5"}, ValueError, "timeout must be a positive number"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a positive number"),
        ({"max_redirects": -5}, ValueError, "max_redirects must be an int >= 0"),
        ({"max_redirects": None}, TypeError, "max_redirects must be an int >= 0"),
        ({"max_redirects": True}, TypeError, "max_redirects must be an int >= 0"),
        ({"nonsense": 1}, TypeError, "unknown option 'nonsense'"),
        ({"url": {"url": "http://x/", "bogus": 1}}, TypeError, "unknown field 'bogus'"),
        ({"options": {"bogus": 1}}, TypeError, "unknown field 'bogus'"),
        ({"verify": "/no/such/ca.pem", "url": "https://127.0.0.1:1/"}, ValueError, "CA bundle"),
    ],
)
async def test_bad_input_fails_before_any_io(
    raw_server: Start, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    server = raw_server(silent)
    kwargs = dict(kwargs)  # the parameters are shared by the backends' runs
    url = kwargs.pop("url", server.url)
    options = kwargs.pop("options", None)
    if options is not None:
        url = {"url": server.url, "options": options}
    with pytest.raises(error, match=match):
        await sansnet.request(url, **kwargs)  # type: ignore[arg-type]
    assert server.accepted == 0, "Nothing was sent: the error came before any I/O."


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": "/caf\udcff"}, sansnet.InvalidURL, "lone surrogate"),
        ({"path": "/?q=\ud800"}, sansnet.InvalidURL, "lone surrogate"),
        ({"query": {"q": "\ud800"}}, sansnet.InvalidArgument, "query"),
        ({"query": {"\udcff": "v"}}, sansnet.InvalidArgument, "query"),
        ({"body": "\udcff", "method": "POST"}, sansnet.InvalidArgument, "body"),
    ],
)
async def test_a_str_with_no_utf8_form_is_a_typed_error_before_any_io(
    raw_server: Start, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """Issue: a lone surrogate (as sys.argv or os.fsdecode give a byte that is not
    UTF-8) in the URL's path or query, a query= value or a str body raised a bare
    UnicodeEncodeError from quote() or str.encode() inside request()."""
    server = raw_server(silent)
    kwargs = dict(kwargs)
    url = server.url.rstrip("/") + str(kwargs.pop("path", "/"))
    with pytest.raises(error, match=match):
        await sansnet.request(url, **kwargs)  # type: ignore[arg-type]
    assert server.accepted == 0, "Nothing was sent: the error came before any I/O."


@pytest.mark.parametrize("value", ["1000", -1, 1.5, math.nan, True])
async def test_a_bad_max_decoded_size_fails_before_any_io(raw_server: Start, value: object) -> None:
    def gzipped(conn: socket.socket, server: RawServer) -> None:
        body = gzip.compress(b"x" * 100)
        while server.read_request(conn) is not None:
            conn.sendall(response(body, extra=b"Content-Encoding: gzip\r\n"))

    server = raw_server(gzipped)
    with pytest.raises(sansnet.InvalidArgument, match="max_decoded_size must be None"):
        await sansnet.request(server.url, max_decoded_size=value)
    with pytest.raises(sansnet.InvalidArgument, match="max_decoded_size must be None"):
        sansnet.Client(max_decoded_size=value)  # type: ignore[arg-type]
    assert server.accepted == 0, "Nothing was sent: the error came before any I/O."
    assert (await sansnet.request(server.url, max_decoded_size=None)).body == b"x" * 100


def test_bad_client_arguments() -> None:
    with pytest.raises(ValueError, match="X-Evil"):
        sansnet.Client(headers={"X-Evil": "1\r\n2"})
    with pytest.raises(ValueError, match="max_connections"):
        PoolLimits(max_connections=0)
    with pytest.raises(ValueError, match="max_keepalive"):
        PoolLimits(max_keepalive=-1)
    with pytest.raises(ValueError, match="positive"):
        Timeout.of(0)
    assert Timeout.of(None) == Timeout(None, None, None, None, None)
    assert Timeout.of(2.5) == Timeout(2.5, 2.5, 2.5, 2.5, None), "One number: no total."
    for field, value in [("read", "1"), ("connect", 0), ("total", math.inf), ("pool", True)]:
        with pytest.raises(sansnet.InvalidArgument, match=rf"Timeout\({field}=\.\.\.\)"):
            Timeout(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(sansnet.InvalidArgument, match="max_redirects"):
        sansnet.Client(max_redirects=-1)


async def test_client_closed(base_url: str) -> None:
    client = sansnet.Client()
    assert (await client.request(f"{base_url}/status/200")).ok
    await client.aclose()
    with pytest.raises(RuntimeError, match="client is closed"):
        await client.request(f"{base_url}/status/200")
    with pytest.raises(RuntimeError, match="client is closed"):
        await client.request(f"{base_url}/status/200", verify=False)


# ------------------------------------------------------------------------ connecting


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(sansnet.ConnectError, match=f"127.0.0.1:{port}.*refused") as info:
        await sansnet.request(f"http://127.0.0.1:{port}/")
    assert not isinstance(info.value, sansnet.TLSError)


async def test_dns_failure() -> None:
    with pytest.raises(sansnet.ConnectError, match=r"nonexistent\.invalid"):
        await sansnet.request("http://nonexistent.invalid/")


@pytest.mark.parametrize("host", ["a..b.invalid", ".", "a" * 64 + ".invalid"])
async def test_a_name_dns_cannot_look_up_is_a_connect_error(host: str) -> None:
    # An empty label or one over 63 characters: asyncio's resolver refused it with a
    # bare UnicodeError from the "idna" codec, trio's said it does not resolve.
    match = "empty label or one longer than 63|resolve host name"
    for attempt in (
        lambda: sansnet.request(f"http://{host}/", timeout=5),
        lambda: sansnet.socket(f"ws://{host}/", timeout=5),
        lambda: sansnet.tcp.connect(host, 80, timeout=5),
    ):
        with pytest.raises(sansnet.ConnectError, match=match):
            await attempt()


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_connect_timeout(raw_server: Start, backend: str) -> None:
    server = raw_server(silent)  # takes the TCP connection, never answers the TLS hello
    url = f"https://127.0.0.1:{server.port}/"
    async with sansnet.Client(timeout=Timeout(connect=0.2), backend=backend) as client:  # type: ignore[arg-type]
        with pytest.raises(
            sansnet.ConnectTimeout, match=f"127.0.0.1:{server.port}.*connect timeout"
        ):
            await client.request(url)
        assert client.pool.total == 0, "The failed connection gave its slot back."


# ------------------------------------------------------------------------- timeouts
# Each kind of timeout is tested twice: against uvicorn over TCP (the socket paths of
# every backend: asyncio and uvloop's transports, anyio's streams on trio), and in
# memory on virtual time (sansnet.testing), where the rules are checked at no cost in
# wall time. hypercorn adds nothing to a timeout that uvicorn does not.


async def slow_app(request: ServeRequest) -> ServeResponse:
    """/slow?delay=S answers after S seconds; /slow-body?pieces=N&delay=S sends the
    head at once, then a piece every S seconds; anything else is a 200 at once."""
    query = request.query
    if request.path == "/slow":
        await anyio.sleep(float(str(query["delay"])))
        return ServeResponse(body=b"slow")
    if request.path == "/slow-body":
        delay = float(str(query["delay"]))

        async def pieces() -> AsyncIterator[bytes]:
            for index in range(int(str(query["pieces"]))):
                await anyio.sleep(delay)
                yield b"p%d" % index

        return ServeResponse(body=pieces())
    return ServeResponse(body=b"at once")


async def check_read_timeout(client: sansnet.Client, base_url: str) -> None:
    read = Timeout(read=0.2)
    with pytest.raises(sansnet.ReadTimeout, match="read timeout"):
        await client.request(f"{base_url}/slow?delay=3", timeout=read)
    with pytest.raises(sansnet.ReadTimeout, match="read timeout"):
        await client.request(f"{base_url}/slow-body?pieces=2&delay=3", timeout=read)
    async with client.stream(f"{base_url}/slow-body?pieces=2&delay=3", timeout=read) as streamed:
        with pytest.raises(sansnet.ReadTimeout):
            await streamed.aread()


async def test_read_timeout(servers: Servers) -> None:
    async with sansnet.Client() as client:
        await check_read_timeout(client, servers.uvicorn)


@on_virtual_time
async def test_read_timeout_in_memory() -> None:
    async with serve(slow_app) as client:
        await check_read_timeout(client.http, client.base_url)


@pytest.mark.parametrize(
    ("scheme", "handler", "error"),
    [("https", silent, sansnet.ConnectTimeout), ("http", no_answer, sansnet.ReadTimeout)],
)
async def test_a_single_number_gives_the_phase_timeout(
    raw_server: Start, scheme: str, handler: Callable[..., None], error: type[Exception]
) -> None:
    server = raw_server(handler)  # https: never answers the TLS hello; http: the request
    with pytest.raises(error):  # not the total timeout, which a number does not set
        await sansnet.request(f"{scheme}://127.0.0.1:{server.port}/", timeout=0.2)
    server.event("stop").set()


async def test_write_timeout(raw_server: Start) -> None:
    server = raw_server(silent)  # never reads: our writes back up

    def body() -> object:
        for _ in range(1024):
            yield b"x" * (1024 * 1024)

    with pytest.raises(sansnet.WriteTimeout, match="write timeout"):
        await sansnet.request(server.url, method="POST", body=body(), timeout=Timeout(write=0.2))
    server.event("stop").set()


@on_virtual_time
async def test_write_timeout_in_memory() -> None:
    unread: list[MemoryStream] = []

    async def open_stream(origin: object, timeout: float | None) -> MemoryStream:
        ours, theirs = memory_stream_pair()
        unread.append(theirs)  # a peer that never reads: our writes back up
        return ours

    async with sansnet.Client(open_stream=open_stream) as client:
        with pytest.raises(sansnet.WriteTimeout, match="write timeout"):
            await client.request(
                "http://example.test/",
                method="POST",
                body=iter([b"x" * (1024 * 1024)] * 4),
                timeout=Timeout(write=0.2),
            )


@on_virtual_time
async def test_write_and_total_timeouts_of_a_bytes_body_in_memory() -> None:
    """A bytes body goes out in one write: its write timeout, and the total timeout
    when the deadline cuts that write short."""
    unread: list[MemoryStream] = []

    async def open_stream(origin: object, timeout: float | None) -> MemoryStream:
        ours, theirs = memory_stream_pair()
        unread.append(theirs)  # a peer that never reads: our write backs up
        return ours

    body = b"x" * (4 * 1024 * 1024)
    async with sansnet.Client(open_stream=open_stream) as client:
        with pytest.raises(sansnet.WriteTimeout, match="write timeout"):
            await client.request(
                "http://example.test/", method="POST", body=body, timeout=Timeout(write=0.2)
            )
        with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
            await client.request(
                "http://example.test/", method="POST", body=body, timeout=Timeout(total=0.3)
            )
        assert type(info.value) is sansnet.TimeoutError


ONE_CONNECTION = PoolLimits(max_connections=1)


async def check_pool_timeout(client: sansnet.Client, base_url: str) -> None:
    """``client``: at most one connection, a pool timeout of 0.2 s."""
    async with client.stream(f"{base_url}/status/200") as held:
        port = base_url.rsplit(":", 1)[1] if base_url.count(":") == 2 else "80"
        with pytest.raises(sansnet.PoolTimeout, match=f":{port}.*max_connections"):
            await client.request(f"{base_url}/status/201")
        assert client.pool.waiting == 0
        await held.aread()
    assert (await client.request(f"{base_url}/status/201")).ok


async def test_pool_timeout(servers: Servers) -> None:
    async with sansnet.Client(limits=ONE_CONNECTION, timeout=Timeout(pool=0.2)) as client:
        await check_pool_timeout(client, servers.uvicorn)


@on_virtual_time
async def test_pool_timeout_in_memory() -> None:
    async with serve(slow_app, limits=ONE_CONNECTION, timeout=Timeout(pool=0.2)) as client:
        await check_pool_timeout(client.http, client.base_url)


TOTAL_TIMEOUT_PATHS = ["/slow?delay=3", "/slow-body?pieces=100&delay=0.05"]


@pytest.mark.parametrize("path", TOTAL_TIMEOUT_PATHS)
async def test_total_timeout(servers: Servers, path: str) -> None:
    with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
        await sansnet.request(f"{servers.uvicorn}{path}", timeout=Timeout(total=0.3))
    assert type(info.value) is sansnet.TimeoutError, "The overall deadline has its own error."


@on_virtual_time
@pytest.mark.parametrize("path", TOTAL_TIMEOUT_PATHS)
async def test_total_timeout_in_memory(path: str) -> None:
    async with serve(slow_app) as client:
        with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
            await client.request(path, timeout=Timeout(total=0.3))
        assert type(info.value) is sansnet.TimeoutError


async def check_total_timeout_waiting_for_the_pool(client: sansnet.Client, base_url: str) -> None:
    """``client``: at most one connection."""
    async with client.stream(f"{base_url}/status/200"):
        with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
            await client.request(f"{base_url}/status/201", timeout=Timeout(total=0.2))
        assert type(info.value) is sansnet.TimeoutError


async def test_total_timeout_while_connecting_and_waiting(
    raw_server: Start, servers: Servers
) -> None:
    server = raw_server(silent)
    with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
        await sansnet.request(f"https://127.0.0.1:{server.port}/", timeout=Timeout(total=0.2))
    assert type(info.value) is sansnet.TimeoutError
    async with sansnet.Client(limits=ONE_CONNECTION) as client:
        await check_total_timeout_waiting_for_the_pool(client, servers.uvicorn)


@on_virtual_time
async def test_total_timeout_waiting_for_the_pool_in_memory() -> None:
    async with serve(slow_app, limits=ONE_CONNECTION) as client:
        await check_total_timeout_waiting_for_the_pool(client.http, client.base_url)


async def test_total_timeout_writing(raw_server: Start) -> None:
    server = raw_server(silent)

    def body() -> object:
        for _ in range(1024):
            yield b"x" * (1024 * 1024)

    with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
        await sansnet.request(server.url, method="PUT", body=body(), timeout=Timeout(total=0.3))
    assert type(info.value) is sansnet.TimeoutError
    server.event("stop").set()


async def test_total_timeout_waiting_for_the_upload_body(raw_server: Start) -> None:
    server = raw_server(no_answer)
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await anyio.sleep(30)  # the caller's code, slow to produce the next chunk
            yield b"never"
        finally:
            closed.append(True)

    with anyio.fail_after(5):  # not the 30 s the body would take
        with pytest.raises(sansnet.TimeoutError, match="total timeout") as info:
            await sansnet.request(
                server.url, method="POST", body=body(), timeout=Timeout(total=0.3)
            )
    assert type(info.value) is sansnet.TimeoutError
    assert closed == [True], "The body's generator was closed."
    server.event("stop").set()


async def check_streamed_body_outlives_total(client: sansnet.Client, base_url: str) -> None:
    async with client.stream(
        f"{base_url}/slow-body?pieces=4&delay=0.1", timeout=Timeout(total=0.2, read=5)
    ) as response:
        assert await response.aread() == b"p0p1p2p3", "stream(): total ends at the head."


async def test_total_timeout_does_not_cover_a_streamed_body(servers: Servers) -> None:
    async with sansnet.Client() as client:
        await check_streamed_body_outlives_total(client, servers.uvicorn)


@on_virtual_time
async def test_total_timeout_does_not_cover_a_streamed_body_in_memory() -> None:
    async with serve(slow_app) as client:
        await check_streamed_body_outlives_total(client.http, client.base_url)


# ---------------------------------------------------------------- misbehaving servers


def _serve(*replies: bytes, close: bool = True) -> Callable[[socket.socket, RawServer], None]:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        for reply in replies:
            conn.sendall(reply)
        if close:
            conn.shutdown(socket.SHUT_WR)
            server.event("stop").wait(2)

    return handler


@pytest.mark.parametrize(
    ("replies", "match"),
    [
        (
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"only ten b"),
            "body|incomplete|closed|1000",
        ),
        ((b"this is not HTTP at all\r\n\r\n",), "Invalid status line"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), "chunk"),
        ((), "without sending a response"),
        ((b"HTTP/1.1 200 OK\r\nContent-Le",), "middle of the response head"),
    ],
)
async def test_broken_responses(raw_server: Start, replies: tuple[bytes, ...], match: str) -> None:
    server = raw_server(_serve(*replies))
    async with sansnet.Client() as client:
        with pytest.raises(sansnet.RemoteProtocolError, match=match):
            await client.request(server.url)
        assert client.pool.total == 0, "A broken connection is closed, not pooled."
    assert server.accepted == 1, "A fresh connection that fails is not retried."


async def test_reset_while_reading(raw_server: Start) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
        server.event("sent").set()
        server.event("reset").wait(5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: a reset

    server = raw_server(handler)
    async with sansnet.Client() as client:
        async with client.stream(server.url) as streamed:
            chunks = streamed.aiter_raw()
            assert await chunks.__anext__() == b"partial"
            server.event("reset").set()
            with pytest.raises((sansnet.ReadError, sansnet.RemoteProtocolError)):
                await chunks.__anext__()
        assert client.pool.total == 0


@pytest.mark.parametrize("upload", ["streamed", "bytes"])
async def test_early_answer_while_uploading_is_read(upload: str) -> None:
    """A server that answers before taking the whole body (413, a redirect) and closes:
    the answer is what the caller gets, not the write error. In memory, because over
    TCP the close becomes a reset that may discard the answer before it is read."""
    answer = (
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!"
    )

    async def server(end: MemoryStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await end.read()
        await end.write(answer)
        await end.aclose()

    async def connector(origin: object, context: object) -> tuple[MemoryStream, ClientConnection]:
        client_end, server_end = memory_stream_pair(capacity=1024)
        task_group.start_soon(server, server_end)
        return client_end, ClientConnection("127.0.0.1", 80)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"y" * 4096

    async with anyio.create_task_group() as task_group, sansnet.Client() as client:
        _connect_with(client, connector)
        payload = body() if upload == "streamed" else b"z" * 65536
        result = await client.request("http://127.0.0.1/upload", method="POST", body=payload)
        assert result.status_code == 413
        assert result.body == b"too big!"
        assert client.pool.total == 0


async def test_write_error_without_answer() -> None:
    async def connector(origin: object, context: object) -> tuple[MemoryStream, ClientConnection]:
        client_end, server_end = memory_stream_pair(capacity=1024)
        await server_end.aclose()
        return client_end, ClientConnection("127.0.0.1", 80)

    async with sansnet.Client() as client:
        _connect_with(client, connector)
        with pytest.raises(sansnet.WriteError, match="closed"):
            await client.request("http://127.0.0.1/upload", method="POST", body=b"z" * 65536)
        assert client.pool.total == 0


@pytest.mark.parametrize("backend", ["auto", "anyio"])
async def test_connection_refused_by_name(backend: str) -> None:
    """A name may resolve to several addresses (localhost: ::1 and 127.0.0.1); every
    attempt is refused, and the error says so once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with sansnet.Client(backend=backend) as client:  # type: ignore[arg-type]
        with pytest.raises(sansnet.ConnectError, match=f"localhost:{port}"):
            await client.request(f"http://localhost:{port}/")


def _connect_with(client: sansnet.Client, connector: object) -> None:
    """Make ``client``'s default transport open its connections with ``connector``."""
    transport = client._transport_for(client._verify, client._cert)
    transport._connector = connector  # type: ignore[attr-defined]
