"""A departure that re-plans another rep's handover is killed with SIGKILL mid-transaction, again and
again: each time the registry is exactly as before it started (or, for a kill after the commit, as
an uninterrupted run leaves it), and the run that finally completes leaves what an uninterrupted
run leaves."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text

from config.sections import RepConfig
from config.settings import Settings
from daemon.jobs.departure import depart
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from policies.identity import KnownRep
from registry.handover import approve_handover
from registry.models import AuditEvent, Handover, HandoverItem, Notification, Rep
from registry.store import open_registry
from tests.conftest import POSTGRES_URL
from tests.daemon.jobs.test_departure_sequences import POLICY
from tests.support.forks import CustodyForks, ForkedCommand
from tests.support.handbuilt import NOW, HandBuilt, rep

CUSTOMERS = 120
KILLS = 6
REPS = [
    RepConfig(email=rep("alice"), name="Alice Archer", team="east", manager=rep("mary")),
    RepConfig(email=rep("bob"), name="Bob Baker", team="east", manager=rep("mary")),
    RepConfig(email=rep("mary"), name="Mary Major"),
]


def company_with_alices_plan(engine: Engine) -> None:
    """Alice's approved plan hands every customer to Bob, who co-covers them all."""
    settings = Settings(reps=REPS)
    register_reps(engine, settings, identity_for(settings, POLICY))
    built = HandBuilt(engine, POLICY, tuple(KnownRep(r.email, r.name) for r in REPS))
    for n in range(CUSTOMERS):
        built.mail(rep("alice"), f"buyer@c{n}.example", days_ago=20)
        built.mail(rep("bob"), f"buyer@c{n}.example", days_ago=10)
    outcome = depart(engine, POLICY, rep("alice"), effective=NOW + timedelta(days=30), now=NOW)
    with engine.begin() as db:
        approve_handover(db, outcome.handover_id, "cli:compliance")


def state(engine: Engine) -> dict[str, Any]:
    """Everything a departure writes, without the times that depend on the clock, and with each plan
    named by its rep: a killed transaction may have drawn a sequence number PostgreSQL never gives back."""
    with engine.connect() as db:
        plan = dict(db.execute(select(Handover.id, Handover.rep_id)).all())
        return {
            "reps": sorted(db.execute(select(Rep.email, Rep.status)).all()),
            "handovers": sorted(db.execute(select(Handover.rep_id, Handover.status)).all()),
            "items": sorted((plan[h], customer, successor, strategy) for h, customer, successor, strategy in db.execute(
                select(HandoverItem.handover_id, HandoverItem.customer_id, HandoverItem.successor_rep_id,
                       HandoverItem.strategy))),
            "letters": sorted((key, plan[h], *rest) for key, h, *rest in db.execute(
                select(Notification.idempotency_key, Notification.handover_id, Notification.step, Notification.state,
                       Notification.sender_email, Notification.successor_rep_id, Notification.subject))),
            "audit": sorted((action, entity, str(plan[int(entity_id)]) if entity == "handover" else entity_id)
                            for action, entity, entity_id in db.execute(
                                select(AuditEvent.action, AuditEvent.entity, AuditEvent.entity_id))),
        }


def write_config(folder: Path, schema: str) -> Path:
    (folder / "policy.yaml").write_text(POLICY.model_dump_json(), encoding="utf-8")
    reps = "".join(f'[[reps]]\nemail = "{r.email}"\nname = "{r.name}"\nteam = "{r.team}"\nmanager = "{r.manager}"\n'
                   for r in REPS)
    config = folder / "custody.toml"
    config.write_text(f'data_dir = "{folder / "data"}"\ndatabase_url = "{POSTGRES_URL}"\n'
                      f'database_schema = "{schema}"\npolicy_file = "policy.yaml"\nlog_level = "WARNING"\n{reps}',
                      encoding="utf-8")
    return config


def depart_bob(forks: CustodyForks, config: Path) -> ForkedCommand:
    """`custody depart` as a process of its own, forked from an interpreter that has custody imported."""
    return forks.start("--config", str(config), "depart", rep("bob"), "--effective", "2026-08-15")


def wait_for_writing_transaction(schema_engine: Engine, process: ForkedCommand) -> bool:
    """Until another session of this database holds a transaction that has written: the departure is
    under way. False when the process ended first."""
    with schema_engine.connect() as db:
        while process.poll() is None:
            writing = db.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()")).scalar_one()
            if writing:
                return True
            db.rollback()
            time.sleep(0.002)
    return False


def test_a_departure_killed_while_it_replans_leaves_all_or_nothing(  # type: ignore[no-untyped-def]
        postgres_schema_factory, tmp_path: Path, custody_forks: CustodyForks) -> None:
    schemas = postgres_schema_factory(), postgres_schema_factory()
    crashed, reference = (open_registry(POSTGRES_URL, schema) for schema in schemas)
    for engine in (crashed, reference):
        company_with_alices_plan(engine)
    before = state(crashed)
    for folder in ("crashed", "reference"):
        (tmp_path / folder).mkdir()
    uninterrupted = depart_bob(custody_forks, write_config(tmp_path / "reference", schemas[1]))
    assert uninterrupted.wait() == 0, uninterrupted.communicate()[1].decode()
    expected = state(reference)
    config = write_config(tmp_path / "crashed", schemas[0])
    watcher = create_engine(POSTGRES_URL)
    rng = random.Random(11)
    interrupted = 0
    for _ in range(KILLS):
        process = depart_bob(custody_forks, config)
        if wait_for_writing_transaction(watcher, process):
            time.sleep(rng.uniform(0, 0.05))
        if process.poll() is not None:
            process.communicate()
            break
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        now = state(crashed)
        assert now in (before, expected), "a killed departure left part of its work"
        if now == expected:
            break
        interrupted += 1
    finished = depart_bob(custody_forks, config)
    assert finished.wait() == 0, finished.communicate()[1].decode()
    after = state(crashed)
    watcher.dispose()
    assert interrupted > 0
    assert after == expected != before
    with crashed.connect() as db:
        alice, mary = (db.execute(select(Rep.id).where(Rep.email == rep(name))).scalar_one() for name in ("alice", "mary"))
    assert {successor for plan, _, successor, _ in after["items"] if plan == alice} == {mary}
