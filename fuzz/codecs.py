"""Fuzz harness: ``url_decode``, ``url_encode`` and ``json_decode``.

Run: ``python fuzz/codecs.py [libFuzzer flags] [corpus dirs]`` (see fuzz/README.md).

Input: byte 0 the mode, then the text (UTF-8 where a str is needed, with invalid bytes
replaced by surrogate escapes so lone surrogates are fuzzed too). Modes (byte 0 mod 6):

* 0 ``url_decode(str)``: only URLDecodeError (also for a str with lone surrogates,
  which has no UTF-8 form, in both modes); agrees with a reference decoder written
  here from the spec (``%XX`` in either case, everything else literal); binary=True
  never raises and gives the reference bytes; binary=False gives their UTF-8 text.
* 1 ``url_decode(bytes)``: the same, for bytes input.
* 2 round trips: ``url_decode(url_encode(s)) == s`` for str, and for bytes with
  binary=True; the encoding is only unreserved characters and uppercase ``%XX``.
* 3 ``json_decode(bytes)`` and 4 ``json_decode(str)``: only JSONDecodeError, with
  ``lineno``/``colno`` >= 1; a value decoded is also what the standard library
  decodes, and survives ``json_decode(json_encode(value))``.
* 5 ``json_decode`` of arbitrary objects: TypeError or JSONDecodeError only.
"""

from __future__ import annotations

import json
import math
import re
import sys

import _common
import atheris
from _common import check

with _common.instrumented():
    from sansnet.codecs import json_decode, json_encode, url_decode, url_encode
    from sansnet.errors import JSONDecodeError, JSONEncodeError, URLDecodeError, URLEncodeError

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_ENCODED = re.compile(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*")


def reference_unquote(data: bytes) -> bytes:
    return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), data)


def check_url_decode(text: str | bytes) -> None:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    expected = reference_unquote(raw)
    if isinstance(text, str) and not _is_encodable(text):
        # A str with lone surrogates has no UTF-8 form: refused, in both modes, with
        # URLDecodeError (as url_encode refuses it with URLEncodeError).
        for binary in (True, False):
            try:
                url_decode(text, binary=binary)
            except URLDecodeError:
                continue
            raise _common.Finding(f"url_decode accepted the lone surrogates of {text!r}")
        return
    got = url_decode(text, binary=True)
    check(got == expected, f"url_decode({text!r}, binary=True) = {got!r}, not {expected!r}")
    try:
        decoded = url_decode(text)
    except URLDecodeError:
        try:
            expected.decode("utf-8")
        except UnicodeDecodeError:
            return
        raise _common.Finding(f"url_decode({text!r}) refused valid UTF-8") from None
    check(decoded == expected.decode("utf-8"), f"url_decode({text!r}) = {decoded!r}")


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_round_trip(data: bytes) -> None:
    encoded = url_encode(data, binary=True)
    check(_ENCODED.fullmatch(encoded), f"url_encode({data!r}) = {encoded!r}")
    check(url_decode(encoded, binary=True) == data, f"binary round trip of {data!r}")
    text = data.decode("utf-8", "surrogateescape")
    try:
        encoded = url_encode(text)
    except URLEncodeError:
        check(not _is_encodable(text), f"url_encode refused {text!r}")
        return
    check(_ENCODED.fullmatch(encoded), f"url_encode({text!r}) = {encoded!r}")
    check(url_decode(encoded) == text, f"round trip of {text!r}")
    try:
        plain = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            url_encode(data)
        except URLEncodeError:
            return
        raise _common.Finding(f"url_encode accepted non-UTF-8 bytes {data!r}") from None
    check(url_encode(data) == url_encode(plain), "bytes and str encode differently")


def _same(a: object, b: object) -> bool:
    """``a`` (ours) is ``b`` (the standard library's), but for one documented difference:
    orjson gives integers outside [-2**63, 2**64) as the nearest float, as Lune does
    (its numbers are doubles), where the standard library keeps them exact."""
    if isinstance(a, float) and type(b) is int and not -(2**63) <= b < 2**64:
        return a == float(b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    return a == b


def check_json(doc: str | bytes) -> None:
    try:
        value = json_decode(doc)
    except JSONDecodeError as error:
        check(error.lineno >= 1 and error.colno >= 1, f"position {error.lineno}:{error.colno}")
        check(isinstance(error, ValueError), "JSONDecodeError is not a ValueError")
        return
    try:
        reference = json.loads(doc)
    except (ValueError, RecursionError) as error:
        # orjson accepts what the standard library refuses only where noted here.
        raise _common.Finding(f"json_decode accepted {doc!r}; json.loads says {error}") from None
    check(_same(value, reference), f"json_decode({doc!r}) = {value!r}, json.loads: {reference!r}")
    try:
        again = json_decode(json_encode(value))
    except JSONEncodeError as error:
        # Integers beyond 64 bits decode (orjson refuses them, so they cannot appear)...
        raise _common.Finding(f"json_encode cannot encode what json_decode gave: {error}") from None
    check(_same(_sorted(value), again), f"json round trip of {value!r} gave {again!r}")


def _sorted(value: object) -> object:
    """json_encode sorts keys: the shape a round trip gives back."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode = data[0] % 6
    body = data[1:]
    text = body.decode("utf-8", "surrogateescape")
    if mode == 0:
        check_url_decode(text)
    elif mode == 1:
        check_url_decode(body)
    elif mode == 2:
        check_round_trip(body)
    elif mode == 3:
        check_json(body)
    elif mode == 4:
        check_json(text)
    else:
        for thing in (memoryview(body), bytearray(body), len(body), None, [body]):
            try:
                json_decode(thing)  # type: ignore[arg-type]
            except (TypeError, JSONDecodeError):
                pass


if __name__ == "__main__":
    # orjson is compiled and sansnet's wrappers are thin: also instrument the Python
    # code they and the oracles run (urllib.parse, json's pure-Python layer, this
    # harness's reference decoder) so that libFuzzer has edges to follow.
    atheris.instrument_func(url_decode)
    _common.instrument_modules(
        "urllib.parse", "json", "json.decoder", "json.encoder", "json.scanner", __name__
    )
    _common.main(test_one_input)
    sys.exit(0)
