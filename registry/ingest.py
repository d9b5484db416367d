"""Store one batch of facts and its cursor in one transaction; storing it again changes nothing.

Set-based inserts with ON CONFLICT DO NOTHING keep this idempotent and safe for several
daemon processes sharing one PostgreSQL. Rows with a unique key go in key order, so two writers
storing the same new rows at once take their locks in one order instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, delete, select, tuple_, update

from registry.aggregates import Counted, count_interactions
from registry.batching import chunked, ids_by
from registry.bulk import insert_ignoring, insert_returning
from registry.facts import ContactFact, FactBatch, MessageFact, PersonFact
from registry.models import (
    Contact,
    ContactPoint,
    Customer,
    CustomerStatus,
    Interaction,
    Message,
    PersonalRelay,
    Rep,
    RepAddress,
    RepStatus,
    Role,
    Sighting,
    Source,
    SyncIssue,
    as_utc,
    utcnow,
)

PointOwners = tuple[dict[int, int], dict[int, int]]
_REP_COLUMNS = ("email", "name", "team", "status", "role", "tenure", "locale", "created_at", "updated_at")
_CUSTOMER_COLUMNS = ("key", "name", "kind", "owner_reason", "pool", "status", "locale", "timezone", "created_at")
_MESSAGE_COLUMNS = ("message_key", "occurred_at", "subject", "sender_email", "noise_reason", "date_source",
                    "first_source_id")
_INTERACTION_KEY = ("message_id", "rep_id", "contact_point_id", "direction")
_INTERACTION_COLUMNS = (*_INTERACTION_KEY, "contact_id", "customer_id", "channel", "occurred_at")
_interaction_key = itemgetter(slice(0, len(_INTERACTION_KEY)))


@dataclass
class Known:
    """Ids a writer learnt from the batches it committed, which later batches need not look up: an
    address once a person's stays that person's, and a contact point keeps its id for good (points
    are never deleted; a merge only moves one to another contact, which `_point_owners` reads anew)."""

    reps: dict[str, int] = field(default_factory=dict)
    points: dict[tuple[str, str], int] = field(default_factory=dict)

    def learn(self, stored: Stored) -> None:
        self.reps.update(stored.rep_ids)
        self.points.update(stored.point_ids)


def store_batch(
    engine: Engine,
    source_id: int,
    facts: FactBatch,
    cursor: dict[str, Any],
    lease_until: datetime | None = None,
    known: Known | None = None,
) -> int:
    """Facts, cursor and (for a leased sync) the renewed lease commit together; returns how many of
    the batch's messages were new to the registry (mail read again is stored once).

    `known` holds the ids of batches committed before; it learns this batch's once they are committed.
    """
    values: dict[str, Any] = {"cursor": cursor}
    if lease_until is not None:
        values["lease_until"] = lease_until
    with engine.begin() as db:
        stored = store_facts(db, source_id, facts, known or Known())
        db.execute(update(Source.__table__).where(Source.__table__.c.id == source_id).values(**values))
    if known is not None:
        known.learn(stored)
    return stored.new_messages


class Stored(NamedTuple):
    """What storing a batch did: the rep and contact point ids it used, and how many messages were new."""

    rep_ids: dict[str, int]
    point_ids: dict[tuple[str, str], int]
    new_messages: int


def store_facts(db: Connection, source_id: int, facts: FactBatch, known: Known) -> Stored:
    """Store one batch."""
    reps = {i.rep_email for m in facts.messages for i in m.interactions}
    reps |= {r.rep_email for m in facts.messages for r in m.relays}
    reps |= {s.rep_email for s in facts.sightings if s.rep_email}
    rep_ids = ensure_reps(db, [*facts.people, *(PersonFact(email) for email in sorted(reps))], known.reps)
    contacts = list(dict.fromkeys(i.contact for m in facts.messages for i in m.interactions))
    point_ids = _ensure_contacts(db, contacts, [list(s.contacts) for s in facts.sightings], known.points)
    linked = [m for m in facts.messages if m.interactions or m.relays]
    message_ids, new_messages = _ensure_messages(db, source_id, facts.messages, linked)
    owners = _point_owners(db, point_ids.values())
    _insert_interactions(db, linked, rep_ids, point_ids, owners, message_ids)
    _forget_removed_entries(db, source_id, [s.entry_ref[:512] for s in facts.sightings if not s.contacts])
    _insert_sightings(db, source_id, facts, rep_ids, point_ids, owners)
    insert_ignoring(db, SyncIssue.__table__, [
        {"source_id": source_id, "ref": s.ref[:512], "reason": s.reason[:512], "seen_at": utcnow()}
        for s in facts.skipped
    ])
    return Stored(rep_ids, point_ids, new_messages)


def ensure_reps(
    db: Connection, people: Iterable[PersonFact], known_reps: dict[str, int] | None = None
) -> dict[str, int]:
    """Person ids by address, creating the internal people seen the first time (as the rep or
    colleague their fact says; an existing person keeps the role they have); addresses in
    `known_reps` are taken from there."""
    cached = known_reps or {}
    names: dict[str, str] = {}
    roles: dict[str, str] = {}
    found: dict[str, int] = {}
    for person in people:
        if person.email in cached:
            found[person.email] = cached[person.email]
            continue
        if person.name or person.email not in names:
            names[person.email] = person.name
        if person.role == Role.REP or person.email not in roles:
            roles[person.email] = person.role
    known = _rep_ids(db, names)
    missing = [e for e in names if e not in known]
    if missing:
        known.update(_create_people(db, missing, names, roles))
    return found | known


def _create_people(db: Connection, missing: list[str], names: dict[str, str], roles: dict[str, str]) -> dict[str, int]:
    """Person ids of addresses no person has yet, creating them. Read back only when another
    writer stored some of them first: what this transaction inserted, it knows already."""
    now = utcnow()
    created = dict(insert_returning(db, Rep.__table__, _REP_COLUMNS, [
        (e, names[e], "", RepStatus.ACTIVE, roles[e], 0, "en", now, now) for e in missing
    ], ("email", "id")))
    if len(created) < len(missing):
        created = ids_by(db, Rep.__table__.c.email, Rep.__table__.c.id, missing)
    addresses = insert_ignoring(db, RepAddress.__table__, [
        {"rep_id": created[email], "email": email, "kind": "company"} for email in sorted(created)
    ])
    if addresses < len(missing):
        return _rep_ids(db, missing)
    return created


def _rep_ids(db: Connection, emails: Iterable[str]) -> dict[str, int]:
    addresses = RepAddress.__table__
    return ids_by(db, addresses.c.email, addresses.c.rep_id, emails)


def _ensure_contacts(
    db: Connection, singles: Sequence[ContactFact], groups: Sequence[list[ContactFact]],
    known_points: dict[tuple[str, str], int],
) -> dict[tuple[str, str], int]:
    """ContactPoint ids, creating what is new in a few set-based statements.

    Points of one address-book entry share one Contact: an existing one when any of its
    points is known, else one created for the entry. A Contact created here whose points another
    writer stored first (several daemons on one PostgreSQL) is deleted again, not left empty.
    A group whose points are all in `known_points` is settled without a statement, unless it
    names its customer, which may then be named.
    """
    settled: dict[tuple[str, str], int] = {}
    unsettled: list[list[ContactFact]] = []
    for group in [*([c] for c in singles), *groups]:
        if all((c.kind, c.value) in known_points and not c.customer_name for c in group):
            settled.update({(c.kind, c.value): known_points[(c.kind, c.value)] for c in group})
        else:
            unsettled.append(group)
    if not unsettled:
        return settled
    facts = {(c.kind, c.value): c for group in unsettled for c in group}
    new_customers = _ensure_customers(db, facts.values())
    known = _point_contacts(db, facts)
    owners: dict[tuple[str, str], int] = {key: contact_id for key, (_, contact_id) in known.items()}
    planned: dict[tuple[str, str], int] = {}
    new_contacts: list[ContactFact] = []
    for group in unsettled:
        keys = [(c.kind, c.value) for c in group]
        if all(k in owners or k in planned for k in keys):
            continue
        deciding = _identifying(keys)
        existing = next((owners[k] for k in deciding if k in owners), None)
        slot = next((planned[k] for k in deciding if k in planned), None)
        if existing is None and slot is None:
            slot = len(new_contacts)
            new_contacts.append(group[0])
        for key in keys:
            if key not in owners and key not in planned:
                if existing is not None:
                    owners[key] = existing
                else:
                    planned[key] = slot  # type: ignore[assignment]
    created = _insert_contacts(db, new_contacts, _customer_ids(db, new_contacts, new_customers))
    owners.update({key: created[slot] for key, slot in planned.items()})
    inserted = insert_returning(db, ContactPoint.__table__, ("contact_id", "kind", "value", "bounce_reason"), [
        (owners[key], *key, "") for key in sorted(facts) if key not in known
    ], ("kind", "value", "id", "contact_id"))
    known.update({(kind, value): (point_id, contact_id) for kind, value, point_id, contact_id in inserted})
    known.update(_point_contacts(db, [key for key in facts if key not in known]))
    unused = set(created) - {contact_id for _, contact_id in known.values()}
    if unused:
        db.execute(delete(Contact.__table__).where(Contact.__table__.c.id.in_(sorted(unused))))
    return settled | {key: point_id for key, (point_id, _) in known.items()}


def _identifying(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The points that say whose entry this is: its email addresses. A phone number is often a
    company's switchboard shared by colleagues, so it decides only for an entry without an address."""
    emails = [key for key in keys if key[0] == "email"]
    return emails or keys


def _insert_contacts(db: Connection, firsts: list[ContactFact], customer_ids: dict[str, int]) -> list[int]:
    if not firsts:
        return []
    table = Contact.__table__
    now = utcnow()
    rows = [{"customer_id": customer_ids[c.customer_key], "name": c.name[:256], "locale": "", "timezone": "",
             "created_at": now} for c in firsts]
    return list(db.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars())


def _point_contacts(db: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    table = ContactPoint.__table__
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for chunk in chunked(list(keys)):
        rows = db.execute(select(table.c.kind, table.c.value, table.c.id, table.c.contact_id)
                          .where(tuple_(table.c.kind, table.c.value).in_(chunk)))
        found.update({(kind, value): (pid, cid) for kind, value, pid, cid in rows})
    return found


def _ensure_customers(db: Connection, contacts: Iterable[ContactFact]) -> dict[str, int]:
    """Create new customers; returns the ids of those created. A customer's name is its key until a
    contact brings the first name for it. New keys go in key order, as contact points do: two
    writers (two daemons) then take the unique index's locks in one order and cannot deadlock on them."""
    kinds: dict[str, str] = {}
    names: dict[str, str] = {}
    for contact in contacts:
        kinds[contact.customer_key] = contact.customer_kind
        if contact.customer_name:
            names.setdefault(contact.customer_key, contact.customer_name[:256])
    table = Customer.__table__
    now = utcnow()
    created = dict(insert_returning(db, table, _CUSTOMER_COLUMNS, [
        (key, key, kind, "", False, CustomerStatus.ACTIVE, "", "", now) for key, kind in sorted(kinds.items())
    ], ("key", "id")))
    if names:
        db.execute(update(table).where(table.c.key == bindparam("named_key"), table.c.name == table.c.key)
                   .values(name=bindparam("known_name")),
                   [{"named_key": key, "known_name": name} for key, name in names.items()])
    return created


def _customer_ids(db: Connection, contacts: list[ContactFact], created: dict[str, int]) -> dict[str, int]:
    """Customer ids of the contacts about to be created: only those of customers stored before are read."""
    table = Customer.__table__
    found = {c.customer_key: created[c.customer_key] for c in contacts if c.customer_key in created}
    return found | ids_by(db, table.c.key, table.c.id, sorted({c.customer_key for c in contacts} - found.keys()))


def _ensure_messages(
    db: Connection, source_id: int, messages: list[MessageFact], linked: list[MessageFact]
) -> tuple[dict[str, int], int]:
    """Store `messages`; returns the ids of the `linked` ones, which interactions or relays point at
    (most mail has neither), and how many were new. Only linked messages stored before are looked up."""
    table = Message.__table__
    inserted = dict(insert_returning(db, table, _MESSAGE_COLUMNS, [
        (m.message_key, as_utc(m.occurred_at), m.subject, m.sender_email[:254], m.noise_reason, m.date_source,
         source_id) for m in sorted(messages, key=attrgetter("message_key"))
    ], ("message_key", "id")))
    found = {m.message_key: inserted[m.message_key] for m in linked if m.message_key in inserted}
    found |= ids_by(db, table.c.message_key, table.c.id, [m.message_key for m in linked if m.message_key not in found])
    return found, len(inserted)


def _insert_interactions(
    db: Connection, messages: list[MessageFact], rep_ids: dict[str, int],
    point_ids: dict[tuple[str, str], int], owners: PointOwners, message_ids: dict[str, int],
) -> None:
    """Interactions and relays; the coverage aggregates count the interactions that were new. Of
    two rows with one key the first is stored, so the first is counted."""
    contact_of, customer_of = owners
    rows = []
    relays = []
    counted: dict[tuple[int, int, int, str], Counted] = {}
    for message in messages:
        message_id = message_ids[message.message_key]
        occurred_at = as_utc(message.occurred_at)
        for item in message.interactions:
            point_id = point_ids[(item.contact.kind, item.contact.value)]
            rep_id = rep_ids[item.rep_email]
            rows.append((message_id, rep_id, point_id, item.direction, contact_of[point_id], customer_of[point_id],
                         item.channel, occurred_at))
            counted.setdefault((message_id, rep_id, point_id, item.direction), Counted(
                customer_of[point_id], rep_id, item.channel, occurred_at))
        relays += [{"message_id": message_id, "rep_id": rep_ids[r.rep_email], "personal_email": r.personal_email,
                    "occurred_at": occurred_at} for r in message.relays]
    rows.sort(key=_interaction_key)
    new = insert_returning(db, Interaction.__table__, _INTERACTION_COLUMNS, rows, _INTERACTION_KEY)
    count_interactions(db, (counted[key] for key in new))
    insert_ignoring(db, PersonalRelay.__table__, relays)


def _insert_sightings(
    db: Connection, source_id: int, facts: FactBatch, rep_ids: dict[str, int],
    point_ids: dict[tuple[str, str], int], owners: PointOwners,
) -> None:
    contact_of, customer_of = owners
    now = utcnow()
    insert_ignoring(db, Sighting.__table__, [
        {"source_id": source_id, "entry_ref": s.entry_ref[:512], "rep_id": rep_ids.get(s.rep_email),
         "contact_id": contact_of[point_ids[(c.kind, c.value)]], "contact_point_id": point_ids[(c.kind, c.value)],
         "customer_id": customer_of[point_ids[(c.kind, c.value)]], "channel": s.channel, "name": c.name[:256],
         "seen_at": now}
        for s in facts.sightings for c in s.contacts
    ])


def _forget_removed_entries(db: Connection, source_id: int, entry_refs: list[str]) -> None:
    """An address-book entry its source reports deleted no longer shows anyone as reachable."""
    table = Sighting.__table__
    for chunk in chunked(sorted(set(entry_refs))):
        db.execute(delete(table).where(table.c.source_id == source_id, table.c.entry_ref.in_(chunk)))


def _point_owners(db: Connection, point_ids: Iterable[int]) -> PointOwners:
    """Contact and customer of each contact point, read back so merges by other writers are respected."""
    points, contacts = ContactPoint.__table__, Contact.__table__
    contact_of: dict[int, int] = {}
    customer_of: dict[int, int] = {}
    for chunk in chunked(sorted(set(point_ids))):
        rows = db.execute(select(points.c.id, points.c.contact_id, contacts.c.customer_id)
                          .join(contacts, contacts.c.id == points.c.contact_id).where(points.c.id.in_(chunk)))
        for point_id, contact_id, customer_id in rows:
            contact_of[point_id] = contact_id
            customer_of[point_id] = customer_id
    return contact_of, customer_of
