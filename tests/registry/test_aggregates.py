"""The coverage aggregates ingest keeps are exactly what a rebuild from the interactions gives, after
any mix of batches, replayed batches, batches that fail half-way, and merges of contacts and people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from daemon.cli.app import app
from registry.aggregates import aggregate_rows, rebuild
from registry.contacts import merge_contacts
from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, PersonFact, SightingFact
from registry.ingest import Known, store_batch, store_facts
from registry.models import CoverageBucket, Interaction
from registry.people import DeclaredRep, declare_reps
from registry.store import MIGRATIONS, open_registry
from tests.support.registry import new_source

START = datetime(2026, 1, 28, tzinfo=timezone.utc)
REPS = ("ann@corp.test", "bob@corp.test", "cy@corp.test")
BUYERS = ("kim@shop.test", "lee@shop.test", "max@mill.test", "ned@free.test")


class Crash(Exception):
    """Raised inside a batch's transaction, after its facts were written."""


def contact(address: str) -> ContactFact:
    domain = address.split("@")[1]
    return ContactFact("email", address, address.split("@")[0].title(), domain, "organisation")


messages = st.builds(
    lambda n, rep, buyer, hours, direction, channel: MessageFact(
        f"<m{n}@test>", START + timedelta(hours=hours), "Order", rep, "",
        (InteractionFact(rep, contact(buyer), direction, channel),)),
    st.integers(0, 40), st.sampled_from(REPS), st.sampled_from(BUYERS),
    st.floats(0, 24 * 70, allow_nan=False), st.sampled_from(("inbound", "outbound")),
    st.sampled_from(("company", "company", "personal")),
)


@dataclass(frozen=True)
class Store:
    batch: FactBatch


@dataclass(frozen=True)
class Replay:
    """The last batch stored, stored again."""


@dataclass(frozen=True)
class Fail:
    batch: FactBatch


@dataclass(frozen=True)
class MergeContacts:
    """An address book lists two buyers on one entry: their Contacts (and customers) merge."""

    first: str
    second: str


@dataclass(frozen=True)
class Alias:
    """A rep is declared with an alias mail showed as a colleague: the colleague's interactions become the rep's."""

    rep: str
    alias: str


batches = st.builds(lambda found: FactBatch(messages=found, people=[PersonFact(r) for r in REPS]),
                    st.lists(messages, min_size=1, max_size=12))
steps = st.one_of(
    st.builds(Store, batches), st.just(Replay()), st.builds(Fail, batches),
    st.builds(MergeContacts, st.sampled_from(BUYERS), st.sampled_from(BUYERS)),
    st.builds(Alias, st.sampled_from(REPS), st.sampled_from(("ann.b@corp.test", "bo@corp.test"))),
)


def test_ingest_keeps_the_aggregates_a_rebuild_computes(engine: Engine) -> None:
    source_id = new_source(engine)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(steps, min_size=1, max_size=8))
    def run(plan: list[object]) -> None:
        last = FactBatch()
        for step in plan:
            last = apply(engine, source_id, step, last)
        with engine.begin() as db:
            kept = aggregate_rows(db)
            rebuilt = rebuild(db)
            assert (rebuilt.stale, rebuilt.missing) == (0, 0)
            assert aggregate_rows(db) == kept
            assert rebuilt.interactions == db.execute(select(func.count()).select_from(Interaction)).scalar_one()

    run()


def apply(engine: Engine, source_id: int, step: object, last: FactBatch) -> FactBatch:
    """Run one step; returns the batch a replay stores again."""
    match step:
        case Store(batch):
            store_batch(engine, source_id, batch, {})
            return batch
        case Replay():
            store_batch(engine, source_id, last, {})
        case Fail(batch):
            with pytest.raises(Crash), engine.begin() as db:
                store_facts(db, source_id, batch, Known())
                raise Crash
        case MergeContacts(first, second):
            points = (contact(first), contact(second))
            store_batch(engine, source_id, FactBatch(sightings=[SightingFact(f"{first}+{second}", "", "company",
                                                                             points)]), {})
            merge_contacts(engine, "test")
        case Alias(rep, alias):
            store_batch(engine, source_id, FactBatch(
                messages=[MessageFact(f"<{alias}@test>", START, "Hello", alias, "",
                                      (InteractionFact(alias, contact(BUYERS[0]), "outbound", "company"),))],
                people=[PersonFact(alias)]), {})
            with engine.begin() as db:
                declare_reps(db, [DeclaredRep(rep, aliases=(alias,))])
    return last


def test_a_rebuild_repairs_aggregates_that_drifted_and_says_so(engine: Engine) -> None:
    source_id = new_source(engine)
    buyer = contact(BUYERS[0])
    store_batch(engine, source_id, FactBatch(messages=[
        MessageFact(f"<d{n}@test>", START + timedelta(days=n * 20), "Order", REPS[0], "",
                    (InteractionFact(REPS[0], buyer, "outbound", "company"),)) for n in range(3)]), {})
    with engine.begin() as db:
        right = aggregate_rows(db)
        db.execute(update(CoverageBucket.__table__).values(interactions=CoverageBucket.__table__.c.interactions + 5))
    with engine.begin() as db:
        rebuilt = rebuild(db)
        assert aggregate_rows(db) == right
    assert (rebuilt.interactions, rebuilt.buckets, rebuilt.stale, rebuilt.missing) == (3, 3, 3, 3)


def test_the_rebuild_command_recounts_and_reports(
    engine: Engine, tmp_path: Path, registry_target: tuple[str, str | None]
) -> None:
    url, schema = registry_target
    config = tmp_path / "custody.toml"
    config.write_text(f"data_dir = {json.dumps(str(tmp_path))}\ndatabase_url = {json.dumps(url)}\n"
                      f"database_schema = {json.dumps(schema or '')}\n", encoding="utf-8")
    source_id = new_source(engine)
    store_batch(engine, source_id, FactBatch(messages=[
        MessageFact("<c1@test>", START, "Order", REPS[0], "",
                    (InteractionFact(REPS[0], contact(BUYERS[0]), "outbound", "company"),))]), {})

    result = CliRunner().invoke(app, ["--config", str(config), "registry", "rebuild"])

    assert result.exit_code == 0, result.output
    assert "rebuilt from 1 interactions: 1 customer-rep-channel months; nothing had drifted" in result.output


def test_upgrading_a_registry_fills_the_aggregates_from_its_interactions(
    engine: Engine, registry_target: tuple[str, str | None]
) -> None:
    source_id = new_source(engine)
    store_batch(engine, source_id, FactBatch(messages=[
        MessageFact(f"<u{n}@test>", START + timedelta(days=n * 9), "Order", REPS[n % 2], "",
                    (InteractionFact(REPS[n % 2], contact(BUYERS[n % 3]), "inbound", "company"),)) for n in range(9)]), {})
    with engine.connect() as db:
        kept = aggregate_rows(db)
    downgrade(engine, registry_target[1], "0007_round_leases")
    open_registry(*registry_target).dispose()
    with engine.connect() as db:
        assert aggregate_rows(db) == kept
    months, totals = kept
    assert sum(row[4] for row in months) == sum(row[3] for row in totals) == 9


def downgrade(engine: Engine, schema: str | None, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as db:
        config.attributes.update(connection=db, schema=schema)
        command.downgrade(config, revision)


