"""The demo company, synced, shows every coverage class, each customer in the class it was built for."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest
from sqlalchemy import Engine

from config.policy import load_policy
from config.settings import load_settings
from demo.company import DemoCompany, generate_demo
from daemon.sync.engine import sync_source
from registry.coverage import classify, coverage_summary

TODAY = date(2026, 6, 1)
NOW = datetime.combine(TODAY, time(18), tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> DemoCompany:
    return generate_demo(tmp_path_factory.mktemp("demo") / "northwind", seed=7, today=TODAY)


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
