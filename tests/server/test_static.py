"""StaticFiles, the handler behind `sansnet serve DIR`, driven in memory by the testing kit."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

import sansnet
from sansnet import ServeRequest, ServeResponse
from sansnet.protocol import RequestHead
from sansnet.static import StaticFiles, _http_date, _parse_range
from sansnet.testing import Faults, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "data.txt").write_bytes(b"0123456789")
    (tmp_path / "big.bin").write_bytes(os.urandom(200_000))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a b.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "index.html").write_text("empty index")
    (tmp_path / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    (tmp_path / "escape.txt").symlink_to(outside)
    return tmp_path


async def test_files_types_and_index(site: Path) -> None:
    async with serve(StaticFiles(site)) as client:
        home = await client.request("/")
        assert (home.status_code, home.text, home.headers["content-type"]) == (
            200,
            "<h1>home</h1>",
            "text/html; charset=utf-8",
        )
        data = await client.request("/data.txt")
        assert data.body == b"0123456789"
        assert data.headers["content-type"] == "text/plain; charset=utf-8"
        assert data.headers["accept-ranges"] == "bytes"
        big = await client.request("/big.bin")
        assert big.body == (site / "big.bin").read_bytes()
        assert (await client.request("/archive.tar.gz")).headers[
            "content-type"
        ] == "application/octet-stream"
        assert (
            (await client.request("/sub/a%20b.json"))
            .headers["content-type"]
            .startswith("application/json")
        )


async def test_head_and_methods(site: Path) -> None:
    async with serve(StaticFiles(site)) as client:
        head = await client.request("/data.txt", method="HEAD")
        assert (head.status_code, head.body, head.headers["content-length"]) == (200, b"", "10")
        post = await client.request("/data.txt", method="POST")
        assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


async def test_directories(site: Path) -> None:
    async with serve(StaticFiles(site)) as client:
        moved = await client.request("/sub?x=1", follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (301, "/sub/?x=1")
        listing = await client.request("/sub/")
        assert 'href="a%20b.json"' in listing.text
        assert 'href="../"' in listing.text
        assert (await client.request("/empty/")).text == "empty index"
    async with serve(StaticFiles(site, listing=False)) as client:
        assert (await client.request("/sub/")).status_code == 404


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("//evil.example/..", "/"),
        ("/%2Fevil.example%2F..", "/"),
        ("//evil.example/%2e%2e", "/"),
        ("//sub", "/sub/"),
        ("/%2F%2Fsub?q=1", "/sub/?q=1"),
        ("/sub/../sub", "/sub/"),
        ("/a%20dir", "/a%20dir/"),
        # A link to a directory keeps its own name, as in nginx and http.server: the
        # Location was the target's path (/releases/v2/), the public /latest/ unreached.
        ("/latest", "/latest/"),
        ("/latest?v=2", "/latest/?v=2"),
        ("//latest", "/latest/"),
        ("/releases/../latest", "/latest/"),
        ("//evil.example/../latest", "/latest/"),
        ("/latest/%2e", "/latest/"),
    ],
)
async def test_a_directory_redirect_stays_on_this_site(
    site: Path, target: str, location: str
) -> None:
    """The Location is the request's path with its dot segments and empty segments
    removed as text: a leading "//host" would make it scheme-relative, an open redirect
    (CVE-2021-28861 in http.server)."""
    (site / "a dir").mkdir()
    (site / "releases" / "v2").mkdir(parents=True)
    (site / "latest").symlink_to(Path("releases") / "v2")
    async with serve(StaticFiles(site)) as client, await client.connect() as conn:
        await conn.send(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = await conn.receive_until_closed(timeout=5)
    assert received.startswith(b"HTTP/1.1 301 ")
    assert f"\r\nLocation: {location}\r\n".encode() in received


async def test_a_symlinked_directory_is_served_under_its_own_name(site: Path) -> None:
    (site / "releases" / "v2").mkdir(parents=True)
    (site / "releases" / "v2" / "index.html").write_text("v2")
    (site / "latest").symlink_to(Path("releases") / "v2")
    async with serve(StaticFiles(site)) as client:
        moved = await client.request("/latest", follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (301, "/latest/")
        assert (await client.request("/latest")).text == "v2"  # the redirect followed
        (site / "releases" / "v2" / "index.html").unlink()
        listing = await client.request("/latest/")
        assert (listing.status_code, "Index of /latest/" in listing.text) == (200, True)


@pytest.mark.parametrize(
    "path", ["/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/escape.txt", "/nope", "/a%00b"]
)
async def test_nothing_outside_the_directory(site: Path, path: str) -> None:
    async with serve(StaticFiles(site)) as client:
        assert (await client.request(path)).status_code == 404


@pytest.mark.parametrize(
    "path", ["/data.txt/", "/data.txt/.", "/data.txt%2F", "/sub/a%20b.json/", "/data.txt//"]
)
async def test_a_file_asked_for_as_a_directory_is_not_found(site: Path, path: str) -> None:
    # The trailing slash (or "/.") was normalised away and the file served; nginx and
    # Apache answer 404, as open("data.txt/") fails with ENOTDIR. The handler is called
    # directly: the client removes dot segments before sending.
    files = StaticFiles(site)

    async def get(target: str) -> ServeResponse:
        response = await files(ServeRequest(RequestHead("GET", target), b"", "127.0.0.1", 1))
        aclose = getattr(response.body, "aclose", None)
        if aclose is not None:  # the file it holds open, which the server would close
            await aclose()
        return response

    assert (await get(path)).status == 404
    assert (await get("/data.txt")).status == 200
    assert (await get("/data.txt/../index.html")).status == 200
    for directory in ("/sub", "/sub/."):  # a directory without its slash: still 301
        redirect = await get(directory)
        assert (redirect.status, redirect.headers["Location"]) == (301, "/sub/")
    async with serve(files) as client:  # over the wire too
        assert (await client.request("/data.txt/")).status_code == 404


async def test_conditional_requests(site: Path) -> None:
    async with serve(StaticFiles(site)) as client:
        first = await client.request("/data.txt")
        etag = first.headers["etag"]
        assert (
            await client.request("/data.txt", headers={"If-None-Match": etag})
        ).status_code == 304
        assert (
            await client.request("/data.txt", headers={"If-None-Match": f'"x", W/{etag}'})
        ).status_code == 304
        assert (
            await client.request("/data.txt", headers={"If-None-Match": "*"})
        ).status_code == 304
        assert (
            await client.request("/data.txt", headers={"If-None-Match": '"other"'})
        ).status_code == 200
        later = formatdate((site / "data.txt").stat().st_mtime + 60, usegmt=True)
        assert (
            await client.request("/data.txt", headers={"If-Modified-Since": later})
        ).status_code == 304
        assert (
            await client.request("/data.txt", headers={"If-Modified-Since": "garbage"})
        ).status_code == 200
        assert (
            await client.request(
                "/data.txt", headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}
            )
        ).status_code == 200


@pytest.fixture
def tokyo_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 9 hours ahead of GMT (a POSIX TZ rule: no tz database needed)."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_if_modified_since_takes_http_dates_only_and_in_gmt(
    site: Path, tokyo_time: None
) -> None:
    # email.utils read a date without a zone as local time, asctime-date's too (valid,
    # and GMT): 9 h off here. A value that is no HTTP-date is ignored (RFC 9110 section
    # 13.1.3): "... 00:00:00" without GMT was taken, a 304.
    hour_later = (site / "data.txt").stat().st_mtime + 3600
    asctime = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(hour_later))
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(hour_later))
    async with serve(StaticFiles(site)) as client:

        async def status(since: str) -> int:
            response = await client.request("/data.txt", headers={"If-Modified-Since": since})
            return response.status_code

        assert await status(asctime) == 304  # was 200: read as 9 h earlier
        assert await status(rfc850) == 304
        assert await status(formatdate(hour_later, usegmt=True)) == 304
        for not_a_date in (
            "Mon, 01 Jan 3000 00:00:00",  # no GMT: was 304
            "Mon, 01 Jan 3000 00:00:00 +0000",
            "Mon, 01 Jan 3000 00:00:00 -0000",  # "no zone" to email.utils: local time
            "1 Jan 3000 00:00:00 GMT",
            "mon, 01 jan 3000 00:00:00 gmt",  # the names are case-sensitive
            "Mon, 01 Jan 3000 00:00:00 GMT, Tue, 02 Jan 3000 00:00:00 GMT",
            "Mon, 31 Feb 3000 00:00:00 GMT",
            "Mon, 01 Jan 3000 24:00:00 GMT",
        ):
            assert await status(not_a_date) == 200, not_a_date


def test_http_date_forms() -> None:
    gmt = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
    assert _http_date("Sun, 06 Nov 1994 08:49:37 GMT") == gmt
    assert _http_date("Sunday, 06-Nov-94 08:49:37 GMT") == gmt
    assert _http_date("Sun Nov  6 08:49:37 1994") == gmt
    assert _http_date("Sun, 06 Nov 1994 08:49:60 GMT") == gmt + 22  # a leap second: :59
    assert _http_date("Sun, 06 Nov 1994 08:49:37") is None
    assert _http_date("Sun, \u0660\u0666 Nov 1994 08:49:37 GMT") is None  # not ASCII digits


@pytest.mark.parametrize(
    ("value", "status", "body"),
    [
        ("bytes=2-4", 206, b"234"),
        ("bytes=7-", 206, b"789"),
        ("bytes=-3", 206, b"789"),
        ("bytes=5-100", 206, b"56789"),
        ("bytes=0-", 200, b"0123456789"),
        ("bytes=10-", 416, b""),
        ("bytes=-0", 416, b""),
        ("bytes=4-2", 416, b""),
        ("bytes=0-1,3-4", 200, b"0123456789"),
        ("lines=1-2", 200, b"0123456789"),
        ("bytes=x-y", 200, b"0123456789"),
        ("bytes", 200, b"0123456789"),
        ("bytes=-", 200, b"0123456789"),
        ("bytes= 2-4", 206, b"234"),  # OWS around the range-set
        ("bytes=5-" + "9" * 5000, 206, b"56789"),  # over int()'s 4300 digits: no 500
        ("bytes=" + "9" * 5000 + "-", 416, b""),
        # Not 1*DIGIT: int() took them (206 for 1..3), RFC 9110 says ignore the field.
        ("bytes=0_1-0_3", 200, b"0123456789"),
        ("bytes=+2-", 200, b"0123456789"),
        ("bytes=2-+4", 200, b"0123456789"),
        ("bytes=-+3", 200, b"0123456789"),
        ("bytes=2 - 4", 200, b"0123456789"),
        ("bytes=--5", 200, b"0123456789"),  # was 416
    ],
)
async def test_ranges(site: Path, value: str, status: int, body: bytes) -> None:
    async with serve(StaticFiles(site)) as client:
        response = await client.request("/data.txt", headers={"Range": value})
        assert (response.status_code, response.body) == (status, body)
        if status == 416:
            assert response.headers["content-range"] == "bytes */10"


async def test_if_range(site: Path) -> None:
    async with serve(StaticFiles(site)) as client:
        etag = (await client.request("/data.txt")).headers["etag"]
        matching = await client.request(
            "/data.txt", headers={"Range": "bytes=0-0", "If-Range": etag}
        )
        assert matching.body == b"0"
        stale = await client.request(
            "/data.txt", headers={"Range": "bytes=0-0", "If-Range": '"old"'}
        )
        assert (stale.status_code, stale.body) == (200, b"0123456789")


def _descriptors_of(path: Path) -> int:
    """How many descriptors this process has open on ``path`` (also once it was
    replaced: Linux shows it as "PATH (deleted)")."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting open descriptors needs /proc/self/fd")
    target = os.path.realpath(path)
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed since
            continue
        count += link in (target, f"{target} (deleted)")
    return count


@pytest.mark.parametrize("new", [b"NEW:" * 30, b"NEW:" * 5], ids=["larger", "smaller"])
async def test_a_file_replaced_once_its_response_is_built_is_served_as_it_was(
    site: Path, new: bytes
) -> None:
    """An atomic deploy (the new file written, then renamed over the old) between the
    response's head and its body: the head came from a stat() of the path and the body
    from an open() of it later, so the new bytes went out under the old ETag and cut to
    the old length, or a body short of its Content-Length and a cut connection. The
    file is now opened once, the head from that descriptor, the body read from it."""
    path = site / "app.js"
    old = b"OLD;" * 10
    path.write_bytes(old)
    files = StaticFiles(site)

    async def deploy_after(request: ServeRequest) -> ServeResponse:
        response = await files(request)  # its head sent and its body read after this
        replacement = site / "app.js.new"
        replacement.write_bytes(new)
        os.replace(replacement, path)
        return response

    async with serve(files) as client:
        etag = (await client.request("/app.js", method="HEAD")).headers["etag"]
    async with serve(deploy_after) as client:
        response = await client.request("/app.js")
        assert (response.body, response.headers["content-length"]) == (old, str(len(old)))
        assert response.headers["etag"] == etag
        assert _descriptors_of(path) == 0
        later = await client.request("/app.js")  # the deploy's file, whole
        assert (later.body, later.headers["content-length"]) == (new, str(len(new)))
        assert later.headers["etag"] != etag


async def test_the_file_is_closed_however_the_response_ends(site: Path) -> None:
    """The file is opened as the response is built: every ending closes it, the body
    read to its end or not read at all (HEAD, 304, 416), the client gone before the
    head or partway through the body, the server stopped while it streams."""
    huge = site / "huge.bin"
    huge.write_bytes(b"x" * (4 * 1024 * 1024))
    (site / "empty.txt").write_bytes(b"")
    files = StaticFiles(site)
    bodies: list[object] = []  # kept: an unclosed file must not be saved by the collector

    async def handler(request: ServeRequest) -> ServeResponse:
        response = await files(request)
        bodies.append(response.body)
        return response

    async with serve(handler) as client:
        etag = (await client.request("/huge.bin", method="HEAD")).headers["etag"]
        for path, headers, status, size in [
            ("/huge.bin", {}, 200, huge.stat().st_size),
            ("/huge.bin", {"Range": "bytes=10-19"}, 206, 10),
            ("/huge.bin", {"Range": "bytes=-0"}, 416, 0),
            ("/huge.bin", {"If-None-Match": etag}, 304, 0),
            ("/huge.bin", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, 304, 0),
            ("/empty.txt", {}, 200, 0),
        ]:
            response = await client.request(path, headers=headers)
            assert (response.status_code, len(response.body)) == (status, size)
            assert _descriptors_of(huge) == 0
    get = b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    for cut in (10, 200_000):  # the client gone in the head, partway through the body
        async with (
            serve(handler, response_faults=Faults(close_after=cut)) as client,
            await client.connect() as conn,
        ):
            await conn.send(get)
            assert len(await conn.receive_until_closed(timeout=10)) == cut
        assert _descriptors_of(huge) == 0
    async with serve(handler) as client:  # stopped with the body partway sent
        conn = await client.connect()
        await conn.send(get)
        assert (await conn.receive(timeout=10)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert _descriptors_of(huge) == 1  # the body is being sent
    await conn.aclose()
    assert _descriptors_of(huge) == 0
    assert len(bodies) == 10


async def test_an_index_html_linking_outside_is_not_served(site: Path) -> None:
    # The index was stat'ed and served without the check the request path gets.
    (site / "sub" / "index.html").symlink_to(site / "escape.txt")  # itself a link out
    async with serve(StaticFiles(site)) as client:
        assert (await client.request("/sub/index.html")).status_code == 404
        listing = await client.request("/sub/")
        assert (listing.status_code, "secret" in listing.text) == (200, False)
    async with serve(StaticFiles(site, listing=False)) as client:
        assert (await client.request("/sub/")).status_code == 404


async def test_a_symlink_loop_is_not_found(site: Path) -> None:
    # Path.resolve raised RuntimeError("Symlink loop") on Python < 3.13: a 500.
    (site / "loop1").symlink_to("loop2")
    (site / "loop2").symlink_to("loop1")
    async with serve(StaticFiles(site)) as client:
        assert (await client.request("/loop1")).status_code == 404
        assert (await client.request("/loop1/x")).status_code == 404


async def test_a_file_name_that_is_not_utf8_is_listed_and_served(site: Path) -> None:
    # The listing raised UnicodeEncodeError on the name's surrogate escape: a 500.
    try:
        fd = os.open(os.fsencode(site / "sub") + b"/\xff.txt", os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"raw")
        os.close(fd)
    except OSError:
        pytest.skip("this file system wants UTF-8 names")
    async with serve(StaticFiles(site)) as client:
        listing = await client.request("/sub/")
        assert listing.status_code == 200
        assert '<a href="%FF.txt">\ufffd.txt</a>' in listing.text
        assert (await client.request("/sub/%FF.txt")).body == b"raw"


def test_parse_range_edge_cases() -> None:
    assert _parse_range("bytes=0-0", 1) == (0, 0)
    assert _parse_range("bytes=-5", 3) == (0, 2)
    assert _parse_range("bytes=0_1-0_3", 10) == (0, 9)  # ignored: the whole file
    assert _parse_range("bytes=--5", 10) == (0, 9)
    assert _parse_range("bytes=\u0662-4", 10) == (0, 9)  # int() takes other scripts' digits
    assert _parse_range("bytes=-0", 10) is None  # valid, unsatisfiable
    assert _parse_range("bytes=0001-0003", 10) == (1, 3)  # leading zeros are digits


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        StaticFiles(tmp_path / "missing")


@pytest.mark.parametrize("directory", ["site\x00", 123, None, b"/tmp", "x" * 5000])
def test_a_directory_argument_that_is_no_path_is_invalid_argument(directory: object) -> None:
    """Issue: StaticFiles("a\\x00b") raised a bare ValueError (embedded null byte) and
    StaticFiles(123) a bare TypeError from pathlib, a name too long a bare OSError, where
    a missing directory raised InvalidArgument."""
    with pytest.raises(sansnet.InvalidArgument, match="StaticFiles"):
        StaticFiles(directory)  # type: ignore[arg-type]
