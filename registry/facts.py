"""What the registry accepts from the sync engine: interpreted facts, no mail protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class PersonFact(NamedTuple):
    """An internal address seen in mail; becomes (or matches) a rep or a colleague."""

    email: str
    name: str = ""
    role: str = "colleague"


class ContactFact(NamedTuple):
    """A normalised customer contact point and the customer it resolves to; `customer_name` is the
    organisation's name when an address book gives one."""

    kind: str
    value: str
    name: str
    customer_key: str
    customer_kind: str
    customer_name: str = ""


class InteractionFact(NamedTuple):
    rep_email: str
    contact: ContactFact
    direction: str
    channel: str


class RelayFact(NamedTuple):
    rep_email: str
    personal_email: str


class MessageFact(NamedTuple):
    message_key: str
    occurred_at: datetime
    subject: str
    sender_email: str
    noise_reason: str
    interactions: tuple[InteractionFact, ...]
    relays: tuple[RelayFact, ...] = ()
    date_source: str = "header"


class SightingFact(NamedTuple):
    entry_ref: str
    rep_email: str
    channel: str
    contacts: tuple[ContactFact, ...]


class SkippedFact(NamedTuple):
    ref: str
    reason: str


@dataclass(slots=True)
class FactBatch:
    """`people` are the internal persons the messages name, each once: the reps the registry must know."""

    messages: list[MessageFact] = field(default_factory=list)
    sightings: list[SightingFact] = field(default_factory=list)
    skipped: list[SkippedFact] = field(default_factory=list)
    people: list[PersonFact] = field(default_factory=list)
