"""How custody signs in to one Microsoft 365 tenant, and what a Graph source reads there.

Secrets never live in the TOML: the client secret or the certificate comes from an environment
variable or a file the settings name. National clouds differ only in two endpoints, so `cloud`
picks them and `authority_host` / `graph_url` override them (tests point both at a local server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import SourceSettings, TenantScope

Cloud = Literal["global", "usgov", "usgov-dod", "china"]
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com", "https://outlook.office365.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us", "https://outlook.office365.us"),
    "usgov-dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us", "https://outlook-dod.office365.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn", "https://partner.outlook.cn"),
}


class MicrosoftApp(BaseModel):
    """An app registration with application permissions in one tenant: exactly one credential,
    a client secret or a certificate (PEM holding the private key and the certificate)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret_env: str = ""
    client_secret_file: Path | None = None
    certificate_env: str = ""
    certificate_file: Path | None = None
    cloud: Cloud = "global"
    authority_host: str = ""
    graph_url: str = ""
    ca_file: Path | None = None
    token_cache_file: Path | None = None
    token_cache_key_env: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_credential(self) -> MicrosoftApp:
        given = [name for name in ("client_secret_env", "client_secret_file", "certificate_env", "certificate_file")
                 if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("name exactly one credential: client_secret_env, client_secret_file, certificate_env "
                             f"or certificate_file (given: {', '.join(given) or 'none'})")
        if self.token_cache_file and not self.token_cache_key_env:
            raise ValueError("token_cache_file needs token_cache_key_env, the environment variable holding its key")
        for name in ("authority_host", "graph_url"):
            value = getattr(self, name)
            if value and (urlsplit(value).scheme != "https" or not urlsplit(value).hostname):
                raise ValueError(f"{name} must be an https:// URL, not {value!r}")
        return self

    def authority(self) -> str:
        return f"{(self.authority_host or ENDPOINTS[self.cloud][0]).rstrip('/')}/{self.tenant_id}"

    def graph_root(self) -> str:
        return (self.graph_url or ENDPOINTS[self.cloud][1]).rstrip("/")

    def graph_scope(self) -> str:
        return f"{self.graph_root()}/.default"

    def imap_scope(self) -> str:
        """The resource an IMAP XOAUTH2 token is for: Exchange Online, not Graph."""
        return f"{ENDPOINTS[self.cloud][2]}/.default"


class GraphApp(MicrosoftApp):
    """An app registration and how hard its requests may press one mailbox: the defaults stay under
    Graph's documented limits (4 concurrent requests, 10,000 per 10 minutes). `max_retry_after_seconds`
    is the longest throttle hint waited out in place; a longer one is the caller's to reschedule."""

    mailbox_concurrency: int = Field(default=4, ge=1, le=4)
    requests_per_10_minutes: int = Field(default=9000, ge=1, le=10_000)
    retry_attempts: int = Field(default=5, ge=1, le=20)
    retry_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=120.0, ge=0, le=3600)


class GraphSettings(TenantScope, SourceSettings, GraphApp):
    """One tenant's mailboxes, contacts and directory. Which mailboxes: those named, the members of
    an Entra group, and every enabled user of the given domains; with none of the three, the
    configured reps'. A throttle longer than `max_retry_after_seconds` ends that mailbox's sync
    until the next.
    """

    kind: Literal["graph"] = "graph"
    page_size: int = Field(default=500, ge=1, le=1000)
    noise_headers: bool = False
    workers: int = Field(default=8, ge=1, le=64)
