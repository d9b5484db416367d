"""Google sources pointed at the fake Workspace of tests/servers/google.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.google.settings import GoogleSettings
from tests.servers.google import Workspace


def key_file(workspace: Workspace, folder: Path) -> Path:
    """The service account's JSON key as an admin deploys it: a file only custody reads."""
    path = folder / f"{workspace.client_email}.json"
    path.write_text(json.dumps(workspace.service_account_info))
    path.chmod(0o600)
    return path


def workspace_app(workspace: Workspace, folder: Path) -> dict[str, Any]:
    """The service-account settings that reach the fake through google-auth and google-api-python-client."""
    return {"key_file": key_file(workspace, folder), "token_uri": f"{workspace.server.base_url}/token",
            "api_endpoint": workspace.server.base_url, "retry_wait_seconds": 0.05}


def google_source(workspace: Workspace, folder: Path, name: str = "gws", **fields: Any) -> GoogleSettings:
    return GoogleSettings(name=name, **(workspace_app(workspace, folder) | fields))
