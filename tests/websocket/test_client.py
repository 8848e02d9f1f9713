"""net.socket: the sansnet WebSocket client against the websockets library's server and
Node's ws server, on asyncio, uvloop and trio."""

from __future__ import annotations

import gc
import json
import ssl
from base64 import b64encode

import anyio
import anyio.lowlevel
import pytest

import sansnet
from sansnet.testing import serve
from sansnet.transport.streams import NetworkStream

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("compression", [True, False])
async def test_echo_text_and_binary_with_websockets(
    websockets_port: int, compression: bool
) -> None:
    ws = await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/echo", compression=compression)
    assert (ws.close_code, ws.subprotocol, ws.closed) == (None, None, False)
    # The last two go out in several frames (sansnet.protocol.websocket.FRAGMENT_SIZE)
    # unless compressed, and come back whole.
    big = [b"\x01\xfe" * 300_000, "€" * 300_000]
    for message in ["hello", "🚀" * 1000, b"\x00\xff" * 40000, b"", "", *big]:
        await ws.send(message)
        assert await ws.next() == message
    await ws.send(b"as text", binary=False)
    assert await ws.next() == "as text"
    await ws.send("as binary", binary=True)
    assert await ws.next() == b"as binary"
    await ws.close()
    assert ws.close_code == 1000
    assert await ws.next() is None


async def test_http_urls_are_aliases(websockets_port: int) -> None:
    async with await sansnet.socket(f"http://127.0.0.1:{websockets_port}/echo") as ws:
        await ws.send("alias")
        assert await ws.next() == "alias"


async def test_fragmented_messages_from_the_peer(websockets_port: int) -> None:
    async with await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/fragments") as ws:
        assert await ws.next() == "fragmented"
        assert await ws.next() == b"\x00\x01\x02"


async def test_peer_pings_never_reach_next(websockets_port: int) -> None:
    async with await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/pings") as ws:
        assert await ws.next() == "after pings"
        await ws.send("still here")
        assert await ws.next() == "still here"


async def test_subprotocol_and_custom_headers(websockets_port: int) -> None:
    ws = await sansnet.socket(
        f"ws://127.0.0.1:{websockets_port}/headers",
        subprotocols=["chat", "superchat"],
        headers={"X-Token": "secret", "Cookie": "a=1"},
    )
    headers = json.loads(await ws.next())  # type: ignore[arg-type]
    assert headers["X-Token"] == "secret"
    assert headers["Cookie"] == "a=1"
    assert headers["User-Agent"].startswith("sansnet/")
    assert await ws.next() == "superchat"
    assert ws.subprotocol == "superchat"
    await ws.close()


async def test_peer_closes_with_code_and_reason(websockets_port: int) -> None:
    ws = await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/close")
    assert await ws.next() is None
    assert ws.close_code == 4001
    assert ws.close_reason == "bye from websockets"
    with pytest.raises(sansnet.ConnectionClosed, match="closed") as info:
        await ws.send("too late")
    assert info.value.code == 4001
    await ws.close()  # our first close after the peer's: quiet, nothing to send


async def test_peer_vanishing_gives_1006(websockets_port: int) -> None:
    ws = await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/vanish")
    assert await ws.next() == "about to vanish"
    assert await ws.next() is None
    assert ws.close_code == 1006
    assert await ws.next() is None


async def test_wss_with_a_trusted_certificate(
    websockets_tls_port: int, client_ssl_context: ssl.SSLContext
) -> None:
    async with await sansnet.socket(
        f"wss://127.0.0.1:{websockets_tls_port}/echo", verify=client_ssl_context
    ) as ws:
        await ws.send("secret")
        assert await ws.next() == "secret"


async def test_wss_with_an_untrusted_certificate(websockets_tls_port: int) -> None:
    with pytest.raises(sansnet.TLSError, match="verif"):
        await sansnet.socket(f"wss://127.0.0.1:{websockets_tls_port}/echo")


async def test_refused_handshake_carries_status_and_headers() -> None:
    async def plain(request: sansnet.ServeRequest) -> sansnet.ServeResponse:
        return sansnet.ServeResponse(403, {"X-Why": "no"}, "forbidden")

    async with sansnet.serve(0, plain) as handle:
        with pytest.raises(sansnet.HandshakeError) as info:
            await sansnet.socket(f"ws://127.0.0.1:{handle.port}/")
    assert info.value.status == 403
    assert dict(info.value.headers)["x-why"] == "no"  # type: ignore[arg-type]
    assert info.value.body == b"forbidden"


async def test_an_internationalized_url_goes_out_in_ascii() -> None:
    """Issue: socket() sent the URL's host and path as given, so a host such as
    bücher.example or a path such as /café failed with LocalProtocolError (a Host field
    or request target that is not ASCII) after connecting. The host now goes in its IDNA
    form and the path and query percent-encoded as UTF-8, as request() and websockets
    send them; a name with no IDNA form is an InvalidURL before any I/O."""

    async def tell(ws: sansnet.WebSocket) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.headers['host']} {ws.request.target}")

    async with serve(sansnet.ServeConfig(handle_web_socket=tell)) as client:
        ws = await client.socket("ws://bücher.example/café?q=é&r=a b")
        assert await ws.next() == "xn--bcher-kva.example /caf%C3%A9?q=%C3%A9&r=a%20b"
        await ws.close_quietly()
    with pytest.raises(sansnet.InvalidURL, match="host name"):
        await sansnet.socket("ws://" + "é" * 64 + ".example/")
    # A lone surrogate (a byte of sys.argv that is not UTF-8) was a bare
    # UnicodeEncodeError; a host that is no name, an error only once connecting.
    with pytest.raises(sansnet.InvalidURL, match="lone surrogate"):
        await sansnet.socket("ws://127.0.0.1/\udcff")
    with pytest.raises(sansnet.InvalidURL, match="a host is a name"):
        await sansnet.socket("ws://a_b!c/")
    # Port 0 was taken for "no port" and the default port connected to, where
    # request() refuses it.
    with pytest.raises(sansnet.InvalidURL, match="port 0 cannot be connected to"):
        await sansnet.socket("ws://127.0.0.1:0/")
    with pytest.raises(sansnet.InvalidURL, match="Invalid IPv6 URL"):  # was a bare ValueError
        await sansnet.socket("ws://[::1/")


async def test_credentials_in_the_url_go_as_basic_authorization() -> None:
    """Issue: socket() ignored user:password@ in the URL. As websockets does (and as
    request() does), they now go, percent-decoded, as Authorization: Basic, never in
    the Host field or the request target; an Authorization field the caller gives wins,
    and error messages show no password."""

    async def tell(ws: sansnet.WebSocket) -> None:
        assert ws.request is not None
        headers = ws.request.headers
        await ws.send(f"{headers.get('authorization')} {headers['host']} {ws.request.target}")

    async with serve(sansnet.ServeConfig(handle_web_socket=tell)) as client:
        ws = await client.socket("ws://us%40er:p%3Ass@example.com/path?q=1")
        assert await ws.next() == f"Basic {b64encode(b'us@er:p:ss').decode()} example.com /path?q=1"
        await ws.close_quietly()
        ws = await client.socket("ws://user@example.com:8080/")
        assert await ws.next() == f"Basic {b64encode(b'user:').decode()} example.com:8080 /"
        await ws.close_quietly()
        ws = await client.socket(
            "ws://user:pass@example.com/", headers={"authorization": "Bearer mine"}
        )
        assert await ws.next() == "Bearer mine example.com /"
        await ws.close_quietly()
    with pytest.raises(sansnet.InvalidURL) as info:
        await sansnet.socket("ws://user:secret@127.0.0.1:99999/")
    assert "secret" not in str(info.value)


async def test_connect_errors() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with pytest.raises(sansnet.ConnectError):
        await sansnet.socket(f"ws://127.0.0.1:{port}/")
    with pytest.raises(ValueError, match="scheme"):
        await sansnet.socket("ftp://127.0.0.1/")
    with pytest.raises(ValueError, match="no host"):
        await sansnet.socket("ws:///path")
    with pytest.raises(TypeError):
        await sansnet.socket(42)  # type: ignore[arg-type]


_BAD_SOCKET_OPTIONS = [
    *(
        ({name: value}, rf"^socket\(\): {name} must be a positive number of seconds")
        for name in ("ping_interval", "ping_timeout", "close_timeout", "timeout")
        for value in ("x", -1, 0, float("nan"), float("inf"), True)
    ),
    ({"close_timeout": None}, r"^socket\(\): close_timeout must be .* not None"),
    *(
        ({name: value}, rf"^socket\(\): {name} must be None \(no limit\) or an int >= 0")
        for name in ("max_message_size", "max_frame_size")
        for value in ("x", -1, 1.5, True)
    ),
]


@pytest.mark.parametrize(("options", "message"), _BAD_SOCKET_OPTIONS)
async def test_bad_options_are_refused_before_connecting(
    options: dict[str, object], message: str
) -> None:
    """Issue: socket(ping_interval=-1) (or a bad close_timeout, ping_timeout) was taken
    and failed later, mid-connection; a bad max_message_size was refused only after the
    handshake, leaving the connection open. Each is refused before any I/O, as
    ServeConfig refuses them."""
    opened: list[object] = []

    async def open_stream(origin: object, timeout: object) -> NetworkStream:
        opened.append(origin)  # pragma: no cover - the options are refused first
        raise AssertionError("connected")  # pragma: no cover

    with pytest.raises(sansnet.InvalidArgument, match=message):
        await sansnet.socket("ws://127.0.0.1/", open_stream=open_stream, **options)  # type: ignore[arg-type]
    assert opened == []


async def test_burst_then_close_is_drained_in_order(websockets_port: int) -> None:
    ws = await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/burst")
    received = [message async for message in ws]
    assert received == [f"message {index}" for index in range(50)]
    assert ws.close_code == 1000


async def test_leaving_async_for_early_leaves_nothing_to_finalize(websockets_port: int) -> None:
    """``async for`` over a socket, left by ``break`` (or an exception): when the socket
    was iterated through an async generator, the generator was left unfinished, and trio
    reported its garbage collection as a ResourceWarning (an error in this suite)."""
    async with await sansnet.socket(f"ws://127.0.0.1:{websockets_port}/burst") as ws:
        async for message in ws:
            assert message == "message 0"
            break
        gc.collect()
        await anyio.lowlevel.checkpoint()  # trio finalizes collected generators from its loop
        assert await ws.next() == "message 1"  # nothing was lost by leaving the loop


async def test_node_ws_echo_and_close(node_port: int) -> None:
    async with await sansnet.socket(f"ws://127.0.0.1:{node_port}/echo") as ws:
        for message in ["node", b"\x01" * 70000, "compress " * 500, b"\x02" * 700_000]:
            await ws.send(message)
            assert await ws.next() == message
    # Uncompressed, a long message goes out in several frames (FRAGMENT_SIZE).
    async with await sansnet.socket(f"ws://127.0.0.1:{node_port}/echo", compression=False) as ws:
        for message in [b"\x02" * 700_000, "ü" * 300_000]:
            await ws.send(message)
            assert await ws.next() == message
    ws = await sansnet.socket(f"ws://127.0.0.1:{node_port}/ping")
    assert await ws.next() == "after ping"
    await ws.close()
    ws = await sansnet.socket(f"ws://127.0.0.1:{node_port}/close")
    assert await ws.next() is None
    assert (ws.close_code, ws.close_reason) == (4002, "bye from ws")
