"""Host names in their ASCII form, as browsers and httpx compute it.

Python's ``"idna"`` codec implements IDNA 2003, which maps some names to another
domain: ``faß.de`` became ``fass.de`` (a different registration) and a zero-width
joiner was dropped (``pay\\u200dpal.com`` became ``paypal.com``). :func:`ascii_host`
follows the WHATWG URL standard instead: UTS #46 mapping, non-transitional, then IDNA
2008 for each label that is not ASCII (the ``idna`` package, which anyio needs too).
"""

from __future__ import annotations

import idna

__all__ = ["ascii_host"]


def ascii_host(name: str) -> str:
    """``name`` (a host name) with every label that is not ASCII in its ``xn--`` form;
    an ASCII name as it is. Raises :class:`UnicodeError` (``idna.IDNAError``) for a
    name with no such form: the caller says which argument it was.

    The labels are converted one by one, so an ASCII label that IDNA 2008 would refuse
    (``my_host``) passes as it does in an ASCII name."""
    if name.isascii():
        return name
    mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    return ".".join(
        label if label.isascii() else idna.alabel(label).decode("ascii")
        for label in mapped.split(".")
    )
