"""client_context: the TLS options, checked without a network."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from sansnet import InvalidArgument, TLSError
from sansnet.transport.tls import client_context


def test_verify_true_uses_certifi_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = client_context()
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    assert client_context() is default, "Contexts without a client certificate are cached."
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert client_context() is not default, "SSL_CERT_DIR is honoured."


def test_verify_off_and_paths(tmp_path: Path) -> None:
    off = client_context(False)
    assert off.verify_mode == ssl.CERT_NONE
    assert not off.check_hostname
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    assert client_context(str(tmp_path / "ca.pem")).verify_mode == ssl.CERT_REQUIRED
    assert client_context(tmp_path).verify_mode == ssl.CERT_REQUIRED, "A directory works."
    with pytest.raises(ValueError, match="neither a CA bundle file nor a directory"):
        client_context(str(tmp_path / "missing.pem"))


def test_contexts_and_client_certificates(tmp_path: Path) -> None:
    mine = ssl.create_default_context()
    assert client_context(mine) is mine, "An SSLContext is used as it is."
    with pytest.raises(ValueError, match="own SSLContext"):
        client_context(mine, cert="client.pem")
    ca = trustme.CA()
    client = ca.issue_cert("client@example.org")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    with_cert = client_context(False, str(tmp_path / "client.pem"))
    assert with_cert is not client_context(False), "Contexts with a certificate are new."
    with pytest.raises(TLSError, match=r"client certificate .*nothing\.pem"):
        client_context(True, (str(tmp_path / "nothing.pem"), str(tmp_path / "nothing.key")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"verify": None}, r"^verify must be True \(certifi's roots"),
        ({"verify": 1}, r"^verify must be True"),
        ({"verify": ""}, r"^verify must be True"),
        ({"cert": ("client.pem",)}, r"^cert must be None, the path of a PEM file"),
        ({"cert": ["client.pem", "client.key"]}, r"\(certificate, key\) tuple of paths"),
        ({"cert": 5}, r"^cert must be None"),
        ({"alpn": "http/1.1"}, r"^alpn must be a list .*each of its letters"),
        ({"alpn": ("",)}, r"^alpn: each protocol name is an ASCII str of 1 to 255"),
        ({"alpn": ("x" * 256,)}, r"^alpn: each protocol name"),
        ({"alpn": (1,)}, r"^alpn: each protocol name"),
        ({"alpn": ("é",)}, r"^alpn: each protocol name"),
    ],
)
def test_options_of_the_wrong_shape_are_invalid_argument(
    options: dict[str, object], message: str
) -> None:
    """Issue: verify=None was a bare TypeError (from os.fspath), cert=("c",) an
    IndexError, alpn=("",) an ssl.SSLError, and alpn="http/1.1" offered 'h', 't', 't',
    'p'... Each says what it takes instead."""
    with pytest.raises(InvalidArgument, match=message):
        client_context(**options)  # type: ignore[arg-type]
