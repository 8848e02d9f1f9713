"""Serving files from a directory: the handler behind ``sansnet serve DIR``.

``StaticFiles(directory)`` is a request handler for :func:`sansnet.serve`: GET and HEAD
of files (MIME type from the name, ``ETag`` and ``Last-Modified`` with
``If-None-Match``/``If-Modified-Since`` answered 304, an ``If-Modified-Since`` that is
not an HTTP-date in GMT ignored, single ``Range`` requests answered 206 or 416, with an
``If-Range`` that is not the current ETag the whole file), ``index.html`` for directories, and an HTML listing when a directory has no
index. Paths are confined to the directory: ``..``, absolute paths and symbolic links
that lead outside it get 404, and so does a file asked for as a directory (with a final
slash, ``/file.txt/``). A directory asked for without its final slash is
redirected (301) to the path asked for with the slash added, its ``.`` and ``..``
segments removed as text and its empty ones dropped (a link to a directory keeps its
own name; never a ``//host`` the request slipped in). A file is opened once, when its
response is built: the head describes what that descriptor holds and the body is read
from it, so a file replaced meanwhile (an atomic deploy renaming a new file over it) is
served as it was when opened, whole. Large files are streamed in 64 KiB pieces, read in
a worker thread.

Every file under the directory is served, names that begin with a dot (``.env``,
``.git/``) included, as ``python -m http.server`` and Starlette's ``StaticFiles`` do:
point it at a directory meant to be public, not at a project's root.
"""

from __future__ import annotations

import html
import mimetypes
import os
import re
import stat
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote

import anyio

from sansnet.errors import InvalidArgument

from .models import ServeRequest, ServeResponse

__all__ = ["StaticFiles"]

CHUNK = 64 * 1024

# O_NONBLOCK: a FIFO put in the file's place after its stat() must not hang the open (it
# is then refused, as every file that is not regular); O_BINARY: no newline translation
# on Windows. Python's descriptors are not inherited by child processes already.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class StaticFiles:
    """A request handler serving the files under ``directory`` (see the module docstring).

    ``listing``: show an HTML index of directories without ``index.html``.

    A response with a file's bytes holds that file open in its ``body``: the server
    closes it once sent or cut short. Code that calls the handler itself and does not
    send the response closes it with ``await response.body.aclose()``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, listing: bool = True) -> None:
        try:
            self.root = Path(directory).resolve()
            is_dir = self.root.is_dir()
        except (TypeError, ValueError, OSError) as exc:  # not a path; a NUL; too long
            raise InvalidArgument(
                f"StaticFiles takes the path of a directory, not {directory!r} ({exc})."
            ) from None
        if not is_dir:
            raise InvalidArgument(f"{directory!s} is not a directory.")
        self.listing = listing

    async def __call__(self, request: ServeRequest) -> ServeResponse:
        if request.method not in ("GET", "HEAD"):
            return ServeResponse(405, {"Allow": "GET, HEAD"}, "Only GET and HEAD are allowed.\n")
        path = self._resolve(request.path)
        if path is None:
            return _not_found()
        try:
            file, info = await anyio.to_thread.run_sync(_open, path)
        except OSError:
            return _not_found()
        # From here to the response's return no await: a file opened is either closed
        # here or handed to the server in the response's body, which closes it.
        if file is not None and _names_a_directory(request.path):
            # "/data.txt/" or "/data.txt/.": the path resolves to the file, but the open()
            # behind it fails (ENOTDIR); nginx and Apache answer 404.
            file.close()
            return _not_found()
        if stat.S_ISDIR(info.st_mode):
            if not request.path.endswith("/"):
                location = _directory_location(request.path)
                if request.raw_query:
                    location += "?" + request.raw_query
                return ServeResponse(301, {"Location": location}, "")
            index = self._confine(path / "index.html")
            try:
                if index is None:  # a link that leads out of the directory: no index
                    raise FileNotFoundError
                file, info = await anyio.to_thread.run_sync(_open, index)
                path = index
            except OSError:
                if not self.listing:
                    return _not_found()
                return await self._listing(path, request.path)
        if file is None:  # not a regular file (a FIFO, a device, a socket, index.html/)
            return _not_found()
        try:
            return self._file(request, path, file, info)
        except BaseException:
            file.close()
            raise

    def _resolve(self, url_path: str) -> Path | None:
        # surrogateescape: %FF finds the file whose name has the byte 0xFF (not UTF-8).
        relative = unquote(url_path, errors="surrogateescape").lstrip("/")
        if "\x00" in relative:
            return None
        return self._confine(self.root / relative)

    def _confine(self, path: Path) -> Path | None:
        """``path`` resolved, or None when it is not inside the directory."""
        try:
            candidate = path.resolve()
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
            return None
        if candidate != self.root and self.root not in candidate.parents:
            return None  # "..", or a link that leads out of the directory
        return candidate

    def _file(
        self, request: ServeRequest, path: Path, file: BinaryIO, info: os.stat_result
    ) -> ServeResponse:
        """The response serving ``file`` (open, ``info`` its fstat): it reads and closes
        the file as its body is sent, or ``file`` is closed here when no body is sent."""
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        headers: dict[str, str] = {
            "Content-Type": _content_type(path),
            "ETag": etag,
            "Last-Modified": formatdate(info.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        if _not_modified(request, etag, info.st_mtime):
            file.close()
            return ServeResponse(304, headers, b"")
        size = info.st_size
        start, end = 0, size - 1
        status = 200
        byte_range = request.headers.get("range")
        if byte_range and _if_range_matches(request, etag):
            parsed = _parse_range(byte_range, size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                file.close()
                return ServeResponse(416, headers, b"")
            if parsed != (0, size - 1):
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        if request.method == "HEAD" or length == 0:
            file.close()
            return ServeResponse(status, headers, b"")
        return ServeResponse(status, headers, _FileBody(file, start, length))

    async def _listing(self, directory: Path, url_path: str) -> ServeResponse:
        entries = await anyio.to_thread.run_sync(
            lambda: sorted(directory.iterdir(), key=lambda p: (not p.is_dir(), p.name))
        )
        title = html.escape(unquote(url_path))
        rows = ['<li><a href="../">../</a></li>'] if url_path != "/" else []
        for entry in entries:
            name = entry.name + ("/" if entry.is_dir() else "")
            shown = html.escape(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            rows.append(f'<li><a href="{_quote(name)}">{shown}</a></li>')
        page = (
            f"<!doctype html><html><head><meta charset=utf-8><title>Index of {title}</title></head>"
            f"<body><h1>Index of {title}</h1><ul>{''.join(rows)}</ul></body></html>\n"
        )
        return ServeResponse(200, {"Content-Type": "text/html; charset=utf-8"}, page)


def _quote(name: str) -> str:
    """Percent-encode a file name; a name that is not UTF-8 keeps its raw bytes."""
    return quote(name, errors="surrogateescape")


def _directory_location(url_path: str) -> str:
    """Where a directory asked for without its final slash is redirected: the request's
    path with the slash, its "." and ".." segments removed as text (RFC 3986 section
    5.2.4, ".." stopping at the root) and its empty ones dropped, as ``python -m
    http.server`` keeps the path asked for: a link to a directory keeps its own name
    (/latest/, not the target's /releases/v2/). Never two leading slashes: "//evil.example/.."
    (or "/%2Fevil.example%2F..") would make a scheme-relative Location, an open
    redirect (CVE-2021-28861 in http.server)."""
    segments: list[str] = []
    # Decoded first, as _resolve does: "%2F" separates segments there too.
    for segment in unquote(url_path, errors="surrogateescape").split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "".join(_quote(segment) + "/" for segment in segments)


def _open(path: Path) -> tuple[BinaryIO | None, os.stat_result]:
    """In a worker thread: ``path`` opened for reading and the fstat() of that
    descriptor, when it is a regular file; else None and its stat() (a directory...),
    nothing left open. OSError when it cannot be opened."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device is never opened
        return None, info
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)  # what is served: the path may have been replaced since
        if stat.S_ISREG(info.st_mode):
            return os.fdopen(fd, "rb", buffering=0), info
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None, info


class _FileBody:
    """A response body: ``length`` bytes of ``file`` from ``start``, read ``CHUNK`` at a
    time in a worker thread. The file is closed with the last read (before its bytes go
    out), when it ends early (truncated), when a read fails, and by :meth:`aclose`, which
    the server calls when the response ends before its body does (the client left, the
    task was cancelled, the head could not be sent), read or not."""

    __slots__ = ("_file", "_left", "_position")

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self._file: BinaryIO | None = file
        self._position = start
        self._left = length

    def __aiter__(self) -> _FileBody:
        return self

    async def __anext__(self) -> bytes:
        file = self._file
        if file is None:
            raise StopAsyncIteration
        size = min(CHUNK, self._left)
        try:
            chunk = await anyio.to_thread.run_sync(
                _read_chunk, file, self._position, size, size == self._left
            )
        except BaseException:
            await self.aclose()
            raise
        self._position += len(chunk)
        self._left -= len(chunk)
        if len(chunk) < size or self._left <= 0:
            self._file = None  # closed by _read_chunk
            if not chunk:  # the file shrank: the server sees the body end short
                raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()  # a descriptor opened for reading: nothing to flush, no wait


def _read_chunk(file: BinaryIO, position: int, size: int, last: bool) -> bytes:
    """In a worker thread: ``size`` bytes of ``file`` at ``position`` (fewer at its
    end); the file closed after the ``last`` read and after a short one."""
    try:
        file.seek(position)
        chunk = file.read(size)
    except BaseException:
        file.close()
        raise
    if last or len(chunk) < size:
        file.close()
    return chunk


def _names_a_directory(url_path: str) -> bool:
    """The path ends with a slash, or with "/." (also percent-encoded)."""
    last = unquote(url_path, errors="surrogateescape").rpartition("/")[2]
    return last in ("", ".")


def _not_found() -> ServeResponse:
    return ServeResponse(404, {"Content-Type": "text/plain; charset=utf-8"}, "Not found.\n")


def _content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if kind is None or encoding is not None:
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        return f"{kind}; charset=utf-8"
    return kind


def _not_modified(request: ServeRequest, etag: str, mtime: float) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since:
        when = _http_date(since)
        # Not an HTTP-date: ignored (RFC 9110 section 13.1.3), the full response.
        return when is not None and int(mtime) <= when
    return False


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = f"(?P<month>{'|'.join(_MONTHS)})"
_TIME = "(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_HTTP_DATES = [  # RFC 9110 section 5.6.7; the names are case-sensitive
    # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    re.compile(f"{_DAY}, (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT"),
    # rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
    re.compile(
        "(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, "
        f"(?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}}) {_TIME} GMT"
    ),
    # asctime-date: Sun Nov  6 08:49:37 1994 (GMT too, though it does not say so)
    re.compile(f"{_DAY} {_MONTH} (?P<day>[ 0-9][0-9]) {_TIME} (?P<year>[0-9]{{4}})"),
]


def _http_date(value: str) -> int | None:
    """The POSIX time of an HTTP-date (RFC 9110 section 5.6.7), always GMT; None when
    ``value`` is not one. (email.utils read a date without a zone, asctime's included,
    as local time, and took forms HTTP does not have.)"""
    value = value.strip(" \t")
    for pattern in _HTTP_DATES:
        match = pattern.fullmatch(value)
        if match is not None:
            break
    else:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:  # rfc850-date: the year within 50 of this one
        this_year = datetime.now(timezone.utc).year
        year += this_year - this_year % 100
        if year > this_year + 50:
            year -= 100
        elif year < this_year - 50:
            year += 100
    try:
        when = datetime(
            year,
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            min(int(match["second"]), 59),  # 60, a leap second
            tzinfo=timezone.utc,
        )
    except ValueError:  # 31 Feb, hour 24, ...
        return None
    return int(when.timestamp())


def _if_range_matches(request: ServeRequest, etag: str) -> bool:
    if_range = request.headers.get("if-range")
    return if_range is None or if_range.strip() == etag


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range (RFC 9110 section 14.1.2); None when unsatisfiable. A field
    that does not parse (positions are 1*DIGIT: no sign, no ``_``, no inner spaces) or
    names another unit is ignored, as are several ranges (a multipart answer is
    optional): both get the whole file."""
    unit, _, spec = value.partition("=")
    if unit.strip(" \t").lower() != "bytes" or "," in spec:
        return (0, size - 1)
    first, dash, last = spec.strip(" \t").partition("-")
    if not dash or not _is_position(last, empty_ok=bool(first)) or not _is_position(first):
        return (0, size - 1)  # "bytes=0_1-0_3", "bytes=+2-", "bytes=--5", "bytes=-": ignored
    if first == "":
        suffix = _position(last)
        if suffix <= 0:
            return None
        return (max(0, size - suffix), size - 1)
    start = _position(first)
    end = _position(last) if last else size - 1
    if start >= size or end < start:
        return None
    return (start, min(end, size - 1))


def _is_position(text: str, *, empty_ok: bool = True) -> bool:
    """``text`` is 1*DIGIT (ASCII digits only: int() also takes "+1", "1_0", " 1" and
    other scripts' digits), or empty where ``empty_ok``."""
    return text.isascii() and text.isdigit() if text else empty_ok


def _position(digits: str) -> int:
    """The value of 1*DIGIT; one past any file size when it has over 19 digits (int()
    refuses over 4300)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 1 << 64
