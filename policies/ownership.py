"""Who succeeds a departing rep, customer by customer: the policy's strategies tried in order.

Pure: the caller loads the reps and each customer's company-channel history from the registry.
Every choice names the strategy that decided it and a reason a compliance reader understands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

POOL = "pool"


@dataclass(frozen=True)
class RepProfile:
    id: int
    email: str
    name: str = ""
    team: str = ""
    manager_id: int | None = None
    active: bool = True
    discovered: bool = False
    owned_customers: int = 0

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
class Departure:
    rep: RepProfile
    explicit_successor_id: int | None = None


@dataclass(frozen=True)
class Choice:
    customer_id: int
    successor_rep_id: int | None
    strategy: str
    reason: str


@dataclass
class _Plan:
    """What strategies share while one departure is planned: who can succeed and how loaded they are."""

    departure: Departure
    reps: Mapping[int, RepProfile]
    load: dict[int, int] = field(default_factory=dict)
    turn: int = 0

    def eligible(self, rep_id: int | None) -> RepProfile | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep if rep and rep.active and rep.id != self.departure.rep.id else None

    def team_mates(self) -> list[RepProfile]:
        team = self.departure.rep.team
        return sorted((r for r in self.reps.values()
                       if team and r.team == team and not r.discovered and self.eligible(r.id)), key=lambda r: r.id)


Strategy = Callable[[_Plan, CustomerHistory], "tuple[int, str] | None"]


def _explicit(plan: _Plan, _customer: CustomerHistory) -> tuple[int, str] | None:
    rep = plan.eligible(plan.departure.explicit_successor_id)
    return (rep.id, f"named as successor of {plan.departure.rep.label}") if rep else None


def _co_covering(plan: _Plan, customer: CustomerHistory) -> tuple[int, str] | None:
    candidates = [c for c in customer.covering if plan.eligible(c.rep_id) and not plan.reps[c.rep_id].discovered]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c.last_at, c.interactions, -c.rep_id))
    rep = plan.reps[best.rep_id]
    return rep.id, (f"{rep.label} also covers {customer.name}: {best.interactions} company-channel "
                    f"interactions, the latest on {best.last_at:%Y-%m-%d}")


def _manager(plan: _Plan, _customer: CustomerHistory) -> tuple[int, str] | None:
    rep = plan.eligible(plan.departure.rep.manager_id)
    return (rep.id, f"{rep.label} is the manager of {plan.departure.rep.label}") if rep else None


def _team_round_robin(plan: _Plan, _customer: CustomerHistory) -> tuple[int, str] | None:
    mates = plan.team_mates()
    if not mates:
        return None
    rep = mates[plan.turn % len(mates)]
    plan.turn += 1
    return rep.id, f"{rep.label} is next in turn in team {plan.departure.rep.team}"


def _team_least_loaded(plan: _Plan, _customer: CustomerHistory) -> tuple[int, str] | None:
    mates = plan.team_mates()
    if not mates:
        return None
    rep = min(mates, key=lambda r: (plan.load[r.id], r.id))
    return rep.id, (f"{rep.label} owns the fewest customers in team {plan.departure.rep.team} "
                    f"({plan.load[rep.id]} before this one)")


STRATEGIES: dict[str, Strategy] = {
    "explicit": _explicit,
    "co_covering": _co_covering,
    "manager": _manager,
    "team_round_robin": _team_round_robin,
    "team_least_loaded": _team_least_loaded,
}


def choose_successors(
    departure: Departure,
    customers: Sequence[CustomerHistory],
    reps: Mapping[int, RepProfile],
    strategies: Sequence[str],
) -> list[Choice]:
    """One choice per customer, in customer-id order so round-robin turns are reproducible."""
    plan = _Plan(departure, reps, {r.id: r.owned_customers for r in reps.values()})
    unknown = [s for s in strategies if s != POOL and s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown successor strategies: {', '.join(unknown)}")
    choices = []
    for customer in sorted(customers, key=lambda c: c.customer_id):
        choice = _first_decision(plan, customer, strategies)
        if choice.successor_rep_id is not None:
            plan.load[choice.successor_rep_id] += 1
        choices.append(choice)
    return choices


def _first_decision(plan: _Plan, customer: CustomerHistory, strategies: Sequence[str]) -> Choice:
    """The first strategy with an answer decides; the public pool takes whoever is left."""
    for name in strategies:
        if name == POOL:
            break
        decided = STRATEGIES[name](plan, customer)
        if decided:
            return Choice(customer.customer_id, decided[0], name, decided[1])
    return Choice(customer.customer_id, None, POOL,
                  "no strategy of the policy found an active successor; the customer goes to the public pool")
