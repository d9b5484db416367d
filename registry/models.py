"""The customer registry. Datetimes are timezone-aware UTC on both SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.states import (  # noqa: F401  (the models' values, kept importable from here)
    CustomerStatus,
    HandoverStatus,
    NotificationState,
    RepStatus,
    Role,
    SourceStatus,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """Registry datetimes are UTC; a naive one (from a caller or a raw SQL row) is read as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Rep(SQLModel, table=True):
    """An internal person: a rep, or a colleague seen in mail (`role`), in a `RepStatus`.

    `tenure` counts rehires: a departure after one is a new departure, with letters of its own."""

    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=254)
    name: str = Field(default="", max_length=256)
    team: str = Field(default="", max_length=128)
    manager_id: Optional[int] = Field(default=None, foreign_key="rep.id")
    status: str = Field(default=RepStatus.ACTIVE.value, max_length=16)
    role: str = Field(default=Role.REP.value, max_length=16)
    tenure: int = Field(default=0)
    locale: str = Field(default="en", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RepAddress(SQLModel, table=True):
    """Every address a rep is known by: company aliases and known personal addresses."""

    id: Optional[int] = Field(default=None, primary_key=True)
    rep_id: int = Field(foreign_key="rep.id", index=True)
    email: str = Field(unique=True, max_length=254)
    kind: str = Field(default="company", max_length=16)


class Source(SQLModel, table=True):
    """A synced account. `retry_at` holds off a retry the server asked for or the backoff chose;
    `failures` counts the failed syncs since the last good one."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=128)
    kind: str = Field(max_length=32)
    owner_rep_id: Optional[int] = Field(default=None, foreign_key="rep.id")
    channel: str = Field(default="company", max_length=16)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cursor: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    status: str = Field(default=SourceStatus.NEW, max_length=16)
    last_success: Optional[datetime] = None
    last_attempt: Optional[datetime] = None
    last_error: str = Field(default="", max_length=2000)
    retry_at: Optional[datetime] = None
    failures: int = Field(default=0)
    lease_owner: str = Field(default="", max_length=128)
    lease_until: Optional[datetime] = None


class SyncIssue(SQLModel, table=True):
    """An input item a connector skipped, kept so status can count and show them."""

    __table_args__ = (UniqueConstraint("source_id", "ref"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True)
    ref: str = Field(max_length=512)
    reason: str = Field(max_length=512)
    seen_at: datetime = Field(default_factory=utcnow)


class Customer(SQLModel, table=True):
    """An organisation keyed by registrable domain, or a person keyed by a free-mail address."""

    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=254)
    name: str = Field(default="", max_length=256)
    kind: str = Field(default="organisation", max_length=16)
    owner_rep_id: Optional[int] = Field(default=None, foreign_key="rep.id", index=True)
    owner_reason: str = Field(default="", max_length=256)
    pool: bool = Field(default=False)
    status: str = Field(default=CustomerStatus.ACTIVE.value, max_length=16)
    locale: str = Field(default="", max_length=16)
    timezone: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Contact(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    name: str = Field(default="", max_length=256)
    locale: str = Field(default="", max_length=16)
    timezone: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class ContactPoint(SQLModel, table=True):
    """One normalised email address or E.164 phone number."""

    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    kind: str = Field(max_length=8)
    value: str = Field(max_length=254)
    bounced_at: Optional[datetime] = None
    bounce_reason: str = Field(default="", max_length=512)


class Message(SQLModel, table=True):
    """One message by RFC Message-ID (or a stable hash), however many copies were synced."""

    id: Optional[int] = Field(default=None, primary_key=True)
    message_key: str = Field(unique=True, max_length=512)
    occurred_at: datetime
    subject: str = Field(default="", max_length=998)
    sender_email: str = Field(default="", max_length=254)
    noise_reason: str = Field(default="", max_length=64)
    date_source: str = Field(default="header", max_length=16)
    first_source_id: Optional[int] = Field(default=None, foreign_key="source.id")


class Interaction(SQLModel, table=True):
    """A rep and a customer contact exchanged this message."""

    __table_args__ = (
        UniqueConstraint("message_id", "rep_id", "contact_point_id", "direction"),
        Index("ix_interaction_customer_time", "customer_id", "occurred_at"),
        Index("ix_interaction_rep_time", "rep_id", "occurred_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id")
    rep_id: int = Field(foreign_key="rep.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    contact_point_id: int = Field(foreign_key="contactpoint.id")
    customer_id: int = Field(foreign_key="customer.id")
    direction: str = Field(max_length=8)
    channel: str = Field(default="company", max_length=16)
    occurred_at: datetime


class PersonalRelay(SQLModel, table=True):
    """A rep's company mail sent or forwarded to that rep's own personal address."""

    __table_args__ = (UniqueConstraint("message_id", "rep_id", "personal_email"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id")
    rep_id: int = Field(foreign_key="rep.id", index=True)
    personal_email: str = Field(max_length=254)
    occurred_at: datetime


class Sighting(SQLModel, table=True):
    """A contact point seen in an address book or import, on a company or personal channel."""

    __table_args__ = (UniqueConstraint("source_id", "entry_ref", "contact_point_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True)
    entry_ref: str = Field(max_length=512)
    rep_id: Optional[int] = Field(default=None, foreign_key="rep.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    contact_point_id: int = Field(foreign_key="contactpoint.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(default="company", max_length=16)
    name: str = Field(default="", max_length=256)
    seen_at: datetime = Field(default_factory=utcnow)


class Handover(SQLModel, table=True):
    """A departing rep's plan, in a `HandoverStatus`."""

    id: Optional[int] = Field(default=None, primary_key=True)
    rep_id: int = Field(foreign_key="rep.id", index=True)
    status: str = Field(default=HandoverStatus.PLANNED.value, max_length=16)
    trigger: str = Field(default="cli", max_length=32)
    effective_at: datetime
    requires_approval: bool = Field(default=False)
    approved_by: str = Field(default="", max_length=128)
    approved_at: Optional[datetime] = None
    cancelled_reason: str = Field(default="", max_length=512)
    tenure: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow)


class HandoverItem(SQLModel, table=True):
    """One customer of a handover: its successor (None means the public pool) and why."""

    __table_args__ = (UniqueConstraint("handover_id", "customer_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    handover_id: int = Field(foreign_key="handover.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    successor_rep_id: Optional[int] = Field(default=None, foreign_key="rep.id")
    strategy: str = Field(max_length=64)
    reason: str = Field(default="", max_length=512)
    needs_human: bool = Field(default=False)
    added_later: bool = Field(default=False)


class Notification(SQLModel, table=True):
    """The outbox: one row per (departure, contact point, step), whichever plan of that departure
    planned it, with a Message-ID fixed at planning. `successor_rep_id` is whom the letter names."""

    __table_args__ = (Index("ix_notification_state_due", "state", "send_after"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=128)
    message_id_header: str = Field(unique=True, max_length=256)
    handover_id: int = Field(foreign_key="handover.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    contact_id: int = Field(foreign_key="contact.id")
    contact_point_id: int = Field(foreign_key="contactpoint.id")
    step: str = Field(max_length=64)
    successor_rep_id: Optional[int] = Field(default=None, foreign_key="rep.id")
    state: str = Field(default=NotificationState.PENDING.value, max_length=16)
    sender_email: str = Field(max_length=254)
    sender_name: str = Field(default="", max_length=128)
    to_email: str = Field(max_length=254)
    cc_emails: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    delivered_to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    locale: str = Field(default="en", max_length=16)
    subject: str = Field(default="", max_length=998)
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body_html: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    send_after: datetime
    attempts: int = Field(default=0)
    sent_at: Optional[datetime] = None
    last_error: str = Field(default="", max_length=2000)
    held_reason: str = Field(default="", max_length=512)
    lease_owner: str = Field(default="", max_length=128)
    lease_until: Optional[datetime] = None


class AuditEvent(SQLModel, table=True):
    """Append-only: who or what did what to which record."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    entity: str = Field(default="", max_length=64)
    entity_id: str = Field(default="", max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CoverageSnapshot(SQLModel, table=True):
    """Customers per coverage class on one day, kept so reports can show the trend."""

    __table_args__ = (UniqueConstraint("day", "coverage_class"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    coverage_class: str = Field(max_length=32)
    customers: int
    taken_at: datetime = Field(default_factory=utcnow)


class RoundLease(SQLModel, table=True):
    """A round that one daemon at a time runs (HR files and due handovers, coverage), so several
    instances can share one registry: each ticks, the one holding the lease does the work."""

    __tablename__ = "round_lease"
    name: str = Field(primary_key=True, max_length=64)
    lease_owner: str = Field(default="", max_length=128)
    lease_until: Optional[datetime] = None
    last_finished: Optional[datetime] = None


class CoverageBucket(SQLModel, table=True):
    """Interactions of one customer with one rep on one channel in one calendar month (UTC): what
    coverage reads instead of every interaction. Ingest adds the rows it inserts in the batch's
    transaction; database triggers recount a month when a merge moves or deletes interactions; a
    rebuild recomputes them all. `first_at` and `last_at` let a query take a month whole when it
    lies inside a window and read interactions only for a month a window's edge cuts. On SQLite
    the rows are stored in key order (no rowid), so a customer's months are read together."""

    __tablename__ = "coverage_bucket"
    __table_args__ = {"sqlite_with_rowid": False}
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    rep_id: int = Field(foreign_key="rep.id", primary_key=True)
    channel: str = Field(max_length=16, primary_key=True)
    month: date = Field(primary_key=True)
    interactions: int
    first_at: datetime
    last_at: datetime


class CoverageTotal(SQLModel, table=True):
    """All interactions of one customer with one rep on one channel: the sum of its `CoverageBucket`
    months, kept beside them. Coverage reads a customer and rep's months only when their mail
    crosses the window's start or the moment asked about; otherwise this one row answers."""

    __tablename__ = "coverage_total"
    __table_args__ = {"sqlite_with_rowid": False}
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    rep_id: int = Field(foreign_key="rep.id", primary_key=True)
    channel: str = Field(max_length=16, primary_key=True)
    interactions: int
    first_at: datetime
    last_at: datetime
