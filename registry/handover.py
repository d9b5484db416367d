"""Handover records and their life cycle: planned, notifying, done or cancelled, each step audited.

A handover needing approval has its messages planned at once, in state `held` with the reason
AWAITING_APPROVAL, so reviewers see exactly what will go out; approval releases them to `pending`.
Cancelling (by hand or because the rep was reactivated) holds every message not yet handed to a
transport, with a reason starting "cancelled:"; rows are kept, not deleted, so the report and the
audit trail still show what was planned. The outbox only ever sends `pending` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from policies.ownership import Choice
from registry.audit import audit, audit_many
from registry.bulk import insert_ignoring
from registry.models import AuditEvent, ContactPoint, Customer, Handover, HandoverItem, Notification, Rep, utcnow

AWAITING_APPROVAL = "awaiting approval"
OPEN = ("planned", "approved", "notifying")
_HANDOVER, _ITEM, _NOTE = Handover.__table__, HandoverItem.__table__, Notification.__table__


class HandoverError(Exception):
    """A handover operation that does not apply to the handover's current state."""


@dataclass(frozen=True)
class HandoverReport:
    handover_id: int
    status: str
    customers: int
    needs_human: int
    planned: int
    by_state: dict[str, int]
    bounced: int
    held: list[tuple[str, str, str]]


def open_handover_id(db: Connection, rep_id: int) -> int | None:
    return db.execute(select(_HANDOVER.c.id).where(_HANDOVER.c.rep_id == rep_id, _HANDOVER.c.status.in_(OPEN))
                      .order_by(_HANDOVER.c.id.desc())).scalar()


def lock_rep(db: Connection, rep_id: int) -> None:
    """Serialise departures of one rep: a row lock on PostgreSQL, the write lock on SQLite."""
    db.execute(Rep.__table__.update().where(Rep.__table__.c.id == rep_id).values(updated_at=utcnow()))


def set_rep_status(db: Connection, rep_id: int, status: str, actor: str, why: str) -> None:
    table = Rep.__table__
    previous = db.execute(select(table.c.status).where(table.c.id == rep_id)).scalar_one()
    if previous != status:
        db.execute(table.update().where(table.c.id == rep_id).values(status=status, updated_at=utcnow()))
        audit(db, actor, "rep_status", "rep", rep_id, {"from": previous, "to": status, "why": why})


def create_handover(
    db: Connection, rep_id: int, effective_at: datetime, trigger: str, requires_approval: bool,
    choices: Sequence[Choice], needs_human: set[int], actor: str, created_at: datetime,
) -> int:
    handover_id = db.execute(_HANDOVER.insert().values(
        rep_id=rep_id, status="planned" if requires_approval else "notifying", trigger=trigger[:32],
        effective_at=effective_at, requires_approval=requires_approval, approved_by="", cancelled_reason="",
        created_at=created_at,
    ).returning(_HANDOVER.c.id)).scalar_one()
    if choices:
        db.execute(_ITEM.insert(), [
            {"handover_id": handover_id, "customer_id": c.customer_id, "successor_rep_id": c.successor_rep_id,
             "strategy": c.strategy, "reason": c.reason[:512], "needs_human": c.customer_id in needs_human}
            for c in choices])
    audit(db, actor, "handover_planned", "handover", handover_id, {
        "rep_id": rep_id, "trigger": trigger, "effective_at": effective_at.isoformat(),
        "requires_approval": requires_approval, "customers": len(choices), "needs_human": len(needs_human)})
    audit_many(db, actor, "successor_chosen", "customer", [
        (c.customer_id, {"handover_id": handover_id, "successor_rep_id": c.successor_rep_id,
                         "strategy": c.strategy, "reason": c.reason}) for c in choices])
    return handover_id


def handover_row(db: Connection, handover_id: int) -> Any:
    row = db.execute(select(_HANDOVER).where(_HANDOVER.c.id == handover_id)).first()
    if row is None:
        raise HandoverError(f"handover {handover_id} does not exist")
    return row


def handover_items(db: Connection, handover_id: int) -> list[Any]:
    """Items with the customer's and successor's names, for display and for rendering."""
    return list(db.execute(
        select(_ITEM, Customer.name.label("customer_name"), Customer.key.label("customer_key"),
               Customer.kind.label("customer_kind"), Rep.email.label("successor_email"),
               Rep.name.label("successor_name"))
        .join(Customer, Customer.id == _ITEM.c.customer_id)
        .outerjoin(Rep, Rep.id == _ITEM.c.successor_rep_id)
        .where(_ITEM.c.handover_id == handover_id).order_by(_ITEM.c.customer_id)))


def insert_notifications(db: Connection, handover_id: int, rows: Sequence[dict[str, Any]]) -> int:
    """Add outbox rows; a row whose idempotency key exists already is left as it is. Returns how many were new."""
    count = select(func.count()).select_from(_NOTE).where(_NOTE.c.handover_id == handover_id)
    before = db.execute(count).scalar_one()
    insert_ignoring(db, _NOTE, [dict(row) for row in rows])
    return db.execute(count).scalar_one() - before


def approve_handover(db: Connection, handover_id: int, actor: str) -> int:
    """Release the held messages of a planned handover; returns how many became pending."""
    handover = handover_row(db, handover_id)
    if handover.status != "planned":
        raise HandoverError(f"handover {handover_id} is {handover.status}; only a planned handover can be approved")
    db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id)
               .values(status="notifying", approved_by=actor[:128], approved_at=utcnow()))
    released = db.execute(_NOTE.update().where(_NOTE.c.handover_id == handover_id, _NOTE.c.state == "held",
                                               _NOTE.c.held_reason == AWAITING_APPROVAL)
                          .values(state="pending", held_reason="")).rowcount
    audit(db, actor, "handover_approved", "handover", handover_id, {"released": released})
    return released


def cancel_handover(db: Connection, handover_id: int, reason: str, actor: str) -> int:
    """Stop a handover: every message not yet handed to a transport is held. Returns how many."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN:
        raise HandoverError(f"handover {handover_id} is {handover.status}; only an open handover can be cancelled")
    db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id)
               .values(status="cancelled", cancelled_reason=reason[:512]))
    unsent = (_NOTE.c.state == "pending") | ((_NOTE.c.state == "held") & (_NOTE.c.held_reason == AWAITING_APPROVAL))
    held = db.execute(_NOTE.update().where(_NOTE.c.handover_id == handover_id, unsent)
                      .values(state="held", held_reason=f"cancelled: {reason}"[:512])).rowcount
    audit(db, actor, "handover_cancelled", "handover", handover_id, {"reason": reason, "held": held})
    return held


def settle_handover(db: Connection, handover_id: int, actor: str) -> bool:
    """At the effective date: ownership moves once; the handover is done when no message is still on its way.

    Returns whether ownership moved in this call.
    """
    handover = handover_row(db, handover_id)
    if handover.status not in ("approved", "notifying"):
        raise HandoverError(f"handover {handover_id} is {handover.status}; only an approved handover can take effect")
    moved_before = db.execute(select(AuditEvent.id).where(
        AuditEvent.action == "ownership_transferred", AuditEvent.entity == "handover",
        AuditEvent.entity_id == str(handover_id))).first()
    if not moved_before:
        _move_ownership(db, handover, actor)
    in_flight = db.execute(select(func.count()).select_from(_NOTE).where(
        _NOTE.c.handover_id == handover_id, _NOTE.c.state.in_(("pending", "sending")))).scalar_one()
    if not in_flight:
        db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id).values(status="done"))
        audit(db, actor, "handover_done", "handover", handover_id, {})
    return not moved_before


def _move_ownership(db: Connection, handover: Any, actor: str) -> None:
    customers = Customer.__table__
    moved = []
    for item in handover_items(db, handover.id):
        reason = f"handover {handover.id}: {item.strategy}: {item.reason}"[:256]
        db.execute(customers.update().where(customers.c.id == item.customer_id).values(
            owner_rep_id=item.successor_rep_id, owner_reason=reason, pool=item.successor_rep_id is None))
        moved.append((item.customer_id, {"handover_id": handover.id, "from_rep_id": handover.rep_id,
                                         "to_rep_id": item.successor_rep_id, "reason": reason}))
    audit_many(db, actor, "ownership_moved", "customer", moved)
    set_rep_status(db, handover.rep_id, "departed", actor, f"handover {handover.id} took effect")
    audit(db, actor, "ownership_transferred", "handover", handover.id, {"customers": len(moved)})


def due_handover_ids(db: Connection, now: datetime) -> list[int]:
    return list(db.execute(select(_HANDOVER.c.id).where(_HANDOVER.c.status.in_(("approved", "notifying")),
                                                        _HANDOVER.c.effective_at <= now)).scalars())


def handover_report(db: Connection, handover_id: int) -> HandoverReport:
    """Planned, sent, bounced and held messages of one handover."""
    handover = handover_row(db, handover_id)
    by_state = dict(db.execute(select(_NOTE.c.state, func.count()).where(_NOTE.c.handover_id == handover_id)
                               .group_by(_NOTE.c.state)).all())
    bounced = db.execute(select(func.count()).select_from(_NOTE)
                         .join(ContactPoint, ContactPoint.id == _NOTE.c.contact_point_id)
                         .where(_NOTE.c.handover_id == handover_id, _NOTE.c.state == "sent",
                                ContactPoint.bounced_at.is_not(None))).scalar_one()  # type: ignore[union-attr]
    held = [tuple(r) for r in db.execute(select(_NOTE.c.to_email, _NOTE.c.step, _NOTE.c.held_reason)
                                         .where(_NOTE.c.handover_id == handover_id, _NOTE.c.state == "held")
                                         .order_by(_NOTE.c.id))]
    items = db.execute(select(func.count(), func.count().filter(_ITEM.c.needs_human.is_(True)))
                       .where(_ITEM.c.handover_id == handover_id)).one()
    return HandoverReport(handover_id, handover.status, items[0], items[1], sum(by_state.values()),
                          by_state, bounced, held)  # type: ignore[arg-type]
