"""client_context: the TLS options, checked without a network."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from sansnet import TLSError
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
