"""Departure end to end on a hand-built company: plan, approve, cancel, reactivate, take effect, report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.records import DirectoryEvent
from daemon.jobs.departure import (
    DepartureError,
    depart,
    departure_round,
    handle_directory_events,
    plan_notifications,
    process_hr_folder,
    reactivate,
    settle_due_handovers,
)
from daemon.jobs.handover_letters import LetterPlan
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from policies.identity import KnownRep
from registry.handover import HandoverError, approve_handover, cancel_handover, handover_report
from registry.models import AuditEvent, Contact, ContactPoint, Customer, Handover, HandoverItem, Notification, Rep
from tests.support.handbuilt import NOW, HandBuilt, entry, rep

POLICY = Policy(
    company_domains=["corp.example"], lookback_days=90,
    ownership={"strategies": ["explicit", "co_covering", "manager", "team_least_loaded", "pool"],
               "requires_approval": True, "grace_period_hours": 24},
    notifications={"company_name": "Corp", "shared_mailbox": "customers@corp.example"},
)
REPS = [
    RepConfig(email=rep("alice"), name="Alice Archer", team="east", manager=rep("mary")),
    RepConfig(email=rep("bob"), name="Bob Baker", team="east"),
    RepConfig(email=rep("mary"), name="Mary Major"),
]
EFFECTIVE = NOW + timedelta(days=7)


@dataclass
class Company:
    engine: Engine
    built: HandBuilt

    def depart(self, **kwargs: object):  # type: ignore[no-untyped-def]
        return depart(self.engine, POLICY, rep("alice"), **({"effective": EFFECTIVE, "now": NOW} | kwargs))  # type: ignore[arg-type]

    def notifications(self, handover_id: int) -> list:  # type: ignore[type-arg]
        with self.engine.connect() as db:
            return list(db.execute(select(Notification.__table__).where(Notification.handover_id == handover_id)
                                   .order_by(Notification.to_email, Notification.step)))

    def items(self, handover_id: int) -> dict[str, tuple[str | None, str, bool]]:
        with self.engine.connect() as db:
            rows = db.execute(select(Customer.key, Rep.email, HandoverItem.strategy, HandoverItem.needs_human)
                              .join(Customer, Customer.id == HandoverItem.customer_id)
                              .outerjoin(Rep, Rep.id == HandoverItem.successor_rep_id)
                              .where(HandoverItem.handover_id == handover_id))
            return {key: (email, strategy, human) for key, email, strategy, human in rows}

    def status(self, handover_id: int) -> str:
        with self.engine.connect() as db:
            return db.execute(select(Handover.status).where(Handover.id == handover_id)).scalar_one()

    def rep_status(self, local: str) -> str:
        with self.engine.connect() as db:
            return db.execute(select(Rep.status).where(Rep.email == rep(local))).scalar_one()


@pytest.fixture
def company(engine: Engine) -> Company:
    """Alice leaves. Acme is co-covered by Bob; Globex (China) only by Alice; Initech only in her phone."""
    settings = Settings(reps=REPS)
    register_reps(engine, settings, identity_for(settings, POLICY))
    built = HandBuilt(engine, POLICY, tuple(KnownRep(r.email, r.name) for r in REPS))
    built.conversation(rep("alice"), "john@acme.example", 4, days_ago=20)
    built.conversation(rep("alice"), "jane@acme.example", 2, days_ago=40)
    built.conversation(rep("bob"), "john@acme.example", 2, days_ago=3)
    built.conversation(rep("alice"), "li@globex.com.cn", 3, days_ago=10)
    built.address_book(rep("alice"), "personal", entry("1", "Peter Gibbons", emails=("peter@initech.example",)))
    with engine.begin() as db:
        db.execute(update(Contact.__table__).where(Contact.__table__.c.id.in_(
            select(ContactPoint.contact_id).where(ContactPoint.value == "li@globex.com.cn"))).values(name="李雷"))
    return Company(engine, built)


def test_plan_assigns_every_customer_and_plans_one_message_per_contact_and_step(company: Company) -> None:
    outcome = company.depart()
    assert (outcome.created, outcome.customers, outcome.needs_human, outcome.planned) == (True, 3, 1, 6)
    assert company.items(outcome.handover_id) == {
        "acme.example": (rep("bob"), "co_covering", False),
        "globex.com.cn": (rep("mary"), "manager", False),
        "initech.example": (rep("mary"), "manager", True),
    }
    rows = company.notifications(outcome.handover_id)
    assert [(r.to_email, r.step, r.sender_email, r.cc_emails, r.locale) for r in rows] == [
        ("jane@acme.example", "farewell", "customers@corp.example", [rep("bob")], "en"),
        ("jane@acme.example", "introduction", rep("bob"), [], "en"),
        ("john@acme.example", "farewell", "customers@corp.example", [rep("bob")], "en"),
        ("john@acme.example", "introduction", rep("bob"), [], "en"),
        ("li@globex.com.cn", "farewell", "customers@corp.example", [rep("mary")], "zh"),
        ("li@globex.com.cn", "introduction", rep("mary"), [], "zh"),
    ]
    assert all(r.state == "held" and r.held_reason == "awaiting approval" for r in rows)
    assert all(r.message_id_header == f"<custody.{r.idempotency_key}@corp.example>" for r in rows)
    li_farewell = rows[4]
    assert li_farewell.subject == "【Corp】联系人变更：Mary Major将接替Alice Archer"
    assert li_farewell.body_text.startswith("李雷您好：") and "2026年7月7日" in li_farewell.body_text
    assert li_farewell.send_after == EFFECTIVE - timedelta(days=2)
    assert "Bob Baker will look after you from 7 July 2026" in rows[2].body_text and "<p>" in rows[2].body_html
    assert company.rep_status("alice") == "leaving"


def test_letters_name_a_customer_only_by_a_name_an_address_book_gave_it(company: Company) -> None:
    """Acme's name comes from Bob's address book; Globex is known only by its domain from mail."""
    company.built.address_book(rep("bob"), "company", entry("9", "John Smith", emails=("john@acme.example",),
                                                             organisation="Acme  Corporation", book="crm"))
    letters = {(r.to_email, r.step): r.body_text for r in company.notifications(company.depart().handover_id)}
    assert "from Alice Archer as the contact for Acme Corporation at Corp." in letters[("john@acme.example", "introduction")]
    assert "make sure Acme Corporation keeps a direct line" in letters[("jane@acme.example", "farewell")]
    assert "接替Alice Archer，负责与您的业务联系" in letters[("li@globex.com.cn", "introduction")]
    assert not any("globex" in text for (to, _), text in letters.items() if to == "li@globex.com.cn")


def test_planning_twice_creates_nothing_new(company: Company) -> None:
    first = company.depart()
    before = company.notifications(first.handover_id)
    again = company.depart(now=NOW + timedelta(hours=3))
    with company.engine.begin() as db:
        assert plan_notifications(db, POLICY, first.handover_id, "test") == LetterPlan()
    assert (again.handover_id, again.created, again.planned) == (first.handover_id, False, 0)
    assert company.notifications(first.handover_id) == before
    with company.engine.connect() as db:
        assert db.execute(select(Handover.id)).scalars().all() == [first.handover_id]


def test_approval_releases_the_held_messages_once(company: Company) -> None:
    handover_id = company.depart().handover_id
    with company.engine.begin() as db:
        assert approve_handover(db, handover_id, "cli:compliance") == 6
    assert company.status(handover_id) == "notifying"
    assert {(r.state, r.held_reason) for r in company.notifications(handover_id)} == {("pending", "")}
    with pytest.raises(HandoverError, match="only a planned handover can be approved"):
        with company.engine.begin() as db:
            approve_handover(db, handover_id, "cli:compliance")


def test_no_approval_policy_plans_pending_messages(engine: Engine, company: Company) -> None:
    policy = POLICY.model_copy(update={"ownership": POLICY.ownership.model_copy(update={"requires_approval": False})})
    outcome = depart(engine, policy, rep("alice"), effective=EFFECTIVE, now=NOW)
    assert company.status(outcome.handover_id) == "notifying"
    assert {r.state for r in company.notifications(outcome.handover_id)} == {"pending"}


def test_cancel_holds_everything_not_yet_sent(company: Company) -> None:
    handover_id = company.depart().handover_id
    with company.engine.begin() as db:
        approve_handover(db, handover_id, "cli:compliance")
        db.execute(update(Notification.__table__).where(Notification.__table__.c.to_email == "john@acme.example",
                                                        Notification.__table__.c.step == "farewell")
                   .values(state="sent", sent_at=NOW))
        assert cancel_handover(db, handover_id, "wrong person", "cli:compliance").held == 5
    states = {(r.to_email, r.step): (r.state, r.held_reason) for r in company.notifications(handover_id)}
    assert states[("john@acme.example", "farewell")] == ("sent", "")
    assert {v for k, v in states.items() if k != ("john@acme.example", "farewell")} == {("held", "cancelled: wrong person")}
    assert company.status(handover_id) == "cancelled"
    with company.engine.connect() as db:
        report = handover_report(db, handover_id)
    assert (report.planned, report.by_state, len(report.held)) == (6, {"sent": 1, "held": 5}, 5)


def test_reactivation_before_the_effective_date_cancels_what_was_not_sent(company: Company) -> None:
    handover_id = company.depart().handover_id
    assert reactivate(company.engine, rep("alice"), now=NOW + timedelta(days=1)) == handover_id
    assert company.status(handover_id) == "cancelled" and company.rep_status("alice") == "active"
    assert {(r.state, r.held_reason) for r in company.notifications(handover_id)} == {("held", "cancelled: reactivated")}
    assert company.depart(now=NOW + timedelta(days=2)).handover_id != handover_id


def test_reactivation_after_the_effective_date_leaves_the_handover(company: Company) -> None:
    handover_id = company.depart().handover_id
    assert reactivate(company.engine, rep("alice"), now=EFFECTIVE + timedelta(hours=1)) is None
    assert company.status(handover_id) == "planned" and company.rep_status("alice") == "active"


def test_ownership_moves_when_the_handover_takes_effect(company: Company) -> None:
    handover_id = company.depart().handover_id
    assert settle_due_handovers(company.engine, now=EFFECTIVE + timedelta(days=1)) == []
    with company.engine.begin() as db:
        approve_handover(db, handover_id, "cli:compliance")
    assert settle_due_handovers(company.engine, now=EFFECTIVE - timedelta(hours=1)) == []
    assert settle_due_handovers(company.engine, now=EFFECTIVE) == [handover_id]
    with company.engine.connect() as db:
        owners = dict(db.execute(select(Customer.key, Rep.email).join(Rep, Rep.id == Customer.owner_rep_id)).all())
        reason = db.execute(select(Customer.owner_reason).where(Customer.key == "acme.example")).scalar_one()
        moved = db.execute(select(AuditEvent.entity_id).where(AuditEvent.action == "ownership_moved")).scalars().all()
    assert owners == {"acme.example": rep("bob"), "globex.com.cn": rep("mary"), "initech.example": rep("mary")}
    assert reason.startswith(f"handover {handover_id}: co_covering: Bob Baker")
    assert len(moved) == 3 and company.rep_status("alice") == "departed"
    assert company.status(handover_id) == "notifying"
    with company.engine.begin() as db:
        db.execute(update(Notification.__table__).values(state="sent", sent_at=EFFECTIVE))
    assert settle_due_handovers(company.engine, now=EFFECTIVE + timedelta(days=3)) == []
    assert company.status(handover_id) == "done"


def test_pool_customers_are_marked_for_the_pool(engine: Engine, company: Company) -> None:
    policy = POLICY.model_copy(update={"ownership": POLICY.ownership.model_copy(
        update={"strategies": ["co_covering", "pool"], "requires_approval": False})})
    handover_id = depart(engine, policy, rep("alice"), effective=NOW, now=NOW).handover_id
    settle_due_handovers(engine, now=NOW)
    with engine.connect() as db:
        pooled = set(db.execute(select(Customer.key).where(Customer.pool.is_(True))).scalars())  # type: ignore[attr-defined]
        steps = {(r.to_email, r.step) for r in company.notifications(handover_id)}
    assert pooled == {"globex.com.cn", "initech.example"}
    assert ("li@globex.com.cn", "farewell") in steps and ("li@globex.com.cn", "introduction") not in steps


def test_explicit_successor_and_unknown_reps(company: Company) -> None:
    outcome = company.depart(successor_email=rep("mary"))
    assert {s for s, _, _ in company.items(outcome.handover_id).values()} == {rep("mary")}
    with pytest.raises(DepartureError, match="no rep is known"):
        depart(company.engine, POLICY, "nobody@corp.example")
    with pytest.raises(DepartureError, match="cannot succeed themselves"):
        depart(company.engine, POLICY, rep("bob"), successor_email=rep("bob"))


def test_directory_events_act_once_however_often_delivered(company: Company) -> None:
    leave = DirectoryEvent("graph:1", "deactivated", rep("alice"), effective=EFFECTIVE)
    back = DirectoryEvent("graph:2", "reactivated", rep("alice"))
    lines = handle_directory_events(company.engine, POLICY, [leave, leave], now=NOW)
    assert lines[0].startswith("graph:1: handover") and lines[1] == "graph:1: already handled"
    lines = handle_directory_events(company.engine, POLICY, [back, leave, back], now=NOW)
    assert lines[1:] == ["graph:1: already handled", "graph:2: already handled"]
    assert company.rep_status("alice") == "active"
    with company.engine.connect() as db:
        assert db.execute(select(Handover.status)).scalars().all() == ["cancelled"]
    stranger = DirectoryEvent("graph:3", "deactivated", "temp@corp.example")
    assert handle_directory_events(company.engine, POLICY, [stranger]) == ["graph:3: ignored: not a known rep"]
    boss = DirectoryEvent("graph:4", "manager_changed", rep("bob"), manager_email=rep("mary"))
    handle_directory_events(company.engine, POLICY, [boss])
    with company.engine.connect() as db:
        assert db.execute(select(Rep.manager_id).where(Rep.email == rep("bob"))).scalar_one() is not None


def test_hr_csv_rows_act_once_even_when_the_file_is_dropped_again(company: Company, tmp_path: Path) -> None:
    csv_text = f"email,action,effective_date\n{rep('alice')},leaver,{EFFECTIVE:%Y-%m-%d}\n{rep('bob')},promoted,\n"
    (tmp_path / "leavers.csv").write_text(csv_text, encoding="utf-8")
    lines = process_hr_folder(company.engine, POLICY, tmp_path, now=NOW)
    assert "skipped: unknown action 'promoted'" in lines[0] and "handover" in lines[1]
    assert (tmp_path / "processed" / "leavers.csv").exists() and not (tmp_path / "leavers.csv").exists()
    with company.engine.begin() as db:
        handover_id = db.execute(select(Handover.id)).scalar_one()
        cancel_handover(db, handover_id, "HR mistake", "cli:hr")
    (tmp_path / "again.csv").write_text(csv_text, encoding="utf-8")
    assert process_hr_folder(company.engine, POLICY, tmp_path, now=NOW)[1].endswith("already handled")
    with company.engine.connect() as db:
        assert db.execute(select(Handover.id, Handover.trigger)).all() == [(handover_id, "hr-csv")]


def test_hostile_names_and_addresses_from_mail_cannot_inject_headers(company: Company) -> None:
    with company.engine.begin() as db:
        db.execute(update(Contact.__table__).where(Contact.__table__.c.id.in_(
            select(ContactPoint.contact_id).where(ContactPoint.value == "john@acme.example")))
            .values(name="John\r\nBcc: everyone@corp.example"))
        db.execute(update(ContactPoint.__table__).where(ContactPoint.__table__.c.value == "jane@acme.example")
                   .values(value="jane@acme.example\r\nBcc: everyone@corp.example"))
        db.execute(update(Customer.__table__).where(Customer.__table__.c.key == "acme.example")
                   .values(name="Acme <b>Corp</b>"))
        db.execute(update(Rep.__table__).where(Rep.__table__.c.email == rep("bob"))
                   .values(name="Bob\nSubject: free money"))
    outcome = company.depart()
    assert [r.contact_id for r in outcome.rejected] != [] and outcome.planned == 4
    rows = company.notifications(outcome.handover_id)
    assert all("everyone@corp.example" not in r.to_email for r in rows)
    for row in rows:
        assert "\r" not in row.subject and "\n" not in row.subject
    john = [r for r in rows if r.to_email == "john@acme.example" and r.step == "farewell"][0]
    assert john.subject == "Alice Archer is leaving Corp: Bob Subject: free money will be your new contact"
    assert "Dear John Bcc: everyone@corp.example," in john.body_text
    assert "Acme &lt;b&gt;Corp&lt;/b&gt;" in john.body_html


def test_the_service_round_reads_hr_files_then_lets_due_handovers_take_effect(company: Company, tmp_path: Path) -> None:
    policy = POLICY.model_copy(update={"ownership": POLICY.ownership.model_copy(update={"requires_approval": False})})
    (tmp_path / "hr.csv").write_text(f"email,action,effective_date\n{rep('alice')},leaver,{NOW:%Y-%m-%d}\n",
                                     encoding="utf-8")
    lines = departure_round(company.engine, policy, tmp_path, now=NOW)
    assert lines[0].endswith("planned") and lines[1] == "handover 1: ownership moved"
    assert departure_round(company.engine, policy, None, now=NOW) == []
    assert company.rep_status("alice") == "departed"


def test_concurrent_departures_of_one_rep_make_one_handover(company: Company) -> None:
    """Two daemons (threads here) handling the same deactivation at once: the rep's row lock serialises them."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: company.depart(), range(4)))
    assert len({o.handover_id for o in outcomes}) == 1
    assert sorted(o.created for o in outcomes) == [False, False, False, True]
    assert len(company.notifications(outcomes[0].handover_id)) == 6


def test_report_counts_sent_messages_whose_address_bounced(company: Company) -> None:
    handover_id = company.depart().handover_id
    with company.engine.begin() as db:
        approve_handover(db, handover_id, "cli:compliance")
        db.execute(update(Notification.__table__).where(Notification.__table__.c.step == "farewell")
                   .values(state="sent", sent_at=NOW))
        db.execute(update(ContactPoint.__table__).where(ContactPoint.__table__.c.value == "li@globex.com.cn")
                   .values(bounced_at=NOW, bounce_reason="550 5.1.1 no such user"))
    with company.engine.connect() as db:
        report = handover_report(db, handover_id)
    assert (report.planned, report.by_state, report.bounced) == (6, {"sent": 3, "pending": 3}, 1)
    assert (report.customers, report.needs_human, report.status) == (3, 1, "notifying")
