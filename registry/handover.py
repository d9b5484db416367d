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

from registry.audit import audit, audit_many
from registry.batching import chunked
from registry.bulk import insert_ignoring
from registry.departure_facts import OPEN_STATES, unsettled_items
from registry.departure_values import Choice
from registry.models import (
    AuditEvent,
    ContactPoint,
    Customer,
    Handover,
    HandoverItem,
    HandoverStatus,
    Notification,
    NotificationState,
    Rep,
    RepStatus,
    utcnow,
)

AWAITING_APPROVAL = "awaiting approval"
OPEN = OPEN_STATES
TAKING_EFFECT = (HandoverStatus.APPROVED, HandoverStatus.NOTIFYING)
"""A plan approved or needing no approval: its letters may go out, and it takes effect at its date."""
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


def set_rep_status(db: Connection, rep_id: int, status: RepStatus, actor: str, why: str) -> None:
    table = Rep.__table__
    previous = db.execute(select(table.c.status).where(table.c.id == rep_id)).scalar_one()
    if previous != status:
        db.execute(table.update().where(table.c.id == rep_id).values(status=status, updated_at=utcnow()))
        audit(db, actor, "rep_status", "rep", rep_id, {"from": previous, "to": status, "why": why})


def create_handover(
    db: Connection, rep_id: int, effective_at: datetime, trigger: str, requires_approval: bool,
    choices: Sequence[Choice], needs_human: set[int], actor: str, created_at: datetime, tenure: int = 0,
) -> int:
    handover_id = db.execute(_HANDOVER.insert().values(
        rep_id=rep_id, status=HandoverStatus.PLANNED if requires_approval else HandoverStatus.NOTIFYING,
        trigger=trigger[:32],
        effective_at=effective_at, requires_approval=requires_approval, approved_by="", cancelled_reason="",
        tenure=tenure, created_at=created_at,
    ).returning(_HANDOVER.c.id)).scalar_one()
    _insert_items(db, handover_id, choices, needs_human, added_later=False)
    audit(db, actor, "handover_planned", "handover", handover_id, {
        "rep_id": rep_id, "trigger": trigger, "effective_at": effective_at.isoformat(),
        "requires_approval": requires_approval, "customers": len(choices), "needs_human": len(needs_human)})
    _audit_choices(db, actor, "successor_chosen", handover_id, choices)
    return handover_id


def add_items(db: Connection, handover_id: int, choices: Sequence[Choice], needs_human: set[int], actor: str) -> None:
    """Customers who joined an open plan after it was made; the plan report shows them as added later."""
    _insert_items(db, handover_id, choices, needs_human, added_later=True)
    audit(db, actor, "customers_joined", "handover", handover_id,
          {"customers": [c.customer_id for c in choices], "needs_human": sorted(needs_human)})
    _audit_choices(db, actor, "successor_chosen", handover_id, choices)


def change_successors(db: Connection, handover_id: int, choices: Sequence[Choice], actor: str, why: str) -> None:
    for choice in choices:
        db.execute(_ITEM.update().where(_ITEM.c.handover_id == handover_id, _ITEM.c.customer_id == choice.customer_id)
                   .values(successor_rep_id=choice.successor_rep_id, strategy=choice.strategy[:64],
                           reason=choice.reason[:512]))
    _audit_choices(db, actor, "successor_changed", handover_id, choices, why)


def _insert_items(db: Connection, handover_id: int, choices: Sequence[Choice], needs_human: set[int],
                  added_later: bool) -> None:
    if choices:
        db.execute(_ITEM.insert(), [
            {"handover_id": handover_id, "customer_id": c.customer_id, "successor_rep_id": c.successor_rep_id,
             "strategy": c.strategy, "reason": c.reason[:512], "needs_human": c.customer_id in needs_human,
             "added_later": added_later}
            for c in choices])


def _audit_choices(db: Connection, actor: str, action: str, handover_id: int, choices: Sequence[Choice],
                   why: str = "") -> None:
    audit_many(db, actor, action, "customer", [
        (c.customer_id, {"handover_id": handover_id, "successor_rep_id": c.successor_rep_id,
                         "strategy": c.strategy, "reason": c.reason, **({"why": why} if why else {})})
        for c in choices])


def open_handover_ids(db: Connection) -> list[int]:
    return list(db.execute(select(_HANDOVER.c.id).where(_HANDOVER.c.status.in_(OPEN))
                           .order_by(_HANDOVER.c.id)).scalars())


def ownership_moved(db: Connection, handover_id: int) -> bool:
    """Whether the handover took effect: from then on its customers belong to their successors."""
    return db.execute(select(AuditEvent.id).where(
        AuditEvent.action == "ownership_transferred", AuditEvent.entity == "handover",
        AuditEvent.entity_id == str(handover_id))).first() is not None


def planned_customer_ids(db: Connection, customer_ids: Sequence[int]) -> set[int]:
    """Those of `customer_ids` an open plan is still handing over."""
    found: set[int] = set()
    for chunk in chunked(sorted(customer_ids)):
        items = unsettled_items().where(_ITEM.c.customer_id.in_(chunk)).subquery()
        found.update(db.execute(select(items.c.customer_id)).scalars())
    return found


def plans_naming(db: Connection, successor_rep_id: int) -> dict[int, list[int]]:
    """Customers by open, not yet effective plan that hand them to this rep."""
    items = unsettled_items().where(_ITEM.c.successor_rep_id == successor_rep_id).subquery()
    plans: dict[int, list[int]] = {}
    for handover_id, customer_id in db.execute(select(items.c.handover_id, items.c.customer_id)
                                               .order_by(items.c.handover_id, items.c.customer_id)):
        plans.setdefault(handover_id, []).append(customer_id)
    return plans


def hold_letters_naming(db: Connection, handover_id: int, successor_rep_id: int, reason: str, actor: str) -> int:
    """Letters not yet sent that introduce this successor are held, never sent from or about a rep who left."""
    held = db.execute(_NOTE.update().where(
        _NOTE.c.handover_id == handover_id, _NOTE.c.successor_rep_id == successor_rep_id,
        _NOTE.c.state == NotificationState.PENDING,
    ).values(state=NotificationState.HELD, held_reason=reason[:512])).rowcount
    if held:
        audit(db, actor, "notifications_held", "handover", handover_id,
              {"successor_rep_id": successor_rep_id, "held": held, "reason": reason})
    return held


def depart_due_leavers(db: Connection, now: datetime, actor: str) -> list[int]:
    """Reps `leaving` whose open plan's effective date has come are departed, approved or not."""
    due = list(db.execute(select(Rep.id).join(_HANDOVER, _HANDOVER.c.rep_id == Rep.id)
                          .where(Rep.status == RepStatus.LEAVING, _HANDOVER.c.status.in_(OPEN),
                                 _HANDOVER.c.effective_at <= now).distinct()).scalars())
    for rep_id in due:
        set_rep_status(db, rep_id, RepStatus.DEPARTED, actor, "the effective date of the departure came")
    return due


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
    if handover.status != HandoverStatus.PLANNED:
        raise HandoverError(f"handover {handover_id} is {handover.status}; only a planned handover can be approved")
    db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id)
               .values(status=HandoverStatus.NOTIFYING, approved_by=actor[:128], approved_at=utcnow()))
    released = db.execute(_NOTE.update().where(_NOTE.c.handover_id == handover_id,
                                               _NOTE.c.state == NotificationState.HELD,
                                               _NOTE.c.held_reason == AWAITING_APPROVAL)
                          .values(state=NotificationState.PENDING, held_reason="")).rowcount
    audit(db, actor, "handover_approved", "handover", handover_id, {"released": released})
    return released


@dataclass(frozen=True)
class Cancelled:
    held: int
    sent: int


def cancel_handover(db: Connection, handover_id: int, reason: str, actor: str) -> Cancelled:
    """Stop a handover: every message not yet handed to a transport is held, and a rep who was
    leaving or deactivated by it is active again. Says how many were held and how many had gone out."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN:
        raise HandoverError(f"handover {handover_id} is {handover.status}; only an open handover can be cancelled")
    db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id)
               .values(status=HandoverStatus.CANCELLED, cancelled_reason=reason[:512]))
    unsent = ((_NOTE.c.state == NotificationState.PENDING)
              | ((_NOTE.c.state == NotificationState.HELD) & (_NOTE.c.held_reason == AWAITING_APPROVAL)))
    held = db.execute(_NOTE.update().where(_NOTE.c.handover_id == handover_id, unsent)
                      .values(state=NotificationState.HELD, held_reason=f"cancelled: {reason}"[:512])).rowcount
    sent = db.execute(select(func.count()).select_from(_NOTE)
                      .where(_NOTE.c.handover_id == handover_id, _NOTE.c.state == NotificationState.SENT)).scalar_one()
    audit(db, actor, "handover_cancelled", "handover", handover_id, {"reason": reason, "held": held, "sent": sent})
    status = db.execute(select(Rep.status).where(Rep.id == handover.rep_id)).scalar_one()
    if status in (RepStatus.LEAVING, RepStatus.DEACTIVATED):
        set_rep_status(db, handover.rep_id, RepStatus.ACTIVE, actor, f"handover {handover_id} cancelled")
    return Cancelled(held, sent)


def settle_handover(db: Connection, handover_id: int, actor: str) -> bool:
    """At the effective date: ownership moves once; the handover is done when no message is still on its way.

    Returns whether ownership moved in this call.
    """
    handover = handover_row(db, handover_id)
    if handover.status not in TAKING_EFFECT:
        raise HandoverError(f"handover {handover_id} is {handover.status}; only an approved handover can take effect")
    moved_before = ownership_moved(db, handover_id)
    if not moved_before:
        _move_ownership(db, handover, actor)
    in_flight = db.execute(select(func.count()).select_from(_NOTE).where(
        _NOTE.c.handover_id == handover_id,
        _NOTE.c.state.in_((NotificationState.PENDING, NotificationState.SENDING)))).scalar_one()
    if not in_flight:
        db.execute(_HANDOVER.update().where(_HANDOVER.c.id == handover_id).values(status=HandoverStatus.DONE))
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
    set_rep_status(db, handover.rep_id, RepStatus.DEPARTED, actor, f"handover {handover.id} took effect")
    audit(db, actor, "ownership_transferred", "handover", handover.id, {"customers": len(moved)})


def due_handover_ids(db: Connection, now: datetime) -> list[int]:
    return list(db.execute(select(_HANDOVER.c.id).where(_HANDOVER.c.status.in_(TAKING_EFFECT),
                                                        _HANDOVER.c.effective_at <= now)).scalars())


def handover_report(db: Connection, handover_id: int) -> HandoverReport:
    """Planned, sent, bounced and held messages of one handover."""
    handover = handover_row(db, handover_id)
    by_state = dict(db.execute(select(_NOTE.c.state, func.count()).where(_NOTE.c.handover_id == handover_id)
                               .group_by(_NOTE.c.state)).all())
    bounced = db.execute(select(func.count()).select_from(_NOTE)
                         .join(ContactPoint, ContactPoint.id == _NOTE.c.contact_point_id)
                         .where(_NOTE.c.handover_id == handover_id, _NOTE.c.state == NotificationState.SENT,
                                ContactPoint.bounced_at.is_not(None))).scalar_one()  # type: ignore[union-attr]
    held = [tuple(r) for r in db.execute(select(_NOTE.c.to_email, _NOTE.c.step, _NOTE.c.held_reason)
                                         .where(_NOTE.c.handover_id == handover_id,
                                                _NOTE.c.state == NotificationState.HELD)
                                         .order_by(_NOTE.c.id))]
    items = db.execute(select(func.count(), func.count().filter(_ITEM.c.needs_human.is_(True)))
                       .where(_ITEM.c.handover_id == handover_id)).one()
    return HandoverReport(handover_id, handover.status, items[0], items[1], sum(by_state.values()),
                          by_state, bounced, held)  # type: ignore[arg-type]
