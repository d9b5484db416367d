"""Coverage read from the monthly aggregates counts exactly what the interactions say, at any moment:
whatever month the window's start or `now` cuts, and with mail after `now` already stored."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from config.policy import Policy
from policies.coverage import customer_coverage, rep_activity
from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, PersonFact
from registry.ingest import store_batch
from registry.models import Interaction
from tests.support.registry import new_source

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
REPS = ("ann@corp.test", "bob@corp.test")
BUYERS = ("kim@shop.test", "max@mill.test")
POLICY = Policy(company_domains=["corp.test"], lookback_days=20, dormant_after_days=45)

moments = st.floats(0, 24 * 120, allow_nan=False).map(lambda hours: START + timedelta(hours=hours))
mail = st.lists(st.tuples(moments, st.sampled_from(REPS), st.sampled_from(BUYERS),
                          st.sampled_from(("company", "company", "personal"))), min_size=1, max_size=30)


def test_figures_from_aggregates_equal_figures_from_interactions(engine: Engine) -> None:
    source_id = new_source(engine)
    stored = iter(range(10**6))

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(mail, st.lists(moments, min_size=1, max_size=4))
    def check(found: list[tuple[datetime, str, str, str]], moments_asked: list[datetime]) -> None:
        store_batch(engine, source_id, FactBatch(messages=[
            MessageFact(f"<{next(stored)}@test>", at, "Order", rep, "",
                        (InteractionFact(rep, ContactFact("email", buyer, "", buyer.split("@")[1], "organisation"),
                                         "outbound", channel),))
            for at, rep, buyer, channel in found], people=[PersonFact(r, role="rep") for r in REPS]), {})
        with engine.connect() as db:
            facts = db.execute(select(Interaction.customer_id, Interaction.rep_id, Interaction.channel,
                                      Interaction.occurred_at)).all()
            for now in moments_asked:
                activity = {(r.customer_id, r.rep_id): (r.interactions, r.first_at, r.last_at)
                            for r in db.execute(rep_activity(POLICY, now))}
                assert activity == expected_activity(facts, now)
                coverage = {r.customer_id: (r.last_company_contact, r.personal_messages)
                            for r in db.execute(customer_coverage(POLICY, now))}
                assert coverage == expected_history(facts, now)

    check()


def expected_activity(facts: list, now: datetime) -> dict:
    """Company-channel interactions per customer and rep in the window, both ends inclusive."""
    start = now - timedelta(days=POLICY.lookback_days)
    found: dict = {}
    for customer, rep, channel, at in facts:
        if channel == "company" and start <= at <= now:
            n, first, last = found.get((customer, rep), (0, at, at))
            found[(customer, rep)] = (n + 1, min(first, at), max(last, at))
    return found


def expected_history(facts: list, now: datetime) -> dict:
    """Per customer with mail up to now: the last company-channel contact, and personal-channel mail in the window."""
    start = now - timedelta(days=POLICY.lookback_days)
    found: dict = {}
    for customer, _, channel, at in facts:
        if at > now:
            continue
        last, personal = found.get(customer, (None, 0))
        if channel == "company":
            last = max(last, at) if last else at
        elif at >= start:
            personal += 1
        found[customer] = (last, personal)
    return found
