"""The version of sansnet, read by the build backend and sent in ``User-Agent``."""

__version__ = "0.1.0"
