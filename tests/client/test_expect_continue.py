"""``expect_continue=True``: the request says ``Expect: 100-continue`` and sends its body
only after the server's 100 (or a silent second); a final answer that comes first is
returned and the body is never sent (issue #22). Against sansnet's server in memory,
and a raw server that does exactly one thing."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

import sansnet
from sansnet import ServeConfig, ServeRequest
from sansnet.protocol import Limits
from sansnet.testing import WireRecorder, serve

from .rawserver import RawServer, response

pytestmark = pytest.mark.anyio

Start = Callable[..., RawServer]
BODY = b"u" * 50_000


async def echo(request: ServeRequest) -> bytes:
    return request.body


async def test_the_body_waits_for_100_continue() -> None:
    recorder = WireRecorder()
    async with serve(echo, recorder=recorder) as client:
        response = await client.request("/", method="POST", body=BODY, expect_continue=True)
        plain = await client.request("/", method="PUT", body=b"small")
    assert (response.status_code, response.body) == (200, BODY)
    assert plain.body == b"small"
    sent, answered = recorder.entries[0][1], recorder.entries[1][1]
    assert b"\r\nExpect: 100-continue\r\n" in sent
    assert sent.endswith(b"\r\n\r\n")  # the head alone: the body waited
    assert answered == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert recorder.entries[2] == ("client", BODY)
    assert b"expect" not in recorder.entries[4][1].lower()  # only when asked


async def test_a_final_answer_first_means_the_body_is_never_sent() -> None:
    recorder = WireRecorder()
    config = ServeConfig(handle_request=echo, limits=Limits(max_body_bytes=1000))
    async with serve(config, recorder=recorder) as client:
        response = await client.request("/", method="POST", body=BODY, expect_continue=True)
        again = await client.request("/", method="POST", body=b"fits")
    assert response.status_code == 413
    assert BODY not in recorder.client_bytes
    assert again.body == b"fits"  # a new connection: the first one could not be reused


async def test_a_silent_server_gets_the_body_after_a_second(
    raw_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sansnet._exchange

    monkeypatch.setattr(sansnet._exchange, "CONTINUE_WAIT", 0.1)

    def no_continue(conn: socket.socket, server: RawServer) -> None:
        data = b""
        while not data.endswith(BODY):  # reads the head, then the body, saying nothing
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = raw_server(no_continue)
    response = await sansnet.request(server.url, method="POST", body=BODY, expect_continue=True)
    assert response.text == "ok"


async def test_interim_hints_before_the_100_are_skipped(raw_server: Start) -> None:
    def hints_then_continue(conn: socket.socket, server: RawServer) -> None:
        head = server.read_request(conn, read_body=False)
        assert head is not None
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        while len(body) < len(BODY):
            body += conn.recv(65536)
        said = b"%d" % len(body)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said))

    server = raw_server(hints_then_continue)
    response = await sansnet.request(server.url, method="POST", body=BODY, expect_continue=True)
    assert (response.status_code, response.text) == (201, str(len(BODY)))
    assert server.requests[0].count(b"Expect: 100-continue") == 1


def _closes_when_reused(conn: socket.socket, server: RawServer) -> None:
    """Answers the first request of each connection (after a 100 if it expects one), then
    closes when the next head arrives: the race of a server's idle timeout."""
    head = server.read_request(conn, read_body=False)
    if head is None:
        return
    body = b""
    if b"expect: 100-continue" in head.lower():
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(body) < len(BODY):
            body += conn.recv(65536)
    conn.sendall(response(b"%d" % len(body)))
    server.read_request(conn, read_body=False)


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_stale_connection_is_retried_for_an_idempotent_method(
    raw_server: Start, method: str
) -> None:
    server = raw_server(_closes_when_reused)
    async with sansnet.Client() as client:
        assert (await client.request(server.url)).text == "0"
        send = client.request(server.url, method=method, body=BODY, expect_continue=True)
        if method == "PUT":
            assert (await send).text == str(len(BODY)), "Sent again on a fresh connection."
            assert server.accepted == 2
        else:
            with pytest.raises(sansnet.RemoteProtocolError, match="without sending a response"):
                await send
            assert server.accepted == 1, "A POST is not sent again."
