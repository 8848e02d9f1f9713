"""Client and server joined in memory, and hypothesis properties of the HTTP engine:
round trips, arbitrary segmentation, arbitrary garbage, and agreement with h11."""

from __future__ import annotations

import itertools

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansnet.errors import RemoteProtocolError
from sansnet.protocol import (
    NEED_DATA,
    ClientConnection,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    RequestHead,
    ResponseHead,
    Sentinel,
    ServerConnection,
)

from .helpers import ConnectionPair, feed

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
# field values: visible ASCII, obs-text and inner spaces/tabs; no leading/trailing whitespace
# (non-ASCII text is refused; bytes values pass through: test_http_server.py)
value_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
values = st.builds(
    lambda a, b: (a + b).strip(" \t"),
    st.text(alphabet=value_chars, max_size=20),
    st.text(alphabet=st.sampled_from(" \tabc"), max_size=3),
)
field_names = tokens.filter(
    lambda n: (
        n.lower()
        not in {"host", "content-length", "transfer-encoding", "connection", "upgrade", "expect"}
    )
)
targets = st.builds(
    lambda path, query: "/" + path + (("?" + query) if query else ""),
    st.text(alphabet="abcdefghij/%-._~0123456789", max_size=20),
    st.text(alphabet="abc=&%+0123456789", max_size=20),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) | tokens.map(
    str.upper
)
bodies = st.binary(max_size=300)


def body_of(events: list[Event]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Data))


@given(methods, targets, st.lists(st.tuples(field_names, values), max_size=8), bodies)
def test_request_fields_round_trip(
    method: str, target: str, fields: list[tuple[str, str]], body: bytes
) -> None:
    pair = ConnectionPair()
    pair.client.send_request(method, target, fields, body)
    events = pair.to_server()
    request = events[0]
    assert isinstance(request, RequestHead)
    assert (request.method, request.target, request.http_version) == (method, target, "1.1")
    received = [(n, v) for n, v in request.headers.raw_items()]
    for field in fields:
        assert field in received
    assert body_of(events) == body
    assert events[-1] == EndOfMessage()


@given(
    st.integers(min_value=200, max_value=599).filter(lambda s: s not in (204, 205, 304)),
    st.lists(st.tuples(field_names, values), max_size=8),
    bodies,
    st.booleans(),
)
def test_response_fields_round_trip(
    status: int, fields: list[tuple[str, str]], body: bytes, streamed: bool
) -> None:
    pair = ConnectionPair()
    pair.client.send_request("GET", "/")
    pair.to_server()
    if streamed:
        pair.server.start_response(status, fields)
        pair.server.send_data(body[:10])
        pair.server.send_data(body[10:])
        pair.server.send_end()
    else:
        pair.server.send_response(status, fields, body)
    events = pair.to_client()
    response = events[0]
    assert isinstance(response, ResponseHead)
    assert response.status_code == status
    for field in fields:
        assert field in response.headers.raw_items()
    assert body_of(events) == body
    assert pair.client.reusable
    assert pair.server.idle


def split_points(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12).map(sorted)


def segments(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


PIPELINE = (
    b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /b?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"
    b"GET /c HTTP/1.1\r\nHost: x\r\nX: \xe9\r\n\r\n"
)


def serve_all(chunks: list[bytes]) -> list[object]:
    """Feed a server these chunks, answering each request; return normalized events."""
    conn = ServerConnection()
    out: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if isinstance(event, Sentinel):
                if event is NEED_DATA:
                    break
                continue
            if isinstance(event, Data) and out and isinstance(out[-1], bytes):
                out[-1] += event.data  # Data pieces need not align with the input
            else:
                out.append(event.data if isinstance(event, Data) else event)
            if isinstance(event, EndOfMessage):
                conn.send_response(200, [], b"ok")
                conn.data_to_send()
    return out


@given(split_points(PIPELINE))
def test_any_segmentation_of_requests_gives_the_same_events(points: list[int]) -> None:
    assert serve_all(segments(PIPELINE, points)) == serve_all([PIPELINE])


RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
)


@given(split_points(RESPONSES))
def test_any_segmentation_of_a_response_gives_the_same_events(points: list[int]) -> None:
    def run(chunks: list[bytes]) -> tuple[int, bytes, bool]:
        conn = ClientConnection("a")
        conn.send_request("GET", "/")
        events: list[Event] = []
        for chunk in chunks:
            events += feed(conn, chunk)
        assert isinstance(events[0], InformationalResponse)  # the 100 Continue
        head = events[1]
        assert isinstance(head, ResponseHead)
        return head.status_code, body_of(events), isinstance(events[-1], EndOfMessage)

    assert run(segments(RESPONSES, points)) == run([RESPONSES]) == (200, b"wikipedia", True)


garbage = st.binary(max_size=200) | st.builds(
    lambda prefix, tail: prefix + tail,
    st.sampled_from(
        [
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
    ),
    st.binary(max_size=120),
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(garbage, st.booleans())
def test_garbage_never_raises_anything_but_remote_protocol_error(data: bytes, eof: bool) -> None:
    server = ServerConnection()
    try:
        feed(server, data, eof=eof)
    except RemoteProtocolError as error:
        answer = server.data_to_send()
        assert answer.startswith(b"HTTP/1.1 %d " % error.status_hint)
        assert b"\r\nconnection: close\r\n" in answer
    else:
        if server.our_state.name == "SEND_RESPONSE":
            server.send_response(200)
            try:
                feed(server, b"")
            except RemoteProtocolError:
                pass  # our response is already out: nothing more to answer
    client = ClientConnection("a")
    client.send_request("GET", "/")
    try:
        feed(client, data, eof=eof)
    except RemoteProtocolError:
        assert client.must_close


h11_requests = st.builds(
    lambda method, target, fields, body: (method, target, fields, body),
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    targets,
    st.lists(st.tuples(field_names, values.filter(lambda v: v.isascii())), max_size=6),
    bodies,
)


@given(h11_requests, st.booleans())
def test_server_agrees_with_h11_on_requests_h11_writes(
    request: tuple[str, str, list[tuple[str, str]], bytes], chunked: bool
) -> None:
    method, target, fields, body = request
    h11_client = h11.Connection(h11.CLIENT)
    framing = (
        [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(len(body)))]
    )
    wire = h11_client.send(
        h11.Request(method=method, target=target, headers=[("Host", "x"), *fields, *framing])
    )
    wire += h11_client.send(h11.Data(data=body)) if body else b""
    wire += h11_client.send(h11.EndOfMessage())
    events = feed(ServerConnection(), wire)
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.target) == (method, target)
    assert head.headers == Headers([("Host", "x"), *fields, *framing])
    assert body_of(events) == body


@given(
    st.integers(min_value=200, max_value=599),
    st.lists(st.tuples(field_names, values.filter(lambda v: v.isascii())), max_size=6),
    bodies,
)
def test_h11_agrees_with_responses_we_write(
    status: int, fields: list[tuple[str, str]], body: bytes
) -> None:
    server = ServerConnection()
    feed(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    if status in (204, 205, 304):
        body = b""
    server.send_response(status, fields, body)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(server.data_to_send())
    head = client.next_event()
    assert isinstance(head, h11.Response)
    assert head.status_code == status
    received = [(n.decode(), v.decode()) for n, v in head.headers.raw_items()]
    for field in fields:
        assert field in received
    data = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            data += event.data
        else:
            assert isinstance(event, h11.EndOfMessage)
            break
    assert data == body
