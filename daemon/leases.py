"""Row leases: who holds one (`host:pid`, so a lease of a process that died on this host is free at
once) and the leases of shared rounds, so several daemons on one registry run each round once."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from registry.models import RoundLease, as_utc, utcnow

ROUND_LEASE = timedelta(minutes=10)


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_alive(owner: str) -> bool:
    """False only for a process of this host that no longer exists; other hosts wait for expiry."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def round_lease(engine: Engine, name: str, length: timedelta = ROUND_LEASE) -> Iterator[bool]:
    """True inside when this process runs round `name` now; False when a live daemon does.

    Every round is also safe to run twice (each change is guarded by the state it expects), so a
    lease that runs out under a slow round costs duplicate work, never a duplicate effect."""
    held = claim_round(engine, name, length)
    try:
        yield held
    finally:
        if held:
            release_round(engine, name)


def claim_round(engine: Engine, name: str, length: timedelta = ROUND_LEASE, now: datetime | None = None) -> bool:
    """Take the round's lease when it is free, expired, ours, or held by a process that died here."""
    table = RoundLease.__table__
    now = now or utcnow()
    me = lease_owner()
    with engine.begin() as db:
        insert_if_missing(db, table, name=name, lease_owner="")
        row = db.execute(select(table.c.lease_owner, table.c.lease_until).where(table.c.name == name)
                         .with_for_update(skip_locked=True)).first()
        if row is None:
            return False
        observed = row.lease_owner
        if observed and observed != me and lease_alive(observed) and row.lease_until and as_utc(row.lease_until) > now:
            return False
        return bool(db.execute(table.update().where(table.c.name == name, table.c.lease_owner == observed)
                               .values(lease_owner=me, lease_until=now + length)).rowcount)


def release_round(engine: Engine, name: str) -> None:
    table = RoundLease.__table__
    with engine.begin() as db:
        db.execute(table.update().where(table.c.name == name, table.c.lease_owner == lease_owner())
                   .values(lease_owner="", lease_until=None, last_finished=utcnow()))


def insert_if_missing(db: Connection, table: Table, **values: object) -> None:
    """Insert a keyed row unless it exists: another daemon may be inserting the same one right now."""
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    db.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
