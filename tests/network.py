"""What the machine running the tests offers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any


def has_ipv6_loopback() -> bool:
    """True when a socket can bind ::1 (some containers have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def resolve_name(monkeypatch: Any, name: str, ips: Sequence[str]) -> None:
    """Make ``name`` resolve to ``ips``, in that order, for every resolver sansnet asks:
    ``socket.getaddrinfo`` (asyncio's ``loop.getaddrinfo`` and trio's call it in a
    thread) and the running asyncio loop's ``getaddrinfo`` (uvloop's asks libuv).
    Other names resolve as before."""
    real = socket.getaddrinfo

    def infos(port: Any) -> list[Any]:
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, number, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, number))
            for ip in ips
        ]

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (name, name.encode()):
            return infos(port)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return
    loop_getaddrinfo = loop.getaddrinfo

    async def on_the_loop(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (name, name.encode()):
            return infos(port)
        return await loop_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", on_the_loop)
