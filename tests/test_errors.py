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
    ],
)
def test_errors_also_derive_from_the_expected_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)


def test_timeouts_and_connect_errors_are_transport_errors() -> None:
    for cls in (net.ConnectTimeout, net.ReadTimeout, net.WriteTimeout, net.PoolTimeout):
        assert issubclass(cls, net.TimeoutError)
        assert issubclass(cls, net.TransportError)
    assert issubclass(net.TLSError, net.ConnectError)


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
