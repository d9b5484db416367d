"""Who holds a row lease: `host:pid`, so a lease of a process that died on this host is free at once."""

from __future__ import annotations

import os
import socket


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_alive(owner: str) -> bool:
    """False only for a process of this host that no longer exists; other hosts wait for expiry."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
