"""Facts about network peers that every protocol client needs."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Plain-text logins are only acceptable to a server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
