"""Events and sentinels are plain values; caches and optional codings degrade cleanly."""

from __future__ import annotations

import pickle

import pytest

from sansnet import protocol
from sansnet.errors import DecodingError
from sansnet.protocol import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Headers,
    PeerClosed,
    RequestHead,
    ResponseHead,
    ServerConnection,
    decoding,
    events,
    http11,
)

from .helpers import feed


def test_events_compare_by_value_and_print_their_fields() -> None:
    assert Data(b"a") == Data(b"a")
    assert Data(b"a") != Data(b"b")
    assert Data(b"a") != EndOfMessage()
    assert (Data(b"a") == 5) is False
    assert PeerClosed() == PeerClosed()
    assert repr(Data(b"x")) == "Data(data=b'x')"
    assert repr(ResponseHead(200)) == (
        "ResponseHead(headers=Headers([]), http_version='1.1', reason='', status_code=200)"
    )
    assert RequestHead("GET", "/").headers == Headers()
    assert EndOfMessage().trailers == Headers()


@pytest.mark.parametrize("module", [protocol, events])
def test_the_old_name_of_peer_closed_still_works_with_a_warning(module: object) -> None:
    with pytest.warns(DeprecationWarning, match="ConnectionClosed is now PeerClosed"):
        old = module.ConnectionClosed  # type: ignore[attr-defined]
    assert old is PeerClosed
    with pytest.raises(AttributeError, match="has no attribute 'ConnectionGone'"):
        module.ConnectionGone  # type: ignore[attr-defined]  # noqa: B018


def test_sentinels() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(PAUSED) == "PAUSED"
    assert pickle.loads(pickle.dumps(NEED_DATA)) is NEED_DATA


def test_received_name_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http11, "_NAMES", {})
    monkeypatch.setattr(http11, "_NAMES_SIZE", 2)
    conn = ServerConnection()
    [request, _] = feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert list(request.headers) == ["host", "a", "b", "c"]
    assert request.headers.raw_items()[0] == ("Host", "a")
    assert len(http11._NAMES) == 2


def test_without_the_optional_packages_br_and_zstd_are_not_offered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoding, "_brotli", None)
    monkeypatch.setattr(decoding, "_zstd", None)
    assert decoding.accept_encoding() == "gzip, deflate"
    with pytest.raises(DecodingError, match=r"sansnet\[compression\]"):
        decoding.ContentDecoder("br")
