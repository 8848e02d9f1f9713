"""TLS contexts: verified by default, as httpx and browsers do it.

Client contexts trust certifi's roots, or the files named by ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` when those are set (the OpenSSL convention). SNI and hostname checks
are on. Verification is turned off only when the caller asks with ``verify=False``.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache
from typing import cast

import certifi

from sansnet.errors import InvalidArgument, TLSError

__all__ = [
    "ServerTLSTypes",
    "VerifyTypes",
    "check_client_tls",
    "check_server_tls",
    "client_context",
    "server_context",
    "server_tls_context",
]

VerifyTypes = bool | str | os.PathLike[str] | ssl.SSLContext
CertTypes = str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]]
ServerTLSTypes = (
    ssl.SSLContext | str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]]
)


HTTP_ALPN = ("http/1.1",)


def _build(
    cafile: str | None, capath: str | None, verify: bool, alpn: tuple[str, ...] = HTTP_ALPN
) -> ssl.SSLContext:
    if verify:
        try:
            context = ssl.create_default_context(cafile=cafile, capath=capath)
        except (ssl.SSLError, OSError) as exc:
            raise TLSError(
                f"Could not load the CA bundle {cafile or capath!r}: {exc}. Pass verify= "
                "a PEM file or directory of CA certificates."
            ) from exc
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


_cached_build = lru_cache(maxsize=8)(_build)


def client_context(
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    alpn: tuple[str, ...] = HTTP_ALPN,
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for a client.

    ``verify``: True (certifi's roots, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), a path to
    a CA bundle file or directory, an ``SSLContext`` to use as is, or False to skip
    verification (never the default). ``cert``: a client certificate file, or a
    (certificate, key) pair. ``alpn``: the protocols offered (HTTP/1.1 by default; empty
    for a raw TLS stream). Contexts without a client certificate are cached. Options
    of another shape raise :class:`~sansnet.InvalidArgument` (:func:`check_client_tls`).
    """
    check_client_tls(verify, cert, alpn)
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise InvalidArgument(
                "Pass the client certificate in your own SSLContext, not as cert=."
            )
        return verify
    cafile: str | None = None
    capath: str | None = None
    if verify is True:
        cafile = os.environ.get("SSL_CERT_FILE") or None
        capath = os.environ.get("SSL_CERT_DIR") or None
        if cafile is None and capath is None:
            cafile = certifi.where()
    elif verify is not False:
        path = os.fspath(verify)
        if os.path.isdir(path):
            capath = path
        elif os.path.isfile(path):
            cafile = path
        else:
            raise InvalidArgument(f"verify={path!r} is neither a CA bundle file nor a directory.")
    if cert is None:
        return _cached_build(cafile, capath, verify is not False, alpn)
    context = _build(cafile, capath, verify is not False, alpn)
    certfile, keyfile = (
        (os.fspath(cert[0]), os.fspath(cert[1]))
        if isinstance(cert, tuple)
        else (os.fspath(cert), None)
    )
    _load_chain(context, certfile, keyfile, "client certificate", "Pass cert= a PEM file")
    return context


def check_client_tls(verify: object, cert: object, alpn: object = ()) -> None:
    """Raise :class:`~sansnet.InvalidArgument` unless the client's TLS options have a
    shape :func:`client_context` takes (nothing is loaded: a missing file is found
    later). ``verify``: True, False, a CA bundle path or an ``ssl.SSLContext``;
    ``cert``: None, a PEM path or a (certificate, key) tuple of paths; ``alpn``: a list
    or tuple of protocol names, each an ASCII str of 1 to 255 characters."""
    if not (isinstance(verify, (bool, ssl.SSLContext)) or _is_path(verify)):
        raise InvalidArgument(
            "verify must be True (certifi's roots, or SSL_CERT_FILE/SSL_CERT_DIR), False "
            "(no verification), the path of a CA bundle file or directory, or an "
            f"ssl.SSLContext, not {verify!r}."
        )
    if not (
        cert is None
        or _is_path(cert)
        or (isinstance(cert, tuple) and len(cert) == 2 and all(_is_path(part) for part in cert))
    ):
        raise InvalidArgument(
            "cert must be None, the path of a PEM file with the client certificate and its "
            f"key, or a (certificate, key) tuple of paths, not {cert!r}."
        )
    if not isinstance(alpn, (list, tuple)):
        raise InvalidArgument(
            f"alpn must be a list of protocol names (['h2', 'http/1.1']), not {alpn!r}"
            + (": a str would offer each of its letters." if isinstance(alpn, str) else ".")
        )
    for name in alpn:
        if not isinstance(name, str) or not name.isascii() or not 1 <= len(name) <= 255:
            raise InvalidArgument(
                "alpn: each protocol name is an ASCII str of 1 to 255 characters "
                f"('http/1.1', 'h2'), not {name!r}."
            )


def _load_chain(
    context: ssl.SSLContext, certfile: str, keyfile: str | None, what: str, advice: str
) -> None:
    """Load a certificate chain into ``context``; a file that cannot be read or is not
    PEM raises :class:`~sansnet.TLSError` naming it (ssl's own errors name no file)."""
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise TLSError(
            f"Could not load the {what} {certfile!r}"
            + (f" with key {keyfile!r}" if keyfile else "")
            + f": {exc}. {advice} with the certificate and its key, or a "
            "(certificate, key) pair of files."
        ) from exc


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    alpn: tuple[str, ...] = HTTP_ALPN,
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for a server from a certificate chain and its key;
    ``alpn`` as for :func:`client_context`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    chain, key = os.fspath(certfile), os.fspath(keyfile) if keyfile else None
    _load_chain(context, chain, key, "certificate", "Pass a PEM file")
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _is_path(value: object) -> bool:
    """A non-empty ``str`` (or ``bytes``, or ``os.PathLike``) naming a file."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return isinstance(value, (str, bytes)) and len(value) > 0


def check_server_tls(tls: object, name: str) -> None:
    """Raise :class:`~sansnet.InvalidArgument` unless ``tls`` is what a server takes:
    None (plain TCP), an ``ssl.SSLContext``, the path of a PEM file with the
    certificate and its key, or a (certificate, key) pair of paths (a key of None: the
    key is in the certificate's file). ``name`` is the option's name in the message
    (``"tls"``, ``"ServeConfig.tls"``)."""
    if tls is None or isinstance(tls, ssl.SSLContext) or _is_path(tls):
        return
    if (
        isinstance(tls, (tuple, list))
        and len(tls) == 2
        and _is_path(tls[0])
        and (tls[1] is None or _is_path(tls[1]))
    ):
        return
    hint = ""
    if tls is True:
        hint = (
            " A server needs a certificate to present: tls=True (as connect() takes it) names none."
        )
    elif tls is False:
        hint = " Leave it None (the default) for no TLS."
    raise InvalidArgument(
        f"{name} must be an ssl.SSLContext, the path of a PEM file with the certificate "
        f"and its key, or a (certificate, key) pair of paths, not {tls!r}.{hint}"
    )


def server_tls_context(
    tls: object, name: str, alpn: tuple[str, ...] = HTTP_ALPN
) -> ssl.SSLContext | None:
    """The server context ``tls`` names, after :func:`check_server_tls`: an
    ``ssl.SSLContext`` as is, a PEM file or (certificate, key) pair loaded by
    :func:`server_context` with ``alpn``."""
    check_server_tls(tls, name)
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    if isinstance(tls, (tuple, list)):
        return server_context(tls[0], tls[1], alpn=alpn)
    return server_context(cast("str | os.PathLike[str]", tls), alpn=alpn)
