"""A handover plan as a reviewer reads it before approving: per customer the successor and why, the
contacts, and every letter with its recipient, sender, state and due time. Read-only.

It also resolves the arguments of a manual reassignment (a customer of the plan, a rep who may
succeed), so a wrong argument is refused with one line before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, select

from registry.batching import chunked
from registry.departure_facts import contact_names, human_evidence, rep_id_by_email
from registry.handover import handover_items, handover_row
from registry.models import (
    ContactPoint,
    Customer,
    Interaction,
    Notification,
    Rep,
    RepStatus,
    Role,
    Sighting,
    as_utc,
)

_NOTE = Notification.__table__


class ReviewError(Exception):
    """An argument naming no customer of the plan, or a rep who cannot succeed."""


@dataclass(frozen=True)
class ContactView:
    """A person at the customer the departing rep mailed or kept in an address book."""

    name: str
    points: tuple[str, ...]


@dataclass(frozen=True)
class LetterView:
    notification_id: int
    step: str
    locale: str
    to_email: str
    cc_emails: tuple[str, ...]
    sender_email: str
    sender_name: str
    state: str
    held_reason: str
    send_after: datetime
    sent_at: datetime | None
    message_id: str
    subject: str


@dataclass(frozen=True)
class CustomerView:
    customer_id: int
    key: str
    name: str
    successor_email: str | None
    successor_name: str
    strategy: str
    reason: str
    needs_human: bool
    contacts: tuple[ContactView, ...]
    letters: tuple[LetterView, ...]
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class HandoverReview:
    handover_id: int
    rep_email: str
    rep_name: str
    status: str
    effective_at: datetime
    requires_approval: bool
    approved_by: str
    cancelled_reason: str
    customers: tuple[CustomerView, ...]


def utc(moment: datetime) -> datetime:
    """PostgreSQL hands timestamps back in the session's zone; reviewers read UTC."""
    return as_utc(moment).astimezone(timezone.utc)


def handover_review(db: Connection, handover_id: int) -> HandoverReview:
    """The whole plan, in any status; raises HandoverError for an unknown id."""
    handover = handover_row(db, handover_id)
    rep = db.execute(select(Rep.email, Rep.name).where(Rep.id == handover.rep_id)).one()
    items = handover_items(db, handover_id)
    customer_ids = [i.customer_id for i in items]
    contacts = _contacts(db, handover.rep_id, customer_ids)
    letters = _letters(db, handover_id)
    evidence = human_evidence(db, handover.rep_id, [i.customer_id for i in items if i.needs_human])
    customers = tuple(CustomerView(
        i.customer_id, i.customer_key, i.customer_name, i.successor_email, i.successor_name or "", i.strategy,
        i.reason, i.needs_human, tuple(contacts.get(i.customer_id, ())), tuple(letters.get(i.customer_id, ())),
        tuple(evidence.get(i.customer_id, ()))) for i in items)
    return HandoverReview(handover_id, rep.email, rep.name, handover.status, utc(handover.effective_at),
                          handover.requires_approval, handover.approved_by, handover.cancelled_reason, customers)


def letter_rows(db: Connection, handover_id: int) -> list[Any]:
    """Every outbox row of the plan, whatever its state, with the customer's key: what `letter_for` reads."""
    handover_row(db, handover_id)
    return list(db.execute(select(_NOTE, Customer.key.label("customer_key"))
                           .join(Customer, Customer.id == _NOTE.c.customer_id)
                           .where(_NOTE.c.handover_id == handover_id)
                           .order_by(_NOTE.c.customer_id, _NOTE.c.to_email, _NOTE.c.send_after, _NOTE.c.id)))


def plan_customer_id(db: Connection, handover_id: int, customer: str) -> int:
    """The customer of the plan named by its key (acme.example) or its id."""
    handover_row(db, handover_id)
    items = {i.customer_id: i.customer_key for i in handover_items(db, handover_id)}
    wanted = customer.strip().lower()
    found = [cid for cid, key in items.items() if key == wanted or str(cid) == wanted]
    if not found:
        raise ReviewError(f"customer {customer} is not in handover {handover_id}")
    return found[0]


def reassignable_successor(db: Connection, handover_id: int, email: str) -> int:
    """The rep known by `email`, if they may take a customer of this plan: a declared, active rep
    other than the one leaving. A leaving or departed rep would only need another handover."""
    rep_id = rep_id_by_email(db, email)
    if rep_id is None:
        raise ReviewError(f"no rep is known by the address {email}")
    rep = db.execute(select(Rep.role, Rep.status).where(Rep.id == rep_id)).one()
    if rep_id == handover_row(db, handover_id).rep_id:
        raise ReviewError(f"{email} is the departing rep of handover {handover_id}")
    if rep.role != Role.REP:
        raise ReviewError(f"{email} is a colleague seen in mail, not a declared rep")
    if rep.status != RepStatus.ACTIVE:
        raise ReviewError(f"{email} is {rep.status}, not an active rep")
    return rep_id


def _contacts(db: Connection, rep_id: int, customer_ids: Sequence[int]) -> dict[int, list[ContactView]]:
    """Per customer, the people the departing rep mailed or kept in an address book, with every
    known address and number (a bounced one marked), so a human can reach those no letter reaches."""
    people: dict[int, int] = {}
    for chunk in chunked(sorted(customer_ids)):
        mailed = select(Interaction.contact_id, Interaction.customer_id).where(
            Interaction.rep_id == rep_id, Interaction.customer_id.in_(chunk))  # type: ignore[attr-defined]
        listed = select(Sighting.contact_id, Sighting.customer_id).where(
            Sighting.rep_id == rep_id, Sighting.customer_id.in_(chunk))  # type: ignore[attr-defined]
        people.update(db.execute(mailed.union(listed)).all())
    names = contact_names(db, people)
    points: dict[int, list[str]] = {}
    for chunk in chunked(sorted(people)):
        rows = db.execute(select(ContactPoint.contact_id, ContactPoint.value, ContactPoint.bounced_at)
                          .where(ContactPoint.contact_id.in_(chunk))  # type: ignore[attr-defined]
                          .order_by(ContactPoint.contact_id, ContactPoint.kind, ContactPoint.value))
        for contact_id, value, bounced_at in rows:
            points.setdefault(contact_id, []).append(f"{value} (bounced)" if bounced_at else value)
    views: dict[int, list[ContactView]] = {}
    for contact_id, customer_id in sorted(people.items()):
        views.setdefault(customer_id, []).append(ContactView(names.get(contact_id, ""),
                                                             tuple(points.get(contact_id, ()))))
    return views


def _letters(db: Connection, handover_id: int) -> dict[int, list[LetterView]]:
    rows = db.execute(select(_NOTE).where(_NOTE.c.handover_id == handover_id)
                      .order_by(_NOTE.c.customer_id, _NOTE.c.to_email, _NOTE.c.send_after, _NOTE.c.id))
    letters: dict[int, list[LetterView]] = {}
    for r in rows:
        letters.setdefault(r.customer_id, []).append(LetterView(
            r.id, r.step, r.locale, r.to_email, tuple(r.cc_emails or ()), r.sender_email, r.sender_name, r.state,
            r.held_reason, utc(r.send_after), utc(r.sent_at) if r.sent_at else None, r.message_id_header, r.subject))
    return letters
