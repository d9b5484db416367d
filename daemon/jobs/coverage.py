"""The coverage job the service schedules: contact merges, owners, dormant recycling, today's snapshot.

Every step is guarded by the state it expects, so the job is safe to run twice and beside itself
in another daemon process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from config.policy import Policy
from daemon.jobs.pool import assign_owners, recycle_dormant
from registry.contacts import merge_contacts
from reports.classification import record_snapshots

ACTOR = "scheduler:coverage"


def coverage_round(engine: Engine, policy: Policy, now: datetime, actor: str = ACTOR) -> dict[str, int]:
    """What changed: contacts merged, dormant customers recycled, owners assigned."""
    merged = merge_contacts(engine, actor)
    recycled = len(recycle_dormant(engine, policy, now, actor))
    assigned = assign_owners(engine, policy, now, actor)
    record_snapshots(engine, policy, now)
    return {"contacts_merged": merged, "recycled": recycled, "owners_assigned": assigned}
