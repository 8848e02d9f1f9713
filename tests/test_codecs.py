"""The JSON and URL codecs: every rule of SPEC.md and issue #2, plus properties."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sansnet as net

LUNE_PLAIN = "🚀 This string will be encoded."
LUNE_ENCODED = "%F0%9F%9A%80%20This%20string%20will%20be%20encoded."


# --------------------------------------------------------------------------- json_encode


def test_json_encode_sorts_keys() -> None:
    assert net.json_encode({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'


def test_json_encode_pretty_uses_two_spaces() -> None:
    assert net.json_encode({"b": [1], "a": None}, pretty=True) == (
        '{\n  "a": null,\n  "b": [\n    1\n  ]\n}'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_encode_non_finite_floats_become_null(value: float) -> None:
    assert net.json_encode([value]) == "[null]"


def test_json_encode_keeps_integral_floats_as_floats() -> None:
    assert net.json_encode([1.0, 2, -0.0, 1e20]) == "[1.0,2,-0.0,1e+20]"


def test_json_encode_returns_str_with_unicode_unescaped() -> None:
    text = net.json_encode({"emoji": "🚀", "quote": '"'})
    assert isinstance(text, str)
    assert text == '{"emoji":"🚀","quote":"\\""}'


def test_json_encode_types_orjson_supports() -> None:
    class Colour(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    value = {
        "when": datetime.datetime(2026, 11, 26, 10, 0, tzinfo=datetime.timezone.utc),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "colour": Colour.RED,
        "point": Point(1, 2),
        "tuple": (1, 2),
    }
    assert json.loads(net.json_encode(value)) == {
        "colour": "red",
        "id": "12345678-1234-5678-1234-567812345678",
        "point": {"x": 1, "y": 2},
        "tuple": [1, 2],
        "when": "2026-11-26T10:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({1: "a"}, "dict key 1 is of type int"),
        ({"a": {(1, 2): "b"}}, "dict key (1, 2) is of type tuple"),
        ({"a": [1, {2, 3}]}, "value['a'][1] as JSON: type builtins.set is not supported"),
        ([object()], "type builtins.object is not supported"),
        ({"big": 2**70}, "integer outside the 64-bit range"),
        (b"bytes", "type builtins.bytes is not supported"),
    ],
)
def test_json_encode_errors_name_the_offending_type(value: object, fragment: str) -> None:
    with pytest.raises(net.JSONEncodeError) as info:
        net.json_encode(value)
    assert fragment in str(info.value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, net.NetError)


class _Key(str, enum.Enum):
    A = "a"


class _Point(NamedTuple):
    x: int


class _Float(float):
    pass


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ({"k": {_Key.A: 1}}, r"value\['k'\] as JSON: dict key <_Key.A: 'a'> is of type _Key,"),
        ({"p": [_Point(1)]}, r"value\['p'\]\[0\] as JSON: type [\w.]*_Point is not supported"),
        ({"f": _Float(1.5)}, r"value\['f'\] as JSON: type [\w.]*_Float is not supported"),
    ],
)
def test_json_encode_errors_locate_subclasses_orjson_refuses(value: object, pattern: str) -> None:
    # orjson refuses these; the walker took them for valid and the message named no place.
    with pytest.raises(net.JSONEncodeError, match=pattern):
        net.json_encode(value)


def test_json_encode_reports_reference_cycles() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(net.JSONEncodeError, match="contains itself"):
        net.json_encode(cycle)


@pytest.mark.parametrize("depth", [255, 100_000])
def test_json_encode_reports_nesting_too_deep(depth: int) -> None:
    # Past orjson's 254 levels the error walker recursed as deep: RecursionError.
    value: list[object] = []
    for level in range(2, depth + 1):
        if level == 255:
            assert net.json_encode(value) == "[" * 254 + "]" * 254  # 254 levels encode
        value = [value]
    with pytest.raises(net.JSONEncodeError, match="more than 254 deep"):
        net.json_encode(value)
    with pytest.raises(net.JSONEncodeError, match="more than 254 deep"):
        net.json_encode({"a": value})


def test_json_encode_error_path_skips_valid_values_and_shared_references() -> None:
    shared = [1, 2]
    value = {
        "a": shared,
        "b": shared,  # shared, not a cycle
        "c": {"when": datetime.date(2026, 11, 26), "ok": [1.5, "x", None, True]},
        "d": [{"e": {1, 2}}],
    }
    with pytest.raises(net.JSONEncodeError) as info:
        net.json_encode(value)
    assert "value['d'][0]['e'] as JSON: type builtins.set is not supported" in str(info.value)


def test_json_encode_error_past_a_dataclass_field_never_set() -> None:
    """orjson skips a field with init=False and no default that was never set; finding
    what it refused raised a bare AttributeError there, not JSONEncodeError."""

    @dataclasses.dataclass
    class Job:
        name: str
        result: int = dataclasses.field(init=False)
        tags: set[str] = dataclasses.field(default_factory=set)

    with pytest.raises(net.JSONEncodeError, match=r"value\.tags.*builtins\.set"):
        net.json_encode(Job("a"))


def test_json_encode_error_inside_dataclass_and_enum() -> None:
    class Wrapped(enum.Enum):
        SET = frozenset({1})

    @dataclasses.dataclass
    class Holder:
        inner: object

    with pytest.raises(
        net.JSONEncodeError, match=r"value\.inner as JSON: type builtins\.frozenset"
    ):
        net.json_encode(Holder(Wrapped.SET))
    assert net.json_encode(Holder(Holder(1))) == '{"inner":{"inner":1}}'


# --------------------------------------------------------------------------- json_decode


@pytest.mark.parametrize("text", ["null", b"null", bytearray(b"null"), memoryview(b"null")])
def test_json_decode_null_is_none_for_every_input_type(text: object) -> None:
    assert net.json_decode(text) is None  # type: ignore[arg-type]


class _Str(str):
    pass


class _Bytes(bytes):
    pass


class _ByteArray(bytearray):
    pass


@pytest.mark.parametrize("kind", [_Str, _Bytes, _ByteArray])
def test_json_decode_takes_subclasses_of_str_and_bytes(kind: type) -> None:
    # orjson takes the exact types only: a str subclass (a StrEnum value, a Latin1Text
    # header) raised "Input must be bytes, ... or str".
    text = '{"a": [1, "x"]}'
    value = kind(text) if kind is _Str else kind(text.encode())
    assert net.json_decode(value) == {"a": [1, "x"]}
    with pytest.raises(net.JSONDecodeError, match="line 1 column 2"):
        net.json_decode(kind("[,") if kind is _Str else kind(b"[,"))


def test_json_decode_values() -> None:
    assert net.json_decode('{"a": [1, 2.5, "x", true, false, null]}') == {
        "a": [1, 2.5, "x", True, False, None]
    }


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"a": 1,}', 1, 8),
        ('{\n  "a": 1,\n  "b": ]\n}', 3, 8),
        (b'[1, 2\n, "x" "y"]', 2, 7),
        ("", 1, 1),
    ],
)
def test_json_decode_errors_carry_line_and_column(
    text: str | bytes, line: int, column: int
) -> None:
    with pytest.raises(net.JSONDecodeError) as info:
        net.json_decode(text)
    error = info.value
    assert isinstance(error, json.JSONDecodeError)
    assert isinstance(error, ValueError)
    assert (error.lineno, error.colno) == (line, column)
    assert f"line {line} column {column}" in str(error)


@pytest.mark.parametrize(("data", "at"), [(b"\xff\xfe", 0), (b'{"a": "\xe9"}', 7)])
def test_json_decode_of_bytes_that_are_not_utf8_says_so(data: bytes, at: int) -> None:
    """Issue #22: orjson's own message spoke of a str and surrogates."""
    with pytest.raises(net.JSONDecodeError, match=f"bytes that are not UTF-8 \\(byte {at}") as info:
        net.json_decode(data)
    assert info.value.pos == at
    assert "surrogate" not in str(info.value)


def test_json_decode_rejects_other_types_with_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="takes str, bytes"):
        net.json_decode(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- url codecs


def test_lune_vector_both_ways() -> None:
    assert net.url_encode(LUNE_PLAIN) == LUNE_ENCODED
    assert net.url_decode(LUNE_ENCODED) == LUNE_PLAIN


def test_url_encode_keeps_only_unreserved_characters() -> None:
    unreserved = "ABCXYZabcxyz0189-_.~"
    assert net.url_encode(unreserved) == unreserved
    assert net.url_encode(" !*'();:@&=+$,/?#[]%") == (
        "%20%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%25"
    )


def test_url_encode_every_other_byte_is_uppercase_percent_hex() -> None:
    data = bytes(range(256))
    encoded = net.url_encode(data, binary=True)
    unreserved = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
    expected = "".join(chr(b) if b in unreserved else f"%{b:02X}" for b in data)
    assert encoded == expected


def test_url_encode_bytes_must_be_utf8_unless_binary() -> None:
    assert net.url_encode("é".encode()) == "%C3%A9"
    with pytest.raises(net.URLEncodeError, match="binary=True"):
        net.url_encode(b"\xff")
    assert net.url_encode(b"\xff", binary=True) == "%FF"


def test_url_encode_rejects_lone_surrogates_and_other_types() -> None:
    with pytest.raises(net.URLEncodeError, match="surrogate"):
        net.url_encode("\ud800")
    with pytest.raises(TypeError):
        net.url_encode(5)  # type: ignore[arg-type]


def test_url_decode_hex_either_case_and_plus_left_alone() -> None:
    assert net.url_decode("%c3%A9+%2b") == "é++"


@pytest.mark.parametrize("text", ["%", "%2", "%zz", "100%", "%%41", "%G1"])
def test_url_decode_keeps_malformed_sequences(text: str) -> None:
    expected = text.replace("%41", "A")
    assert net.url_decode(text) == expected


def test_url_decode_binary_returns_bytes_and_never_raises_on_content() -> None:
    assert net.url_decode("%FF%00a", binary=True) == b"\xff\x00a"
    assert net.url_decode(b"%E2%82", binary=True) == b"\xe2\x82"


def test_url_decode_non_utf8_text_raises() -> None:
    with pytest.raises(net.URLDecodeError, match="binary=True") as info:
        net.url_decode("ok%FF")
    assert isinstance(info.value, ValueError)


def test_url_decode_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        net.url_decode(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


@given(st.text())
def test_url_round_trip_text(text: str) -> None:
    assert net.url_decode(net.url_encode(text)) == text


@given(st.binary())
def test_url_round_trip_bytes(data: bytes) -> None:
    assert net.url_decode(net.url_encode(data, binary=True), binary=True) == data


@given(st.binary())
def test_url_encode_output_is_ascii_unreserved_or_escapes(data: bytes) -> None:
    encoded = net.url_encode(data, binary=True)
    assert encoded.isascii()
    assert all(c.isalnum() or c in "-_.~%" for c in encoded)


@given(json_values)
def test_json_round_trip(value: object) -> None:
    assert net.json_decode(net.json_encode(value)) == value


@given(json_values)
def test_json_pretty_decodes_to_the_same_value(value: object) -> None:
    assert net.json_decode(net.json_encode(value, pretty=True)) == value
