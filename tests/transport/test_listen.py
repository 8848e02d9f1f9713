"""The accept loop on anyio's listeners (trio's path; asyncio accepts in its own callback):
a passing shortage of descriptors does not end it, and a failed TLS handshake is one
closed connection and a debug line."""

from __future__ import annotations

import contextlib
import errno
import logging
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
