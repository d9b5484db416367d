"""Read-only summaries of the registry for `custody status` and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from registry.models import Contact, Customer, Interaction, Message, Rep, Role, Sighting, Source, SyncIssue


@dataclass(frozen=True)
class SourceLine:
    """A source as `custody status` lists it; `retry_at` is when a transient failure is tried again."""

    name: str
    kind: str
    channel: str
    status: str
    last_success: datetime | None
    last_error: str
    retry_at: datetime | None
    skipped: int


@dataclass(frozen=True)
class RegistryCounts:
    reps: int
    colleagues: int
    customers: int
    contacts: int
    messages: int
    noise_messages: int
    interactions: int
    sightings: int


def source_statuses(engine: Engine) -> list[SourceLine]:
    skipped = (select(SyncIssue.source_id, func.count().label("n")).group_by(SyncIssue.source_id).subquery())
    query = (
        select(Source.name, Source.kind, Source.channel, Source.status, Source.last_success, Source.last_error,
               Source.retry_at, func.coalesce(skipped.c.n, 0))
        .outerjoin(skipped, skipped.c.source_id == Source.id)
        .order_by(Source.name)
    )
    with engine.connect() as db:
        return [SourceLine(*row) for row in db.execute(query)]


@dataclass(frozen=True)
class SkippedItem:
    source: str
    ref: str
    reason: str
    seen_at: datetime


def skipped_items(engine: Engine, source: str | None = None) -> list[SkippedItem]:
    """Every item a sync could not read, newest first, of one source or of all."""
    query = (select(Source.name, SyncIssue.ref, SyncIssue.reason, SyncIssue.seen_at)
             .join(Source, Source.id == SyncIssue.source_id)
             .order_by(SyncIssue.seen_at.desc(), SyncIssue.id.desc()))  # type: ignore[attr-defined]
    if source is not None:
        query = query.where(Source.name == source)
    with engine.connect() as db:
        return [SkippedItem(*row) for row in db.execute(query)]


@dataclass(frozen=True)
class RepActivity:
    email: str
    name: str
    team: str
    interactions: int
    customers: int


def rep_activity(engine: Engine) -> list[RepActivity]:
    """Configured reps with their company-channel interactions and distinct customers."""
    query = (
        select(Rep.email, Rep.name, Rep.team, func.count(Interaction.id), func.count(func.distinct(Interaction.customer_id)))
        .outerjoin(Interaction, Interaction.rep_id == Rep.id)
        .where(Rep.role == Role.REP)
        .group_by(Rep.id, Rep.email, Rep.name, Rep.team)
        .order_by(Rep.team, Rep.email)
    )
    with engine.connect() as db:
        return [RepActivity(*row) for row in db.execute(query)]


def registry_counts(engine: Engine) -> RegistryCounts:
    def count(model: type, *where: object) -> int:
        return db.execute(select(func.count()).select_from(model).where(*where)).scalar_one()  # type: ignore[arg-type]

    with engine.connect() as db:
        return RegistryCounts(
            reps=count(Rep, Rep.role == Role.REP),
            colleagues=count(Rep, Rep.role == Role.COLLEAGUE),
            customers=count(Customer),
            contacts=count(Contact),
            messages=count(Message),
            noise_messages=count(Message, Message.noise_reason != ""),
            interactions=count(Interaction),
            sightings=count(Sighting),
        )
