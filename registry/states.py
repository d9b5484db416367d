"""The registry's states and roles as plain values: code that only needs these (sync readers, the
identity policy) does not load SQLAlchemy for them."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A declared rep (config or directory) is credited with coverage; a colleague is an internal
    person only seen in mail, credited only when the policy credits every employee."""

    REP = "rep"
    COLLEAGUE = "colleague"


class RepStatus(StrEnum):
    """A leaving rep has a departure with a future effective date: still working, still counted
    for coverage, never a successor."""

    ACTIVE = "active"
    LEAVING = "leaving"
    DEACTIVATED = "deactivated"
    DEPARTED = "departed"


class CustomerStatus(StrEnum):
    """A merged customer only existed through a Contact that contact resolution absorbed."""

    ACTIVE = "active"
    MERGED = "merged"


class HandoverStatus(StrEnum):
    """A plan needing approval is planned until approved; one that needs none notifies at once."""

    PLANNED = "planned"
    APPROVED = "approved"
    NOTIFYING = "notifying"
    DONE = "done"
    CANCELLED = "cancelled"


class NotificationState(StrEnum):
    """The outbox only ever sends pending rows; sending is leased to one dispatcher."""

    PENDING = "pending"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class SourceStatus(StrEnum):
    """What the last sync of a source decided: each failure class of `connectors.errors` has its own."""

    NEW = "new"
    OK = "ok"
    RETRYING = "retrying"
    FAILING = "failing"
    AUTH_FAILED = "auth_failed"

    @classmethod
    def failed(cls) -> tuple[SourceStatus, ...]:
        return cls.RETRYING, cls.FAILING, cls.AUTH_FAILED
