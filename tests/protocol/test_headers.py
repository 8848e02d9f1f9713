"""Headers: case-insensitive, ordered, multi-valued (SPEC.md, RFC 9110 section 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sansnet.errors import LocalProtocolError
from sansnet.protocol import ClientConnection, Headers


def test_lookup_is_case_insensitive_and_keys_are_lowercase() -> None:
    headers = Headers({"Content-Type": "text/plain", "X-Id": "7"})
    assert headers["content-type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert list(headers) == ["content-type", "x-id"]
    assert dict(headers.items()) == {"content-type": "text/plain", "x-id": "7"}


def test_repeated_fields_are_kept_in_order_and_joined_on_lookup() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("X", "1"), ("set-cookie", "b=2")])
    assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert headers["set-cookie"] == "a=1, b=2"
    assert headers.get("set-cookie") == "a=1, b=2"
    assert len(headers) == 2
    assert headers.multi_items() == [("set-cookie", "a=1"), ("x", "1"), ("set-cookie", "b=2")]
    assert headers.raw_items() == [("Set-Cookie", "a=1"), ("X", "1"), ("set-cookie", "b=2")]


def test_list_values_become_repeated_fields() -> None:
    headers = Headers({"Set-Cookie": ["a=1", "b=2"], "Vary": ("Accept",)})
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert headers.get_all("vary") == ["Accept"]


def test_bytes_and_int_values_are_accepted() -> None:
    headers = Headers([(b"X-Raw", b"\xe9"), ("Content-Length", 5)])
    assert headers["x-raw"] == "é"
    assert headers["content-length"] == "5"


def test_an_int_name_is_found_as_it_was_stored() -> None:
    # An int name is stored as its digits; looking it up by the same int found nothing,
    # so setdefault() added a second field and del raised KeyError.
    headers = Headers()
    headers[5] = "x"  # type: ignore[index]
    assert 5 in headers
    assert headers.get(5) == "x"  # type: ignore[call-overload]
    assert headers.setdefault(5, "y") == "x"  # type: ignore[arg-type]
    assert headers.raw_items() == [("5", "x")]
    del headers[5]  # type: ignore[arg-type]
    assert headers.raw_items() == []


def test_other_value_types_are_refused() -> None:
    with pytest.raises(TypeError, match="str, bytes or int"):
        Headers({"x": 1.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        Headers({"x": True})  # type: ignore[dict-item]


def test_fields_must_be_pairs() -> None:
    # A str unpacked into its characters (["ab"] was the field a: b, [b"ab"] the field
    # 97: 98) and a "Name: value" line or a triple raised a bare ValueError, which the
    # connections passed on instead of their LocalProtocolError.
    for wrong in (["ab"], [b"ab"], ["X-Foo: bar"], [("a", "b", "c")], [("a",)], [5]):
        with pytest.raises(TypeError, match="Header fields are \\(name, value\\) pairs"):
            Headers(wrong)  # type: ignore[arg-type]
        conn = ClientConnection("a")
        with pytest.raises(LocalProtocolError, match="pairs"):
            conn.send_request("GET", "/", wrong)  # type: ignore[arg-type]
        assert conn.data_to_send() == b""
    assert Headers([["a", "1"], ("b", "2")]).multi_items() == [("a", "1"), ("b", "2")]


def test_missing_names() -> None:
    headers = Headers()
    with pytest.raises(KeyError):
        headers["nope"]
    assert headers.get("nope") is None
    assert headers.get("nope", "d") == "d"
    assert headers.get_all("nope") == []
    assert "nope" not in headers
    assert 5 not in headers  # type: ignore[operator]
    with pytest.raises(KeyError):
        del headers["nope"]


def test_names_are_looked_up_as_they_can_be_given() -> None:
    # A name given as bytes was stored but never found again (get() gave None, ``in``
    # False); a lookup by a name of another type raised AttributeError, not KeyError.
    headers = Headers([(b"X-Raw", b"1"), ("Set-Cookie", "a"), ("set-cookie", "b")])
    headers[b"X-Other"] = "2"
    assert b"x-raw" in headers
    assert headers[b"X-RAW"] == "1"
    assert headers.get(bytearray(b"x-other")) == "2"
    assert headers.get_all(b"Set-Cookie") == ["a", "b"]
    del headers[b"x-raw"]
    assert "x-raw" not in headers
    for wrong in (5, None, 1.5):
        with pytest.raises(KeyError):
            headers[wrong]  # type: ignore[index]
        with pytest.raises(KeyError):
            del headers[wrong]  # type: ignore[arg-type]
        assert headers.get(wrong, "d") == "d"  # type: ignore[call-overload]
        assert headers.get_all(wrong) == []  # type: ignore[arg-type]
        assert wrong not in headers
    assert headers.pop(5, "d") == "d"  # type: ignore[call-overload]


def test_setitem_replaces_every_field_in_place_of_the_first() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3"), ("C", "4")])
    headers["A"] = "x"
    assert headers.multi_items() == [("a", "x"), ("b", "2"), ("c", "4")]
    headers["b"] = ["y", "z"]
    assert headers.multi_items() == [("a", "x"), ("b", "y"), ("b", "z"), ("c", "4")]
    headers["New"] = "n"
    assert headers.raw_items()[-1] == ("New", "n")


def test_add_delete_setdefault_copy_clear() -> None:
    headers = Headers()
    headers.add("Vary", "Accept")
    headers.add("vary", "Cookie")
    assert headers.get_all("vary") == ["Accept", "Cookie"]
    assert headers.setdefault("vary", "x") == "Accept, Cookie"
    assert headers.setdefault("X-New", "1") == "1"
    copy = headers.copy()
    del headers["VARY"]
    assert "vary" not in headers
    assert copy.get_all("vary") == ["Accept", "Cookie"]
    headers.clear()
    assert len(headers) == 0


def test_update_from_headers_and_equality() -> None:
    first = Headers({"A": "1"})
    second = Headers(first)
    second.update_multi([("B", "2")])
    assert second == [("a", "1"), ("b", "2")]
    assert second == {"a": "1", "B": "2"}
    assert first != second
    assert first == Headers({"a": "1"})
    assert first != 5
    assert first != [("a", 1.5)]
    assert first != {"a": 1.5}
    assert repr(first) == "Headers([('A', '1')])"


@given(st.lists(st.tuples(st.sampled_from(["A", "b", "C-d", "e"]), st.text(max_size=5))))
def test_multi_items_round_trip(pairs: list[tuple[str, str]]) -> None:
    headers = Headers(pairs)
    assert headers.raw_items() == pairs
    assert headers.multi_items() == [(name.lower(), value) for name, value in pairs]
    for name, _ in pairs:
        values = [value for n, value in pairs if n.lower() == name.lower()]
        assert headers.get_all(name) == values
        assert headers[name] == ", ".join(values)
