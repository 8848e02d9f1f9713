"""Build hook for the optional C speed-ups; all other metadata is in pyproject.toml.

``sansnet.protocol._speedups`` (WebSocket masking) is optional: without a C compiler the build
goes on without it and the pure-Python fallbacks are used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sansnet.protocol._speedups", ["src/sansnet/protocol/_speedups.c"], optional=True
        ),
    ]
)
