"""Storing a batch of facts: all of it with its cursor, or none of it."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, PersonFact, SightingFact
from registry.ingest import Known, store_batch, store_facts
from registry.models import Contact, ContactPoint, Customer, Rep, Source
from tests.support.registry import new_source

WHEN = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def batch(rep: str, customer: str, buyer: str = "buyer") -> FactBatch:
    contact = ContactFact("email", f"{buyer}@{customer}", "Buyer", customer, "organisation")
    message = MessageFact(f"<{rep}-{buyer}-{customer}@mail>", WHEN, "Order", rep, "",
                          (InteractionFact(rep, contact, "outbound", "company"),))
    return FactBatch(messages=[message], people=[PersonFact(rep, "Ann")])


def test_ids_are_learnt_only_from_committed_batches(engine: Engine) -> None:
    """A batch that fails rolls its new reps and contact points back, so the ids it saw must not be reused."""
    known = Known()
    with pytest.raises(IntegrityError):
        store_batch(engine, 999_999, batch("ann@acme.test", "shop.test"), {}, known=known)
    assert known == Known()

    source_id = new_source(engine)
    store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {"n": 1}, known=known)
    store_batch(engine, source_id, batch("ann@acme.test", "mill.test"), {"n": 2}, known=known)
    with engine.connect() as db:
        ann = db.execute(select(Rep.id).where(Rep.email == "ann@acme.test")).scalar_one()
        points = dict(db.execute(select(ContactPoint.value, ContactPoint.id)).all())
        assert db.execute(select(func.count()).select_from(Rep)).scalar_one() == 1
        assert db.execute(select(Source.cursor).where(Source.id == source_id)).scalar_one() == {"n": 2}
    assert known.reps == {"ann@acme.test": ann}
    assert known.points == {("email", value): point_id for value, point_id in points.items()}


def test_a_known_contact_point_still_names_its_customer_from_an_address_book(engine: Engine) -> None:
    """One writer first learns an address from mail, then meets it in an address book that names
    the organisation: the point's id is known, but the customer is named all the same."""
    known = Known()
    source_id = new_source(engine)
    store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {}, known=known)
    point = ContactFact("email", "buyer@shop.test", "Buyer", "shop.test", "organisation", "Shop Limited")
    store_batch(engine, source_id, FactBatch(sightings=[SightingFact("book#1", "", "company", (point,))]), {},
                known=known)
    with engine.connect() as db:
        assert db.execute(select(Customer.name).where(Customer.key == "shop.test")).scalar_one() == "Shop Limited"
        assert db.execute(select(func.count()).select_from(ContactPoint)).scalar_one() == 1


def test_a_customer_is_named_by_the_first_address_book_that_names_it(engine: Engine) -> None:
    """Mail knows a customer only by its domain; an address book's organisation name replaces that
    once, and a later book does not rename it."""
    source_id = new_source(engine)
    store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {})
    for n, organisation in enumerate(["Shop Limited", "Shop Ltd (old)"]):
        point = ContactFact("email", f"buyer{n}@shop.test", "Buyer", "shop.test", "organisation", organisation)
        store_batch(engine, source_id, FactBatch(sightings=[SightingFact(f"book#{n}", "", "company", (point,))]), {})
    with engine.connect() as db:
        assert db.execute(select(Customer.name).where(Customer.key == "shop.test")).scalar_one() == "Shop Limited"


@pytest.mark.postgres
def test_two_writers_adding_one_new_address_leave_one_contact(postgres_engine: Engine) -> None:
    """The second writer creates a contact, then finds the address taken when the first commits."""
    engine = postgres_engine
    source_id = new_source(engine)
    store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {})
    store_batch(engine, source_id, batch("bob@acme.test", "shop.test"), {})
    with ThreadPoolExecutor(1) as pool, engine.connect() as first:
        transaction = first.begin()
        store_facts(first, source_id, batch("ann@acme.test", "shop.test", buyer="new"), Known())
        second = pool.submit(store_batch, engine, source_id, batch("bob@acme.test", "shop.test", buyer="new"), {})
        try:
            wait_until_blocked(engine, second)
        finally:
            transaction.commit()
        second.result(timeout=30)
    with engine.connect() as db:
        contacts = db.execute(select(func.count()).select_from(Contact)).scalar_one()
        points = db.execute(select(func.count()).select_from(ContactPoint)).scalar_one()
    assert (contacts, points) == (2, 2)


def wait_until_blocked(engine: Engine, writer: Future[None]) -> None:
    """Until a session of this database (the test's own) waits for a lock another holds, however long
    the writer takes to get there; fails when the writer ended without waiting. Each look is a
    transaction of its own: PostgreSQL shows one transaction the same pg_stat_activity throughout."""
    with engine.connect() as db:
        while not writer.done():
            waiting = db.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()")).scalar_one()
            db.rollback()
            if waiting:
                return
            time.sleep(0.01)
    writer.result()
    raise AssertionError("the second writer never waited for the first")


def test_a_batch_read_again_stores_nothing_new_and_says_so(engine: Engine) -> None:
    source_id = new_source(engine)

    first = store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {})
    again = store_batch(engine, source_id, batch("ann@acme.test", "shop.test"), {})

    assert (first, again) == (1, 0)
