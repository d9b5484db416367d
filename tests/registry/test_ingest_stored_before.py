"""Ingest learns the ids of the rows it inserts from the inserts themselves; rows stored before (by
an earlier batch, another source or another writer) are read back, so both end up the same."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select

from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, PersonFact
from registry.ingest import ensure_reps, store_batch
from registry.models import Contact, ContactPoint, Customer, Interaction, Message, Rep, RepAddress
from tests.support.registry import new_source

WHEN = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def mail(key: str, rep: str, address: str, customer: str) -> MessageFact:
    contact = ContactFact("email", address, "Buyer", customer, "organisation")
    return MessageFact(key, WHEN, "Order", rep, "", (InteractionFact(rep, contact, "outbound", "company"),))


def stored_interactions(engine: Engine) -> list[tuple[str, str, str, str]]:
    """Each interaction by the natural keys of the rows it points at."""
    with engine.connect() as db:
        return sorted(db.execute(
            select(Message.message_key, Rep.email, ContactPoint.value, Customer.key)
            .select_from(Interaction)
            .join(Message, Message.id == Interaction.message_id)
            .join(Rep, Rep.id == Interaction.rep_id)
            .join(ContactPoint, ContactPoint.id == Interaction.contact_point_id)
            .join(Contact, Contact.id == Interaction.contact_id)
            .join(Customer, Customer.id == Contact.customer_id)
        ).all())


def test_a_person_stored_without_an_address_keeps_its_id_and_gains_the_address(engine: Engine) -> None:
    """A person row another writer inserted before its address row: the insert here skips it, so its
    id is read back rather than taken from the insert."""
    with engine.begin() as db:
        earlier = db.execute(Rep.__table__.insert().values(
            email="ann@acme.test", name="Ann", team="", status="active", role="rep", tenure=0, locale="en",
            created_at=WHEN, updated_at=WHEN).returning(Rep.__table__.c.id)).scalar_one()
        ids = ensure_reps(db, [PersonFact("ann@acme.test"), PersonFact("bob@acme.test", "Bob")])
    with engine.connect() as db:
        addresses = dict(db.execute(select(RepAddress.email, RepAddress.rep_id)).all())
        bob = db.execute(select(Rep.id).where(Rep.email == "bob@acme.test")).scalar_one()
    assert ids == {"ann@acme.test": earlier, "bob@acme.test": bob}
    assert addresses == ids


def test_rows_stored_before_are_pointed_at_beside_new_ones(engine: Engine) -> None:
    """A batch naming a message, customer and address stored before and others it brings first links
    each interaction to the right rows, and counts only the new messages."""
    source_id = new_source(engine)
    store_batch(engine, source_id, FactBatch(messages=[mail("<old@mail>", "ann@acme.test", "old@shop.test", "shop.test")],
                                         people=[PersonFact("ann@acme.test")]), {})
    batch = FactBatch(messages=[
        mail("<old@mail>", "bob@acme.test", "old@shop.test", "shop.test"),
        mail("<new@mail>", "bob@acme.test", "new@shop.test", "shop.test"),
        mail("<mill@mail>", "ann@acme.test", "buyer@mill.test", "mill.test"),
    ], people=[PersonFact("ann@acme.test"), PersonFact("bob@acme.test")])

    assert store_batch(engine, source_id, batch, {}) == 2
    assert stored_interactions(engine) == [
        ("<mill@mail>", "ann@acme.test", "buyer@mill.test", "mill.test"),
        ("<new@mail>", "bob@acme.test", "new@shop.test", "shop.test"),
        ("<old@mail>", "ann@acme.test", "old@shop.test", "shop.test"),
        ("<old@mail>", "bob@acme.test", "old@shop.test", "shop.test"),
    ]
    with engine.connect() as db:
        assert db.execute(select(Customer.key).order_by(Customer.key)).scalars().all() == ["mill.test", "shop.test"]
        assert len(db.execute(select(Message.id)).all()) == 3
