"""serve(..., uds=PATH): HTTP and WebSocket over a Unix domain socket, reached by curl
and httpx; the socket file's mode, its removal at stop, a stale file replaced, a live
one refused. Every test runs on asyncio, uvloop and trio."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest

import sansnet as net
from sansnet.transport.listen import _claim_unix_path

pytestmark = pytest.mark.anyio


@pytest.fixture
def socket_path() -> Iterator[str]:
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="sn-") as folder:
        yield os.path.join(folder, "app.sock")


def who(request: net.ServeRequest) -> str:
    return f"{request.method} {request.url} from {request.ip!r}:{request.port}"


async def test_curl_and_httpx_over_a_unix_socket(socket_path: str) -> None:
    async with net.serve(0, who, uds=socket_path) as handle:
        assert handle.ip == socket_path
        assert handle.port == 0
        assert handle.url == "http+unix://" + socket_path.replace("/", "%2F")
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o666
        curl = await anyio.run_process(
            ["curl", "-sS", "--unix-socket", socket_path, "http://app.local/c?x=1"]
        )
        assert curl.stdout == b"GET http://app.local/c?x=1 from '':0"
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post("http://app.local/h", content=b"body")
        assert response.text == "POST http://app.local/h from '':0"
    assert not await anyio.Path(socket_path).exists()  # removed at stop


async def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(socket_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(socket_path)
    stale.close()  # the file stays, nobody listens: what a killed server leaves
    async with net.serve(0, who, uds=socket_path):
        with pytest.raises(net.BindError, match="another server is listening"):
            async with net.serve(0, who, uds=socket_path):
                pass  # pragma: no cover
        assert await anyio.Path(socket_path).exists()  # the refused server left ours alone


def test_a_live_server_too_busy_to_answer_keeps_its_socket_file(socket_path: str) -> None:
    """The stale-file probe used to block on a live server whose queue was full (and
    would have removed its file on any error but a refusal); now a busy server is
    live: BindError, the file stays."""
    live = socket.socket(socket.AF_UNIX)
    live.bind(socket_path)
    live.listen(0)
    waiting = []
    with contextlib.suppress(BlockingIOError):
        for _ in range(64):  # fill its queue: it never accepts
            client = socket.socket(socket.AF_UNIX)
            waiting.append(client)
            client.setblocking(False)
            client.connect(socket_path)
    outcome: list[BaseException | None] = []

    def claim() -> None:
        try:
            _claim_unix_path(socket_path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    thread.join(10)
    try:
        assert outcome, "The probe returned within its timeout."
        assert isinstance(outcome[0], net.BindError), outcome
        assert "another server is listening" in str(outcome[0])
        assert os.path.exists(socket_path), "The live server's file stays."
    finally:
        for client in waiting:
            client.close()
        live.close()


async def test_a_regular_file_in_the_way_is_a_bind_error(socket_path: str) -> None:
    await anyio.Path(socket_path).write_text("not a socket")
    with pytest.raises(net.BindError, match="not a socket"):
        async with net.serve(0, who, uds=socket_path):
            pass  # pragma: no cover
    assert await anyio.Path(socket_path).read_text() == "not a socket"


async def test_a_websocket_over_a_unix_socket(socket_path: str) -> None:
    """websockets' client speaks over the socket (unix_connect); ServeRequest.ip is ""."""
    websockets = pytest.importorskip("websockets.asyncio.client")

    async def echo(ws: net.WebSocket) -> None:
        async for message in ws:
            await ws.send(f"{message} via {ws.request.ip!r}")

    config = net.ServeConfig(handle_web_socket=echo, uds=socket_path)
    async with net.serve(0, config):
        answer = await anyio.to_thread.run_sync(_websockets_round_trip, websockets, socket_path)
    assert answer == "hi via ''"


def _websockets_round_trip(module: object, path: str) -> str:
    import asyncio

    async def main() -> str:
        async with module.unix_connect(path, "ws://app.local/") as ws:  # type: ignore[attr-defined]
            await ws.send("hi")
            return str(await ws.recv())

    return asyncio.run(main())


async def test_sansnet_request_and_socket_over_a_unix_socket(socket_path: str) -> None:
    """Our own client: request(..., unix_socket=), Client(unix_socket=) (pooled) and
    socket(..., unix_socket=); a missing socket is a ConnectError that says so."""

    async def echo(ws: net.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    config = net.ServeConfig(handle_request=who, handle_web_socket=echo, uds=socket_path)
    async with net.serve(0, config):
        response = await net.request("http://app.local/one", unix_socket=socket_path)
        assert response.text == "GET http://app.local/one from '':0"
        async with net.Client(unix_socket=socket_path) as client:
            for path in ("/a", "/b"):
                answer = await client.request(f"http://app.local{path}", method="POST")
                assert answer.text == f"POST http://app.local{path} from '':0"
            assert client.pool.total == 1  # one connection, reused
        async with await net.socket("ws://app.local/", unix_socket=socket_path) as ws:
            await ws.send("over a file")
            assert await ws.next() == "over a file"
    with pytest.raises(net.ConnectError, match="Unix socket"):
        await net.request("http://app.local/", unix_socket=socket_path)


async def test_a_socket_path_that_is_not_utf8(socket_path: str) -> None:
    """Issue: a path with a byte that is not UTF-8 (str with surrogateescape, as
    os.fsdecode and sys.argv give it) was bound, then the handle's url could not be
    built: a bare UnicodeEncodeError from serve(). The url writes the byte as %FF."""
    path = os.path.join(os.path.dirname(socket_path), "caf\udcff.sock")
    async with net.serve(0, who, uds=path) as handle:
        assert handle.ip == path
        assert handle.url.endswith("caf%FF.sock")
        assert await anyio.Path(path).exists()
        response = await net.request("http://app.local/", unix_socket=path)
        assert response.status_code == 200
    assert not await anyio.Path(path).exists()
