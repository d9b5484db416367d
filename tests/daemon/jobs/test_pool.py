"""Owner assignment per policy rule and dormant recycling, with their audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from connectors.csv_contacts import CsvContactsConnector
from daemon.jobs.pool import assign_owners, recycle_dormant
from policies.identity import KnownRep
from registry.models import AuditEvent, Customer, Rep
from reports.classification import classify
from tests.support.handbuilt import NOW, POLICY, HandBuilt, rep
from tests.support.sources import opened

ALICE, BOB = rep("alice"), rep("bob")


@pytest.fixture
def world(engine: Engine) -> HandBuilt:
    return HandBuilt(engine, reps=(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob Jones")))


def owners(engine: Engine) -> dict[str, tuple[str | None, bool, str]]:
    with engine.connect() as db:
        rows = db.execute(select(Customer.key, Rep.email, Customer.pool, Customer.owner_reason)
                          .outerjoin(Rep, Rep.id == Customer.owner_rep_id)).all()
    return {key: (email, pool, reason) for key, email, pool, reason in rows}


def audit_actions(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as db:
        return [tuple(r) for r in db.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.entity_id)
                                             .order_by(AuditEvent.id))]


def with_rule(rule: str):  # type: ignore[no-untyped-def]
    return POLICY.model_copy(update={"coverage": POLICY.coverage.model_copy(update={"owner_rule": rule})})


def test_most_interactions_and_first_to_engage_pick_different_owners(world: HandBuilt) -> None:
    world.mail(BOB, "x@acme.example", days_ago=50)
    world.conversation(ALICE, "y@acme.example", 3, days_ago=10)
    world.mail(ALICE, "z@solo.example", days_ago=5)

    engine = world.engine
    assert assign_owners(engine, with_rule("first-to-engage"), NOW, "test") == 2
    assert owners(engine)["acme.example"] == (BOB, False, "policy:first-to-engage")
    world.set_owner("acme.example", None)
    assert assign_owners(engine, with_rule("most-interactions"), NOW, "test") == 1
    assert owners(engine)["acme.example"] == (ALICE, False, "policy:most-interactions")
    assert owners(engine)["solo.example"][0] == ALICE


def test_assignment_runs_once_and_leaves_contested_customers_to_an_agreed_owner(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@initech.example", 2, days_ago=30)
    world.conversation(BOB, "b@initech.example", 3, days_ago=30)

    assert assign_owners(world.engine, POLICY, NOW, "test") == 0
    assert owners(world.engine)["initech.example"][0] is None
    assert assign_owners(world.engine, POLICY, NOW, "test") == 0


def test_a_crm_import_settles_ownership_even_of_a_contested_customer(world: HandBuilt, tmp_path: Path) -> None:
    world.conversation(ALICE, "a@initech.example", 2, days_ago=30)
    world.conversation(BOB, "b@initech.example", 3, days_ago=30)
    (tmp_path / "crm.csv").write_text("Email,Company,Account owner\n"
                                      "a@initech.example,Initech,alice@corp.example\n", encoding="utf-8")
    export = opened(CsvContactsConnector, path=tmp_path / "crm.csv", columns={"owner": "Account owner"})
    world.address_book(BOB, "company", *[r for b in export.sync(None) for r in b.records], kind="csv")  # type: ignore[misc]

    assert assign_owners(world.engine, with_rule("crm"), NOW, "cli:test") == 1
    assert owners(world.engine)["initech.example"] == (ALICE, False, "policy:crm")
    assert {c.key: c.coverage_class for c in classify(world.engine, POLICY, NOW)}["initech.example"] == "covered"
    assert audit_actions(world.engine)[-1][:2] == ("cli:test", "customer.owner_assigned")


def test_dormant_customers_return_to_the_pool_once_with_an_audit_event(world: HandBuilt) -> None:
    world.mail(ALICE, "old@sleepy.example", days_ago=400)
    world.mail(ALICE, "new@busy.example", days_ago=4)
    world.set_owner("sleepy.example", ALICE)
    world.set_owner("busy.example", ALICE)

    assert recycle_dormant(world.engine, POLICY, NOW, "scheduler", dry_run=True) != []
    assert owners(world.engine)["sleepy.example"] == (ALICE, False, "")
    moved = recycle_dormant(world.engine, POLICY, NOW, "scheduler")

    assert owners(world.engine)["sleepy.example"] == (None, True, "dormant")
    assert owners(world.engine)["busy.example"][:2] == (ALICE, False)
    assert audit_actions(world.engine) == [("scheduler", "customer.recycled_to_pool", str(moved[0]))]
    assert recycle_dormant(world.engine, POLICY, NOW, "scheduler") == []
    assert len(audit_actions(world.engine)) == 1


def test_a_pool_customer_that_wakes_up_gets_an_owner_and_leaves_the_pool(world: HandBuilt) -> None:
    world.mail(BOB, "old@sleepy.example", days_ago=400)
    recycle_dormant(world.engine, POLICY, NOW, "scheduler")
    world.mail(BOB, "old@sleepy.example", days_ago=1)

    assign_owners(world.engine, POLICY, NOW, "scheduler")

    assert owners(world.engine)["sleepy.example"] == (BOB, False, "policy:most-interactions")
