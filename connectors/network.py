"""Facts about network peers that every protocol client needs."""

from __future__ import annotations

import ipaddress

import requests
from urllib3.exceptions import NewConnectionError


def is_loopback(host: str) -> bool:
    """Plain-text logins are only acceptable to a server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_have_arrived(error: requests.RequestException) -> bool:
    """Anything but a failure to connect: a read timeout or a connection lost mid-request may come
    after the server took the request, so a request that must not be carried out twice is in doubt."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return not (isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError))
