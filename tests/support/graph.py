"""Graph sources and senders pointed at the fake Microsoft 365 tenant of tests/servers/graph.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.graph.settings import GraphSettings
from tests.servers.graph import Tenant


def secret_file(tenant: Tenant, folder: Path) -> Path:
    """The client secret as an admin deploys it: a file only custody reads."""
    path = folder / f"{tenant.client_id}.secret"
    path.write_text(tenant.client_secret + "\n")
    path.chmod(0o600)
    return path


def tenant_app(tenant: Tenant, folder: Path) -> dict[str, Any]:
    """The app-registration settings that reach the fake tenant through msal."""
    return {"tenant_id": tenant.tenant_id, "client_id": tenant.client_id, "client_secret_file": secret_file(tenant, folder),
            "authority_host": tenant.server.base_url, "graph_url": tenant.graph_url, "ca_file": Path(tenant.ca_file),
            "retry_wait_seconds": 0.05}


def graph_source(tenant: Tenant, folder: Path, name: str = "m365", **fields: Any) -> GraphSettings:
    return GraphSettings(name=name, **(tenant_app(tenant, folder) | fields))


def message(sender: str, to: list[str], subject: str, message_id: str, sent: str = "2026-03-02T09:00:00Z",
            cc: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Graph message resource as the delta query returns it."""
    def box(address: str) -> dict[str, Any]:
        return {"emailAddress": {"name": address.split("@")[0].title(), "address": address}}

    return {"internetMessageId": message_id, "subject": subject, "from": box(sender), "sender": box(sender),
            "toRecipients": [box(a) for a in to], "ccRecipients": [box(a) for a in cc], "sentDateTime": sent,
            "receivedDateTime": sent}
