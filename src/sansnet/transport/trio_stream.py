"""A :class:`~sansnet.transport.streams.NetworkStream` for trio's plain sockets.

Imported only when trio runs (see :func:`~sansnet.transport.streams.anyio_stream`), so
that importing sansnet never imports trio.
"""

from __future__ import annotations

import anyio
import trio
import trio.lowlevel

from sansnet.errors import InvalidArgument, ReadError, WriteError

from .streams import READ_SIZE, AnyioStream, _read_timeout, _write_timeout

__all__ = ["TrioStream"]


class TrioStream(AnyioStream):
    """An :class:`AnyioStream` over a plain socket of anyio's trio backend (TCP or Unix,
    no TLS) whose ``read`` and ``write`` go to the socket through trio's low-level API
    themselves: the very steps of anyio's stream over trio's socket (a cancellation
    check, one try, then a wait for the socket; a checkpoint when no wait was needed),
    errors reported the same way, without the layers in between (anyio's stream and
    cancel scope, trio's socket wrapper). Everything else is :class:`AnyioStream`'s."""

    __slots__ = ()

    async def read(self, max_bytes: int = READ_SIZE, timeout: float | None = None) -> bytes:
        if max_bytes < 1:  # anyio's stream refuses it too (a ValueError)
            raise InvalidArgument("max_bytes must be a positive integer")
        try:
            if timeout is None:
                return await self._receive(max_bytes)
            # Leaving the block without returning means the deadline cancelled the read.
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                return await self._receive(max_bytes)
            raise TimeoutError
        except TimeoutError:
            raise _read_timeout(self, timeout) from None
        except (trio.ClosedResourceError, OSError) as exc:
            cause = self._anyio_error(exc)
            raise ReadError(
                f"The connection to {self.description} broke while reading: {cause!r}."
            ) from cause

    async def _receive(self, max_bytes: int) -> bytes:
        """One ``recv`` as trio's socket makes it."""
        sock = self._socket
        assert sock is not None
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = sock.recv(max_bytes)
        except BlockingIOError:
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    pass
        except BaseException:
            await trio.lowlevel.cancel_shielded_checkpoint()
            raise
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        try:
            if timeout is None:
                await self._send_all(data, None, 0.0)
                return
            # The timeout bounds each wait for the peer to take more, not the whole
            # write: _send_all moves the deadline on whenever a send made progress.
            with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
                await self._send_all(data, scope, timeout)
                return
            raise TimeoutError
        except TimeoutError:
            raise _write_timeout(self, timeout) from None
        except (trio.ClosedResourceError, OSError) as exc:
            cause = self._anyio_error(exc)
            raise WriteError(
                f"The connection to {self.description} broke while writing: {cause!r}."
            ) from cause

    async def _send_all(self, data: bytes, scope: trio.CancelScope | None, timeout: float) -> None:
        """Every byte of ``data``, one ``send`` at a time as trio's socket makes it; after
        a send that left more to send, ``scope``'s deadline moves to ``timeout`` seconds
        from then (the write timeout is a limit on silence: a slow reader that takes
        some within it is no timeout)."""
        sock = self._socket
        assert sock is not None
        view = memoryview(data)
        if not view:  # still a checkpoint, as trio's send_all of nothing is
            await trio.lowlevel.checkpoint()
            return
        while view:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                sent = sock.send(view)
            except BlockingIOError:
                while True:
                    await trio.lowlevel.wait_writable(sock)
                    try:
                        sent = sock.send(view)
                        break
                    except BlockingIOError:
                        pass
            except BaseException:
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
            view = view[sent:]
            if view and scope is not None:
                scope.deadline = trio.current_time() + timeout

    def _anyio_error(self, exc: BaseException) -> Exception:
        """The anyio exception anyio's stream reports ``exc`` as (see ``read``)."""
        sock = self._socket
        closed = isinstance(exc, trio.ClosedResourceError) or (
            sock is not None and sock.fileno() < 0
        )
        error = anyio.ClosedResourceError() if closed else anyio.BrokenResourceError()
        error.__cause__ = exc
        return error
