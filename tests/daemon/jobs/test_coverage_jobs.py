"""The scheduled coverage round: does its work once, and a second run changes nothing."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from daemon.jobs.coverage import coverage_round
from policies.identity import KnownRep
from registry.models import AuditEvent
from reports.classification import snapshot_history
from tests.support.handbuilt import NOW, POLICY, HandBuilt, entry, rep

ALICE, BOB = rep("alice"), rep("bob")


def audit_count(engine: Engine) -> int:
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_a_coverage_round_merges_recycles_assigns_and_snapshots_once(engine: Engine) -> None:
    world = HandBuilt(engine, reps=(KnownRep(ALICE), KnownRep(BOB)))
    world.mail(ALICE, "jane@acme.example", days_ago=3)
    world.mail(BOB, "jane.roe@gmail.com", days_ago=2)
    world.address_book(BOB, "personal", entry("1", "Jane", ("jane.roe@gmail.com", "jane@acme.example")))
    world.mail(BOB, "old@sleepy.example", days_ago=500)
    world.set_owner("sleepy.example", BOB)

    first = coverage_round(engine, POLICY, NOW)
    events = audit_count(engine)
    second = coverage_round(engine, POLICY, NOW)

    assert first == {"contacts_merged": 1, "recycled": 1, "owners_assigned": 1}
    assert second == {"contacts_merged": 0, "recycled": 0, "owners_assigned": 0}
    assert audit_count(engine) == events
    [(day, counts)] = snapshot_history(engine)
    assert day == NOW.date() and counts["covered"] == 1 and counts["dormant"] == 1
