"""A rep leaves: deactivation to handover plan to change-of-contact messages in the outbox.

Triggers (`custody depart`, directory events, HR CSV files) all end in `depart` or `reactivate`.
Each runs in one transaction, so a crash leaves either no plan or a whole one, and each is
idempotent: a rep with an open handover keeps it, and planning again adds only messages that
did not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from config.policy import Policy
from connectors.hr_csv import HrCsvConnector, HrCsvSettings
from connectors.records import DirectoryEvent
from daemon.jobs.handover_letters import LetterPlan, plan_letters
from policies.notification_plan import Rejected
from policies.ownership import Departure, choose_successors
from registry.audit import audit
from registry.departure_facts import departing_customers, mailable_recipients, rep_id_by_email, rep_profiles
from registry.departure_values import Choice, CustomerHistory
from registry.facts import PersonFact
from registry.handover import (
    OPEN,
    add_items,
    cancel_handover,
    change_successors,
    create_handover,
    depart_due_leavers,
    due_handover_ids,
    handover_items,
    handover_row,
    hold_letters_naming,
    lock_rep,
    open_handover_id,
    open_handover_ids,
    ownership_moved,
    planned_customer_ids,
    plans_naming,
    set_rep_status,
    settle_handover,
)
from registry.ingest import ensure_reps
from registry.models import AuditEvent, Rep, RepStatus, Role, utcnow
from registry.people import DeclaredRep, declare_reps


class DepartureError(Exception):
    """A departure that cannot be planned as asked (unknown rep, successor leaving too)."""


@dataclass
class DepartureOutcome:
    handover_id: int
    created: bool
    customers: int = 0
    needs_human: int = 0
    planned: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    already_sent: int = 0
    joined: int = 0
    replanned: list[int] = field(default_factory=list)


def depart(
    engine: Engine, policy: Policy, rep_email: str, *, successor_email: str = "", effective: datetime | None = None,
    trigger: str = "cli", actor: str = "cli", now: datetime | None = None,
) -> DepartureOutcome:
    """Plan the handover of a departing rep's customers; an open handover is brought up to date
    (customers who appeared since join it, missing letters are added)."""
    with engine.begin() as db:
        return depart_in(db, policy, rep_email, successor_email=successor_email, effective=effective,
                         trigger=trigger, actor=actor, now=now or utcnow())


def depart_in(
    db: Connection, policy: Policy, rep_email: str, *, successor_email: str, effective: datetime | None,
    trigger: str, actor: str, now: datetime,
) -> DepartureOutcome:
    """A rep with a future effective date is `leaving` (still working and counted for coverage, never
    a successor), else deactivated at once. Open plans that named this rep as a successor are planned
    again, so no customer is introduced to someone who is leaving."""
    rep_id = _known_rep(db, rep_email)
    successor_id = _known_rep(db, successor_email) if successor_email else None
    if successor_id == rep_id and successor_id is not None:
        raise DepartureError(f"{rep_email} cannot succeed themselves")
    lock_rep(db, rep_id)
    existing = open_handover_id(db, rep_id)
    if existing is not None:
        joined = join_late_customers(db, policy, existing, actor, now)
        letters = plan_letters(db, policy, existing, actor, now)
        return DepartureOutcome(existing, False, planned=letters.added + letters.taken_over,
                                rejected=letters.rejected, already_sent=letters.already_sent, joined=joined)
    effective = effective or now
    status = RepStatus.LEAVING if effective > now else RepStatus.DEACTIVATED
    set_rep_status(db, rep_id, status, actor, f"departure via {trigger}")
    reps = rep_profiles(db)
    if successor_id is not None and not reps[successor_id].active:
        raise DepartureError(f"successor {successor_email} is not an active rep (leaving, departed or deactivated)")
    customers = _unplanned(db, departing_customers(db, rep_id, now - timedelta(days=policy.lookback_days)))
    choices = choose_successors(Departure(reps[rep_id], successor_id), customers, reps, policy.ownership.strategies,
                                max_per_successor=policy.ownership.max_customers_per_successor)
    needs_human = _needs_human(db, policy, rep_id, [c.customer_id for c in customers], now)
    handover_id = create_handover(db, rep_id, effective, trigger, policy.ownership.requires_approval,
                                  choices, needs_human, actor, now, reps[rep_id].tenure)
    letters = plan_letters(db, policy, handover_id, actor, now)
    replanned = replan_plans_naming(db, policy, rep_id, actor, now)
    return DepartureOutcome(handover_id, True, len(choices), len(needs_human), letters.added + letters.taken_over,
                            letters.rejected, letters.already_sent, replanned=replanned)


def plan_notifications(db: Connection, policy: Policy, handover_id: int, actor: str,
                       now: datetime | None = None) -> LetterPlan:
    """The open handover's letters brought up to date (see daemon/jobs/handover_letters.py)."""
    return plan_letters(db, policy, handover_id, actor, now or utcnow())


def _needs_human(db: Connection, policy: Policy, rep_id: int, customer_ids: list[int], now: datetime) -> set[int]:
    """Customers none of whose contacts had company-channel mail with the rep: nobody can be mailed."""
    since = now - timedelta(days=policy.notifications.contact_window_days)
    return set(customer_ids) - {r.customer_id for r in mailable_recipients(db, rep_id, customer_ids, since)}


def _unplanned(db: Connection, customers: list[CustomerHistory]) -> list[CustomerHistory]:
    """A customer already in another rep's open plan stays there: one story per customer."""
    elsewhere = planned_customer_ids(db, [c.customer_id for c in customers])
    return [c for c in customers if c.customer_id not in elsewhere]


def join_late_customers(db: Connection, policy: Policy, handover_id: int, actor: str, now: datetime) -> int:
    """Customers the departing rep worked with who appeared after the plan was made (mail synced in
    the notice period) join it, with successors by the same rules. Returns how many joined."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN or ownership_moved(db, handover_id):
        return 0
    known = {item.customer_id for item in handover_items(db, handover_id)}
    late = [c for c in _unplanned(db, departing_customers(db, handover.rep_id, now - timedelta(days=policy.lookback_days)))
            if c.customer_id not in known]
    if not late:
        return 0
    reps = rep_profiles(db)
    choices = choose_successors(Departure(reps[handover.rep_id]), late, reps, policy.ownership.strategies,
                                max_per_successor=policy.ownership.max_customers_per_successor)
    add_items(db, handover_id, choices, _needs_human(db, policy, handover.rep_id, [c.customer_id for c in late], now),
              actor)
    return len(choices)


def replan_plans_naming(db: Connection, policy: Policy, leaving_rep_id: int, actor: str, now: datetime) -> list[int]:
    """Open plans whose ownership has not moved yet and that hand customers to a rep who is now
    leaving get new successors for those customers; returns the handovers planned again. Where
    ownership already moved, the leaving rep's own plan tells those customers, and the older plan's
    unsent letters naming them are held."""
    replanned = []
    for handover_id, customer_ids in plans_naming(db, leaving_rep_id).items():
        if ownership_moved(db, handover_id):
            hold_letters_naming(db, handover_id, leaving_rep_id, "superseded: the successor is leaving too", actor)
            continue
        handover = handover_row(db, handover_id)
        reps = rep_profiles(db)
        customers = [c for c in departing_customers(db, handover.rep_id, now - timedelta(days=policy.lookback_days))
                     if c.customer_id in customer_ids]
        choices = choose_successors(Departure(reps[handover.rep_id]), customers, reps, policy.ownership.strategies,
                                    max_per_successor=policy.ownership.max_customers_per_successor)
        change_successors(db, handover_id, choices, actor, f"successor {reps[leaving_rep_id].label} is leaving")
        plan_letters(db, policy, handover_id, actor, now, changed=customer_ids)
        replanned.append(handover_id)
    return replanned


def reassign_customer(db: Connection, policy: Policy, handover_id: int, customer_id: int, successor_rep_id: int,
                      actor: str, reason: str = "", now: datetime | None = None) -> str:
    """A reviewer gives one customer of an open plan another successor; its unsent letters are
    rendered for them, and contacts already told the old name get one correction."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN:
        raise DepartureError(f"handover {handover_id} is {handover.status}; only an open handover can be changed")
    if customer_id not in {item.customer_id for item in handover_items(db, handover_id)}:
        raise DepartureError(f"customer {customer_id} is not part of handover {handover_id}")
    reps = rep_profiles(db)
    successor = reps.get(successor_rep_id)
    if successor is None or not successor.active or successor.colleague or successor_rep_id == handover.rep_id:
        raise DepartureError("the successor must be an active declared rep other than the departing one")
    why = reason or f"reassigned by {actor}"
    change_successors(db, handover_id, [Choice(customer_id, successor_rep_id, "manual", why)], actor, why)
    letters = plan_letters(db, policy, handover_id, actor, now or utcnow(), changed=[customer_id])
    return (f"customer {customer_id} now goes to {successor.label}: {letters.rerendered} letters rendered anew, "
            f"{letters.added} added, {letters.corrections} corrections, {letters.withdrawn} withdrawn")


def reactivate(engine: Engine, rep_email: str, *, actor: str = "cli", now: datetime | None = None) -> int | None:
    """The rep is back: before the effective date the open handover is cancelled. Returns its id, if any."""
    with engine.begin() as db:
        return reactivate_in(db, rep_email, actor=actor, now=now or utcnow())


def reactivate_in(db: Connection, rep_email: str, *, actor: str, now: datetime) -> int | None:
    """A rep rehired after they departed starts a new tenure: if they leave again, that is a new
    departure and their customers hear of it."""
    rep_id = _known_rep(db, rep_email)
    lock_rep(db, rep_id)
    handover_id = open_handover_id(db, rep_id)
    rehired = db.execute(select(Rep.status).where(Rep.id == rep_id)).scalar_one() == RepStatus.DEPARTED
    set_rep_status(db, rep_id, RepStatus.ACTIVE, actor, "rehired" if rehired else "reactivated")
    if rehired:
        db.execute(Rep.__table__.update().where(Rep.__table__.c.id == rep_id).values(tenure=Rep.__table__.c.tenure + 1))
    if handover_id is None:
        return None
    if handover_row(db, handover_id).effective_at > now:
        cancel_handover(db, handover_id, "reactivated", actor)
        return handover_id
    audit(db, actor, "reactivated_after_effective_date", "handover", handover_id,
          {"note": "the handover stays open; cancel it by hand if the customers should stay"})
    return None


def handle_directory_events(engine: Engine, policy: Policy, events: Iterable[DirectoryEvent],
                            actor: str = "directory", now: datetime | None = None) -> list[str]:
    """Act on each event once, however often it is delivered; returns one line per event for logs."""
    return [handle_directory_event(engine, policy, event, actor, now) for event in events]


def handle_directory_event(engine: Engine, policy: Policy, event: DirectoryEvent,
                           actor: str = "directory", now: datetime | None = None) -> str:
    with engine.begin() as db:
        seen = db.execute(select(AuditEvent.id).where(AuditEvent.entity == "directory_event",
                                                      AuditEvent.entity_id == event.event_id[:128])).first()
        if seen:
            return f"{event.event_id}: already handled"
        outcome = _act(db, policy, event, actor, now or utcnow())
        audit(db, actor, "directory_event", "directory_event", event.event_id, {
            "kind": event.kind, "email": event.email, "outcome": outcome,
            "effective": event.effective.isoformat() if event.effective else ""})
        return f"{event.event_id}: {outcome}"


def _act(db: Connection, policy: Policy, event: DirectoryEvent, actor: str, now: datetime) -> str:
    if event.kind == "created":
        rep_id = ensure_reps(db, [PersonFact(event.email.lower(), event.name, Role.REP)])[event.email.lower()]
        named = {"name": event.name[:256]} if event.name else {}
        db.execute(Rep.__table__.update().where(Rep.__table__.c.id == rep_id)
                   .values(role=Role.REP, updated_at=now, **named))
        return "rep known"
    if event.kind == "updated":
        return _declared_by_directory(db, event)
    if rep_id_by_email(db, event.email) is None:
        return "ignored: not a known rep"
    if event.kind == "deactivated":
        outcome = depart_in(db, policy, event.email, successor_email="", effective=event.effective,
                            trigger=actor, actor=actor, now=now)
        return f"handover {outcome.handover_id} {'planned' if outcome.created else 'already open'}"
    if event.kind == "reactivated":
        cancelled = reactivate_in(db, event.email, actor=actor, now=now)
        return f"reactivated; handover {cancelled} cancelled" if cancelled else "reactivated"
    manager = ensure_reps(db, [PersonFact(event.manager_email.lower())]) if event.manager_email else {}
    rep_id = rep_id_by_email(db, event.email)
    db.execute(Rep.__table__.update().where(Rep.__table__.c.id == rep_id)
               .values(manager_id=next(iter(manager.values()), None), updated_at=now))
    return f"manager set to {event.manager_email or 'nobody'}"


def _declared_by_directory(db: Connection, event: DirectoryEvent) -> str:
    """The directory's profile of a rep: name, team, manager and aliases as it has them now; the
    locale, which directories do not hold, stays what it was."""
    email = event.email.lower()
    rep_id = rep_id_by_email(db, email)
    locale = db.execute(select(Rep.locale).where(Rep.id == rep_id)).scalar() if rep_id is not None else None
    declare_reps(db, [DeclaredRep(email, event.name[:256], event.team[:128], event.manager_email.lower(), locale or "en",
                                  tuple(a.lower() for a in event.aliases))])
    return "rep profile updated"


def process_hr_folder(engine: Engine, policy: Policy, folder: Path, now: datetime | None = None) -> list[str]:
    """Act on every CSV dropped in `folder`; files move to its processed/ subfolder once acted on."""
    lines = []
    for batch in HrCsvConnector(HrCsvSettings(name="hr", path=folder)).sync(None):
        lines += [f"{s.ref}: skipped: {s.reason}" for s in batch.skipped]
        lines += handle_directory_events(engine, policy, [r for r in batch.records if isinstance(r, DirectoryEvent)],
                                         actor="hr-csv", now=now)
    return lines


def settle_due_handovers(engine: Engine, now: datetime | None = None, actor: str = "scheduler") -> list[int]:
    """Move ownership for approved handovers whose effective date has come; returns those that moved now."""
    with engine.begin() as db:
        return [h for h in due_handover_ids(db, now or utcnow()) if settle_handover(db, h, actor)]


def departure_round(engine: Engine, policy: Policy, hr_folder: Path | None, now: datetime | None = None) -> list[str]:
    """The service's periodic job: act on new HR files, let late customers join open plans, mark
    leaving reps departed on their date, then let due handovers take effect."""
    now = now or utcnow()
    lines = process_hr_folder(engine, policy, hr_folder, now) if hr_folder else []
    lines += update_open_plans(engine, policy, now)
    with engine.begin() as db:
        lines += [f"rep {rep_id}: departed" for rep_id in depart_due_leavers(db, now, "scheduler")]
    return lines + [f"handover {h}: ownership moved" for h in settle_due_handovers(engine, now)]


def update_open_plans(engine: Engine, policy: Policy, now: datetime, actor: str = "scheduler") -> list[str]:
    """Customers who appeared since a plan was made join it, and their letters are planned."""
    lines = []
    with engine.connect() as db:
        handover_ids = open_handover_ids(db)
    for handover_id in handover_ids:
        with engine.begin() as db:
            joined = join_late_customers(db, policy, handover_id, actor, now)
            letters = plan_letters(db, policy, handover_id, actor, now)
        if joined or letters.added:
            lines.append(f"handover {handover_id}: {joined} customers joined, {letters.added} letters planned")
    return lines


def _known_rep(db: Connection, email: str) -> int:
    rep_id = rep_id_by_email(db, email)
    if rep_id is None:
        raise DepartureError(f"no rep is known by the address {email}")
    return rep_id
