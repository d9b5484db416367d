"""Departures as people really leave, checked on what a real SMTP server received, per recipient and in order:
cancelled and re-planned plans, chained departures, future effective dates, late customers, reassignment."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from config.policy import DispatchRules
from config.sections import RepConfig, SmtpConfig
from config.settings import Settings
from daemon.jobs.departure import (
    DepartureError,
    depart,
    departure_round,
    reactivate,
    reassign_customer,
    update_open_plans,
)
from daemon.outbox.dispatch import Dispatcher
from daemon.outbox.transports.smtp import SmtpTransport
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from policies.identity import KnownRep
from registry.handover import approve_handover, cancel_handover, settle_handover
from registry.models import Customer, HandoverItem, Rep
from reports.classification import classify
from tests.daemon.jobs.test_departure import POLICY as DEPARTURE_POLICY
from tests.servers.smtp import SmtpServer
from tests.support.handbuilt import NOW, HandBuilt, rep

POLICY = DEPARTURE_POLICY.model_copy(
    update={"ownership": DEPARTURE_POLICY.ownership.model_copy(update={"grace_period_hours": 0})})
REPS = [
    RepConfig(email=rep("alice"), name="Alice Archer", team="east", manager=rep("mary")),
    RepConfig(email=rep("bob"), name="Bob Baker", team="east", manager=rep("mary")),
    RepConfig(email=rep("carol"), name="Carol Clark", team="east"),
    RepConfig(email=rep("mary"), name="Mary Major"),
]
DAY = timedelta(days=1)
FAREWELLS_DUE = NOW + 10 * DAY - 2 * DAY
RULES = DispatchRules(per_mailbox_per_hour=0, per_domain_per_hour=0, quiet_hours=None, max_per_run=100)


@dataclass
class Company:
    engine: Engine
    built: HandBuilt
    smtp: SmtpServer

    def depart(self, local: str, effective: datetime, now: datetime = NOW, **kwargs: object):  # type: ignore[no-untyped-def]
        return depart(self.engine, POLICY, rep(local), effective=effective, now=now, **kwargs)  # type: ignore[arg-type]

    def approve(self, handover_id: int) -> None:
        with self.engine.begin() as db:
            approve_handover(db, handover_id, "cli:compliance")

    def cancel(self, handover_id: int) -> None:
        with self.engine.begin() as db:
            cancel_handover(db, handover_id, "changed our mind", "cli:compliance")

    def send_due(self, at: datetime) -> None:
        """The outbox as the service runs it, with the clock at `at`."""
        transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=self.smtp.port, security="plain"))
        while Dispatcher(self.engine, RULES, transport, clock=lambda: at).run().sent:
            pass

    def letters(self) -> dict[str, list[tuple[str, str]]]:
        """Per customer address, every (From, body) received, in order."""
        by_recipient: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for mail in self.smtp.received:
            message = mail.message
            by_recipient[str(message["To"])].append(
                (message["From"].addresses[0].addr_spec, message.get_body(("plain",)).get_content()))
        return by_recipient

    def message_ids(self) -> list[str]:
        return [mail.message_id for mail in self.smtp.received]

    def status(self, local: str) -> str:
        with self.engine.connect() as db:
            return db.execute(select(Rep.status).where(Rep.email == rep(local))).scalar_one()


@pytest.fixture
def company(engine: Engine, smtp_server: SmtpServer) -> Company:
    """Alice works Acme (Bob too) and Globex alone; Bob works Initech alone."""
    settings = Settings(reps=REPS)
    register_reps(engine, settings, identity_for(settings, POLICY))
    built = HandBuilt(engine, POLICY, tuple(KnownRep(r.email, r.name) for r in REPS))
    built.conversation(rep("alice"), "john@acme.example", 4, days_ago=20)
    built.conversation(rep("bob"), "john@acme.example", 2, days_ago=3)
    built.conversation(rep("alice"), "li@globex.example", 3, days_ago=10)
    built.conversation(rep("bob"), "ian@initech.example", 2, days_ago=5)
    return Company(engine, built, smtp_server)


def steps_of(letters: list[tuple[str, str]]) -> list[str]:
    return [sender for sender, _ in letters]


def test_cancelling_after_the_letters_went_out_then_departing_again_sends_nothing_twice(company: Company) -> None:
    first = company.depart("alice", NOW + 10 * DAY)
    company.approve(first.handover_id)
    company.send_due(NOW + 12 * DAY)
    sent = len(company.smtp.received)
    company.cancel(first.handover_id)

    again = company.depart("alice", NOW + 10 * DAY, now=NOW + 13 * DAY)
    company.approve(again.handover_id)
    company.send_due(NOW + 14 * DAY)

    assert sent == 4 and len(company.smtp.received) == 4
    assert (again.created, again.planned, again.already_sent) == (True, 0, 4)
    assert len(set(company.message_ids())) == 4


def test_cancelling_midway_and_planning_again_sends_each_step_once(company: Company) -> None:
    first = company.depart("alice", NOW + 10 * DAY)
    company.approve(first.handover_id)
    company.send_due(FAREWELLS_DUE)
    company.cancel(first.handover_id)
    assert company.status("alice") == "active"

    again = company.depart("alice", NOW + 10 * DAY, now=NOW + DAY)
    company.approve(again.handover_id)
    company.send_due(NOW + 12 * DAY)

    assert (again.planned, again.already_sent) == (2, 2)
    letters = company.letters()
    assert steps_of(letters["john@acme.example"]) == ["customers@corp.example", rep("bob")]
    assert steps_of(letters["li@globex.example"]) == ["customers@corp.example", rep("mary")]
    assert len(set(company.message_ids())) == len(company.message_ids()) == 4


def test_a_rehired_rep_who_leaves_again_is_a_new_departure(company: Company) -> None:
    first = company.depart("alice", NOW + 10 * DAY)
    company.approve(first.handover_id)
    company.send_due(NOW + 12 * DAY)
    with company.engine.begin() as db:
        settle_handover(db, first.handover_id, "test")
    reactivate(company.engine, rep("alice"), now=NOW + 100 * DAY)
    company.built.set_owner("globex.example", rep("alice"))

    again = company.depart("alice", NOW + 130 * DAY, now=NOW + 110 * DAY)

    assert again.planned == 2 and again.already_sent == 0


def test_chained_departures_leave_each_customer_a_coherent_story(company: Company) -> None:
    """Alice hands Acme to Bob; Bob then leaves, and so does Mary, who was to take over from him.
    Acme's John hears: farewell (naming Bob), one correction per name that became wrong, and the
    introduction from the rep who finally takes over; nothing from or introducing anyone who left."""
    alice = company.depart("alice", NOW + 10 * DAY)
    assert company.status("alice") == "leaving"
    company.approve(alice.handover_id)
    company.send_due(FAREWELLS_DUE)

    bob = company.depart("bob", NOW + 11 * DAY, now=FAREWELLS_DUE + timedelta(hours=1))
    assert bob.replanned == [alice.handover_id]
    company.send_due(FAREWELLS_DUE + timedelta(hours=2))
    mary = company.depart("mary", NOW + 12 * DAY, now=FAREWELLS_DUE + timedelta(hours=3))
    assert mary.replanned == [alice.handover_id, bob.handover_id]
    company.approve(bob.handover_id)
    company.approve(mary.handover_id)
    company.send_due(NOW + 20 * DAY)

    john = company.letters()["john@acme.example"]
    assert steps_of(john) == ["customers@corp.example", "customers@corp.example", "customers@corp.example",
                              rep("carol")]
    assert "Bob Baker" in john[0][1] and "Mary Major" in john[1][1] and "Carol Clark" in john[2][1]
    assert all("Bob Baker" not in body and "Mary Major" not in body for _, body in john[2:])
    ian = company.letters()["ian@initech.example"]
    assert steps_of(ian)[-1] == rep("carol")
    with company.engine.connect() as db:
        items = dict(db.execute(select(Customer.key, Rep.email).join(HandoverItem, HandoverItem.customer_id == Customer.id)
                                .join(Rep, Rep.id == HandoverItem.successor_rep_id)
                                .where(HandoverItem.handover_id == alice.handover_id)).all())
    assert items == {"acme.example": rep("carol"), "globex.example": rep("carol")}


def test_a_leaving_rep_is_never_a_successor(company: Company) -> None:
    company.depart("bob", NOW + 20 * DAY)
    with pytest.raises(DepartureError, match="not an active rep"):
        company.depart("alice", NOW + 10 * DAY, successor_email=rep("bob"))
    outcome = company.depart("alice", NOW + 10 * DAY)
    with company.engine.connect() as db:
        successors = set(db.execute(select(Rep.email).join(HandoverItem, HandoverItem.successor_rep_id == Rep.id)
                                    .where(HandoverItem.handover_id == outcome.handover_id)).scalars())
    assert rep("bob") not in successors


def test_a_future_effective_date_makes_the_rep_leaving_until_that_day(company: Company) -> None:
    """Until the day, the rep still works and still covers; cancel makes them active again; on the day they depart."""
    outcome = company.depart("alice", NOW + 10 * DAY)
    assert company.status("alice") == "leaving"
    covering = {c.key: c.coverage_class for c in classify(company.engine, POLICY, NOW)}
    assert covering["globex.example"] == "single-threaded"

    company.cancel(outcome.handover_id)
    assert company.status("alice") == "active"

    company.depart("alice", NOW + 10 * DAY, now=NOW + DAY)
    departure_round(company.engine, POLICY, None, now=NOW + 9 * DAY)
    assert company.status("alice") == "leaving"
    departure_round(company.engine, POLICY, None, now=NOW + 10 * DAY)
    assert company.status("alice") == "departed"


def test_customers_who_appear_during_the_notice_period_join_the_open_plan(company: Company) -> None:
    outcome = company.depart("alice", NOW + 10 * DAY)
    company.approve(outcome.handover_id)
    company.built.conversation(rep("alice"), "kim@umbrella.example", 2, days_ago=-2)

    update_open_plans(company.engine, POLICY, NOW + 3 * DAY)
    company.send_due(NOW + 12 * DAY)

    with company.engine.connect() as db:
        joined = db.execute(select(Customer.key, HandoverItem.added_later)
                            .join(HandoverItem, HandoverItem.customer_id == Customer.id)
                            .where(HandoverItem.handover_id == outcome.handover_id)).all()
    assert ("umbrella.example", True) in joined and ("acme.example", False) in joined
    assert steps_of(company.letters()["kim@umbrella.example"]) == ["customers@corp.example", rep("mary")]


def test_reassigning_one_customer_renders_its_letters_for_the_new_successor(company: Company) -> None:
    outcome = company.depart("alice", NOW + 10 * DAY)
    with company.engine.begin() as db:
        globex = db.execute(select(Customer.id).where(Customer.key == "globex.example")).scalar_one()
        carol = db.execute(select(Rep.id).where(Rep.email == rep("carol"))).scalar_one()
        summary = reassign_customer(db, POLICY, outcome.handover_id, globex, carol, "cli:compliance", now=NOW)
    company.approve(outcome.handover_id)
    company.send_due(NOW + 12 * DAY)

    assert "2 letters rendered anew" in summary
    li = company.letters()["li@globex.example"]
    assert steps_of(li) == ["customers@corp.example", rep("carol")]
    assert "Carol Clark" in li[0][1] and "Mary Major" not in li[0][1]
