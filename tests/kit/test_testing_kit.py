"""sansnet.testing: in-memory serving through the real bytes, mocks, the wire recorder,
fault injection and the pytest fixtures."""

from __future__ import annotations

import gzip
from typing import Any

import anyio
import pytest

import sansnet
from sansnet import ServeConfig, ServeRequest, ServeResponse
from sansnet.testing import Faults, MockRouter, MockTransport, WireRecorder, mock, serve

pytestmark = pytest.mark.anyio


async def app(request: ServeRequest) -> Any:
    if request.path == "/echo":
        return ServeResponse(200, {"X-Method": request.method}, request.body)
    if request.path == "/chunks":
        return ServeResponse(body=iter([b"one ", b"two ", b"three"]))
    if request.path == "/redirect":
        return ServeResponse(302, {"Location": "/echo"})
    if request.path == "/gzip":
        return ServeResponse(200, {"Content-Encoding": "gzip"}, gzip.compress(b"unzipped"))
    return f"{request.method} {request.target} from {request.ip}"


async def echo_socket(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


CONFIG = ServeConfig(handle_request=app, handle_web_socket=echo_socket)


async def test_requests_go_through_the_real_engines_in_memory() -> None:
    recorder = WireRecorder()
    async with serve(CONFIG, recorder=recorder) as client:
        response = await client.request("/hello?x=1")
        assert response.text == "GET /hello?x=1 from 127.0.0.1"
        response = await client.request("/echo", method="POST", body=b"payload")
        assert (response.body, response.headers["x-method"]) == (b"payload", "POST")
        assert (await client.request("/redirect", method="POST", body=b"x")).url.endswith("/echo")
        assert (await client.request("/gzip")).body == b"unzipped"
        async with client.stream("/chunks") as streamed:
            assert [piece async for piece in streamed.aiter_bytes()] == [b"one ", b"two ", b"three"]
        pool = client.http.pool
    assert recorder.client_bytes.startswith(b"GET /hello?x=1 HTTP/1.1\r\nHost: testserver\r\n")
    assert b"HTTP/1.1 200 OK\r\n" in recorder.server_bytes
    assert pool.total == 0  # everything was released and closed


async def test_an_error_inside_the_block_comes_out_as_itself() -> None:
    """Issue #22: a failed assert used to come out wrapped in an ExceptionGroup."""
    with pytest.raises(AssertionError, match="the block's own"):
        async with serve(app) as client:
            assert (await client.request("/")).status_code == 200
            raise AssertionError("the block's own")
    with pytest.raises(sansnet.ReadTimeout):  # an error of the client, unwrapped too
        stall = Faults(delay=5)
        async with serve(app, response_faults=stall, timeout=sansnet.Timeout(read=0.05)) as c:
            await c.request("/")


async def test_keep_alive_reuses_one_in_memory_connection() -> None:
    async with serve(app) as client:
        ports = {(await client.request("/")).text.split(":")[-1] for _ in range(5)}
        assert client.http.pool.total == 1
        assert len(ports) == 1


async def test_websocket_over_memory() -> None:
    async with serve(CONFIG) as client:
        ws = await client.socket("/ws")
        for message in ["text", b"\x00bytes", "x" * 100_000]:
            await ws.send(message)
            assert await ws.next() == message
        await ws.close()
        assert ws.close_code == 1000


async def test_a_url_in_the_query_of_a_path_stays_in_the_query() -> None:
    """Review: a path holding "://" anywhere was taken as a full URL:
    client.request("/login?next=https://example.com/") raised UnsupportedProtocol, and
    client.socket() turned the first "http" of the URL, query included, into "ws". Only
    a scheme at the start makes a full URL; only the scheme becomes ws or wss."""
    recorder = WireRecorder()
    async with serve(CONFIG, recorder=recorder) as client:
        assert client.url("/login?next=https://example.com/") == (
            "http://testserver/login?next=https://example.com/"
        )
        response = await client.request("/login?next=https://example.com/")
        assert response.text == "GET /login?next=https://example.com/ from 127.0.0.1"
        assert (await client.request("http://testserver/full?a=b")).text.startswith(
            "GET /full?a=b "
        )
        for path in ("/ws?origin=http://example.com", "HTTP://testserver/ws?origin=http://x"):
            recorder.clear()
            ws = await client.socket(path)
            await ws.send("ping")
            assert await ws.next() == "ping"
            await ws.close()
            target = path.removeprefix("HTTP://testserver")
            assert recorder.client_bytes.startswith(f"GET {target} HTTP/1.1\r\n".encode())
    async with serve(CONFIG, base_url="https://testserver") as client:
        ws = await client.socket("/ws?next=https://example.com/")  # wss://, over memory
        await ws.close()
        assert ws.close_code == 1000


async def test_recorder_prints_readably() -> None:
    recorder = WireRecorder()
    async with serve(app, recorder=recorder) as client:
        await client.request("/")
    text = str(recorder)
    assert text.startswith("--> client (")
    assert "    GET / HTTP/1.1\\r\\n\n    Host: testserver\\r\\n" in text
    assert "<-- server (" in text
    assert repr(recorder) == f"<WireRecorder {len(recorder.entries)} writes>"
    recorder.record("client", b"\x00\xff")
    assert str(recorder).endswith("    \\x00\\xff")
    recorder.clear()
    assert recorder.entries == []


async def test_recorder_keeps_one_entry_per_turn() -> None:
    """Issue #22: a head and its body written separately were two entries."""
    recorder = WireRecorder()
    async with serve(app, recorder=recorder) as client:
        await client.request("/echo", method="POST", body=b"first")
        async with client.stream("/chunks") as streamed:  # written piece by piece
            assert await streamed.aread() == b"one two three"
        await client.request("/echo", method="POST", body=b"last")
    sides = [side for side, _ in recorder.entries]
    assert sides == ["client", "server"] * 3, sides
    streamed_turn = recorder.entries[3][1]  # the head and every chunk: one turn
    assert streamed_turn.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"one " in streamed_turn
    assert b"three" in streamed_turn
    # Two connections' writes of one side are never merged into one entry.
    other = object()
    recorder.record("client", b"a", other)
    recorder.record("client", b"b", object())
    assert [data for _, data in recorder.entries[-2:]] == [b"a", b"b"]


@pytest.mark.parametrize("side", ["client", "server", "both"])
async def test_byte_by_byte_delivery_runs_the_full_flows(side: str) -> None:
    one = Faults(chunk_size=1)
    faults = one if side in ("client", "both") else None
    response_faults = one if side in ("server", "both") else None
    recorder = WireRecorder()
    async with serve(
        CONFIG, faults=faults, response_faults=response_faults, recorder=recorder
    ) as client:
        response = await client.request("/echo", method="PUT", body=b"segmented body")
        assert response.body == b"segmented body"
        async with client.stream("/chunks") as streamed:
            assert await streamed.aread() == b"one two three"
        assert (await client.request("/gzip")).body == b"unzipped"
        ws = await client.socket("/ws")
        await ws.send("é" * 300)
        assert await ws.next() == "é" * 300
        await ws.send(b"\x01" * 1000)
        assert await ws.next() == b"\x01" * 1000
        await ws.close()
    for who, sent in (("client", recorder.client_bytes), ("server", recorder.server_bytes)):
        if side in (who, "both"):
            assert recorder.writes[who] == len(sent)  # one byte per write
        else:
            assert recorder.writes[who] < len(sent) // 10


@pytest.mark.net_virtual_time
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"], indirect=True)
async def test_delays_run_on_the_test_clock(anyio_backend: Any) -> None:
    """A 10-minute stall, deterministic and instant on virtual time (asyncio's
    VirtualTimeEventLoop, trio's autojump clock)."""
    slow = Faults(delay=600)
    async with serve(app, response_faults=slow, timeout=sansnet.Timeout(read=60)) as client:
        started = anyio.current_time()
        with pytest.raises(sansnet.ReadTimeout):
            await client.request("/")
        assert anyio.current_time() - started >= 60


async def test_truncated_and_broken_links() -> None:
    async with serve(app, response_faults=Faults(truncate_after=40)) as client:
        with pytest.raises(sansnet.RemoteProtocolError):
            await client.request("/")
    async with serve(app, faults=Faults(close_after=10)) as client:
        with pytest.raises((sansnet.WriteError, sansnet.RemoteProtocolError, sansnet.ReadError)):
            await client.request("/echo", method="POST", body=b"x" * 100)


@pytest.mark.parametrize(
    ("truncate_after", "close_after", "breaks"),
    [(500, 10, True), (10, 500, False), (10, 10, True)],
)
async def test_truncate_after_and_close_after_whichever_comes_first(
    truncate_after: int, close_after: int, breaks: bool
) -> None:
    """Review: Faults(truncate_after=500, close_after=10) ignored close_after and
    delivered 100 bytes. Now the fault with fewer bytes acts (the break on a tie): the
    reader gets 10 bytes either way; a break raises WriteError in the writer at once,
    a truncation ends the stream cleanly and raises only at the next write."""
    recorder = WireRecorder()
    faults = Faults(truncate_after=truncate_after, close_after=close_after)
    async with (
        serve(app, faults=faults, recorder=recorder) as client,
        await client.connect() as conn,
    ):
        if breaks:
            with pytest.raises(sansnet.WriteError, match="broken"):
                await conn.send(b"x" * 100)
        else:
            await conn.send(b"x" * 100)
            with pytest.raises(sansnet.WriteError, match="cut"):
                await conn.send(b"more")
    assert recorder.client_bytes == b"x" * 10


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        Faults(chunk_size=0)
    with pytest.raises(ValueError, match="delay"):
        Faults(delay=-1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("chunk_size", "x"),
        ("chunk_size", 1.5),
        ("chunk_size", True),
        ("delay", None),
        ("delay", "1"),
        ("delay", float("nan")),
        ("delay", float("inf")),
        ("truncate_after", -1),
        ("truncate_after", "3"),
        ("close_after", -1),
        ("close_after", 2.5),
    ],
)
def test_every_fault_is_validated_with_invalid_argument(name: str, value: object) -> None:
    """Issue: Faults(chunk_size="x") or Faults(delay=None) raised a bare TypeError from
    a comparison; chunk_size=1.5, delay=nan and truncate_after=-1 were taken and failed
    (or misbehaved) only once the link was used."""
    with pytest.raises(sansnet.InvalidArgument, match=rf"^Faults\.{name} must be"):
        Faults(**{name: value})


def test_faults_take_what_they_document() -> None:
    assert Faults(chunk_size=1, delay=0, truncate_after=0, close_after=5).delay == 0
    assert Faults(delay=2.5).delay == 2.5


@pytest.mark.net_virtual_time
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"], indirect=True)
async def test_mock_handlers_are_bound_by_the_client_timeouts(anyio_backend: Any) -> None:
    """Issue: MockTransport's docs say the client's timeouts still apply, but it awaited
    a slow handler however long it took: a test of a code path's timeout handling
    passed with a mock that a real server would have made time out."""

    async def slow(request: sansnet.Request) -> str:
        await anyio.sleep(600)
        return "too late"  # pragma: no cover - cancelled by the timeout

    async with mock(slow) as transport:
        started = anyio.current_time()
        with pytest.raises(sansnet.ReadTimeout, match="within 5"):
            await sansnet.request("https://api.example.com/slow", timeout=sansnet.Timeout(read=5))
        assert 5 <= anyio.current_time() - started < 6
        with pytest.raises(sansnet.TimeoutError, match="total timeout"):
            await sansnet.request("https://api.example.com/slow", timeout=sansnet.Timeout(total=2))
        assert len(transport.requests) == 2
    async with mock(lambda request: "quick") as transport:
        assert (await sansnet.request("https://api.example.com/", timeout=1)).text == "quick"


async def fetch_status(url: str) -> int:
    """Code under test that calls sansnet.request deep inside."""
    response = await sansnet.request(url)
    return response.status_code


async def test_mock_installs_under_code_that_calls_sansnet_request() -> None:
    def handler(request: sansnet.Request) -> dict[str, Any]:
        return {"status": 503, "headers": {"Retry-After": "1"}, "body": request.url}

    async with mock(handler) as transport:
        assert await fetch_status("https://api.example.com/items?page=2") == 503
        async with anyio.create_task_group() as group:  # child tasks see it too
            group.start_soon(fetch_status, "https://api.example.com/child")
    assert [r.url for r in transport.requests] == [
        "https://api.example.com/items?page=2",
        "https://api.example.com/child",
    ]


async def test_mock_results_errors_redirects_and_decoding() -> None:
    async def handler(request: sansnet.Request) -> Any:
        if request.url.endswith("/down"):
            raise sansnet.ConnectError("Could not connect to api.example.com:443.")
        if request.url.endswith("/moved"):
            return ServeResponse(301, {"Location": "/new"})
        if request.url.endswith("/zipped"):
            return ServeResponse(200, {"Content-Encoding": "gzip"}, gzip.compress(b"plain"))
        if request.url.endswith("/stream"):
            return ServeResponse(body=iter([b"a", b"b"]))
        if request.url.endswith("/async-stream"):

            async def chunks() -> Any:
                yield b"c"

            return ServeResponse(body=chunks())
        if request.url.endswith("/raw"):
            return sansnet.FetchResponse(418, sansnet.Headers(), b"teapot")
        return f"{request.method} {request.content.decode()}"

    transport = MockTransport(handler)
    async with sansnet.Client(transport=transport) as client:
        with pytest.raises(sansnet.ConnectError):
            await client.request("https://api.example.com/down")
        assert (
            await client.request("https://api.example.com/moved")
        ).url == "https://api.example.com/new"
        assert (await client.request("https://api.example.com/zipped")).body == b"plain"
        assert (await client.request("https://api.example.com/stream")).body == b"ab"
        assert (await client.request("https://api.example.com/async-stream")).body == b"c"
        assert (await client.request("https://api.example.com/raw")).status_code == 418

        async def upload() -> Any:
            yield b"streamed "
            yield b"upload"

        response = await client.request("https://api.example.com/", method="post", body=upload())
        assert response.text == "POST streamed upload"


async def test_mock_sends_no_body_to_head_nor_with_204_205_or_304() -> None:
    """Issue: MockTransport gave the handler's body to a HEAD request and with a 204, 205
    or 304, which a sansnet server never sends. The body is now dropped,
    the head kept; a streamed body is closed unread, as the server does."""
    started: list[str] = []
    produced: list[Any] = []

    def chunks(name: str) -> Any:
        started.append(name)
        yield b"streamed"

    def handler(request: sansnet.Request) -> Any:
        status = int(request.url.rpartition("/")[2] or 200)
        if "stream" in request.url:
            produced.append(chunks(request.method))
            return ServeResponse(status, {"X-Kept": "1"}, produced[-1])
        return ServeResponse(status, {"X-Kept": "1"}, "the body")

    async with sansnet.Client(transport=MockTransport(handler)) as client:
        for url, method in [
            ("https://api.example.com/", "HEAD"),
            ("https://api.example.com/204", "GET"),
            ("https://api.example.com/304", "GET"),
            ("https://api.example.com/205", "GET"),
            ("https://api.example.com/stream/", "HEAD"),
            ("https://api.example.com/stream/204", "GET"),
        ]:
            response = await client.request(url, method=method)
            assert (response.body, response.headers["x-kept"]) == (b"", "1"), url
        assert started == []  # never iterated...
        assert [generator.gi_frame for generator in produced] == [None, None]  # ...but closed
        assert (await client.request("https://api.example.com/")).body == b"the body"
        assert (await client.request("https://api.example.com/stream/")).body == b"streamed"


async def test_mock_router_routes() -> None:
    router = MockRouter()
    router.add("GET", "https://api.example.com/items", json=[1, 2])
    router.add("POST", "*", status=201, body="created", headers={"X": "1"})
    router.add("GET", "https://api.example.com/custom", lambda request: "custom")
    async with mock(router):
        assert (await sansnet.request("https://api.example.com/items?x=1")).json() == [1, 2]
        response = await sansnet.request("https://other.example/", method="POST")
        assert (response.status_code, response.text, response.headers["x"]) == (201, "created", "1")
        assert (await sansnet.request("https://api.example.com/custom")).text == "custom"
        with pytest.raises(AssertionError, match=r"No mock route for GET https://nope\.example/"):
            await sansnet.request("https://nope.example/")


@pytest.mark.parametrize(
    ("route", "url"),
    [
        ("https://api.example.com", "https://api.example.com"),  # sent as .../
        ("https://api.example.com/", "https://api.example.com"),
        ("https://api.example.com/a", "https://API.Example.com/a"),
        ("HTTPS://API.example.com/a", "https://api.example.com/a"),
        ("https://api.example.com/a", "https://api.example.com:443/a"),
        ("http://api.example.com:80/a", "http://api.example.com/a"),
        ("https://api.example.com/a b", "https://api.example.com/a b"),  # sent as a%20b
        ("https://api.example.com/a%20b", "https://api.example.com/a b"),
        ("https://api.example.com/é", "https://api.example.com/é"),  # sent as %C3%A9
        ("https://bücher.example/a", "https://xn--bcher-kva.example/a"),
        ("https://api.example.com/a", "https://api.example.com/a?q=1 2"),
        ("https://api.example.com/a?q=1 2", "https://api.example.com/a?q=1%202"),
    ],
)
async def test_mock_router_matches_the_url_the_client_sends(route: str, url: str) -> None:
    """Review: routes were compared with the sent URL as strings, so a route failed with
    "No mock route" for the very URL given to add() when the client sends it otherwise:
    no path (sent as "/"), a space or non-ASCII in the path (sent percent-encoded), the
    host in another case, the default port written. Both are now compared as sent."""
    router = MockRouter()
    router.add("GET", route, json={"ok": True})
    async with mock(router):
        assert (await sansnet.request(url)).json() == {"ok": True}


async def test_mock_router_still_tells_routes_apart() -> None:
    router = MockRouter()
    router.add("GET", "https://api.example.com/a", body="a")
    router.add("GET", "https://api.example.com/a?v=2", body="a v2")
    router.add("GET", "http://api.example.com/a", body="plain a")
    async with mock(router):
        assert (await sansnet.request("https://api.example.com/a?v=1")).text == "a"
        assert (await sansnet.request("https://api.example.com/a?v=2")).text == "a v2"
        assert (await sansnet.request("http://api.example.com/a")).text == "plain a"
        for other in (
            "https://api.example.com:8443/a",
            "https://api.example.com/A",
            "https://api.example.com/a/",
            "https://other.example.com/a",
        ):
            with pytest.raises(AssertionError, match="No mock route"):
                await sansnet.request(other)
    with pytest.raises(sansnet.UnsupportedProtocol, match="no scheme"):
        router.add("GET", "/a", body="never matched")
    with pytest.raises(sansnet.InvalidURL, match="no host"):
        router.add("GET", "https:///a", body="never matched")


async def test_mock_router_answers_every_request_with_the_same_body() -> None:
    """Issue: a route whose body was a generator answered the first request only; the
    next got an empty body. A route answers every request alike: a list of chunks does,
    and a one-shot iterator (a generator, sync or async) is refused when added, with a
    typed error that says to return a fresh one from a handler."""

    async def async_chunks() -> Any:
        yield b"a"

    router = MockRouter()
    router.add("GET", "https://api.example.com/list", body=[b"one ", b"two"])
    router.add(
        "GET", "https://api.example.com/fresh", lambda request: ServeResponse(body=iter([b"new"]))
    )
    with pytest.raises(sansnet.InvalidArgument, match=r"one-shot.*handler"):
        router.add("GET", "https://api.example.com/gen", body=(c for c in [b"x"]))
    with pytest.raises(sansnet.InvalidArgument, match=r"one-shot.*handler"):
        router.add("GET", "https://api.example.com/agen", body=async_chunks())
    with pytest.raises(sansnet.InvalidArgument, match=r"one-shot.*handler"):
        router.add("GET", "https://api.example.com/iter", body=iter([b"x"]))
    async with mock(router):
        for _ in range(2):
            assert (await sansnet.request("https://api.example.com/list")).body == b"one two"
            assert (await sansnet.request("https://api.example.com/fresh")).body == b"new"


async def test_the_net_mock_fixture(net_mock: MockRouter) -> None:
    net_mock.add("GET", "https://api.example.com/health", json={"ok": True})
    assert (await sansnet.request("https://api.example.com/health")).json() == {"ok": True}
    assert net_mock.requests[0].method == "GET"


async def test_the_net_recorder_fixture(net_recorder: WireRecorder) -> None:
    async with serve(app, recorder=net_recorder) as client:
        await client.request("/")
    assert net_recorder.client_bytes.startswith(b"GET / HTTP/1.1")


async def test_use_client_for_code_that_calls_request() -> None:
    async with serve(app) as client:
        with sansnet.use_client(client.http):
            assert await fetch_status("http://testserver/") == 200
