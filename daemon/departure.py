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
from typing import Any

from sqlalchemy import Connection, Engine, select

from config.policy import Policy
from connectors.hr_csv import HrCsvConnector
from connectors.records import DirectoryEvent
from daemon.notification_templates import NotificationTemplates, RenderedMessage
from policies.notification_plan import PlannedMessage, Rejected, plan_messages
from policies.ownership import Departure, RepProfile, choose_successors
from registry.audit import audit
from registry.departure_facts import (
    contact_names, departing_customers, mailable_recipients, rep_id_by_email, rep_profiles,
)
from registry.facts import PersonFact
from registry.handover import (
    AWAITING_APPROVAL, OPEN, cancel_handover, create_handover, due_handover_ids, handover_items, handover_row,
    insert_notifications, lock_rep, open_handover_id, set_rep_status, settle_handover,
)
from registry.ingest import ensure_reps
from registry.models import AuditEvent, Notification, Rep, utcnow


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


def depart(
    engine: Engine, policy: Policy, rep_email: str, *, successor_email: str = "", effective: datetime | None = None,
    trigger: str = "cli", actor: str = "cli", now: datetime | None = None,
) -> DepartureOutcome:
    """Deactivate a rep and plan the handover of their customers; an open handover is returned as it is."""
    with engine.begin() as db:
        return depart_in(db, policy, rep_email, successor_email=successor_email, effective=effective,
                         trigger=trigger, actor=actor, now=now or utcnow())


def depart_in(
    db: Connection, policy: Policy, rep_email: str, *, successor_email: str, effective: datetime | None,
    trigger: str, actor: str, now: datetime,
) -> DepartureOutcome:
    rep_id = _known_rep(db, rep_email)
    successor_id = _known_rep(db, successor_email) if successor_email else None
    if successor_id == rep_id and successor_id is not None:
        raise DepartureError(f"{rep_email} cannot succeed themselves")
    lock_rep(db, rep_id)
    existing = open_handover_id(db, rep_id)
    if existing is not None:
        added, rejected = plan_notifications(db, policy, existing, actor)
        return DepartureOutcome(existing, False, planned=added, rejected=rejected)
    set_rep_status(db, rep_id, "deactivated", actor, f"departure via {trigger}")
    reps = rep_profiles(db)
    if successor_id is not None and not reps[successor_id].active:
        raise DepartureError(f"successor {successor_email} is not an active rep")
    customers = departing_customers(db, rep_id, now - timedelta(days=policy.lookback_days))
    choices = choose_successors(Departure(reps[rep_id], successor_id), customers, reps, policy.ownership.strategies)
    since = now - timedelta(days=policy.notifications.contact_window_days)
    mailable = {r.customer_id for r in mailable_recipients(db, rep_id, [c.customer_id for c in customers], since)}
    needs_human = {c.customer_id for c in customers} - mailable
    handover_id = create_handover(db, rep_id, effective or now, trigger, policy.ownership.requires_approval,
                                  choices, needs_human, actor, now)
    added, rejected = plan_notifications(db, policy, handover_id, actor)
    return DepartureOutcome(handover_id, True, len(choices), len(needs_human), added, rejected)


def plan_notifications(db: Connection, policy: Policy, handover_id: int, actor: str) -> tuple[int, list[Rejected]]:
    """Render and add the outbox rows of an open handover that do not exist yet; returns (added, rejected)."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN:
        return 0, []
    rules = policy.notifications
    templates = NotificationTemplates(rules.template_dir)
    items = {item.customer_id: item for item in handover_items(db, handover_id)}
    successors = {cid: RepProfile(i.successor_rep_id, i.successor_email, i.successor_name)
                  if i.successor_rep_id else None for cid, i in items.items()}
    recipients = mailable_recipients(db, handover.rep_id, list(items),
                                     handover.created_at - timedelta(days=rules.contact_window_days))
    planned, rejected = plan_messages(
        handover_id, handover.effective_at, handover.created_at, policy.ownership.grace_period_hours,
        recipients, successors, rules, templates.locales(s.template for s in rules.steps))
    existing = set(db.execute(select(Notification.idempotency_key)
                              .where(Notification.handover_id == handover_id)).scalars())
    fresh = [p for p in planned if p.idempotency_key not in existing]
    departing = db.execute(select(Rep.name, Rep.email).where(Rep.id == handover.rep_id)).one()
    names = contact_names(db, (p.contact_id for p in fresh))
    state, held_reason = ("held", AWAITING_APPROVAL) if handover.status == "planned" else ("pending", "")
    rows = []
    for message in fresh:
        item = items[message.customer_id]
        rendered = templates.render(message.template, message.locale, {
            "contact_name": names.get(message.contact_id, ""), "customer_name": _letter_name(item),
            "company_name": rules.company_name, "departing_name": departing.name or departing.email,
            "departing_email": departing.email, "successor_name": item.successor_name or item.successor_email,
            "successor_email": item.successor_email, "shared_mailbox": rules.shared_mailbox,
            "effective_date": handover.effective_at.date(),
        })
        rows.append(_outbox_row(handover_id, message, state, held_reason, rendered))
    added = insert_notifications(db, handover_id, rows)
    if added or rejected:
        audit(db, actor, "notifications_planned", "handover", handover_id, {
            "added": added, "rejected": [{"contact_id": r.contact_id, "reason": r.reason} for r in rejected]})
    return added, rejected


def _letter_name(item: Any) -> str:
    """How a letter names the customer: by a name an address book or CRM gave it, never by its key
    (a domain, an address or an org: key); empty when there is none, and the letter says "you"."""
    named = item.customer_kind == "organisation" and item.customer_name != item.customer_key
    return item.customer_name if named else ""


def _outbox_row(handover_id: int, message: PlannedMessage, state: str, held_reason: str,
                rendered: RenderedMessage) -> dict[str, object]:
    return {
        "idempotency_key": message.idempotency_key, "message_id_header": message.message_id_header,
        "handover_id": handover_id, "customer_id": message.customer_id, "contact_id": message.contact_id,
        "contact_point_id": message.contact_point_id, "step": message.step, "state": state,
        "sender_email": message.sender_email, "to_email": message.to_email, "cc_emails": list(message.cc_emails),
        "locale": message.locale, "subject": rendered.subject, "body_text": rendered.body_text,
        "body_html": rendered.body_html, "send_after": message.send_after, "attempts": 0, "last_error": "",
        "held_reason": held_reason, "lease_owner": "",
    }


def reactivate(engine: Engine, rep_email: str, *, actor: str = "cli", now: datetime | None = None) -> int | None:
    """The rep is back: before the effective date the open handover is cancelled. Returns its id, if any."""
    with engine.begin() as db:
        return reactivate_in(db, rep_email, actor=actor, now=now or utcnow())


def reactivate_in(db: Connection, rep_email: str, *, actor: str, now: datetime) -> int | None:
    rep_id = _known_rep(db, rep_email)
    lock_rep(db, rep_id)
    handover_id = open_handover_id(db, rep_id)
    set_rep_status(db, rep_id, "active", actor, "reactivated")
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
        ensure_reps(db, [PersonFact(event.email.lower(), event.name)])
        return "rep known"
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


def process_hr_folder(engine: Engine, policy: Policy, folder: Path, now: datetime | None = None) -> list[str]:
    """Act on every CSV dropped in `folder`; files move to its processed/ subfolder once acted on."""
    lines = []
    for batch in HrCsvConnector(folder).sync(None):
        lines += [f"{s.ref}: skipped: {s.reason}" for s in batch.skipped]
        lines += handle_directory_events(engine, policy, [r for r in batch.records if isinstance(r, DirectoryEvent)],
                                         actor="hr-csv", now=now)
    return lines


def settle_due_handovers(engine: Engine, now: datetime | None = None, actor: str = "scheduler") -> list[int]:
    """Move ownership for approved handovers whose effective date has come; returns those that moved now."""
    with engine.begin() as db:
        return [h for h in due_handover_ids(db, now or utcnow()) if settle_handover(db, h, actor)]


def departure_round(engine: Engine, policy: Policy, hr_folder: Path | None, now: datetime | None = None) -> list[str]:
    """The service's periodic job: act on new HR files, then let due handovers take effect."""
    lines = process_hr_folder(engine, policy, hr_folder, now) if hr_folder else []
    return lines + [f"handover {h}: ownership moved" for h in settle_due_handovers(engine, now)]


def _known_rep(db: Connection, email: str) -> int:
    rep_id = rep_id_by_email(db, email)
    if rep_id is None:
        raise DepartureError(f"no rep is known by the address {email}")
    return rep_id
