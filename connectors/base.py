"""The connector contract: a kind's name, its typed settings, `check()` and `sync(cursor)`.

Every source kind is one `Connector` subclass listed in `connectors.index`, and every one passes
the suite in tests/connectors/contract.py. The sync engine, the readers and the config know only
this module and the index, never a kind.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.errors import AuthError, PermanentError
from connectors.records import AddressBookEntry, Batch, Channel, DirectoryEvent, MessageHeaders, Record


class SourceSettings(BaseModel):
    """What every source has; a kind's own settings model adds its protocol's fields and narrows
    `kind` to its name, which makes the union of all of them discriminated on `kind`.

    Settings models build their validators at first validation (`defer_build`), never at import:
    reader processes only unpickle them, and building every model's took 0.04 s of a reader's 0.6 s
    start-up here."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=128)
    kind: str
    owner: str = ""
    channel: Channel = "company"

    def anchored(self, base: Path) -> None:
        """Relative paths in the config file are relative to the file itself."""
        for field, value in self:
            if isinstance(value, Path) and not value.is_absolute():
                setattr(self, field, base / value)

    def summary(self) -> dict[str, Any]:
        """The settings as stored beside the source in the registry: no secret, not even masked."""
        return self.model_dump(mode="json", exclude=self.secret_fields())

    def with_reps(self, emails: list[str]) -> SourceSettings:
        """The source as it reads the configured reps' accounts when it names none itself; most
        kinds name exactly one and ignore this."""
        return self

    def secret_fields(self) -> set[str]:
        return {name for name, value in self if isinstance(value, SecretStr)}


class FileSourceSettings(SourceSettings):
    """An export on disk: one file, or every matching file below a folder."""

    path: Path


TenantReads = Literal["mail", "contacts", "directory"]


class TenantScope(BaseModel):
    """What a source over a whole cloud tenant reads, and whose: the mailboxes named, the members of
    a group and every active user of some domains; with none of the three, the configured reps'."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    mailboxes: list[str] = Field(default_factory=list)
    group: str = ""
    domains: list[str] = Field(default_factory=list)
    read: list[TenantReads] = Field(default_factory=lambda: ["mail", "contacts", "directory"], min_length=1)

    @model_validator(mode="after")
    def _normalised(self) -> TenantScope:
        self.mailboxes = list(dict.fromkeys(m.strip().lower() for m in self.mailboxes if m.strip()))
        self.domains = list(dict.fromkeys(d.strip().lower().lstrip("@") for d in self.domains if d.strip()))
        self.read = list(dict.fromkeys(self.read))
        return self

    def with_reps(self, emails: list[str]) -> Any:
        if self.mailboxes or self.group or self.domains:
            return self
        return self.model_copy(update={"mailboxes": [e.lower() for e in emails]})


class LoginSettings(BaseModel):
    """A password from the file or, preferably, from the named environment variable."""

    model_config = ConfigDict(defer_build=True)

    username: str = ""
    password: SecretStr | None = None
    password_env: str = ""

    def secret(self) -> str:
        value = secret_from(self.password, self.password_env)
        if value is None:
            raise AuthError(f"password_env: environment variable {self.password_env} is not set")
        return value


def secret_from(password: SecretStr | None, password_env: str) -> str | None:
    """The configured secret; None when the named environment variable is not set."""
    if password_env:
        return os.environ.get(password_env)
    return password.get_secret_value() if password else ""


S = TypeVar("S", bound=SourceSettings)
F = TypeVar("F", bound=FileSourceSettings)
MAIL: tuple[type[Record], ...] = (MessageHeaders,)
BOOKS: tuple[type[Record], ...] = (AddressBookEntry,)
DIRECTORY: tuple[type[Record], ...] = (DirectoryEvent,)


class Connector(ABC, Generic[S]):
    """One protocol in, batches of plain records out. A connector never touches the registry: it
    gets the cursor it returned last time and yields batches whose cursor is valid once stored."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]
    yields: ClassVar[tuple[type[Record], ...]]

    def __init__(self, settings: S, batch_size: int = 500) -> None:
        self.settings = settings
        self.batch_size = batch_size

    @abstractmethod
    def check(self) -> str:
        """Prove the source can be read (credentials, reachability) without reading it; one line
        saying what was verified. Raises a `connectors.errors` class when it cannot."""

    @abstractmethod
    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        """Yield batches after `cursor`; each batch's cursor resumes right after it. Raises a
        `connectors.errors` class when the whole source fails."""


class FileConnector(Connector[F]):
    """A connector over files on this machine: checking it means finding them."""

    what: ClassVar[str] = "export"

    def __init__(self, settings: F, batch_size: int = 500) -> None:
        super().__init__(settings, batch_size)
        self.path = settings.path
        self.channel = settings.channel

    def check(self) -> str:
        path = self.settings.path
        if not path.exists():
            raise PermanentError(f"{self.what} path {path} does not exist")
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise PermanentError(f"{self.what} path {path} is not readable by this user")
        return f"{self.kind} {path}"

