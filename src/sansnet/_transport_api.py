"""What a client :class:`~sansnet.client.Transport` is handed and hands back.

A transport's ``send(request, deadlines)`` gets a :class:`Request` and the request's
:class:`Deadlines` (its :class:`Timeout` per phase, bounded by the total), and returns a
:class:`~sansnet.StreamingResponse` whose body is a :class:`ResponseBody`. These are the
pieces a custom transport needs (:class:`sansnet.testing.MockTransport` is one); all of
them are importable from :mod:`sansnet.client`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .errors import (
    ConnectTimeout,
    InvalidArgument,
    PoolTimeout,
    ReadTimeout,
    TimeoutError,
    UsageError,
    WriteTimeout,
)
from .protocol import Headers
from .transport.clock import clock, now

if TYPE_CHECKING:
    from ._urls import ParsedURL

__all__ = ["Deadlines", "Request", "ResponseBody", "StreamedBody", "Timeout"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts in seconds (None: no limit).

    ``connect``: resolving, connecting and the TLS handshake. ``read``: the longest
    silence while waiting for response bytes. ``write``: the longest wait for the peer
    to take request bytes. ``pool``: waiting for a free connection. ``total``: the whole
    request, redirects included (for :func:`stream`, until the response head arrives).
    A single number sets ``connect``, ``read``, ``write`` and ``pool``, and no total (as
    with httpx), so a phase that runs out raises its own error: pass
    ``Timeout(total=...)`` for a limit on the whole request. Each field is None or a
    positive, finite number (:class:`~sansnet.InvalidArgument` otherwise).
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    write: float | None = 30.0
    pool: float | None = 10.0
    total: float | None = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "total"):
            value = getattr(self, name)
            if value is not None and not valid_seconds(value):
                raise InvalidArgument(
                    f"Timeout({name}=...) must be a positive number of seconds, finite, "
                    f"or None (no limit), not {value!r}."
                )

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(None, None, None, None, None)
        if not valid_seconds(value):
            raise InvalidArgument(
                f"timeout must be a positive number of seconds, finite, a Timeout or None "
                f"(no limit), not {value!r}."
            )
        return cls(value, value, value, value, None)


def valid_seconds(value: object) -> bool:
    """Whether ``value`` is a timeout sansnet takes: a positive, finite int or float (not
    a bool; not NaN, not inf: None is how to say "no limit", and the caller allows it).
    The one rule for every timeout argument: :class:`Timeout`, and ``sansnet.tcp`` (and
    :mod:`sansnet.blocking` through it)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 < value < math.inf  # False for NaN too
    )


def check_seconds(name: str, value: object, *, none: bool) -> None:
    """Raise :class:`~sansnet.InvalidArgument` naming ``name`` unless ``value`` is a
    timeout :func:`valid_seconds` takes, or None where ``none`` allows it (no limit)."""
    if (value is None and none) or valid_seconds(value):
        return
    allowed = "or None (no limit)" if none else "not None"
    raise InvalidArgument(
        f"{name} must be a positive number of seconds, finite, {allowed}; not {value!r}."
    )


class Request:
    """A request as it goes on the wire (after query merging, before redirects).

    ``body`` is bytes, or an async iterator of bytes for a streamed upload (then
    :attr:`replayable` is False). ``headers`` may be shared with other requests of
    the same client: a transport must copy them before changing anything.
    """

    __slots__ = ("_credentials", "_split", "body", "headers", "method", "replayable", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Headers,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body: bytes | StreamedBody = (
            body if isinstance(body, (bytes, StreamedBody)) else StreamedBody(body)
        )
        self.replayable = isinstance(body, bytes)
        self._split: ParsedURL | None = None
        # The Authorization value built from the URL's credentials, masked in traces.
        self._credentials: str | None = None

    @property
    def content(self) -> bytes:
        """The body, when it is bytes (a streamed body raises :class:`~sansnet.UsageError`:
        iterate over :attr:`body` instead)."""
        if not isinstance(self.body, bytes):
            raise UsageError("This request's body is streamed; iterate over request.body.")
        return self.body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Deadlines:
    """A request's :class:`Timeout` per phase (``timeout``), bounded by its total
    deadline (``deadline``, on the :func:`~sansnet.transport.clock.now` clock), as a
    transport's ``send`` gets it.

    ``bound(phase)`` is the time a phase whose own timeout is ``phase`` may take (the
    total error once the deadline has passed); ``with deadlines:`` around the wait turns
    a phase timeout that the deadline cut short into the total timeout. ``cover_body``:
    whether the deadline also bounds reading the body (request() yes, stream() no).
    ``capped``: whether the last :meth:`bound` was cut short by the deadline.
    """

    __slots__ = ("_clock", "capped", "cover_body", "deadline", "timeout")

    def __init__(self, timeout: Timeout, *, cover_body: bool = True) -> None:
        self.timeout = timeout
        self.cover_body = cover_body
        if timeout.total is None:
            self._clock = now  # never read: bound() needs no time without a deadline
            self.deadline = math.inf
        else:
            # The running loop's clock, looked up once: bound() reads it up to four
            # times a request.
            self._clock = clock()
            self.deadline = self._clock() + timeout.total
        self.capped = False

    def total_error(self) -> TimeoutError:
        """The error of a request that ran out of its total time."""
        return TimeoutError(
            f"The request did not complete within {self.timeout.total} s (total timeout); "
            "raise Timeout(total=...) or pass timeout=None for no limit."
        )

    def bound(self, phase: float | None) -> float | None:
        """The time left for a phase whose own timeout is ``phase``."""
        if self.deadline == math.inf:
            return phase
        left = self.deadline - self._clock()
        if left <= 0:
            raise self.total_error()
        self.capped = phase is None or left < phase
        return left if self.capped else phase

    def body_read(self) -> float | None:
        """The timeout of one read of the response body: the read timeout, bounded by
        the deadline when it covers the body."""
        if self.cover_body:
            return self.bound(self.timeout.read)
        self.capped = False
        return self.timeout.read

    def cut_short(self) -> None:
        """In ``except PHASE_TIMEOUTS:`` around an I/O step bounded by :meth:`bound`,
        before re-raising: raise the total timeout instead when the deadline cut the
        phase short. What ``with deadlines:`` does, without two method calls on every
        step (the client's hot path has three such steps per request)."""
        if self.capped:
            raise self.total_error() from None

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        """``with deadlines:`` around an I/O step bounded by :meth:`bound`: a phase
        timeout that fired because the deadline cut it short is the total timeout."""
        if kind is not None and self.capped and issubclass(kind, PHASE_TIMEOUTS):
            raise self.total_error() from None


PHASE_TIMEOUTS = (ConnectTimeout, PoolTimeout, ReadTimeout, WriteTimeout)
"""The timeouts of one phase, which :class:`Deadlines` turns into the total timeout
when the deadline cut the phase short."""


class ResponseBody:
    """The body of a response as it arrives, for :class:`~sansnet.StreamingResponse`,
    which reads it once (never again after b"") and releases it exactly once. A
    transport returns its responses' bodies as subclasses of this."""

    async def read(self) -> bytes:
        """The next piece of the raw (still encoded) body; b"" at the end."""
        raise NotImplementedError

    async def release(self, *, complete: bool) -> None:
        """Give back what the body holds; ``complete``: it was read to the end."""
        raise NotImplementedError


class StreamedBody:
    """A sync or async iterable of bytes as an async iterator (not replayable).

    :meth:`aclose` closes the caller's async generator when the upload stops early
    (an error, a cancellation), so it is not left for the garbage collector.
    """

    __slots__ = ("_async", "_iterator")

    def __init__(self, source: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._async: AsyncIterator[bytes] | None = None
        self._iterator: Iterator[bytes] | None = None
        read = getattr(source, "read", None)
        if callable(read):
            # A file (open(path, "rb"), io.BytesIO, anyio's or aiofiles' async files):
            # read in pieces of FILE_CHUNK, not iterated, which gives lines (a binary
            # file without newlines was one chunk, read whole into memory).
            if inspect.iscoroutinefunction(read):
                self._async = _read_async_file(read)
            else:
                self._iterator = _read_file(read)
        elif isinstance(source, AsyncIterable):
            self._async = aiter(source)
        else:
            self._iterator = iter(source)

    def __aiter__(self) -> StreamedBody:
        return self

    async def __anext__(self) -> bytes:
        if self._async is not None:
            return _chunk(await self._async.__anext__())
        assert self._iterator is not None
        try:
            chunk = next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None
        return _chunk(chunk)

    async def aclose(self) -> None:
        close = getattr(self._async, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()


FILE_CHUNK = 64 * 1024
"""The size of the reads of a file given as a request body."""


def _read_file(read: Any) -> Iterator[bytes]:
    while chunk := read(FILE_CHUNK):
        yield chunk


async def _read_async_file(read: Any) -> AsyncIterator[bytes]:
    while chunk := await read(FILE_CHUNK):
        yield chunk


def _chunk(chunk: Any) -> bytes:
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise InvalidArgument(f"A streamed body must yield bytes, not {type(chunk).__name__}.")
