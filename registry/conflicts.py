"""Which database errors mean a write lost a race with another writer, not that its data was wrong.

Read by duck typing, so that a reader process that never writes does not load SQLAlchemy to ask.
"""

from __future__ import annotations

WRITE_CONFLICT_STATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race, not its data."""


def is_write_conflict(error: BaseException) -> bool:
    """A write that another writer's transaction got in the way of: tried again, it succeeds.

    Two daemons storing the same new customers can deadlock on PostgreSQL, and a writer can find
    SQLite locked past its timeout; either rolls back the whole batch with its cursor. SQLAlchemy
    keeps the driver's own error as `orig`."""
    driver_error = getattr(error, "orig", None)
    if driver_error is None:
        return False
    return getattr(driver_error, "sqlstate", None) in WRITE_CONFLICT_STATES or "database is locked" in str(driver_error)
