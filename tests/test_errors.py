"""The error hierarchy: one root, the built-in bases users already catch, and the data
each error carries."""

from __future__ import annotations

import builtins
import json

import pytest

import sansnet as net
from sansnet import errors


def test_every_public_error_is_a_net_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, net.NetError), name
        assert getattr(net, name) is cls, f"sansnet.{name} is not re-exported"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (net.JSONEncodeError, TypeError),
        (net.JSONDecodeError, json.JSONDecodeError),
        (net.URLDecodeError, ValueError),
        (net.URLEncodeError, ValueError),
        (net.LocalProtocolError, ValueError),
        (net.DecodingError, ValueError),
        (net.TimeoutError, builtins.TimeoutError),
        (net.ReadTimeout, builtins.TimeoutError),
        (net.BindError, OSError),
        (net.ServerStoppedError, RuntimeError),
        (net.UsageError, RuntimeError),
        (net.InvalidURL, ValueError),
        (net.UnsupportedProtocol, ValueError),
        (net.InvalidArgument, ValueError),
        (net.InvalidArgument, TypeError),
    ],
)
def test_errors_also_derive_from_the_expected_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)


def test_timeouts_and_connect_errors_are_transport_errors() -> None:
    for cls in (net.ConnectTimeout, net.ReadTimeout, net.WriteTimeout, net.PoolTimeout):
        assert issubclass(cls, net.TimeoutError)
        assert issubclass(cls, net.TransportError)
    assert issubclass(net.TLSError, net.ConnectError)


def test_decoding_error_carries_a_status_hint() -> None:
    assert net.DecodingError("corrupt").status_hint == 400
    assert net.DecodingError("too large", status_hint=413).status_hint == 413


def test_remote_protocol_error_carries_a_status_hint() -> None:
    assert net.RemoteProtocolError("bad").status_hint == 400
    error = net.RemoteProtocolError("Request header fields too large.", status_hint=431)
    assert error.status_hint == 431
    assert str(error) == "Request header fields too large."


def test_handshake_error_carries_the_answer() -> None:
    error = net.HandshakeError("refused", status=403, headers={"x": "y"}, body=b"no")
    assert (error.status, dict(error.headers), error.body) == (403, {"x": "y"}, b"no")
    bare = net.HandshakeError("bad accept")
    assert (bare.status, dict(bare.headers), bare.body) == (0, {}, b"")


def test_connection_closed_carries_code_and_reason() -> None:
    error = net.ConnectionClosed("The WebSocket is closed.", code=1001, reason="bye")
    assert (error.code, error.reason) == (1001, "bye")


MISUSE = {
    "no scheme": ({"url": "example.com/x"}, net.UnsupportedProtocol),
    "ftp": ({"url": "ftp://example.com/"}, net.UnsupportedProtocol),
    "no host": ({"url": "http:///x"}, net.InvalidURL),
    "port out of range": ({"url": "http://example.com:70000/"}, net.InvalidURL),
    "port 0": ({"url": "http://example.com:0/"}, net.InvalidURL),
    "bad host": ({"url": "http://exa mple.com/"}, net.InvalidURL),
    "url not a str": ({"url": b"http://x/"}, net.InvalidArgument),
    "invalid method": ({"url": "http://x/", "method": "GE T"}, net.InvalidArgument),
    "method not a str": ({"url": "http://x/", "method": 1}, net.InvalidArgument),
    "body and json": ({"url": "http://x/", "body": "a", "json": {}}, net.InvalidArgument),
    "negative timeout": ({"url": "http://x/", "timeout": -1}, net.InvalidArgument),
    "int body": ({"url": "http://x/", "body": 42}, net.InvalidArgument),
    "unknown option": ({"url": "http://x/", "colour": "red"}, net.InvalidArgument),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", MISUSE, ids=list(MISUSE))
async def test_misuse_is_a_net_error_raised_before_any_io(case: str) -> None:
    """Issue #22: these raised plain ValueError/TypeError; `except NetError` must
    catch a bad URL from user input."""
    kwargs, expected = MISUSE[case]
    options = dict(kwargs)
    url = options.pop("url")
    with pytest.raises(expected) as info:
        await net.request(url, **options)
    assert isinstance(info.value, net.NetError)
    assert isinstance(info.value, ValueError)  # what `except ValueError` caught before


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://example.com/", net.UnsupportedProtocol),
        ("ws://exa:mple:1/", net.InvalidURL),
        ("ws:///path", net.InvalidURL),
    ],
)
async def test_websocket_url_mistakes_are_net_errors(url: str, expected: type) -> None:
    with pytest.raises(expected):
        await net.socket(url)


def test_server_setting_mistakes_are_invalid_arguments() -> None:
    with pytest.raises(net.InvalidArgument, match="port"):
        net.serve(70000, lambda request: "x")
    with pytest.raises(net.InvalidArgument, match="max_connections"):
        net.ServeConfig(handle_request=lambda request: "x", max_connections=0)


# Where sansnet itself raises a bare built-in exception, on purpose: the file, the function
# and the exception, with why. Everything else it raises is a NetError (the hierarchy above).
# NotImplementedError (abstract methods) and StopAsyncIteration (the iterator protocol) are
# protocols of Python's own and not counted.
_BARE_RAISES_ALLOWED = {
    # Mapping protocol: a missing header is a KeyError, as in every Mapping.
    ("protocol/headers.py", "__getitem__", "KeyError"),
    ("protocol/headers.py", "__delitem__", "KeyError"),
    # Module __getattr__ protocol: an unknown attribute is an AttributeError.
    ("protocol/events.py", "_renamed", "AttributeError"),
    # Raised and caught within the same function or its caller (control flow, never seen
    # by a user): argparse turns -H's ValueError into a usage line and exit status 2; the
    # negotiation's ValueErrors become a declined offer (server) or a HandshakeError
    # (client); a missing index.html is a 404 or a listing; the timeouts of a stream's
    # read/write become ReadTimeout/WriteTimeout; a peer gone during the TLS handshake
    # is an OSError the connect functions map to ConnectError.
    ("cli.py", "_headers", "ValueError"),
    ("protocol/websocket/deflate.py", "_parameters", "ValueError"),
    ("protocol/websocket/deflate.py", "_window", "ValueError"),
    ("protocol/websocket/deflate.py", "_check_flags", "ValueError"),
    ("static.py", "__call__", "FileNotFoundError"),
    ("transport/streams.py", "read", "TimeoutError"),
    ("transport/streams.py", "write", "TimeoutError"),
    ("transport/streams.py", "start_tls", "ConnectionResetError"),
    ("transport/trio_stream.py", "read", "TimeoutError"),
    ("transport/trio_stream.py", "write", "TimeoutError"),
    # The blocking API's event loop thread failed to start: not a misuse, and never seen
    # in tests (pragma: no cover); it chains the real cause.
    ("blocking.py", "_start", "RuntimeError"),
}
_PYTHON_PROTOCOLS = {"NotImplementedError", "StopAsyncIteration", "StopIteration"}
_BUILTIN_ERRORS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, Exception)
    and name not in _PYTHON_PROTOCOLS | {"AssertionError"}
}


def _bare_raises() -> set[tuple[str, str, str]]:
    """(file, function, exception) of every ``raise`` of a built-in exception in the
    package; a name imported from sansnet.errors (its TimeoutError) is ours."""
    import ast
    from pathlib import Path

    root = Path(net.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        ours = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("errors")
            for alias in node.names
        }
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Raise) or node.exc is None:
                    continue
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in _BUILTIN_ERRORS - ours:
                    found.add((path.relative_to(root).as_posix(), function.name, exc.id))
    return found


def test_sansnet_raises_only_net_errors_but_where_a_builtin_is_the_protocol() -> None:
    """A misuse anywhere in the package raises a typed error of the hierarchy (an
    InvalidArgument for a wrong argument, a UsageError for a call at the wrong time), not
    a bare ValueError, TypeError or RuntimeError."""
    unexpected = _bare_raises() - _BARE_RAISES_ALLOWED
    assert not unexpected, sorted(unexpected)
    stale = _BARE_RAISES_ALLOWED - _bare_raises()
    assert not stale, f"allowed but no longer raised (remove them): {sorted(stale)}"
