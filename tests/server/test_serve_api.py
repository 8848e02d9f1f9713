"""net.serve: the API (structured forms, handles, config), handlers and their answers,
and Lune's serve cases. Real HTTP over 127.0.0.1, with httpx and sansnet as clients."""

from __future__ import annotations

import gzip
import logging
import re
import socket
import threading
import zlib
from typing import Any

import anyio
import anyio.lowlevel
import brotli
import httpx
import pytest
from backports import zstd

import sansnet
from sansnet import ServeConfig, ServeRequest, ServeResponse
from sansnet._server_session import DECODE_STEP
from sansnet.protocol import RequestHead, accept_encoding
from sansnet.testing import serve as serve_in_memory
from tests.handshaking import (
    HANDSHAKE_STAGES,
    server_context_for_127_0_0_1,
    stop_during_a_tls_handshake,
)
from tests.network import has_ipv6_loopback

pytestmark = pytest.mark.anyio


async def echo(request: ServeRequest) -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": sansnet.json_encode(
            {
                "method": request.method,
                "path": request.path,
                "target": request.target,
                "query": request.query,
                "headers": dict(request.headers.items()),
                "body": request.body.decode("latin-1"),
                "ip": request.ip,
                "port": request.port,
            }
        ),
    }


async def test_async_with_form_reports_the_bound_port_and_stops() -> None:
    server = sansnet.serve(0, echo)  # returns at once: nothing is bound yet
    assert isinstance(server, sansnet.Server)
    async with server as handle:
        assert handle.ip == "127.0.0.1"
        assert handle.port > 0
        assert handle.url == f"http://127.0.0.1:{handle.port}"
        response = await sansnet.request(handle.url + "/hello")
        assert response.ok
        assert response.json()["path"] == "/hello"
        assert not handle.stopped
    assert handle.stopped
    with pytest.raises(sansnet.ServerStoppedError, match="already stopped"):
        await handle.stop()


async def test_task_group_start_form() -> None:
    async with anyio.create_task_group() as group:
        handle = await group.start(sansnet.serve(0, echo).run)
        response = await sansnet.request(handle.url, method="post", body="x")
        assert response.json()["method"] == "POST"
        await handle.stop()
        with pytest.raises(sansnet.ServerStoppedError, match="already stopped"):
            await handle.stop()


def _without_deadlock(scenario: Any, backend: str) -> None:
    """Run ``scenario`` on its own event loop in a thread, bounded: the deadlock these
    tests guard against is shielded from cancellation, so on a regression the test
    fails after 30 s (leaving that thread behind) instead of hanging the run."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            if backend == "uvloop":
                anyio.run(scenario, backend="asyncio", backend_options={"use_uvloop": True})
            else:
                anyio.run(scenario, backend=backend)
            outcome.append(None)
        except BaseException as error:  # reported by the test below
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert outcome, "stop() called from a handler did not return (deadlock)"
    if outcome[0] is not None:
        raise outcome[0]


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_stop_from_a_handler_answers_that_request_and_stops(backend: str) -> None:
    """Issue #22: stop() awaited inside a handler used to wait for its own request."""

    async def scenario() -> None:
        handles: list[sansnet.ServeHandle] = []

        async def stop_here(request: ServeRequest) -> str:
            await handles[0].stop()
            assert handles[0].stopped
            return "stopping"

        async with sansnet.serve(0, stop_here) as handle:
            handles.append(handle)
            async with httpx.AsyncClient() as client:
                response = await client.get(handle.url, timeout=10)
            assert response.status_code == 200
            assert response.text == "stopping"
            assert response.headers["connection"] == "close"
        assert handle.stopped
        with pytest.raises(sansnet.ConnectError):
            await sansnet.request(handle.url, timeout=5)

    _without_deadlock(scenario, backend)


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_stop_from_a_handler_with_other_requests_in_flight(backend: str) -> None:
    answers: dict[str, str] = {}

    async def scenario() -> None:
        handles: list[sansnet.ServeHandle] = []
        slow_started = anyio.Event()

        async def handler(request: ServeRequest) -> str:
            if request.path == "/slow":
                slow_started.set()
                await anyio.sleep(0.2)
                return "slow done"
            await handles[0].stop()
            return "stopping"

        async with sansnet.serve(0, handler) as handle:
            handles.append(handle)

            async def get(path: str) -> None:
                response = await sansnet.request(handle.url + path, timeout=10)
                answers[path] = response.body.decode()

            async with anyio.create_task_group() as group:
                group.start_soon(get, "/slow")
                await slow_started.wait()
                group.start_soon(get, "/stop")

    _without_deadlock(scenario, backend)
    assert answers == {"/slow": "slow done", "/stop": "stopping"}


async def test_after_stop_requests_fail_and_the_port_is_free() -> None:
    async with sansnet.serve(0, echo) as handle:
        port = handle.port
    with pytest.raises(sansnet.ConnectError):
        await sansnet.request(f"http://127.0.0.1:{port}/", timeout=5)
    async with sansnet.serve(port, echo) as again:  # the port can be bound again at once
        assert again.port == port


@pytest.mark.parametrize("stage", HANDSHAKE_STAGES)
async def test_stop_closes_a_connection_still_in_its_tls_handshake(stage: str) -> None:
    """stop() returns with every connection closed, those still in their TLS handshake
    too. Regression: on asyncio and uvloop the loop ran the handshake out of the
    server's sight, and such a connection stayed open until the handshake timeout
    (10 s) after stop() had returned."""
    context = server_context_for_127_0_0_1()
    config = ServeConfig(handle_request=echo, tls=context, drain_timeout=1)
    async with sansnet.serve(0, config) as handle:
        assert await stop_during_a_tls_handshake(handle, stage) == "closed"


async def test_port_in_use_is_a_bind_error_naming_the_address() -> None:
    async with sansnet.serve(0, echo) as handle:
        with pytest.raises(sansnet.BindError, match=rf"127\.0\.0\.1:{handle.port}.*already in use"):
            async with sansnet.serve(handle.port, echo):
                pass  # pragma: no cover


async def test_invalid_address_is_a_bind_error() -> None:
    with pytest.raises(sansnet.BindError, match=r"a\.b\.c\.d"):
        async with sansnet.serve(0, ServeConfig(handle_request=echo, address="a.b.c.d")):
            pass  # pragma: no cover


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "http://127.0.0.1", "http://127.0.0.1/", "localhost"]
)
async def test_address_forms(address: str) -> None:
    async with sansnet.serve(0, ServeConfig(handle_request=echo, address=address)) as handle:
        response = await sansnet.request(f"http://127.0.0.1:{handle.port}/")
        assert response.ok


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback() -> None:
    async with sansnet.serve(0, ServeConfig(handle_request=echo, address="::1")) as handle:
        assert handle.ip == "::1"
        assert handle.url == f"http://[::1]:{handle.port}"
        response = await sansnet.request(handle.url + "/v6")
        assert response.json()["ip"] == "::1"


async def _echo_socket(ws: sansnet.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("written", ["%25", "%"])
async def test_an_ipv6_url_with_a_zone_connects_through_it_and_keeps_it_out_of_host(
    written: str,
) -> None:
    """Issue: ``http://[::1%25lo]/`` (RFC 6874: the zone's "%" is written "%25") was
    looked up as the name "::1%25lo" and failed. The zone now picks the interface, and
    the Host field leaves it out, as curl does. (glibc takes an interface name as a zone
    only for link-local addresses; loopback's is given by its index here.)"""
    zone = str(socket.if_nametoindex("lo"))
    config = ServeConfig(handle_request=lambda request: request.headers["host"], address="::1")
    async with sansnet.serve(0, config) as handle:
        url = f"http://[::1{written}{zone}]:{handle.port}/"
        response = await sansnet.request(url)
        assert response.text == f"[::1]:{handle.port}"
        ws_config = ServeConfig(handle_web_socket=_echo_socket, address="::1")
        async with sansnet.serve(0, ws_config) as ws_handle:
            ws_url = f"ws://[::1{written}{zone}]:{ws_handle.port}/"
            async with await sansnet.socket(ws_url) as ws:
                await ws.send("zoned")
                assert await ws.next() == "zoned"


async def _url_seen_without_host(address: str, request_head: bytes) -> str:
    """What request.url says to ``request_head``, sent as raw bytes (the request closes
    the connection: HTTP/1.0, or Connection: close)."""
    config = ServeConfig(handle_request=lambda request: request.url, address=address)
    answer = b""
    async with (
        sansnet.serve(0, config) as handle,
        await anyio.connect_tcp(address, handle.port) as client,
    ):
        await client.send(request_head)
        with anyio.fail_after(5):
            try:
                while True:
                    answer += await client.receive()
            except anyio.EndOfStream:
                pass
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return answer.partition(b"\r\n\r\n")[2].decode()


async def test_url_without_host_is_the_servers_own_address() -> None:
    # HTTP/1.0 may leave Host out: the URL was "http:///p?q=1".
    seen = await _url_seen_without_host("127.0.0.1", b"GET /p?q=1 HTTP/1.0\r\n\r\n")
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/p\?q=1", seen), seen
    empty_host = b"GET /p HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"
    seen = await _url_seen_without_host("127.0.0.1", empty_host)
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/p", seen), seen
    if has_ipv6_loopback():
        seen = await _url_seen_without_host("::1", b"GET / HTTP/1.0\r\n\r\n")
        assert re.fullmatch(r"http://\[::1\]:[0-9]+/", seen), seen
    in_memory = serve_in_memory(lambda request: request.url)  # the server: testserver:80
    async with in_memory as client, await client.connect() as conn:
        await conn.send(b"GET /p HTTP/1.0\r\n\r\n")
        answer = await conn.receive_until_closed(timeout=5)
    assert answer.endswith(b"\r\n\r\nhttp://testserver/p"), answer


def test_url_without_host_from_the_server_address_given() -> None:
    head = RequestHead("GET", "/p?q=1", http_version="1.0")

    def url(server: Any, scheme: str = "http") -> str:
        return ServeRequest(head, b"", "192.0.2.1", 4711, scheme=scheme, server=server).url

    assert url(("203.0.113.5", 8080)) == "http://203.0.113.5:8080/p?q=1"
    assert url(lambda: ("203.0.113.5", 80)) == "http://203.0.113.5/p?q=1"  # default port
    assert url(("203.0.113.5", 443), "https") == "https://203.0.113.5/p?q=1"
    assert url(("203.0.113.5", 80), "https") == "https://203.0.113.5:80/p?q=1"
    assert url(("fe80::1%eth0", 8080)) == "http://[fe80::1%25eth0]:8080/p?q=1"
    assert url(("/run/app.sock", 0)) == "/p?q=1"  # a Unix socket: no address to give
    assert url(None) == "/p?q=1"
    request = ServeRequest(head, b"", "192.0.2.1", 4711, server=("203.0.113.5", 8080))
    assert request.host == ""  # the Host field, as before
    with_host = RequestHead("GET", "/p", sansnet.Headers([("Host", "example.org")]))
    assert ServeRequest(with_host, b"", "192.0.2.1", 1, server=("203.0.113.5", 8080)).url == (
        "http://example.org/p"
    )


async def test_an_absolute_form_target_names_the_host_not_the_host_field() -> None:
    # RFC 9112 section 3.2.2: the server MUST ignore Host and use the target's authority.
    head = RequestHead(
        "GET", "http://example.org:8080/p?q=1", sansnet.Headers([("Host", "other.test")])
    )
    request = ServeRequest(head, b"", "192.0.2.1", 1, server=("203.0.113.5", 8080))
    assert request.host == "example.org:8080"
    assert request.url == "http://example.org:8080/p?q=1"
    in_memory = serve_in_memory(lambda request: f"{request.host} {request.url}")
    async with in_memory as client, await client.connect() as conn:
        await conn.send(b"GET http://example.org/p HTTP/1.1\r\nHost: other.test\r\n\r\n")
        answer = await conn.receive(timeout=5)
    assert answer.endswith(b"\r\n\r\nexample.org http://example.org/p"), answer


async def test_asterisk_and_authority_form_urls_are_well_formed() -> None:
    """Issue: OPTIONS * gave the url "http://x*" and CONNECT h:443 "http://h:443h:443"
    (as Starlette builds them from uvicorn's scope). RFC 9112 section 3.3: their target
    URI has an empty path and query, and CONNECT's authority is its target."""

    def url(method: str, target: str, host: str | None, server: Any = None) -> str:
        headers = sansnet.Headers([("Host", host)] if host is not None else [])
        head = RequestHead(method, target, headers)
        return ServeRequest(head, b"", "192.0.2.1", 1, server=server).url

    assert url("OPTIONS", "*", "x") == "http://x"
    assert url("OPTIONS", "*", None, ("203.0.113.5", 8080)) == "http://203.0.113.5:8080"
    assert url("OPTIONS", "*", None, ("/run/app.sock", 0)) == "*"  # no address: the target
    assert url("CONNECT", "h:443", "h:443") == "http://h:443"
    assert url("CONNECT", "h:443", "other.test") == "http://h:443"  # the target, not Host
    assert url("CONNECT", "[2001:db8::1]:443", None) == "http://[2001:db8::1]:443"
    head = RequestHead("CONNECT", "h:443", sansnet.Headers([("Host", "other.test")]))
    assert ServeRequest(head, b"", "192.0.2.1", 1).host == "h:443"

    def describe(request: ServeRequest) -> ServeResponse:  # CONNECT: no 2xx (a tunnel)
        status = 405 if request.method == "CONNECT" else 200
        return ServeResponse(status, body=f"{request.path} {request.url}")

    async with serve_in_memory(describe) as client, await client.connect() as conn:
        await conn.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await conn.receive(timeout=5)
        assert answer.endswith(b"\r\n\r\n* http://x"), answer
        await conn.send(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")
        answer = await conn.receive(timeout=5)
        assert answer.endswith(b"\r\n\r\nh:443 http://h:443"), answer


_OPTIONAL_TIMEOUTS = ["header_timeout", "keepalive_timeout", "body_timeout"]
_OPTIONAL_TIMEOUTS += ["ping_interval", "ping_timeout"]  # None: no limit (pings off)
_TIMEOUTS = [*_OPTIONAL_TIMEOUTS, "drain_timeout", "close_timeout"]


@pytest.mark.parametrize("name", _TIMEOUTS)
@pytest.mark.parametrize("value", ["x", -1, 0, float("nan"), float("inf"), True, [5]])
def test_a_bad_timeout_is_refused_when_the_config_is_made(name: str, value: object) -> None:
    """Issue: ServeConfig(header_timeout="x") (or -1, nan...) was taken, and every
    connection then failed and was logged. Timeouts are checked as Timeout's are."""
    with pytest.raises(sansnet.InvalidArgument, match=rf"^ServeConfig\.{name} must be a positive"):
        ServeConfig(handle_request=echo, **{name: value})


def test_timeouts_take_what_they_document() -> None:
    for name in _TIMEOUTS:
        assert getattr(ServeConfig(handle_request=echo, **{name: 0.5}), name) == 0.5
        assert getattr(ServeConfig(handle_request=echo, **{name: 3}), name) == 3
    for name in _OPTIONAL_TIMEOUTS:
        assert getattr(ServeConfig(handle_request=echo, **{name: None}), name) is None
    for name in ("drain_timeout", "close_timeout"):  # a number only (float, not None)
        with pytest.raises(sansnet.InvalidArgument, match="not None"):
            ServeConfig(handle_request=echo, **{name: None})


@pytest.mark.parametrize("name", ["max_message_size", "max_frame_size"])
@pytest.mark.parametrize("value", ["x", -1, 1.5, True])
def test_a_bad_websocket_size_is_refused_when_the_config_is_made(name: str, value: object) -> None:
    """Issue: ServeConfig(max_message_size=-1) was taken, and every WebSocket upgrade
    then failed when its engine refused the size. The rule is the engine's: None (no
    limit) or an int >= 0."""
    with pytest.raises(sansnet.InvalidArgument, match=rf"^ServeConfig\.{name} must be None"):
        ServeConfig(handle_request=echo, **{name: value})
    for good in (0, 1000, None):
        assert getattr(ServeConfig(handle_request=echo, **{name: good}), name) == good


@pytest.mark.parametrize("value", ["x", 0, -1, 1.5, True, None])
def test_a_bad_max_connections_is_refused_when_the_config_is_made(value: object) -> None:
    """Issue: ServeConfig(max_connections="x") raised a bare TypeError from a comparison,
    and max_connections=True was taken as 1."""
    with pytest.raises(sansnet.InvalidArgument, match=r"^ServeConfig\.max_connections must be"):
        ServeConfig(handle_request=echo, max_connections=value)  # type: ignore[arg-type]
    assert ServeConfig(handle_request=echo, max_connections=1).max_connections == 1


def test_config_needs_a_callable_handler() -> None:
    with pytest.raises(ValueError, match="needs a handler"):
        ServeConfig()
    with pytest.raises(TypeError, match="must be callable"):
        ServeConfig(handle_request="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a handler or a ServeConfig"):
        sansnet.serve(0, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        sansnet.serve(70000, echo)
    with pytest.raises(ValueError, match="address"):
        ServeConfig(handle_request=echo, address="")
    with pytest.raises(ValueError, match="max_connections"):
        ServeConfig(handle_request=echo, max_connections=0)
    with pytest.raises(ValueError, match=r"a list of names \(\['chat'\]\)"):
        ServeConfig(handle_request=echo, subprotocols="chat")  # not "c", "h", "a", "t"


def test_an_async_subprotocol_chooser_is_refused_when_the_config_is_made() -> None:
    """The chooser runs inside the handshake, unawaited: an async one returned a
    coroutine, so every client offering a subprotocol got a 500 logged as "returned
    <coroutine ...>, which the client did not offer" (and a never-awaited warning),
    while clients offering none were served."""

    async def choose(request: sansnet.ServeRequest, offered: list[str]) -> str | None:
        return offered[0]  # pragma: no cover - never called

    class Chooser:
        async def __call__(self, request: sansnet.ServeRequest, offered: list[str]) -> None:
            return None  # pragma: no cover - never called

    for chooser in (choose, Chooser()):
        with pytest.raises(
            sansnet.InvalidArgument, match=r"^ServeConfig\.subprotocols .*plain function"
        ):
            ServeConfig(handle_request=echo, subprotocols=chooser)  # type: ignore[arg-type]


def test_config_limits_are_checked_when_the_config_is_made() -> None:
    # A wrong limits value used to pass, then end the whole server with an
    # AttributeError at its first connection.
    for wrong in (5, "16MiB", {"max_body_bytes": -1}, {"max_bodies": 10}):
        with pytest.raises(sansnet.InvalidArgument, match=r"^ServeConfig\.limits"):
            ServeConfig(handle_request=echo, limits=wrong)  # type: ignore[arg-type]
    # As plain data (a worker's options are JSON): a mapping of Limits fields.
    config = ServeConfig(handle_request=echo, limits={"max_body_bytes": 10})  # type: ignore[arg-type]
    assert config.limits == sansnet.Limits(max_body_bytes=10)


def test_serve_accepts_options_for_both_forms() -> None:
    server = sansnet.serve(0, echo, access_log=True)
    assert server.config.access_log
    server = sansnet.serve(0, ServeConfig(handle_request=echo), keepalive_timeout=1.0)
    assert server.config.keepalive_timeout == 1.0


# ----------------------------------------------------------------- Lune's serve cases


async def test_lune_path_and_query() -> None:
    async with serve_in_memory(echo) as handle:
        response = await handle.request("/some/path?key=param1&key=param2&key2=param3")
        data = response.json()
        assert data["path"] == "/some/path"
        assert data["query"] == {"key": ["param1", "param2"], "key2": "param3"}


async def test_lune_hundred_sequential_requests_over_one_connection() -> None:
    async with sansnet.serve(0, echo) as handle, httpx.AsyncClient() as client:
        ports = set()
        for index in range(100):
            response = await client.get(f"{handle.url}/{index}")
            assert response.json()["path"] == f"/{index}"
            ports.add(response.json()["port"])
        assert len(ports) == 1  # every request came over the same connection


# ------------------------------------------------------------------------ handlers


@pytest.mark.parametrize(
    ("result", "status", "body", "content_type"),
    [
        ("héllo", 200, "héllo".encode(), "text/plain; charset=utf-8"),
        (b"\x00raw", 200, b"\x00raw", "text/plain; charset=utf-8"),
        (None, 200, b"", "text/plain; charset=utf-8"),
        (ServeResponse(body="made", status=201), 201, b"made", "text/plain; charset=utf-8"),
        (ServeResponse(204), 204, b"", None),
        (ServeResponse(205), 205, b"", None),
        (
            ServeResponse(body=b"bin", headers={"Content-Type": "application/x"}),
            200,
            b"bin",
            "application/x",
        ),
        ({"status": 404, "body": "gone"}, 404, b"gone", "text/plain; charset=utf-8"),
        ({"body": b"x"}, 200, b"x", None),
        ({}, 200, b"", None),
        (ServeResponse(body=None), 200, b"", None),
    ],
)
async def test_handler_results(
    result: Any, status: int, body: bytes, content_type: str | None
) -> None:
    async with serve_in_memory(lambda request: result) as handle:
        response = await handle.request("/")
        assert response.status_code == status
        assert response.body == body
        assert response.headers.get("content-type") == content_type


async def test_list_header_values_become_repeated_fields() -> None:
    def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(headers={"Set-Cookie": ["a=1; Path=/", "b=2; Path=/"], "X": "y"})

    async with serve_in_memory(handler) as handle:
        response = await handle.request("/")
        assert response.headers.get_all("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert response.headers["x"] == "y"
        assert response.headers["server"].startswith("sansnet/")
        assert "date" in response.headers


async def test_a_date_or_server_field_of_the_handler_replaces_the_servers() -> None:
    fields = {"Server": "app/1", "Date": "Tue, 01 Jan 2030 00:00:00 GMT"}
    async with serve_in_memory(lambda request: ServeResponse(200, fields, "x")) as client:
        response = await client.request("/")
    assert response.headers.get_all("server") == ["app/1"]
    assert response.headers.get_all("date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]


async def test_streamed_bodies_sync_and_async() -> None:
    async def chunks() -> Any:
        for index in range(3):
            yield f"part{index};".encode()
            await anyio.lowlevel.checkpoint()

    def handler(request: ServeRequest) -> ServeResponse:
        if request.path == "/async":
            return ServeResponse(body=chunks())
        return ServeResponse(body=iter([b"a", b"", "b"]))  # type: ignore[list-item]

    async with serve_in_memory(handler) as handle:
        response = await handle.request("/async")
        assert response.body == b"part0;part1;part2;"
        response = await handle.request("/sync")
        assert response.body == b"ab"


async def test_handler_exception_gives_500_is_logged_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: ServeRequest) -> str:
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        return "fine"

    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with sansnet.serve(0, handler) as handle, httpx.AsyncClient() as client:
            response = await client.get(handle.url + "/boom")
            assert response.status_code == 500
            assert response.text == "Internal Server Error\n"
            again = await client.get(handle.url + "/ok")  # same connection, still served
            assert again.text == "fine"
    [record] = [r for r in caplog.records if r.name == "sansnet.server"]
    assert "GET /boom" in record.getMessage()
    assert record.exc_info is not None
    assert "kaboom" in str(record.exc_info[1])


@pytest.mark.parametrize(
    ("result", "fragment"),
    [
        (42, "returned int"),
        ([b"list"], "returned list"),
        ({"status": 200, "nope": 1}, "unknown keys"),
        (ServeResponse(status=99), "invalid status 99"),
        (ServeResponse(status="200"), "invalid status"),  # type: ignore[arg-type]
        (ServeResponse(body=3.5), "body of type float"),  # type: ignore[arg-type]
    ],
)
async def test_bad_return_values_give_500_naming_the_type(
    result: Any, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with serve_in_memory(lambda request: result) as handle:
            response = await handle.request("/")
            assert response.status_code == 500
    assert any(fragment in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


STREAMED = object()  # the body, as a generator of what would have been sent


@pytest.mark.parametrize(
    ("method", "status", "headers", "body", "fragment"),
    [
        ("GET", 200, {"X-A": "a\r\nSet-Cookie: evil=1"}, "x", "control character"),
        ("GET", 200, {"X-Name": "caf\xe9"}, "x", "is not ASCII"),
        ("GET", 200, {"Bad Name": "v"}, "x", "Illegal header name"),
        ("GET", 200, {"Content-Length": "10"}, "abc", "does not match"),
        ("GET", 200, {"Content-Length": "1000"}, "", "does not match"),
        ("GET", 200, {"Transfer-Encoding": "gzip"}, "abc", "only 'chunked'"),
        ("GET", 204, None, "abc", "cannot have a body"),
        ("GET", 205, None, "abc", "cannot have content"),
        ("CONNECT", 200, None, "tunnel? no", "opens a tunnel"),
        ("GET", 200, {"X-A": "a\r\nSet-Cookie: evil=1"}, STREAMED, "control character"),
        ("GET", 200, {"Transfer-Encoding": "gzip"}, STREAMED, "only 'chunked'"),
        ("CONNECT", 200, None, STREAMED, "opens a tunnel"),
    ],
    ids=[
        "crlf",
        "non-ascii",
        "name",
        "length",
        "length-empty",
        "gzip",
        "204",
        "205",
        "connect",
        "streamed-crlf",
        "streamed-gzip",
        "streamed-connect",
    ],
)
async def test_a_response_the_protocol_refuses_gives_500_is_logged_and_the_server_goes_on(
    method: str,
    status: int,
    headers: Any,
    body: Any,
    fragment: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    produced: list[Any] = []

    def chunks() -> Any:
        yield b"evil=1"

    def handler(request: ServeRequest) -> Any:
        if request.path == "/ok":
            return "fine"
        if body is STREAMED:
            produced.append(chunks())
            return ServeResponse(status, headers, produced[-1])
        return ServeResponse(status, headers, body)

    target = "example.com:443" if method == "CONNECT" else "/bad"
    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with serve_in_memory(handler) as handle, await handle.connect() as conn:
            await conn.send(
                f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                + b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            received = await conn.receive_until_closed(timeout=5)
    first, second = received.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"500 Internal Server Error\r\n")
    assert first.endswith(b"\r\n\r\nInternal Server Error\n")
    assert b"evil" not in received
    assert second.startswith(b"200 OK\r\n")  # the same connection goes on
    assert second.endswith(b"fine")
    [record] = [r for r in caplog.records if r.name == "sansnet.server"]
    assert f"{method} {target} from " in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], sansnet.LocalProtocolError)
    assert fragment in str(record.exc_info[1])
    for generator in produced:
        assert generator.gi_frame is None  # closed, never iterated


@pytest.mark.parametrize(
    ("length", "chunks", "fragment"),
    [("2", [b"abc"], "Too much data"), ("10", [b"abc"], "7 bytes short")],
    ids=["too long", "too short"],
)
async def test_a_stream_that_breaks_its_content_length_is_logged_and_closes(
    length: str, chunks: list[bytes], fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(200, {"Content-Length": length}, iter(chunks))

    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with serve_in_memory(handler) as handle, await handle.connect() as conn:
            await conn.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            received = await conn.receive_until_closed(timeout=5)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.count(b"HTTP/1.1 ") == 1  # the head went out; then the connection closed
    [record] = [r for r in caplog.records if r.name == "sansnet.server"]
    assert "GET /stream from " in record.getMessage()
    assert "closing the connection" in record.getMessage()
    assert record.exc_info is not None
    assert fragment in str(record.exc_info[1])


@pytest.mark.parametrize(
    "error",
    [RuntimeError("stream broke"), sansnet.ReadError("the upstream broke")],
    ids=["RuntimeError", "ReadError"],
)
@pytest.mark.parametrize("kind", ["generator", "async generator"])
async def test_a_failing_stream_closes_the_connection(
    error: Exception, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Logged whatever the body raises: a TransportError from a body that proxies
    another connection (its upstream broke) was taken for our client leaving, and the
    cut-off response was never logged."""

    def broken() -> Any:
        yield b"start"
        raise error

    async def broken_async() -> Any:
        yield b"start"
        raise error

    def handler(request: ServeRequest) -> ServeResponse:
        return ServeResponse(body=broken() if kind == "generator" else broken_async())

    with caplog.at_level(logging.ERROR, logger="sansnet.server"):
        async with serve_in_memory(handler) as handle:
            with pytest.raises(sansnet.RemoteProtocolError):
                await handle.request("/")
    [record] = [r for r in caplog.records if "iterator failed" in r.getMessage()]
    assert record.exc_info is not None
    assert record.exc_info[1] is error


async def test_sync_and_async_callable_objects() -> None:
    class AsyncHandler:
        async def __call__(self, request: ServeRequest) -> str:
            return "async object"

    class SyncHandler:
        def __call__(self, request: ServeRequest) -> str:
            return "sync object"

    async def coroutine_returning(request: ServeRequest) -> str:
        return "partial"

    def returns_awaitable(request: ServeRequest) -> Any:
        return coroutine_returning(request)

    for handler, text in (
        (AsyncHandler(), "async object"),
        (SyncHandler(), "sync object"),
        (returns_awaitable, "partial"),
    ):
        async with serve_in_memory(handler) as handle:
            assert (await handle.request("/")).text == text


async def test_request_fields() -> None:
    async with serve_in_memory(echo) as handle:
        response = await handle.request(
            "/a%20b/?q=a+b&e=%F0%9F%9A%80&empty=&flag",
            method="PUT",
            headers={"X-Custom": "1"},
            body=b"payload",
        )
        data = response.json()
        assert data["method"] == "PUT"
        assert data["path"] == "/a%20b/"  # raw, not decoded
        assert data["query"] == {"q": "a b", "e": "🚀", "empty": "", "flag": ""}
        assert data["headers"]["x-custom"] == "1"
        assert data["body"] == "payload"
        assert data["ip"] == "127.0.0.1"
        assert data["port"] > 0


async def test_empty_path_is_slash() -> None:
    async with serve_in_memory(echo) as handle:
        assert (await handle.request("/")).json()["path"] == "/"
        assert (await handle.request("?x=1")).json()["path"] == "/"


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", brotli.compress),
        ("zstd", zstd.compress),
    ],
)
async def test_compressed_request_bodies_are_decoded(coding: str, encode: Any) -> None:
    async with sansnet.serve(0, echo) as handle, httpx.AsyncClient() as client:
        response = await client.post(
            handle.url, content=encode(b"squeezed " * 100), headers={"Content-Encoding": coding}
        )
        data = response.json()
        assert data["body"] == "squeezed " * 100
        assert "content-encoding" not in data["headers"]


async def test_a_compressed_body_of_many_steps_and_members_is_decoded_whole() -> None:
    """A body longer than DECODE_STEP is decoded a step at a time, with checkpoints
    between (others are served meanwhile); the result is the same. Many gzip members:
    each one cost a copy of the rest of the body before, quadratic."""
    members = b"".join(gzip.compress(f"{index:05d},".encode()) for index in range(20_000))
    assert len(members) > 4 * DECODE_STEP
    async with sansnet.serve(0, echo) as handle, httpx.AsyncClient() as client:
        response = await client.post(
            handle.url, content=members, headers={"Content-Encoding": "gzip"}
        )
    assert response.json()["body"] == "".join(f"{index:05d}," for index in range(20_000))


async def test_bad_compressed_bodies() -> None:
    async with sansnet.serve(0, echo) as handle, httpx.AsyncClient() as client:
        response = await client.post(
            handle.url, content=b"not gzip", headers={"Content-Encoding": "gzip"}
        )
        assert response.status_code == 400
        response = await client.post(
            handle.url, content=b"x", headers={"Content-Encoding": "compress"}
        )
        assert response.status_code == 415
        # It names what is decoded, here and in Accept-Encoding (RFC 9110 15.5.16), not
        # a fixed list that named br and zstd without their packages.
        assert response.headers["accept-encoding"] == accept_encoding()
        assert f"({accept_encoding()} are)" in response.text
        response = await client.post(  # six codings: more than urllib3 and curl take
            handle.url, content=b"x", headers={"Content-Encoding": ", ".join(["gzip"] * 6)}
        )
        assert response.status_code == 415
        assert "more than the 5 accepted" in response.text
    config = ServeConfig(handle_request=echo, limits=sansnet.Limits(max_body_bytes=1000))
    async with sansnet.serve(0, config) as handle, httpx.AsyncClient() as client:
        bomb = gzip.compress(b"\0" * 100_000)
        response = await client.post(handle.url, content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413


async def test_access_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sansnet.access"):
        async with serve_in_memory(ServeConfig(handle_request=echo, access_log=True)) as handle:
            await handle.request("/logged?x=1")
    [record] = [r for r in caplog.records if r.name == "sansnet.access"]
    assert '"GET /logged?x=1 HTTP/1.1" 200' in record.getMessage()


async def test_access_log_escapes_quotes_and_backslashes_in_the_target(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A '"' in the target must not end the quoted request line early: the line stays
    # one record that a log parser splits on its quotes.
    config = ServeConfig(handle_request=echo, access_log=True)
    with caplog.at_level(logging.INFO, logger="sansnet.access"):
        async with serve_in_memory(config) as handle, await handle.connect() as conn:
            await conn.send(b'GET /a"b\\c?x=" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            assert (await conn.receive_until_closed(timeout=5)).startswith(b"HTTP/1.1 200")
    [record] = [r for r in caplog.records if r.name == "sansnet.access"]
    assert record.getMessage().endswith(' - "GET /a\\"b\\\\c?x=\\" HTTP/1.1" 200')
    assert record.getMessage().count('"') - record.getMessage().count('\\"') == 2


def test_access_log_escaping_of_what_the_parser_already_refuses() -> None:
    # The server's parser refuses control characters and non-ASCII in a target, but
    # the escaping must not rely on it.
    from sansnet._server_session import _escape_for_log

    assert _escape_for_log("/plain?q=1") == "/plain?q=1"
    assert _escape_for_log('/"\\') == '/\\"\\\\'
    assert _escape_for_log("/a\nb\r\x00\x7f\x1b") == "/a\\x0ab\\x0d\\x00\\x7f\\x1b"
    assert _escape_for_log("/\xe9\u20ac") == "/\\xe9\\u20ac"


async def test_only_a_websocket_handler_answers_plain_http_with_426() -> None:
    async def ws_only(ws: sansnet.WebSocket) -> None:
        pass  # pragma: no cover

    async with serve_in_memory(ServeConfig(handle_web_socket=ws_only)) as handle:
        response = await handle.request("/")
        assert response.status_code == 426
        assert response.headers["upgrade"] == "websocket"


async def test_bad_websocket_handshake_is_400() -> None:
    async def ws_only(ws: sansnet.WebSocket) -> None:
        pass  # pragma: no cover

    async with serve_in_memory(ServeConfig(handle_web_socket=ws_only)) as handle:
        response = await handle.request(
            "/", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        )
        assert response.status_code == 400
        assert b"Sec-WebSocket" in response.body
        response = await handle.request(
            "/",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "8",
            },
        )
        assert response.status_code == 426
        assert response.headers["sec-websocket-version"] == "13"


def test_plain_asyncio_run_and_trio_run_without_anyio_run() -> None:
    """serve, request and socket under asyncio.run and trio.run directly (anyio must find
    the event loop even in asyncio's accept callback, where there is no task)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, sys, trio, sansnet

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        async def main():
            config = sansnet.ServeConfig(handle_request=lambda r: "plain", handle_web_socket=echo)
            async with sansnet.serve(0, config) as handle:
                print((await sansnet.request(handle.url)).text)
                ws = await sansnet.socket(handle.url.replace("http", "ws", 1))
                await ws.send("ws")
                print(await ws.next())
                await ws.close()

        asyncio.run(main()) if sys.argv[1] == "asyncio" else trio.run(main)
        """
    )
    for runner in ("asyncio", "trio"):
        result = subprocess.run(
            [sys.executable, "-X", "dev", "-c", script, runner],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "plain\nws\n"
        assert "Warning" not in result.stderr, result.stderr


def test_query_params_get_is_one_str_and_get_all_a_list() -> None:
    query = sansnet.QueryParams({"a": ["1", "2"], "q": "x"})
    assert (query.get("a"), query.get("q"), query.get("z"), query.get("z", "d")) == (
        "1",
        "x",
        None,
        "d",
    )
    assert (query.get_all("a"), query.get_all("q"), query.get_all("z")) == (["1", "2"], ["x"], [])
    assert query["a"] == ["1", "2"]  # Lune's shape is unchanged


def test_query_keeps_every_value_of_a_key_given_three_times() -> None:
    # The third value used to replace the second: ["1", "3"].
    head = RequestHead("GET", "/p?a=1&a=2&a=3&b=x&a=4")
    query = ServeRequest(head, b"", "127.0.0.1", 1).query
    assert query == {"a": ["1", "2", "3", "4"], "b": "x"}
    assert query.get_all("a") == ["1", "2", "3", "4"]


async def test_a_certificate_that_cannot_be_loaded_is_named(tmp_path: Any) -> None:
    """serve(tls=...) and tcp.serve(tls=...) raised the bare FileNotFoundError ('[Errno
    2] No such file or directory', no file named) or ssl.SSLError ('[SSL] PEM lib'), as
    `sansnet tcp --listen 0 --tls-cert PATH` printed them."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = str(tmp_path / "missing.pem")

    async def streams(stream: Any) -> None:
        pass

    for tls, named in (
        (missing, repr(missing)),
        (str(garbage), repr(str(garbage))),
        ((str(garbage), missing), f"with key {missing!r}"),
    ):
        for opener in (
            lambda tls=tls: sansnet.serve(0, echo, tls=tls),
            lambda tls=tls: sansnet.tcp.serve(0, streams, tls=tls),
        ):
            with pytest.raises(sansnet.TLSError, match="Could not load the certificate") as error:
                async with opener():
                    pass
            assert named in str(error.value)
            assert "a PEM file with the certificate and its key" in str(error.value)


@pytest.mark.parametrize("value", ["", "/tmp/a\x00b", "/tmp/\ud800", 5, b"/tmp/s"])
def test_a_bad_uds_is_refused_when_the_config_is_made(value: object) -> None:
    """Issue: ServeConfig(uds="") was taken and serve() then failed with a bare
    IndexError from inside asyncio (a traceback from `sansnet serve --uds ''`); a NUL
    gave a bare ValueError. A socket path is a non-empty str the file system can hold."""
    with pytest.raises(sansnet.InvalidArgument, match=r"^ServeConfig\.uds must be"):
        ServeConfig(handle_request=echo, uds=value)  # type: ignore[arg-type]
    assert ServeConfig(handle_request=echo, uds="/tmp/\udcff").uds == "/tmp/\udcff"  # byte 0xFF


@pytest.mark.parametrize("value", ["127.0.0.1\x00", "\udcff", "local\ud800host"])
def test_an_address_that_cannot_be_listened_on_is_refused_when_the_config_is_made(
    value: str,
) -> None:
    """Issue: a NUL or a lone surrogate in ServeConfig.address reached the resolver and
    came out of serve() as a bare ValueError / UnicodeEncodeError."""
    with pytest.raises(sansnet.InvalidArgument, match=r"^ServeConfig\.address must be"):
        ServeConfig(handle_request=echo, address=value)


@pytest.mark.parametrize("value", [True, False, 5, ("cert.pem",), ("a", "b", "c"), ("", "k"), ""])
def test_a_tls_option_that_is_no_certificate_is_refused_when_the_config_is_made(
    value: object,
) -> None:
    """Issue: serve(tls=True) (the mirror of tcp.connect(tls=True)) raised a bare
    TypeError from inside serve(), tls=("cert",) an IndexError. tls is an SSLContext, a
    PEM path or a (certificate, key) pair; anything else is InvalidArgument at once."""
    with pytest.raises(sansnet.InvalidArgument, match=r"^ServeConfig\.tls must be an ssl") as error:
        ServeConfig(handle_request=echo, tls=value)  # type: ignore[arg-type]
    assert "(certificate, key) pair" in str(error.value)
