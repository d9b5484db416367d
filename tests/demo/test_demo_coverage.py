"""The demo company, synced, shows every coverage class, each customer in the class it was built for."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest
from sqlalchemy import Engine

from config.policy import load_policy
from config.settings import load_settings
from daemon.sync.engine import sync_source
from demo.company import DemoCompany
from reports.classification import classify, coverage_summary
from tests.conftest import DEMO_TODAY

TODAY = DEMO_TODAY
NOW = datetime.combine(TODAY, time(18), tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def company(demo_company: DemoCompany) -> DemoCompany:
    """The session's demo company, generated with seed 7 as of TODAY."""
    return demo_company


def test_every_customer_lands_in_the_class_the_demo_built_it_for(company: DemoCompany, engine: Engine) -> None:
    settings = load_settings(company.config_path)
    policy = load_policy(settings.policy_file)
    for source in settings.sources:
        assert sync_source(engine, settings, policy, source).ok
    any_rival_counts = policy.model_copy(update={"coverage": policy.coverage.model_copy(update={
        "contested": policy.coverage.contested.model_copy(update={"min_interactions_each": 1})})})

    summary = coverage_summary(engine, policy, NOW)
    classes = {c.key: c.coverage_class for c in classify(engine, any_rival_counts, NOW)}

    assert all(summary[name] > 0 for name in set(company.coverage.values()))
    assert classes == company.coverage
