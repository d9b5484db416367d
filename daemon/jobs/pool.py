"""Ownership changes the coverage policy asks for: owners for unowned customers, dormant ones to the pool.

Both are jobs the daemon schedules and CLI commands; each change is guarded by the state it
expects, so running twice, or in two processes at once, changes every customer at most once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, or_

from config.policy import Policy
from policies.coverage import dormant_customers, owner_candidates
from registry.audit import audit_many
from registry.models import Customer

_CHUNK = 500


def assign_owners(engine: Engine, policy: Policy, now: datetime, actor: str) -> int:
    """Give unowned customers the owner the policy's rule picks; returns how many changed."""
    table = Customer.__table__
    reason = f"policy:{policy.coverage.owner_rule}"
    changed: list[tuple[object, dict[str, Any]]] = []
    with engine.begin() as db:
        for customer_id, rep_id in db.execute(owner_candidates(policy, now)).all():
            done = db.execute(table.update()
                              .where(table.c.id == customer_id, table.c.owner_rep_id.is_(None))
                              .values(owner_rep_id=rep_id, owner_reason=reason, pool=False)).rowcount
            if done:
                changed.append((customer_id, {"owner_rep_id": rep_id, "rule": policy.coverage.owner_rule}))
        audit_many(db, actor, "customer.owner_assigned", "customer", changed)
    return len(changed)


def recycle_dormant(engine: Engine, policy: Policy, now: datetime, actor: str, dry_run: bool = False) -> list[int]:
    """Return dormant customers to the public pool (owner cleared); the ids that moved."""
    table = Customer.__table__
    with engine.begin() as db:
        found = db.execute(dormant_customers(policy, now)).all()
        if dry_run:
            return [row.customer_id for row in found]
        moved: list[tuple[object, dict[str, Any]]] = []
        for start in range(0, len(found), _CHUNK):
            chunk = {row.customer_id: row for row in found[start:start + _CHUNK]}
            updated = db.execute(
                table.update()
                .where(table.c.id.in_(chunk), or_(table.c.owner_rep_id.is_not(None), table.c.pool.is_(False)))
                .values(owner_rep_id=None, owner_reason="dormant", pool=True)
                .returning(table.c.id)
            ).scalars().all()
            moved += [(cid, _recycle_detail(chunk[cid], policy)) for cid in updated]
        audit_many(db, actor, "customer.recycled_to_pool", "customer", moved)
    return [int(cid) for cid, _ in moved]


def _recycle_detail(row: Row[Any], policy: Policy) -> dict[str, Any]:
    last = row.last_company_contact
    return {"previous_owner_rep_id": row.owner_rep_id, "last_company_contact": last.isoformat() if last else None,
            "dormant_after_days": policy.dormant_after_days}
