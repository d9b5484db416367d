"""Storing a batch of facts: all of it with its cursor, or none of it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, PersonFact
from registry.ingest import store_batch
from registry.models import Rep, Source

WHEN = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def batch(rep: str, customer: str) -> FactBatch:
    contact = ContactFact("email", f"buyer@{customer}", "Buyer", customer, "organisation")
    message = MessageFact(f"<{rep}-{customer}@mail>", WHEN, "Order", rep, "",
                          (InteractionFact(rep, contact, "outbound", "company"),))
    return FactBatch(messages=[message], people=[PersonFact(rep, "Ann")])


def new_source(engine: Engine) -> int:
    table = Source.__table__
    with engine.begin() as db:
        return db.execute(table.insert().values(
            name="mailbox", kind="maildir", channel="company", settings={}, status="new", last_error="",
            lease_owner="").returning(table.c.id)).scalar_one()


def test_rep_ids_are_learnt_only_from_committed_batches(engine: Engine) -> None:
    """A batch that fails rolls its new reps back, so the ids it saw must not be reused."""
    rep_ids: dict[str, int] = {}
    with pytest.raises(IntegrityError):
        store_batch(engine, 999_999, batch("ann@acme.test", "shop.test"), {}, rep_ids=rep_ids)
    assert rep_ids == {}

    source_id = new_source(engine)
    store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {"n": 1}, rep_ids=rep_ids)
    store_batch(engine, source_id, batch("ann@acme.test", "mill.test"), {"n": 2}, rep_ids=rep_ids)
    with engine.connect() as db:
        ann = db.execute(select(Rep.id).where(Rep.email == "ann@acme.test")).scalar_one()
        assert db.execute(select(func.count()).select_from(Rep)).scalar_one() == 1
        assert db.execute(select(Source.cursor).where(Source.id == source_id)).scalar_one() == {"n": 2}
    assert rep_ids == {"ann@acme.test": ann}
