"""Who succeeds a departing rep, customer by customer: the policy's strategies tried in order.

Pure: the caller loads the reps and each customer's company-channel history from the registry.
Every choice names the strategy that decided it and a reason a compliance reader understands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from registry.departure_values import Choice, CustomerHistory, RepProfile

POOL = "pool"


@dataclass(frozen=True)
class Departure:
    rep: RepProfile
    explicit_successor_id: int | None = None


@dataclass(frozen=True)
class Decided:
    rep_id: int
    reason: str


@dataclass(frozen=True)
class Declined:
    """A strategy that had a candidate but passed (the candidate is at the cap): the reason is kept,
    so the choice a later strategy makes says why the earlier one did not decide."""

    reason: str


@dataclass
class _Plan:
    """What strategies share while one departure is planned: who can succeed and how loaded they are."""

    departure: Departure
    reps: Mapping[int, RepProfile]
    load: dict[int, int] = field(default_factory=dict)
    cap: int | None = None
    turn: int = 0

    def eligible(self, rep_id: int | None) -> RepProfile | None:
        rep = self.reps.get(rep_id) if rep_id is not None else None
        return rep if rep and rep.active and rep.id != self.departure.rep.id else None

    def team_mates(self) -> list[RepProfile]:
        team = self.departure.rep.team
        return sorted((r for r in self.reps.values()
                       if team and r.team == team and not r.colleague and self.eligible(r.id)), key=lambda r: r.id)

    def at_cap(self, rep_id: int) -> bool:
        """The rep already holds the cap: customers owned now plus those this plan has given them."""
        return self.cap is not None and self.load[rep_id] >= self.cap

    def capped(self, reps: Sequence[RepProfile]) -> str:
        verb = "is" if len(reps) == 1 else "are"
        return f"{', '.join(r.label for r in reps)} {verb} at the cap of {self.cap} customers"


Outcome = Decided | Declined | None
Strategy = Callable[[_Plan, CustomerHistory], Outcome]


def _explicit(plan: _Plan, _customer: CustomerHistory) -> Outcome:
    """A successor named by a person is that person's decision: the cap does not apply."""
    rep = plan.eligible(plan.departure.explicit_successor_id)
    return Decided(rep.id, f"named as successor of {plan.departure.rep.label}") if rep else None


def _co_covering(plan: _Plan, customer: CustomerHistory) -> Outcome:
    """The covering rep with the latest mail who is under the cap; capped ones are named in the reason."""
    candidates = sorted((c for c in customer.covering if plan.eligible(c.rep_id) and not plan.reps[c.rep_id].colleague),
                        key=lambda c: (c.last_at, c.interactions, -c.rep_id), reverse=True)
    best = next((c for c in candidates if not plan.at_cap(c.rep_id)), None)
    passed = [plan.reps[c.rep_id] for c in candidates[:candidates.index(best) if best else None]]
    if best is None:
        return Declined(plan.capped(passed)) if passed else None
    rep = plan.reps[best.rep_id]
    reason = (f"{rep.label} also covers {customer.name}: {best.interactions} company-channel "
              f"interactions, the latest on {best.last_at:%Y-%m-%d}")
    return Decided(rep.id, f"{plan.capped(passed)}; {reason}" if passed else reason)


def _manager(plan: _Plan, _customer: CustomerHistory) -> Outcome:
    rep = plan.eligible(plan.departure.rep.manager_id)
    if rep is None:
        return None
    if plan.at_cap(rep.id):
        return Declined(plan.capped([rep]))
    return Decided(rep.id, f"{rep.label} is the manager of {plan.departure.rep.label}")


def _team_round_robin(plan: _Plan, _customer: CustomerHistory) -> Outcome:
    """The next team mate in turn; a mate at the cap loses the turn."""
    mates = plan.team_mates()
    if not mates:
        return None
    for offset in range(len(mates)):
        rep = mates[(plan.turn + offset) % len(mates)]
        if not plan.at_cap(rep.id):
            plan.turn += offset + 1
            return Decided(rep.id, f"{rep.label} is next in turn in team {plan.departure.rep.team}")
    return Declined(_whole_team_capped(plan))


def _team_least_loaded(plan: _Plan, _customer: CustomerHistory) -> Outcome:
    mates = plan.team_mates()
    if not mates:
        return None
    rep = min(mates, key=lambda r: (plan.load[r.id], r.id))
    if plan.at_cap(rep.id):
        return Declined(_whole_team_capped(plan))
    return Decided(rep.id, f"{rep.label} owns the fewest customers in team {plan.departure.rep.team} "
                           f"({plan.load[rep.id]} before this one)")


def _whole_team_capped(plan: _Plan) -> str:
    return f"every team mate in team {plan.departure.rep.team} is at the cap of {plan.cap} customers"


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
    *,
    max_per_successor: int | None = None,
) -> list[Choice]:
    """One choice per customer, in customer-id order so round-robin turns and the cap are reproducible.

    `max_per_successor` balances the load: a rep who owns that many customers, counting those they
    own now and those this plan has already given them, is passed over by every strategy but
    `explicit`, and the next strategy in order is tried. None means no cap.
    """
    plan = _Plan(departure, reps, {r.id: r.owned_customers for r in reps.values()}, max_per_successor)
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
    """The first strategy with an answer decides; the public pool takes whoever is left. Strategies
    that passed because of the cap are named first in the reason ("manager: Mary is at the cap…; …")."""
    declined = []
    for name in strategies:
        if name == POOL:
            break
        outcome = STRATEGIES[name](plan, customer)
        if isinstance(outcome, Declined):
            declined.append(f"{name}: {outcome.reason}")
        elif outcome:
            return Choice(customer.customer_id, outcome.rep_id, name, "; ".join([*declined, outcome.reason]))
    return Choice(customer.customer_id, None, POOL, "; ".join([
        *declined, "no strategy of the policy found an active successor; the customer goes to the public pool"]))
