"""Contact resolution across reps: one person seen through several addresses or numbers is one Contact.

Ingest keeps every email and phone of one address-book entry on one Contact, but when those
points were first met apart (rep A mailed the work address, rep B the private one) they began as
two Contacts. An entry that lists both proves they are one person, so the Contacts are merged,
and the customer that only existed through the absorbed Contact is marked merged.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine, func, select, tuple_

from registry.audit import audit_many
from registry.models import Contact, ContactPoint, Customer, CustomerStatus, Interaction, Notification, Sighting

_sighting = Sighting.__table__
_contact = Contact.__table__
_customer = Customer.__table__


def merge_contacts(engine: Engine, actor: str) -> int:
    """Merge Contacts that share an address-book entry; returns how many Contacts were absorbed."""
    with engine.begin() as db:
        groups = _groups(db)
        survivors = _survivors(db, groups)
        absorbed = {member: survivor for group, survivor in zip(groups, survivors, strict=True) for member in group
                    if member != survivor}
        if not absorbed:
            return 0
        customer_of = dict(db.execute(select(_contact.c.id, _contact.c.customer_id)
                                      .where(_contact.c.id.in_(set(absorbed) | set(absorbed.values())))).all())
        for member, survivor in absorbed.items():
            _move(db, member, survivor, customer_of[survivor])
        emptied = _mark_empty_customers(db, {customer_of[m] for m in absorbed})
        audit_many(db, actor, "contact.merged", "contact", [
            (member, {"into_contact_id": survivor, "customer_id": customer_of[survivor]})
            for member, survivor in absorbed.items()
        ])
        audit_many(db, actor, "customer.merged", "customer", [(cid, {}) for cid in emptied])
    return len(absorbed)


def _groups(db: Connection) -> list[set[int]]:
    """Contact ids that belong together, joined transitively through the email addresses one entry
    lists (a phone number may be a switchboard several colleagues share: it proves nothing)."""
    points = ContactPoint.__table__
    by_address = (select(_sighting.c.source_id, _sighting.c.entry_ref, _sighting.c.contact_id)
                  .join(points, points.c.id == _sighting.c.contact_point_id).where(points.c.kind == "email"))
    entries = by_address.subquery()
    shared = (select(entries.c.source_id, entries.c.entry_ref)
              .group_by(entries.c.source_id, entries.c.entry_ref)
              .having(func.count(func.distinct(entries.c.contact_id)) > 1).subquery())
    rows = db.execute(
        by_address.where(tuple_(_sighting.c.source_id, _sighting.c.entry_ref)
                         .in_(select(shared.c.source_id, shared.c.entry_ref))).distinct()
    ).all()
    parent: dict[int, int] = {}

    def root(contact_id: int) -> int:
        while parent.setdefault(contact_id, contact_id) != contact_id:
            parent[contact_id] = parent[parent[contact_id]]
            contact_id = parent[contact_id]
        return contact_id

    first_of_entry: dict[tuple[int, str], int] = {}
    for source_id, entry_ref, contact_id in rows:
        first = first_of_entry.setdefault((source_id, entry_ref), contact_id)
        parent[root(contact_id)] = root(first)
    groups: dict[int, set[int]] = {}
    for contact_id in list(parent):
        groups.setdefault(root(contact_id), set()).add(contact_id)
    return [g for g in groups.values() if len(g) > 1]


def _survivors(db: Connection, groups: Iterable[set[int]]) -> list[int]:
    """Keep the Contact of an organisation over a free-mail person, then the oldest."""
    groups = list(groups)
    members = {m for g in groups for m in g}
    kinds = dict(db.execute(select(_contact.c.id, _customer.c.kind)
                            .join(_customer, _customer.c.id == _contact.c.customer_id)
                            .where(_contact.c.id.in_(members))).all()) if members else {}
    return [min(g, key=lambda c: (kinds[c] != "organisation", c)) for g in groups]


def _move(db: Connection, member: int, survivor: int, customer_id: int) -> None:
    points = ContactPoint.__table__
    db.execute(points.update().where(points.c.contact_id == member).values(contact_id=survivor))
    for table in (Interaction.__table__, Sighting.__table__, Notification.__table__):
        db.execute(table.update().where(table.c.contact_id == member)
                   .values(contact_id=survivor, customer_id=customer_id))
    db.execute(_contact.delete().where(_contact.c.id == member))


def _mark_empty_customers(db: Connection, customer_ids: set[int]) -> list[int]:
    has_contacts = select(_contact.c.id).where(_contact.c.customer_id == _customer.c.id).exists()
    return list(db.execute(
        _customer.update()
        .where(_customer.c.id.in_(customer_ids), ~has_contacts, _customer.c.status != CustomerStatus.MERGED)
        .values(status=CustomerStatus.MERGED, owner_rep_id=None)
        .returning(_customer.c.id)
    ).scalars())
