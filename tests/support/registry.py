"""Registries for tests: a source row to store batches under, and a registry read back as plain sets
so two can be compared for equality."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from registry.models import ContactPoint, Interaction, Message, Rep, Source, SyncIssue


def snapshot(engine: Engine) -> dict[str, object]:
    """Everything a sync writes, keyed by natural keys rather than row ids."""
    with engine.connect() as db:
        interactions = db.execute(
            select(Message.message_key, Rep.email, ContactPoint.value, Interaction.direction, Interaction.channel)
            .join(Message, Message.id == Interaction.message_id)
            .join(Rep, Rep.id == Interaction.rep_id)
            .join(ContactPoint, ContactPoint.id == Interaction.contact_point_id)
        ).all()
        return {
            "messages": sorted(db.execute(select(Message.message_key, Message.noise_reason)).all()),
            "interactions": sorted(interactions),
            "cursors": sorted((name, repr(cursor)) for name, cursor in db.execute(select(Source.name, Source.cursor))),
            "skipped": sorted(db.execute(select(SyncIssue.ref, SyncIssue.reason)).all()),
        }


def message_count(engine: Engine) -> int:
    with engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(Message)).scalar_one())


def interaction_count(engine: Engine) -> int:
    with engine.connect() as db:
        return len(db.execute(select(Interaction.id)).all())


def new_source(engine: Engine) -> int:
    """A maildir source row that batches can be stored under without syncing it."""
    table = Source.__table__
    with engine.begin() as db:
        return db.execute(table.insert().values(
            name="mailbox", kind="maildir", channel="company", settings={}, status="new", last_error="",
            lease_owner="").returning(table.c.id)).scalar_one()
