"""The append-only audit trail: who or what did what to which record."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from registry.models import AuditEvent, utcnow


def audit(db: Connection, actor: str, action: str, entity: str = "", entity_id: object = "",
          detail: dict[str, Any] | None = None) -> None:
    audit_many(db, actor, action, entity, [(entity_id, detail or {})])


def audit_many(db: Connection, actor: str, action: str, entity: str,
               items: Sequence[tuple[object, dict[str, Any]]]) -> None:
    """One event per record, all stamped with the same moment, written in the caller's transaction."""
    if not items:
        return
    now = utcnow()
    db.execute(AuditEvent.__table__.insert(), [
        {"at": now, "actor": actor[:128], "action": action[:64], "entity": entity[:64],
         "entity_id": str(entity_id)[:128], "detail": detail} for entity_id, detail in items
    ])


def cli_actor() -> str:
    """The operating-system user running a CLI command, as the audit trail's 'who'."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
