"""The accept loop on anyio's listeners (trio's path; asyncio accepts in its own callback):
a passing shortage of descriptors does not end it, and a failed TLS handshake is one
closed connection and a debug line."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import sansnet
from sansnet.transport import listen
from sansnet.transport.listen import _serve_anyio
from sansnet.transport.streams import NetworkStream
from tests.handshaking import (
    HANDSHAKE_STAGES,
    client_hello,
    closed_within,
    server_context_for_127_0_0_1,
)
from tests.network import has_ipv6_loopback

pytestmark = pytest.mark.anyio


class _Failing(anyio.abc.SocketListener):
    """A real TCP listener whose first accepts fail with ``errors``, as accept(2) does
    when the process is out of descriptors (anyio wraps the OSError)."""

    def __init__(self, inner: anyio.abc.SocketListener, errors: list[BaseException]) -> None:
        self.inner = inner
        self.errors = errors

    async def accept(self) -> anyio.abc.SocketStream:
        if self.errors:
            await anyio.lowlevel.checkpoint()
            raise self.errors.pop(0)
        return await self.inner.accept()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Any:
        return self.inner.extra_attributes


def _out_of_descriptors() -> BaseException:
    error = anyio.BrokenResourceError()
    error.__cause__ = OSError(errno.EMFILE, "Too many open files")
    return error


async def _answer(stream: NetworkStream) -> None:
    await stream.write(b"served")
    await stream.aclose()


async def test_out_of_descriptors_on_accept_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listen, "ACCEPT_RETRY_DELAY", 0.01)
    caplog.set_level(logging.ERROR, "sansnet.transport")
    inner = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = inner.extra(anyio.abc.SocketAttribute.local_port)
    failing = _Failing(inner.listeners[0], [_out_of_descriptors(), OSError(errno.ENFILE, "")])
    async with anyio.create_task_group() as group:
        listener = _serve_anyio(failing, [("127.0.0.1", port)], _answer, group, None, 10.0)
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                assert await client.receive() == b"served", "Accepting went on."
        await listener.close()
    assert not failing.errors
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "Too many open files" in messages[0]
    assert "ulimit -n" in messages[0]


async def test_a_broken_listener_still_ends_the_accept_loop() -> None:
    inner = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = inner.extra(anyio.abc.SocketAttribute.local_port)
    broken = anyio.BrokenResourceError()
    broken.__cause__ = OSError(errno.EINVAL, "Invalid argument")
    failing = _Failing(inner.listeners[0], [broken])
    with pytest.raises(BaseException) as caught:  # an ExceptionGroup
        async with anyio.create_task_group() as group:
            _serve_anyio(failing, [("127.0.0.1", port)], _answer, group, None, 10.0)
    assert caught.group_contains(anyio.BrokenResourceError)  # type: ignore[attr-defined]
    await inner.aclose()


async def test_a_failed_tls_handshake_is_a_debug_line_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with sansnet.serve(0, lambda request: "ok", tls=context) as handle:
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", handle.port) as plain:
                await plain.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await plain.receive()  # a TLS alert, or nothing: the server closes
        client = ssl.create_default_context()
        ca.configure_trust(client)
        with anyio.fail_after(10):
            async with await anyio.connect_tcp(
                "127.0.0.1",
                handle.port,
                tls=True,
                ssl_context=client,
                tls_standard_compatible=False,
            ) as secure:
                await secure.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert (await secure.receive()).startswith(b"HTTP/1.1 200 OK"), (
                    "The server goes on."
                )
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert not errors, [record.getMessage() for record in errors]


def _localhost_families() -> set[socket.AddressFamily]:
    try:
        infos = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return set()
    return {info[0] for info in infos}


needs_dual_stack_localhost = pytest.mark.skipif(
    _localhost_families() != {socket.AF_INET, socket.AF_INET6},
    reason='"localhost" does not resolve to both 127.0.0.1 and ::1 here (/etc/hosts)',
)


@needs_dual_stack_localhost
async def test_port_0_on_a_host_name_is_one_port_for_every_address() -> None:
    async with anyio.create_task_group() as group:
        listener = await listen.listen_tcp("localhost", 0, _answer, group)
        try:
            hosts = sorted(host for host, _ in listener.addresses)
            assert hosts == ["127.0.0.1", "::1"], listener.addresses
            ports = {port for _, port in listener.addresses}
            assert len(ports) == 1, f"One port for every address: {listener.addresses}"
            for host, port in listener.addresses:
                with anyio.fail_after(10):
                    async with await anyio.connect_tcp(host, port) as client:
                        assert await client.receive() == b"served", host
        finally:
            await listener.close()


class _Resolver:
    """A loop whose getaddrinfo finds 127.0.0.1 and ::1 (twice, as glibc does for a name
    listed twice in /etc/hosts), whatever the machine's /etc/hosts says."""

    async def getaddrinfo(self, host: str | None, port: int, **_: Any) -> list[Any]:
        v4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
        v6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))
        return [v6, v4, v6]


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")
async def test_binding_a_name_to_one_port_starts_again_when_its_port_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first address gets port 0, the others the port the OS chose; if that one is
    taken for a later address, every socket is closed and binding starts again."""
    made: list[socket.socket] = []
    taken = [True]  # the first ::1 bind finds the port taken
    real = listen._bound_socket

    def bound_socket(
        family: int, proto: int, address: tuple[Any, ...], reuse: bool
    ) -> socket.socket:
        if family == socket.AF_INET6 and taken:
            taken.pop()
            raise OSError(errno.EADDRINUSE, "Address already in use")
        made.append(real(family, proto, address, reuse))
        return made[-1]

    monkeypatch.setattr(listen, "_bound_socket", bound_socket)
    sockets = await listen._bind_one_port(_Resolver(), "localhost", False)  # type: ignore[arg-type]
    try:
        assert [one.getsockname()[0] for one in sockets] == ["127.0.0.1", "::1"]
        assert len({one.getsockname()[1] for one in sockets}) == 1
        assert len(made) == 3
        assert made[0].fileno() == -1, "The first attempt's socket is closed."
    finally:
        for one in sockets:
            one.close()


@pytest.mark.parametrize("stage", HANDSHAKE_STAGES)
async def test_closing_the_listener_closes_connections_in_their_tls_handshake(stage: str) -> None:
    """Listener.close() closes the connections it has not handed on yet, those in their
    TLS handshake, at once, not when the server's task group ends: a server draining
    other connections for seconds leaves none of them open meanwhile (and never hands
    them to the handler)."""
    context = server_context_for_127_0_0_1()
    handed_on: list[NetworkStream] = []

    async def handler(stream: NetworkStream) -> None:
        handed_on.append(stream)  # pragma: no cover - nothing may get here
        await stream.aclose()  # pragma: no cover

    async with anyio.create_task_group() as group:
        listener = await listen.listen_tcp("127.0.0.1", 0, handler, group, ssl_context=context)
        ip, port = listener.addresses[0]
        with socket.create_connection((ip, port)) as sock:
            if stage != "nothing":
                hello = client_hello()
                sock.sendall(hello if stage == "a ClientHello" else hello[: len(hello) // 2])
            await anyio.sleep(0.2)  # accepted, in its handshake
            await listener.close()
            # The group (the server's connections) goes on: the listener closed it.
            assert await anyio.to_thread.run_sync(closed_within, sock, 2.0) == "closed"
        group.cancel_scope.cancel()
    assert not handed_on
