"""How custody acts for a Google Workspace domain, and what a Google source reads there.

A service account with domain-wide delegation acts as each rep (and as an admin for the
Directory). Its JSON key never lives in the TOML: `key_env` names an environment variable holding
it, or `key_file` a file. Endpoints default to Google's; `token_uri` and the API endpoints can be
pointed elsewhere (a private access endpoint, or a test server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import SourceSettings, TenantScope

SCOPE = "https://www.googleapis.com/auth/"
MAIL_SCOPE = SCOPE + "gmail.metadata"
CONTACTS_SCOPE = SCOPE + "contacts.readonly"
USERS_SCOPE = SCOPE + "admin.directory.user.readonly"
GROUPS_SCOPE = SCOPE + "admin.directory.group.member.readonly"
SEND_SCOPE = SCOPE + "gmail.send"
LOOKUP_SCOPE = SCOPE + "gmail.readonly"
IMAP_SCOPE = "https://mail.google.com/"


class GoogleApp(BaseModel):
    """A service account with domain-wide delegation, and how hard it may press one user: Gmail
    allows 15,000 quota units per user per minute."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    key_env: str = ""
    key_file: Path | None = None
    token_uri: str = ""
    api_endpoint: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    units_per_minute: int = Field(default=14_000, ge=10, le=15_000)
    retry_attempts: int = Field(default=5, ge=1, le=20)
    retry_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=120.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _one_key(self) -> GoogleApp:
        if bool(self.key_env) == bool(self.key_file):
            raise ValueError("name the service account key in exactly one of key_env or key_file")
        for name in ("token_uri", "api_endpoint"):
            value = getattr(self, name)
            if value and (urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).hostname):
                raise ValueError(f"{name} must be a URL, not {value!r}")
        return self


class GoogleSettings(TenantScope, SourceSettings, GoogleApp):
    """One Workspace domain's mailboxes, contacts and directory. Which mailboxes: those named, the
    members of a Google group, and every active user of the given domains; with none of the three,
    the configured reps'. The Directory is read as `admin`, a Workspace admin of the domain.
    `workers` mailboxes are read at once; most of their time is spent waiting on the network and
    on each user's quota, so more of them than cores pays."""

    kind: Literal["google"] = "google"
    admin: str = ""
    page_size: int = Field(default=500, ge=1, le=500)
    calls_per_batch: int = Field(default=50, ge=1, le=50)
    workers: int = Field(default=16, ge=1, le=64)

    @model_validator(mode="after")
    def _coherent(self) -> GoogleSettings:
        self.admin = self.admin.strip().lower()
        if not self.admin and ("directory" in self.read or self.group or self.domains):
            raise ValueError("admin: the Directory (read = directory, group or domains) is read as a Workspace admin; "
                             "name one")
        return self

    def scopes(self) -> list[str]:
        """What the admin must delegate to the service account, least privilege first."""
        wanted = [MAIL_SCOPE] if "mail" in self.read else []
        wanted += [CONTACTS_SCOPE] if "contacts" in self.read else []
        wanted += [USERS_SCOPE] if "directory" in self.read or self.domains or self.group else []
        return wanted + ([GROUPS_SCOPE] if self.group else [])
