"""One person seen by several reps through different addresses and numbers becomes one Contact."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from policies.identity import KnownRep
from registry.contacts import merge_contacts
from registry.departure_facts import contact_names
from registry.models import AuditEvent, Contact, ContactPoint, Customer, Interaction
from reports.classification import classify
from tests.support.handbuilt import NOW, HandBuilt, entry, rep

ALICE, BOB = rep("alice"), rep("bob")


def contact_of(engine: Engine, value: str) -> int:
    with engine.connect() as db:
        return db.execute(select(ContactPoint.contact_id).where(ContactPoint.value == value)).scalar_one()


def test_an_address_book_entry_joins_contacts_first_met_apart(engine: Engine) -> None:
    world = HandBuilt(engine, reps=(KnownRep(ALICE), KnownRep(BOB)))
    world.mail(ALICE, "jane@acme.example", days_ago=3)
    world.mail(BOB, "jane.roe@gmail.com", days_ago=2)
    world.address_book(BOB, "personal", entry("1", "Jane Roe", ("jane.roe@gmail.com", "jane@acme.example"),
                                                ("+44 20 7946 0000",)))
    assert contact_of(engine, "jane@acme.example") != contact_of(engine, "janeroe@gmail.com")

    assert merge_contacts(engine, "test") == 1

    jane = contact_of(engine, "jane@acme.example")
    assert contact_of(engine, "janeroe@gmail.com") == jane == contact_of(engine, "+442079460000")
    with engine.connect() as db:
        assert db.execute(select(func.count()).select_from(Contact)).scalar_one() == 1
        assert set(db.execute(select(Interaction.contact_id, Customer.key)
                              .join(Customer, Customer.id == Interaction.customer_id)).all()) == {(jane, "acme.example")}
        assert db.execute(select(Customer.status).where(Customer.key == "janeroe@gmail.com")).scalar_one() == "merged"
        assert db.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all() == [
            "contact.merged", "customer.merged"]
    acme = {c.key: c for c in classify(engine, world.policy, NOW)}
    assert "janeroe@gmail.com" not in acme
    assert acme["acme.example"].coverage_class == "covered"
    assert merge_contacts(engine, "test") == 0


def test_merges_follow_chains_of_entries(engine: Engine) -> None:
    world = HandBuilt(engine, reps=(KnownRep(ALICE), KnownRep(BOB)))
    for address in ("a@chain.example", "b@chain.example", "c@chain.example"):
        world.mail(ALICE, address, days_ago=1)
    world.address_book(ALICE, "company", entry("1", "A", ("a@chain.example", "b@chain.example"), channel="company"))
    world.address_book(BOB, "personal", entry("2", "A", ("b@chain.example", "c@chain.example")))

    assert merge_contacts(engine, "test") == 2
    assert len({contact_of(engine, a) for a in ("a@chain.example", "b@chain.example", "c@chain.example")}) == 1


def test_colleagues_sharing_a_switchboard_number_stay_two_people(engine: Engine) -> None:
    """A company's main number in two people's cards proves nothing: only an address does."""
    world = HandBuilt(engine, reps=(KnownRep(ALICE), KnownRep(BOB)))
    world.mail(ALICE, "james@orion.example", days_ago=3)
    world.address_book(BOB, "company", entry("1", "James Morgan", ("james@orion.example",), ("+44 20 7946 0708",),
                                              channel="company"),
                       entry("2", "Laura Carter", ("laura@orion.example",), ("+44 20 7946 0708",), channel="company"))

    merge_contacts(engine, "test")

    james, laura = contact_of(engine, "james@orion.example"), contact_of(engine, "laura@orion.example")
    assert james != laura
    with engine.connect() as db:
        assert contact_names(db, [james, laura]) == {james: "James Morgan", laura: "Laura Carter"}
