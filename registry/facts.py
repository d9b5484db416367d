"""What the registry accepts from the sync engine: interpreted facts, no mail protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PersonFact:
    """An internal address seen in mail; becomes (or matches) a Rep."""

    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ContactFact:
    """A normalised customer contact point and the customer it resolves to."""

    kind: str
    value: str
    name: str
    customer_key: str
    customer_kind: str


@dataclass(frozen=True, slots=True)
class InteractionFact:
    rep_email: str
    contact: ContactFact
    direction: str
    channel: str


@dataclass(frozen=True, slots=True)
class RelayFact:
    rep_email: str
    personal_email: str


@dataclass(frozen=True, slots=True)
class MessageFact:
    message_key: str
    occurred_at: datetime
    subject: str
    sender_email: str
    noise_reason: str
    internal: tuple[PersonFact, ...]
    interactions: tuple[InteractionFact, ...]
    relays: tuple[RelayFact, ...] = ()


@dataclass(frozen=True, slots=True)
class SightingFact:
    entry_ref: str
    rep_email: str
    channel: str
    contacts: tuple[ContactFact, ...]


@dataclass(frozen=True, slots=True)
class SkippedFact:
    ref: str
    reason: str


@dataclass(slots=True)
class FactBatch:
    messages: list[MessageFact] = field(default_factory=list)
    sightings: list[SightingFact] = field(default_factory=list)
    skipped: list[SkippedFact] = field(default_factory=list)
