"""Declared reps: one person however many company addresses they write from."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from config.policy import Policy
from policies.identity import KnownRep
from registry.models import Interaction, Rep
from reports.classification import classify
from tests.support.handbuilt import NOW, POLICY, HandBuilt, rep

ALICE, BOB = rep("alice"), rep("bob")
ALICE_ALIAS = "a.smith@sales.corp.example"
EMPLOYEES = Policy(**{**POLICY.model_dump(), "coverage": {**POLICY.coverage.model_dump(), "credit": "employees"}})


def acme(world: HandBuilt, policy: Policy = POLICY) -> tuple[str, list[tuple[str, int]]]:
    found = next(c for c in classify(world.engine, policy, NOW) if c.key == "acme.example")
    return found.coverage_class, [(r.email, r.interactions) for r in found.reps]


def mail_from_both_addresses(world: HandBuilt) -> None:
    world.conversation(ALICE, "buyer@acme.example", 4, days_ago=10)
    world.conversation(ALICE_ALIAS, "cfo@acme.example", 4, days_ago=20)


def test_a_customer_mailed_from_a_reps_two_addresses_is_single_threaded_on_that_rep(engine: Engine) -> None:
    world = HandBuilt(engine)
    world.declare(KnownRep(ALICE, "Alice Smith", aliases=(ALICE_ALIAS,)), KnownRep(BOB, "Bob Jones"))
    mail_from_both_addresses(world)

    for policy in (POLICY, EMPLOYEES):
        assert acme(world, policy) == ("single-threaded", [(ALICE, 8)])
    with engine.connect() as db:
        assert db.execute(select(func.count()).select_from(Rep)).scalar_one() == 2


def test_an_alias_declared_after_mail_showed_it_merges_into_the_rep(engine: Engine) -> None:
    """Mail read before the config named the alias made it a colleague; declaring it moves every
    interaction to the rep and the colleague is gone."""
    world = HandBuilt(engine)
    world.declare(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob Jones"))
    mail_from_both_addresses(world)
    assert acme(world, EMPLOYEES) == ("contested", [(ALICE_ALIAS, 4), (ALICE, 4)])

    world.declare(KnownRep(ALICE, "Alice Smith", aliases=(ALICE_ALIAS,)), KnownRep(BOB, "Bob Jones"))

    assert acme(world, EMPLOYEES) == ("single-threaded", [(ALICE, 8)])
    with engine.connect() as db:
        assert db.execute(select(Rep.email).order_by(Rep.email)).scalars().all() == [ALICE, BOB]
        assert db.execute(select(func.count()).select_from(Interaction)).scalar_one() == 8


def test_colleagues_are_stored_but_credited_only_when_the_policy_credits_every_employee(engine: Engine) -> None:
    world = HandBuilt(engine)
    world.declare(KnownRep(ALICE, "Alice Smith"))
    world.conversation(ALICE, "buyer@acme.example", 2, days_ago=10)
    world.mail(rep("support"), "ops@acme.example", days_ago=10)

    assert acme(world) == ("single-threaded", [(ALICE, 2)])
    assert acme(world, EMPLOYEES)[0] == "covered"
    with engine.connect() as db:
        roles = dict(db.execute(select(Rep.email, Rep.role)).all())
    assert roles == {ALICE: "rep", rep("support"): "colleague"}
