"""Plain records a connector yields; they carry no registry types so connectors stay protocol-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Union

Channel = Literal["company", "personal"]
DirectoryEventKind = Literal["created", "updated", "deactivated", "reactivated", "manager_changed"]


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class MessageHeaders:
    """The header facts of one message; bodies are never read by default."""

    message_id: str
    folder: str
    date: datetime | None
    sender: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    in_reply_to: str = ""
    auto_submitted: str = ""
    precedence: str = ""
    list_id: str = ""
    content_type: str = ""
    return_path: str = ""
    channel: Channel = "company"
    date_source: str = "header"


@dataclass(frozen=True, slots=True)
class AddressBookEntry:
    book: str
    entry_id: str
    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    organisation: str = ""
    channel: Channel = "company"
    owner: str = ""
    removed: bool = False


@dataclass(frozen=True, slots=True)
class DirectoryEvent:
    """A change to a person in the company's directory. `updated` carries their profile (name,
    team, manager, aliases) as the directory now has it."""

    event_id: str
    kind: DirectoryEventKind
    email: str
    name: str = ""
    manager_email: str = ""
    effective: datetime | None = None
    team: str = ""
    aliases: tuple[str, ...] = ()


Record = Union[MessageHeaders, AddressBookEntry, DirectoryEvent]


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input item a connector could not read; counted, never fatal."""

    ref: str
    reason: str


@dataclass(slots=True)
class Batch:
    """Records plus the cursor that becomes valid once they are stored."""

    records: list[Record]
    cursor: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)
