"""Planning a departure at scale: one rep with many customers, every message rendered into the outbox.

Builds a registry where the departing rep has `--customers` customers with two contacts each (a
quarter of them co-covered by a team mate, a tenth known only from the rep's phone), then plans the
handover (successors, recipients, en/zh rendering, outbox rows), approves it and lets it take effect.
The planning runs in a child process so its peak RSS is its own; PostgreSQL is ANALYZEd after the
load, as autovacuum would have done in a registry that has been running. Prints one JSON object.
Usage: python bench/handover_plan.py [--customers N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from config.policy import Policy  # noqa: E402
from config.sections import RepConfig  # noqa: E402
from config.settings import Settings  # noqa: E402
from daemon.jobs.departure import depart, settle_due_handovers  # noqa: E402
from daemon.sync.engine import register_reps  # noqa: E402
from daemon.sync.readers import identity_for  # noqa: E402
from registry.facts import ContactFact, FactBatch, InteractionFact, MessageFact, SightingFact  # noqa: E402
from registry.handover import approve_handover  # noqa: E402
from registry.ingest import store_batch  # noqa: E402
from registry.models import Source  # noqa: E402
from registry.store import open_registry  # noqa: E402

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
DEPARTING = "alice@corp.example"
POLICY = Policy(company_domains=["corp.example"],
                ownership={"requires_approval": True, "grace_period_hours": 0},
                notifications={"company_name": "Corp", "shared_mailbox": "customers@corp.example"})
REPS = [RepConfig(email=DEPARTING, name="Alice Archer", team="east", manager="mary@corp.example"),
        RepConfig(email="bob@corp.example", name="Bob Baker", team="east"),
        RepConfig(email="carol@corp.example", name="Carol Clark", team="east"),
        RepConfig(email="mary@corp.example", name="Mary Major")]


def build(url: str, schema: str | None, customers: int) -> None:
    engine = open_registry(url, schema)
    settings = Settings(reps=REPS)
    register_reps(engine, settings, identity_for(settings, POLICY))
    with engine.begin() as db:
        source_id = db.execute(Source.__table__.insert().values(
            name="bench", kind="maildir", channel="company", settings={}, status="ok", last_error="",
            lease_owner="").returning(Source.__table__.c.id)).scalar_one()
    for start in range(0, customers, 1000):
        facts = FactBatch()
        for n in range(start, min(start + 1000, customers)):
            domain = f"customer{n}.{'cn' if n % 5 == 0 else 'example'}"
            contacts = [ContactFact("email", f"{who}@{domain}", f"{who.title()} {n}", domain, "organisation")
                        for who in ("buyer", "ceo")]
            if n % 10 == 9:
                facts.sightings.append(SightingFact(f"phone#{n}", DEPARTING, "personal", tuple(contacts)))
                continue
            for k, contact in enumerate(contacts):
                reps = [DEPARTING, "bob@corp.example"] if n % 4 == 0 else [DEPARTING]
                facts.messages.append(MessageFact(
                    f"<m{n}.{k}@bench>", NOW - timedelta(days=1 + n % 60, hours=k), "Order", DEPARTING, "",
                    tuple(InteractionFact(r, contact, "outbound", "company") for r in reps)))
        store_batch(engine, source_id, facts, {})
    if engine.dialect.name == "postgresql":
        with engine.begin() as db:
            db.execute(text("ANALYZE"))
    engine.dispose()


def plan(url: str, schema: str | None, result: Any) -> None:
    engine = open_registry(url, schema, migrate=False)
    started = time.perf_counter()
    outcome = depart(engine, POLICY, DEPARTING, effective=NOW + timedelta(days=7), now=NOW)
    planned = time.perf_counter() - started
    again = time.perf_counter()
    replanned = depart(engine, POLICY, DEPARTING, effective=NOW + timedelta(days=7), now=NOW).planned
    replan = time.perf_counter() - again
    started = time.perf_counter()
    with engine.begin() as db:
        approve_handover(db, outcome.handover_id, "bench")
    settle_due_handovers(engine, now=NOW + timedelta(days=7))
    settled = time.perf_counter() - started
    result.update(customers=outcome.customers, needs_human=outcome.needs_human, messages=outcome.planned,
                  plan_seconds=round(planned, 2), messages_per_second=round(outcome.planned / planned),
                  replan_seconds=round(replan, 2), replanned_messages=replanned,
                  approve_and_settle_seconds=round(settled, 2),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    engine.dispose()


def run(url: str, schema: str | None, customers: int) -> dict[str, Any]:
    started = time.perf_counter()
    build(url, schema, customers)
    built = time.perf_counter() - started
    with multiprocessing.Manager() as manager:
        result = manager.dict()
        child = multiprocessing.get_context("spawn").Process(target=plan, args=(url, schema, result))
        child.start()
        child.join()
        return {"build_seconds": round(built, 2), **dict(result)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--postgres", default="", help="also run against this PostgreSQL database, in a private schema")
    args = parser.parse_args()
    report: dict[str, Any] = {"customers_requested": args.customers}
    with tempfile.TemporaryDirectory() as folder:
        report["sqlite"] = run(f"sqlite:///{Path(folder) / 'registry.db'}", None, args.customers)
    if args.postgres:
        schema = f"custody_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as db:
            db.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            report["postgresql"] = run(args.postgres, schema, args.customers)
        finally:
            with admin.connect() as db:
                db.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
