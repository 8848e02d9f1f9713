"""Happy eyeballs on asyncio and uvloop (``connect._connect_socket``): sansnet races a name's
addresses itself, because asyncio's own race (``create_connection(happy_eyeballs_delay=
...)``) leaves a socket connected just as it is cancelled to the garbage collector. The
name resolves to the addresses the test gives ``loop.getaddrinfo``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from sansnet import ConnectError
from sansnet.transport import connect
from sansnet.transport.clock import now
from sansnet.transport.connect import HAPPY_EYEBALLS_DELAY, open_tcp_stream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvloop runs the same race (tests/tcp checks it); trio runs anyio's


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def resolve_to(monkeypatch: pytest.MonkeyPatch, *ports: int) -> None:
    """Make every name resolve to 127.0.0.1 at each of ``ports``, in order."""
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
        for port in ports
    ]

    async def getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        return infos

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


async def test_a_refused_address_hands_over_to_the_next_at_once(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    resolve_to(monkeypatch, closed_port(), listener.getsockname()[1])
    # A long delay, so that "at once" has room on a busy machine: only a handover that
    # waited for the delay takes 5 s.
    monkeypatch.setattr(connect, "HAPPY_EYEBALLS_DELAY", 5.0)
    start = now()
    stream = await open_tcp_stream("two.example", 80, timeout=10)
    try:
        assert now() - start < 2.5, "No wait after a refusal."
        assert stream.peer[1] == listener.getsockname()[1]
    finally:
        await stream.aclose()


async def test_a_silent_address_is_raced_and_its_socket_closed(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    silent = closed_port()
    resolve_to(monkeypatch, silent, listener.getsockname()[1])
    attempt = connect._attempt
    sockets: list[socket.socket] = []

    async def attempt_or_hang(loop: asyncio.AbstractEventLoop, info: Any) -> socket.socket:
        if info[4][1] != silent:
            return await attempt(loop, info)
        sock = socket.socket()  # a SYN that is never answered
        sockets.append(sock)
        try:
            await anyio.sleep_forever()
        finally:
            sock.close()
        raise AssertionError("unreachable")

    monkeypatch.setattr(connect, "_attempt", attempt_or_hang)
    start = now()
    stream = await open_tcp_stream("two.example", 80, timeout=5)
    try:
        assert now() - start >= HAPPY_EYEBALLS_DELAY * 0.9, "The next one waited its turn."
        assert stream.peer[1] == listener.getsockname()[1]
        assert sockets[0].fileno() == -1, "The losing attempt was cancelled and closed."
    finally:
        await stream.aclose()


async def test_every_address_refused_raises_the_first_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = closed_port(), closed_port()
    resolve_to(monkeypatch, first, second)
    with pytest.raises(ConnectError, match=r"two\.example:80: connection refused"):
        await open_tcp_stream("two.example", 80, timeout=5)


async def test_cancelled_as_an_attempt_wins_closes_the_winner(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    resolve_to(monkeypatch, closed_port(), listener.getsockname()[1])
    attempt = connect._attempt
    won: list[socket.socket] = []

    with anyio.CancelScope() as scope:

        async def attempt_then_cancel(loop: asyncio.AbstractEventLoop, info: Any) -> socket.socket:
            sock = await attempt(loop, info)
            won.append(sock)
            scope.cancel()  # the caller gives up in the same instant
            return sock

        monkeypatch.setattr(connect, "_attempt", attempt_then_cancel)
        await open_tcp_stream("two.example", 80, timeout=5)
    assert scope.cancelled_caught
    assert won[0].fileno() == -1, "The connected socket was closed, not dropped."


def test_address_families_alternate() -> None:
    v6 = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (f"::{i}", 80, 0, 0)) for i in (1, 2)]
    v4 = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (f"10.0.0.{i}", 80)) for i in (1, 2, 3)]
    ordered = connect._interleave([*v6, *v4])
    assert ordered == [v6[0], v4[0], v6[1], v4[1], v4[2]]


async def test_a_name_with_no_address_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch)  # getaddrinfo answers an empty list
    with pytest.raises(ConnectError, match="no address"):
        await open_tcp_stream("none.example", 80, timeout=5)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_an_ip_literal_is_its_own_address(host: str) -> None:
    (expected,) = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    assert connect._numeric_address(host, 80) == expected


@pytest.mark.parametrize(
    "host", ["localhost", "two.example", "127.1", "fe80::1%lo", "", "127.0.0.1\x00", "::1\x00x"]
)
def test_names_and_unusual_forms_go_to_getaddrinfo(host: str) -> None:
    # A NUL made inet_pton raise ValueError, out of open_tcp_stream on asyncio.
    assert connect._numeric_address(host, 80) is None


async def test_a_name_with_a_nul_is_a_connect_error_not_a_value_error() -> None:
    """Issue: open_tcp_stream("a\x00b", ...) raised a bare ValueError ("embedded null
    character") on asyncio and uvloop; trio's resolver said it has no address."""
    with pytest.raises(ConnectError, match="Could not resolve host name"):
        await open_tcp_stream("a\x00b", 80, timeout=5)


async def test_connecting_to_an_ip_address_resolves_nothing(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    # asyncio's loop.getaddrinfo runs in a worker thread even for an IP literal: a thread
    # handoff per new connection, which a burst of connections (50 tasks starting at
    # once) paid 50 times.
    async def getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError("getaddrinfo was asked about an IP address")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    stream = await open_tcp_stream("127.0.0.1", listener.getsockname()[1], timeout=5)
    try:
        assert stream.peer == ("127.0.0.1", listener.getsockname()[1])
    finally:
        await stream.aclose()
