"""The sections of custody.toml as models, and how a config problem is named.

Each source kind's settings model lives with its connector (`connectors.index` lists them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from connectors.base import secret_from
from connectors.google.settings import GoogleApp
from connectors.graph.settings import GraphApp


class ConfigError(Exception):
    """A config problem, phrased as one line naming the key."""


class Strict(BaseModel):
    """Unknown keys are errors. Validators are built at first validation, as `SourceSettings` says why."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class RepConfig(Strict):
    """A declared rep; `aliases` are the rep's other company addresses, one person with the primary."""

    email: str
    name: str = ""
    team: str = ""
    manager: str = ""
    locale: str = "en"
    aliases: list[str] = Field(default_factory=list)
    personal_addresses: list[str] = Field(default_factory=list)


def read_secret(key: str, password: SecretStr | None, password_env: str) -> str:
    """The password from the file or, preferably, from the named environment variable."""
    value = secret_from(password, password_env)
    if value is None:
        raise ConfigError(f"{key}.password_env: environment variable {password_env} is not set")
    return value


class SentFolderConfig(Strict):
    """The sending mailbox over IMAP: every sent message is filed in `folder`, bounces arrive in `bounce_folder`.

    `filed_by` says who files the copy. "custody" files it before sending, so a crash in the middle of
    the SMTP transaction leaves a copy that cannot tell. "relay" is for relays that file every message
    they accept themselves (Microsoft 365, Gmail): custody files nothing, and a copy that has not shown
    up `relay_copy_wait_seconds` after a send means the relay never took it.
    """

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["tls", "starttls", "plain"] = "tls"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_env: str = ""
    ca_file: Path | None = None
    folder: str = "Sent"
    bounce_folder: str = "INBOX"
    timeout_seconds: float = Field(default=60.0, gt=0)
    filed_by: Literal["custody", "relay"] = "custody"
    relay_copy_wait_seconds: float = Field(default=120.0, gt=0, le=3600)

    def secret(self) -> str:
        return read_secret("smtp.sent_folder", self.password, self.password_env)


class SmtpConfig(Strict):
    """The relay the outbox sends through; without `sent_folder` a send left in doubt cannot be checked."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "plain"] = "starttls"
    username: str = ""
    password: SecretStr | None = None
    password_env: str = ""
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=60.0, gt=0)
    sent_folder: SentFolderConfig | None = None

    def secret(self) -> str:
        return read_secret("smtp", self.password, self.password_env)


class SendingMailbox(BaseModel):
    """Where an API transport sends from: `mailbox`, one mailbox every letter goes out from (the From
    stays the letter's sender, which that mailbox must be allowed to send as); empty, each letter goes
    out from its sender's own mailbox. The provider files or indexes a sent message a little after
    accepting it, so one not found `sent_copy_wait_seconds` after the first lookup was never taken."""

    model_config = ConfigDict(defer_build=True)

    mailbox: str = ""
    sent_copy_wait_seconds: float = Field(default=60.0, gt=0, le=3600)


class GraphSendConfig(GraphApp, SendingMailbox):
    """Sending through Microsoft Graph (`sendMail`, application permission Mail.Send; Mail.Read to look a
    send left in doubt up in Sent Items; sending as another address needs Send As in Exchange)."""


class GmailSendConfig(GoogleApp, SendingMailbox):
    """Sending through the Gmail API (`users.messages.send`), the service account acting as the sending
    user: scope gmail.send, and gmail.readonly to look a send left in doubt up (Gmail's search refuses
    `q` to any token that also carries gmail.metadata, so the transport asks for these two only).
    Sending as another address needs it as a verified Send mail as alias of the mailbox."""


class ServiceConfig(Strict):
    """How `custody run` schedules work and where it answers health checks and Prometheus.

    The floors keep a typo from turning the service into a busy loop: a job due more often than it
    can run only piles up skipped runs and log lines.
    """

    sync_interval_minutes: float = Field(default=15, ge=1, le=7 * 24 * 60)
    handover_interval_minutes: float = Field(default=5, ge=1, le=24 * 60)
    coverage_interval_minutes: float = Field(default=6 * 60, ge=15, le=7 * 24 * 60)
    jitter_seconds: int = Field(default=60, ge=0, le=3600)
    listen_host: str = Field(default="127.0.0.1", min_length=1)
    listen_port: int = Field(default=9464, ge=0, le=65535)
    ready_failing_minutes: float = Field(default=60, ge=0)
    stop_timeout_seconds: float = Field(default=30, ge=0, le=3600)
    hr_folder: Path | None = None


def describe_validation_error(error: ValidationError, data: dict[str, Any] | None = None) -> str:
    """The first problem as 'key: what is wrong', naming list items by their `name` when they have one."""
    first = error.errors()[0]
    parts: list[str] = []
    node: Any = data or {}
    for part in first["loc"]:
        if isinstance(node, dict) and part == node.get("kind") and part not in node:
            continue
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(str(label) if label else str(part))
            continue
        parts.append(str(part))
        node = node.get(part, {}) if isinstance(node, dict) else {}
    key = ".".join(parts) or "config"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    if first["type"] == "union_tag_invalid":
        key, message = f"{key}.kind", f"unknown kind {first['ctx']['tag']!r} (kinds: {first['ctx']['expected_tags']})"
    return f"{key}: {message}"
