"""The demo company: the same seed writes the same company, and syncing it shows every coverage class."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from config.policy import load_policy
from config.settings import load_settings
from daemon.sync.engine import sync_source
from demo.company import DemoCompany, generate_demo
from registry.models import Customer, Interaction, Message, PersonalRelay, Rep, Sighting, SyncIssue
from tests.conftest import DEMO_TODAY

TODAY = DEMO_TODAY


@pytest.fixture(scope="module")
def company(demo_company: DemoCompany) -> DemoCompany:
    """The session's demo company, generated with seed 7 as of TODAY."""
    return demo_company


def written_files(root: Path) -> dict[str, list[bytes]]:
    """Every file's bytes by folder; Maildir file names are unique per delivery, so only contents count."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for path in root.rglob("*"):
        if path.is_file():
            found[str(path.parent.relative_to(root))].append(path.read_bytes())
    return {folder: sorted(contents) for folder, contents in found.items()}


def test_the_same_seed_writes_the_same_company(company: DemoCompany, tmp_path: Path) -> None:
    again = generate_demo(tmp_path / "northwind", seed=7, today=TODAY)
    assert written_files(again.root) == written_files(company.root)
    assert (again.messages, again.mail_files, again.noise_messages, again.address_book_entries) == (
        company.messages, company.mail_files, company.noise_messages, company.address_book_entries)
    assert again.coverage == company.coverage


def test_another_seed_writes_another_company(company: DemoCompany, tmp_path: Path) -> None:
    other = generate_demo(tmp_path / "northwind", seed=8, today=TODAY)
    assert set(other.coverage) != set(company.coverage)
    assert written_files(other.root)["mail/wang.lei/.Sent/cur"] != written_files(company.root)["mail/wang.lei/.Sent/cur"]


def test_the_company_has_every_coverage_class_and_a_few_thousand_messages(company: DemoCompany) -> None:
    assert sorted(set(company.coverage.values())) == [
        "contested", "covered", "dormant", "personal-channel-only", "single-threaded"]
    assert len(company.coverage) == 300
    assert set(company.kinds.values()) == {"organisation", "person"}
    assert 2000 <= company.messages <= 5000


def test_the_written_config_and_policy_load(company: DemoCompany) -> None:
    settings = load_settings(company.config_path)
    policy = load_policy(settings.policy_file)
    assert [rep.email for rep in settings.reps] == list(company.reps)
    assert {rep.team for rep in settings.reps} == {"EMEA", "APAC"}
    assert all(rep.manager in company.reps for rep in settings.reps if rep.manager)
    assert all(source.path is not None and source.path.exists() for source in settings.sources)
    assert {s.owner for s in settings.sources if s.kind == "maildir"} == set(company.reps)
    assert {s.channel for s in settings.sources if s.kind == "vcard"} == {"company", "personal"}
    forwarder = next(rep for rep in settings.reps if rep.email == company.forwarding_rep)
    assert forwarder.personal_addresses
    assert policy.company_domains == ["northwind-demo.example"]
    assert settings.data_dir == company.root / "data"


def test_syncing_the_demo_company_shows_what_it_was_built_to_show(company: DemoCompany, engine: Engine) -> None:
    settings = load_settings(company.config_path)
    policy = load_policy(settings.policy_file)
    reports = [sync_source(engine, settings, policy, source) for source in settings.sources]
    assert all(report.ok for report in reports)
    assert sum(r.skipped for r in reports) == company.malformed_messages
    with engine.connect() as db:
        customers = dict(db.execute(select(Customer.key, Customer.kind)).all())
        interactions = db.execute(
            select(Customer.key, Rep.email, Rep.team, Interaction.occurred_at)
            .join(Customer, Customer.id == Interaction.customer_id).join(Rep, Rep.id == Interaction.rep_id)
        ).all()
        personal = set(db.execute(select(Customer.key).join(Sighting, Sighting.customer_id == Customer.id)
                                  .where(Sighting.channel == "personal")).scalars())
        noise = set(db.execute(select(Message.noise_reason).where(Message.noise_reason != "")).scalars())
        relays = db.execute(select(Rep.email, PersonalRelay.personal_email)
                            .join(Rep, Rep.id == PersonalRelay.rep_id)).all()
        skipped = db.execute(select(SyncIssue.reason)).scalars().all()
    assert {email for _, email, _, _ in interactions} == set(company.reps)
    assert {key: customers.get(key) for key in company.kinds} == company.kinds
    assert noise == {"auto-submitted", "precedence", "list", "sender", "delivery-report"}
    assert relays and {rep for rep, _ in relays} == {company.forwarding_rep}
    assert len(skipped) == company.malformed_messages
    assert_each_customer_shows_its_class(company, interactions, personal, policy.lookback_days, policy.dormant_after_days)


def assert_each_customer_shows_its_class(
    company: DemoCompany, interactions: list, personal: set[str], lookback_days: int, dormant_after_days: int,
) -> None:
    window_start = company.reference - timedelta(days=lookback_days)
    recent: dict[str, set[tuple[str, str]]] = defaultdict(set)
    ever: dict[str, set[str]] = defaultdict(set)
    last: dict[str, datetime] = {}
    for key, rep, team, occurred_at in interactions:
        ever[key].add(rep)
        last[key] = max(last.get(key, occurred_at), occurred_at)
        if occurred_at >= window_start:
            recent[key].add((rep, team))
    for key, coverage in company.coverage.items():
        teams = {team for _, team in recent[key]}
        if coverage == "covered":
            assert len(recent[key]) >= 2 and len(teams) == 1, key
        elif coverage == "contested":
            assert len(recent[key]) >= 2 and len(teams) == 2, key
        elif coverage == "single-threaded":
            assert len(recent[key]) == 1 and len(ever[key]) == 1, key
        elif coverage == "dormant":
            assert last[key] < company.reference - timedelta(days=dormant_after_days), key
        else:
            assert key not in ever and key in personal, key
