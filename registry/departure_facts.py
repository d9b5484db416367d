"""What the ownership and notification policies need to know about a departing rep, read from the registry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Select, String, and_, cast, func, or_, select

from registry.batching import chunked
from registry.departure_values import CoveringRep, CustomerHistory, Recipient, RepProfile
from registry.models import (
    AuditEvent,
    Contact,
    ContactPoint,
    Customer,
    Handover,
    HandoverItem,
    HandoverStatus,
    Interaction,
    Rep,
    RepAddress,
    RepStatus,
    Role,
    Sighting,
    Source,
)

OPEN_STATES = (HandoverStatus.PLANNED, HandoverStatus.APPROVED, HandoverStatus.NOTIFYING)



def rep_id_by_email(db: Connection, email: str) -> int | None:
    """The rep known by this company or personal address."""
    return db.execute(select(RepAddress.rep_id).where(RepAddress.email == email.strip().lower())).scalar()


def unsettled_items() -> Select:
    """(handover, customer, successor) of open plans that have not taken effect yet."""
    moved = select(AuditEvent.entity_id).where(AuditEvent.action == "ownership_transferred",
                                               AuditEvent.entity == "handover")
    return (select(HandoverItem.handover_id, HandoverItem.customer_id, HandoverItem.successor_rep_id)
            .join(Handover, Handover.id == HandoverItem.handover_id)
            .where(Handover.status.in_(OPEN_STATES), cast(Handover.id, String).not_in(moved)))


def rep_profiles(db: Connection) -> dict[int, RepProfile]:
    """Reps with their load: customers they own, plus those open plans promise them (so a successor
    cap holds across plans)."""
    owned = (select(Customer.owner_rep_id.label("rep_id"), func.count().label("n"))
             .where(Customer.owner_rep_id.is_not(None)).group_by(Customer.owner_rep_id).subquery())
    items = unsettled_items().subquery()
    promised = (select(items.c.successor_rep_id.label("rep_id"), func.count().label("n"))
                .where(items.c.successor_rep_id.is_not(None)).group_by(items.c.successor_rep_id).subquery())
    rows = db.execute(select(Rep.id, Rep.email, Rep.name, Rep.team, Rep.manager_id, Rep.status, Rep.role,
                             func.coalesce(owned.c.n, 0) + func.coalesce(promised.c.n, 0), Rep.tenure)
                      .outerjoin(owned, owned.c.rep_id == Rep.id).outerjoin(promised, promised.c.rep_id == Rep.id))
    return {r[0]: RepProfile(id=r[0], email=r[1], name=r[2], team=r[3], manager_id=r[4],
                             active=r[5] == RepStatus.ACTIVE, colleague=r[6] == Role.COLLEAGUE,
                             owned_customers=r[7], tenure=r[8]) for r in rows}


def departing_customers(db: Connection, rep_id: int, covering_since: datetime) -> list[CustomerHistory]:
    """Customers the rep owns, plus unowned ones outside the pool that the rep has mail or a sighting with."""
    unowned = and_(Customer.owner_rep_id.is_(None), Customer.pool.is_(False))  # type: ignore[attr-defined]
    touched = or_(
        Customer.id.in_(select(Interaction.customer_id).where(Interaction.rep_id == rep_id)),  # type: ignore[union-attr]
        Customer.id.in_(select(Sighting.customer_id).where(Sighting.rep_id == rep_id)),  # type: ignore[union-attr]
    )
    names = dict(db.execute(select(Customer.id, Customer.name)
                            .where(or_(Customer.owner_rep_id == rep_id, and_(unowned, touched)))).all())
    covering: dict[int, list[CoveringRep]] = {}
    for chunk in chunked(sorted(names)):
        rows = db.execute(
            select(Interaction.customer_id, Interaction.rep_id, func.max(Interaction.occurred_at), func.count())
            .where(Interaction.customer_id.in_(chunk), Interaction.rep_id != rep_id,  # type: ignore[attr-defined]
                   Interaction.channel == "company", Interaction.occurred_at >= covering_since)
            .group_by(Interaction.customer_id, Interaction.rep_id))
        for customer_id, other, last_at, count in rows:
            covering.setdefault(customer_id, []).append(CoveringRep(other, last_at, count))
    return [CustomerHistory(cid, name, tuple(covering.get(cid, ()))) for cid, name in sorted(names.items())]


def mailable_recipients(db: Connection, rep_id: int, customer_ids: Sequence[int], since: datetime) -> list[Recipient]:
    """Per contact, the unbounced email address last used in company-channel mail with the rep."""
    latest: dict[int, tuple[datetime, Recipient]] = {}
    for chunk in chunked(sorted(customer_ids)):
        rows = db.execute(
            select(Interaction.customer_id, Interaction.contact_id, Interaction.contact_point_id, ContactPoint.value,
                   Contact.locale, Customer.locale, func.max(Interaction.occurred_at))
            .join(ContactPoint, ContactPoint.id == Interaction.contact_point_id)
            .join(Contact, Contact.id == Interaction.contact_id)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(Interaction.rep_id == rep_id, Interaction.channel == "company", Interaction.occurred_at >= since,
                   Interaction.customer_id.in_(chunk), ContactPoint.kind == "email",  # type: ignore[attr-defined]
                   ContactPoint.bounced_at.is_(None))  # type: ignore[union-attr]
            .group_by(Interaction.customer_id, Interaction.contact_id, Interaction.contact_point_id,
                      ContactPoint.value, Contact.locale, Customer.locale))
        for customer_id, contact_id, point_id, email, contact_locale, customer_locale, last_at in rows:
            if contact_id not in latest or last_at > latest[contact_id][0]:
                latest[contact_id] = (last_at, Recipient(customer_id, contact_id, point_id, email,
                                                         contact_locale or customer_locale))
    return [recipient for _, recipient in sorted(latest.values(), key=lambda item: item[1].contact_id)]


def contact_names(db: Connection, contact_ids: Iterable[int]) -> dict[int, str]:
    """Each contact's best name: an address book's (an entry that lists one of the contact's addresses
    before one that only shares a phone number, which may be a colleague's switchboard; a company
    book's before a personal one's; then the latest seen), else the name the contact was first stored
    with, often a mail header's display name."""
    names: dict[int, str] = {}
    for chunk in chunked(sorted(set(contact_ids))):
        names.update(db.execute(select(Contact.id, Contact.name).where(Contact.id.in_(chunk))).all())  # type: ignore[union-attr]
        names.update(db.execute(  # the last row of a contact wins
            select(Sighting.contact_id, Sighting.name)
            .join(ContactPoint, ContactPoint.id == Sighting.contact_point_id)
            .where(Sighting.contact_id.in_(chunk), Sighting.name != "")  # type: ignore[attr-defined]
            .order_by(Sighting.contact_id, ContactPoint.kind == "email", Sighting.channel == "company",
                      Sighting.seen_at, Sighting.id)).all())
    return names


def human_evidence(db: Connection, rep_id: int, customer_ids: Sequence[int]) -> dict[int, list[str]]:
    """Why each customer is known although nobody can be mailed: sightings and mail outside the company channel."""
    evidence: dict[int, list[str]] = {cid: [] for cid in customer_ids}
    for chunk in chunked(sorted(customer_ids)):
        sightings = db.execute(
            select(Sighting.customer_id, Sighting.channel, Source.name, Sighting.name, ContactPoint.value)
            .join(Source, Source.id == Sighting.source_id).join(ContactPoint, ContactPoint.id == Sighting.contact_point_id)
            .where(Sighting.rep_id == rep_id, Sighting.customer_id.in_(chunk))  # type: ignore[attr-defined]
            .order_by(Sighting.customer_id, Sighting.id))
        for customer_id, channel, source, name, value in sightings:
            evidence[customer_id].append(f"{channel} address book {source}: {name or '(no name)'} {value}")
        mail = db.execute(
            select(Interaction.customer_id, Interaction.channel, func.count(), func.max(Interaction.occurred_at))
            .where(Interaction.rep_id == rep_id, Interaction.customer_id.in_(chunk))  # type: ignore[attr-defined]
            .group_by(Interaction.customer_id, Interaction.channel))
        for customer_id, channel, count, last_at in mail:
            evidence[customer_id].append(f"{count} {channel}-channel messages, the latest on {last_at:%Y-%m-%d}")
    return evidence
