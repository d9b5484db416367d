"""Declared reps in the registry: their addresses, and one person however many addresses mail showed.

Mail may have shown a rep's alias before the config named it; that alias then became a colleague of
its own. Declaring the alias merges that colleague into the rep, so coverage never sees one person
covering or contesting a customer with himself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, exists, select, update

from registry.facts import PersonFact
from registry.ingest import ensure_reps
from registry.models import (
    Customer,
    Handover,
    HandoverItem,
    Interaction,
    PersonalRelay,
    Rep,
    RepAddress,
    Role,
    Sighting,
    utcnow,
)

_rep = Rep.__table__
_address = RepAddress.__table__


@dataclass(frozen=True)
class DeclaredRep:
    """A rep as config (or a directory) declares them, addresses already normalised."""

    email: str
    name: str = ""
    team: str = ""
    manager: str = ""
    locale: str = "en"
    aliases: tuple[str, ...] = ()
    personal_addresses: tuple[str, ...] = ()


def declare_reps(db: Connection, reps: list[DeclaredRep]) -> dict[str, int]:
    """Declared reps override what mail showed: role, name, team, manager, aliases, personal addresses."""
    ids = ensure_reps(db, [PersonFact(r.email, r.name, Role.REP) for r in reps])
    for rep in reps:
        rep_id = ids[rep.email]
        manager = ensure_reps(db, [PersonFact(rep.manager)]) if rep.manager else {}
        db.execute(update(_rep).where(_rep.c.id == rep_id).values(
            name=rep.name, team=rep.team, locale=rep.locale, role=Role.REP, updated_at=utcnow(),
            manager_id=next(iter(manager.values()), None),
        ))
        for alias in rep.aliases:
            _attach(db, rep_id, alias, "company")
        for personal in rep.personal_addresses:
            _attach(db, rep_id, personal, "personal")
    return ids


def _attach(db: Connection, rep_id: int, address: str, kind: str) -> None:
    """Make `address` the rep's; a colleague that mail created for it is merged into the rep."""
    owner = db.execute(select(_address.c.rep_id).where(_address.c.email == address)).scalar()
    if owner is None:
        db.execute(_address.insert().values(rep_id=rep_id, email=address, kind=kind))
        return
    if owner == rep_id:
        return
    db.execute(update(_address).where(_address.c.email == address).values(rep_id=rep_id, kind=kind))
    role = db.execute(select(_rep.c.role).where(_rep.c.id == owner)).scalar()
    still_used = db.execute(select(exists().where(_address.c.rep_id == owner))).scalar()
    if role == Role.COLLEAGUE and not still_used:
        merge_person(db, owner, rep_id)


def merge_person(db: Connection, absorbed: int, survivor: int) -> None:
    """Everything recorded of `absorbed` becomes `survivor`'s; a fact both already share is kept once."""
    interaction, relay = Interaction.__table__, PersonalRelay.__table__
    twin = interaction.alias("twin")
    db.execute(delete(interaction).where(interaction.c.rep_id == absorbed, exists().where(and_(
        twin.c.rep_id == survivor, twin.c.message_id == interaction.c.message_id,
        twin.c.contact_point_id == interaction.c.contact_point_id, twin.c.direction == interaction.c.direction))))
    relay_twin = relay.alias("relay_twin")
    db.execute(delete(relay).where(relay.c.rep_id == absorbed, exists().where(and_(
        relay_twin.c.rep_id == survivor, relay_twin.c.message_id == relay.c.message_id,
        relay_twin.c.personal_email == relay.c.personal_email))))
    for table, column in ((interaction, "rep_id"), (relay, "rep_id"), (Sighting.__table__, "rep_id"),
                          (Customer.__table__, "owner_rep_id"), (_rep, "manager_id"),
                          (Handover.__table__, "rep_id"), (HandoverItem.__table__, "successor_rep_id"),
                          (_address, "rep_id")):
        db.execute(update(table).where(table.c[column] == absorbed).values({column: survivor}))
    db.execute(delete(_rep).where(_rep.c.id == absorbed))
