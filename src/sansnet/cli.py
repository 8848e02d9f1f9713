"""The ``sansnet`` command line (also ``python -m sansnet``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from . import __version__
from .codecs import json_decode, json_encode, url_decode, url_encode


def _step(title: str, action: Callable[[], list[str]]) -> None:
    started = time.perf_counter()
    lines = action()
    elapsed = (time.perf_counter() - started) * 1000
    print(f"* {title}  ({elapsed:.2f} ms)")
    for line in lines:
        print(f"    {line}")


def _demo_codecs() -> list[str]:
    value = {"name": "sansnet", "tags": ["http", "websocket"], "ratio": float("nan")}
    text = json_encode(value)
    lune = "🚀 This string will be encoded."
    encoded = url_encode(lune)
    return [
        f"json_encode({value!r})",
        f"  -> {text}",
        f"json_decode(...) -> {json_decode(text)!r}",
        f"url_encode({lune!r})",
        f"  -> {encoded}",
        f"url_decode(...) == original: {url_decode(encoded) == lune}",
    ]


def demo() -> int:
    """Print a short tour of sansnet that needs no network."""
    print(f"sansnet {__version__} demo (no network needed)\n")
    _step("JSON and URL codecs", _demo_codecs)
    print("\nAll steps passed.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sansnet", description="HTTP and WebSocket from the command line."
    )
    parser.add_argument("--version", action="version", version=f"sansnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="a short tour of sansnet that needs no network")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    parser.print_help(sys.stderr)
    return 2
