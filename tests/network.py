"""What the machine running the tests offers."""

from __future__ import annotations

import socket


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
