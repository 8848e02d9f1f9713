"""HTTP/1.1 engine micro-benchmark: the cost of sansnet's layer over the h11 it drives.

    python bench/bench_http11.py                      # on h11_mypyc when installed
    SANSNET_PURE_H11=1 python bench/bench_http11.py   # on pure h11

One full request/response cycle, sansnet's sans-IO connections against bare h11 (the
same build sansnet drives) doing the same cycle, in the same process. Server cycle: parse
a realistic GET with 8 header fields, emit a 200 with a 13-byte body, be ready for the
next request. Client cycle: emit that GET, parse the 200 back, be ready for the next
request. "layer" is what sansnet adds per cycle: the head scan, the checks, the events
in sansnet's shape and the automatic next cycle. The pipelined row: a client's 500 GETs
arrive in one read (190 KB) and are answered one by one, figures per request; bare h11
keeps the backlog in its buffer, sansnet holds it back and hands h11 one scanned head
at a time.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import fmt_time, machine, per_call, table

from sansnet.protocol import H11_BUILD
from sansnet.protocol._h11 import h11  # the build sansnet drives: compare like with like
from sansnet.protocol.events import NEED_DATA, EndOfMessage
from sansnet.protocol.http11 import ClientConnection, ServerConnection

REQUEST = (
    b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=5f2b9c0e1a; theme=dark\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"date: Thu, 26 Nov 2026 10:00:00 GMT\r\n"
    b"server: bench\r\n"
    b"content-type: text/plain\r\n"
    b"content-length: 13\r\n"
    b"\r\n"
    b"Hello, world!"
)
BODY = b"Hello, world!"
RESPONSE_HEADERS = [("content-type", "text/plain")]
H11_RESPONSE_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
REQUEST_HEADERS = [
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=5f2b9c0e1a; theme=dark"),
    ("Cache-Control", "max-age=0"),
]
H11_REQUEST_HEADERS = [(b"Host", b"localhost:8080")] + [
    (name.encode(), value.encode()) for name, value in REQUEST_HEADERS
]
DEFAULTS = [("date", "Thu, 26 Nov 2026 10:00:00 GMT"), ("server", "bench")]
H11_DEFAULTS = [(b"date", b"Thu, 26 Nov 2026 10:00:00 GMT"), (b"server", b"bench")]


PIPELINED = 500  # requests in one read (190 KB: one 256 KiB read of the server), for the row below


def sansnet_server(requests: int = 1) -> object:
    conn = ServerConnection(default_headers=DEFAULTS)
    data = REQUEST * requests

    def cycle() -> None:  # ``requests`` cycles: the row divides by it
        conn.receive_data(data)
        for _ in range(requests):
            request = conn.next_event()
            end = conn.next_event()
            assert type(end) is EndOfMessage, (request, end)
            conn.send_response(200, RESPONSE_HEADERS, BODY)
            conn.data_to_send()
        assert conn.next_event() is NEED_DATA

    return cycle


def h11_server(requests: int = 1) -> object:
    conn = h11.Connection(h11.SERVER)
    data = REQUEST * requests

    def cycle() -> None:
        conn.receive_data(data)
        for _ in range(requests):
            request = conn.next_event()
            end = conn.next_event()
            assert type(end) is h11.EndOfMessage, (request, end)
            out = conn.send(
                h11.Response(status_code=200, headers=H11_DEFAULTS + H11_RESPONSE_HEADERS)
            )
            out += conn.send(h11.Data(data=BODY))
            out += conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        assert conn.next_event() is h11.NEED_DATA

    return cycle


def sansnet_client() -> object:
    conn = ClientConnection("localhost", 8080)

    def cycle() -> None:
        conn.send_request("GET", "/api/v1/items?page=2&sort=name", REQUEST_HEADERS)
        conn.data_to_send()
        conn.receive_data(RESPONSE)
        conn.next_event()
        conn.next_event()
        end = conn.next_event()
        assert type(end) is EndOfMessage
        assert conn.reusable

    return cycle


def h11_client() -> object:
    conn = h11.Connection(h11.CLIENT)

    def cycle() -> None:
        out = conn.send(
            h11.Request(
                method="GET", target="/api/v1/items?page=2&sort=name", headers=H11_REQUEST_HEADERS
            )
        )
        out += conn.send(h11.EndOfMessage())
        conn.receive_data(RESPONSE)
        conn.next_event()
        conn.next_event()
        end = conn.next_event()
        assert type(end) is h11.EndOfMessage
        conn.start_next_cycle()

    return cycle


def main() -> None:
    print(f"# HTTP/1.1 engine cycle — {machine()}, on {H11_BUILD}")
    rows = []
    for role, ours, theirs, requests in (
        ("server", sansnet_server, h11_server, 1),
        ("client", sansnet_client, h11_client, 1),
        (
            f"server, {PIPELINED} pipelined",
            partial(sansnet_server, PIPELINED),
            partial(h11_server, PIPELINED),
            PIPELINED,
        ),
    ):
        a = per_call(ours()) / requests  # type: ignore[arg-type]
        b = per_call(theirs()) / requests  # type: ignore[arg-type]
        rows.append([role, fmt_time(a), fmt_time(b), fmt_time(a - b), f"{a / b:.2f}"])
    print(
        table(
            "one request/response cycle",
            ["role", "sansnet", f"bare {H11_BUILD}", "layer", "ratio"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
