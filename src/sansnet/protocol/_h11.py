"""Which build of h11 the HTTP/1.1 engine drives.

``h11_mypyc`` (installed by the ``sansnet[speedups]`` extra: h11 0.16 compiled with
mypyc, about twice as fast) when it can be imported, else the pure-Python ``h11``.
Setting the environment variable ``SANSNET_PURE_H11=1`` before sansnet is imported
forces pure h11. The choice is made once, at import: objects of the two modules never
mix (an ``h11`` event sent into an ``h11_mypyc`` connection is a ``TypeError``), and
their sentinels are distinct objects, compared with ``is`` only.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["BUILD", "h11", "load"]


def load(environ: dict[str, str] | os._Environ[str] = os.environ) -> tuple[ModuleType, str]:
    """The h11 module to use and its name (``"h11_mypyc"`` or ``"h11"``)."""
    if environ.get("SANSNET_PURE_H11", "") not in ("", "0"):
        import h11 as pure

        return pure, "h11"
    try:
        import h11_mypyc as compiled
    except ImportError:
        import h11 as pure

        return pure, "h11"
    return compiled, "h11_mypyc"


if TYPE_CHECKING:
    import h11

    BUILD: str
else:
    h11, BUILD = load()
