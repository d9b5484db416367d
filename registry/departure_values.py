"""Plain values of a departure: the registry reads and stores them, the policies decide with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RepProfile:
    id: int
    email: str
    name: str = ""
    team: str = ""
    manager_id: int | None = None
    active: bool = True
    colleague: bool = False
    owned_customers: int = 0
    tenure: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class CoveringRep:
    """Another rep's company-channel mail with the customer in the lookback window."""

    rep_id: int
    last_at: datetime
    interactions: int


@dataclass(frozen=True)
class CustomerHistory:
    customer_id: int
    name: str
    covering: tuple[CoveringRep, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """A contact who had company-channel mail with the departing rep, at the point used last."""

    customer_id: int
    contact_id: int
    contact_point_id: int
    email: str
    registry_locale: str = ""


@dataclass(frozen=True)
class Choice:
    """The ownership policy's successor for one customer (None is the public pool); stored as a handover item."""

    customer_id: int
    successor_rep_id: int | None
    strategy: str
    reason: str
