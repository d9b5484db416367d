"""Coverage at scale: 50,000 customers and 2,000,000 interactions on SQLite and on PostgreSQL.

Prints one JSON object: per backend, seconds and peak RSS for generating the registry (the facts
bulk-loaded, then the coverage aggregates computed by the registry's rebuild), for the set-based
classification (class counts only; every customer with its evidence, streamed; the same as one
list), for the departure exposure (which classifies every customer and adds up), and for each
report format written to a file as `custody report coverage` writes it (every format streamed). Each phase runs
in its own child process so its peak RSS is its own. PostgreSQL runs in a private schema dropped
afterwards. `--scale` runs 500,000 customers and 20,000,000 interactions on PostgreSQL alone,
classification and exposure only.
Usage: python bench/coverage.py [--customers N] [--interactions N] [--postgres URL | --no-postgres] [--scale]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from queue import Empty
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
REPS, TEAM_SIZE = 300, 10
CHUNK = 50_000

# (share of customers in twentieths, reps working it, age range of its mail in days, personal sighting)
MIX: tuple[tuple[int, str, tuple[int, int], bool], ...] = (
    (8, "team", (0, 170), False),       # covered: two reps of one team
    (6, "one", (0, 170), False),        # single-threaded
    (1, "rivals", (0, 170), False),     # contested: two reps of different teams
    (2, "one", (200, 300), True),       # personal-channel-only: company mail left the window
    (2, "one", (400, 700), False),      # dormant
    (1, "one", (200, 300), False),      # unattended
)


def policy() -> Any:
    from config.policy import Policy
    return Policy(company_domains=["corp.example"], lookback_days=180, dormant_after_days=365)


def open_target(url: str, schema: str | None) -> Any:
    from registry.store import open_registry
    return open_registry(url, schema)


def customer_plan(customers: int, seed: int = 7) -> Iterator[tuple[int, list[int], tuple[int, int], bool]]:
    """(customer number, reps, mail age range, personal sighting) for every customer, deterministic."""
    rng = random.Random(seed)
    pattern = [entry for entry in MIX for _ in range(entry[0])]
    for n in range(customers):
        _, reps, ages, personal = pattern[n % len(pattern)]
        first = rng.randrange(REPS)
        if reps == "team":
            chosen = [first, (first // TEAM_SIZE) * TEAM_SIZE + (first + 1) % TEAM_SIZE]
        elif reps == "rivals":
            chosen = [first, (first + TEAM_SIZE) % REPS]
        else:
            chosen = [first]
        yield n, chosen, ages, personal


def generate(engine: Any, customers: int, interactions: int) -> dict[str, Any]:
    """Bulk-load the facts (executemany on SQLite, COPY on PostgreSQL), then compute the coverage
    aggregates with the registry's own rebuild, the function `custody registry rebuild` runs: what
    ingest would have kept batch by batch. Mail is generated twice, row by row, never held whole."""
    from registry.aggregates import rebuild
    from registry.models import (
        Contact,
        ContactPoint,
        Customer,
        Interaction,
        Message,
        PersonalRelay,
        Rep,
        Sighting,
        Source,
    )

    people = _people(customers)
    relays: list[tuple] = []
    columns = {
        Rep: "id email name team status role locale created_at updated_at",
        Source: "id name kind channel settings status last_error lease_owner",
        Customer: "id key name kind owner_reason pool status locale timezone created_at",
        Contact: "id customer_id name locale timezone created_at",
        ContactPoint: "id contact_id kind value bounce_reason",
        Sighting: "id source_id entry_ref rep_id contact_id contact_point_id customer_id channel name seen_at",
        Message: "id message_key occurred_at subject sender_email noise_reason first_source_id",
        Interaction: "id message_id rep_id contact_id contact_point_id customer_id direction channel occurred_at",
        PersonalRelay: "id message_id rep_id personal_email occurred_at",
    }
    started = time.perf_counter()
    for model in (Rep, Source, Customer, Contact, ContactPoint, Sighting):
        _load(engine, model.__table__, columns[model].split(), people[model])
    _load(engine, Message.__table__, columns[Message].split(), _messages(customers, interactions, relays))
    _load(engine, Interaction.__table__, columns[Interaction].split(),
          (link for _, link, _ in _mail(customers, interactions)))
    _load(engine, PersonalRelay.__table__, columns[PersonalRelay].split(), relays)
    if engine.dialect.name == "postgresql":
        with engine.begin() as db:
            analyze(db)
    loaded = time.perf_counter()
    with engine.begin() as db:
        rebuilt = rebuild(db, compare=False)
    if engine.dialect.name == "postgresql":
        with engine.begin() as db:
            db.exec_driver_sql("ANALYZE coverage_bucket; ANALYZE coverage_total")
    return {"customers": customers, "interactions": rebuilt.interactions, "aggregate_rows": rebuilt.buckets,
            "load_seconds": round(loaded - started, 2),
            "aggregates_seconds": round(time.perf_counter() - loaded, 2)}


def _people(customers: int) -> dict[Any, list[tuple]]:
    """Reps, the personal address book, and each customer with its one contact."""
    from registry.models import Contact, ContactPoint, Customer, CustomerStatus, Rep, RepStatus, Sighting, Source

    created = NOW - timedelta(days=800)
    tables: dict[Any, list[tuple]] = {
        Rep: [(r + 1, f"rep{r}@corp.example", f"Rep {r}", f"team-{r // TEAM_SIZE}", RepStatus.ACTIVE, "rep", "en",
               created, created) for r in range(REPS)],
        Source: [(1, "phones", "vcard", "personal", {}, "ok", "", "")],
        Customer: [], Contact: [], ContactPoint: [], Sighting: [],
    }
    for n, reps, _, personal in customer_plan(customers):
        cid = n + 1
        tables[Customer].append((cid, f"c{n}.example", f"Customer {n}", "organisation", "", False,
                                 CustomerStatus.ACTIVE, "", "", created))
        tables[Contact].append((cid, cid, f"Buyer {n}", "", "", created))
        tables[ContactPoint].append((cid, cid, "email", f"buyer@c{n}.example", ""))
        if personal:
            tables[Sighting].append((len(tables[Sighting]) + 1, 1, f"phone#{n}", reps[0] + 1, cid, cid, cid,
                                     "personal", f"Buyer {n}", created))
    return tables


def _mail(customers: int, interactions: int) -> Iterator[tuple[tuple, tuple, tuple | None]]:
    """(message, interaction, relay or None) for every message, the same on every call."""
    rng = random.Random(11)
    per_customer = interactions // customers
    message_id = relay_id = 0
    for n, reps, (young, old), _ in customer_plan(customers):
        cid = n + 1
        for i in range(per_customer):
            message_id += 1
            moment = NOW - timedelta(days=rng.uniform(young, old))
            rep = reps[i % len(reps)] + 1
            relay = None
            if i == 0 and n % 50 == 0:
                relay_id += 1
                relay = (relay_id, message_id, rep, f"rep{rep - 1}.home@gmail.com", moment)
            yield ((message_id, f"<m{message_id}@bench>", moment, "Order", "", "", 1),
                   (message_id, message_id, rep, cid, cid, cid, "outbound" if i % 2 else "inbound", "company", moment),
                   relay)


def _messages(customers: int, interactions: int, relays: list[tuple]) -> Iterator[tuple]:
    """The messages of `_mail`, keeping its few relays aside for their own table."""
    for message, _, relay in _mail(customers, interactions):
        if relay:
            relays.append(relay)
        yield message


def _load(engine: Any, table: Any, names: list[str], rows: Iterable[tuple]) -> None:
    source = iter(rows)
    chunks = iter(lambda: list(itertools.islice(source, CHUNK)), [])
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                    for chunk in chunks:
                        copy.write("".join("\t".join(map(_copy_text, row)) + "\n" for row in chunk))
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as db:
            db.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                               f"(SELECT max(id) FROM {table.name}))")
        return
    for chunk in chunks:
        with engine.begin() as db:
            db.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in chunk])


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        value = json.dumps(value)
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def summary(engine: Any) -> dict[str, Any]:
    from reports.classification import coverage_summary
    return {"classes": coverage_summary(engine, policy(), NOW)}


def classify_all(engine: Any) -> dict[str, Any]:
    """Every customer with its evidence, as a consumer that writes them out one by one reads them."""
    from reports.classification import iter_classify
    customers = evidence = 0
    for found in iter_classify(engine, policy(), NOW):
        customers += 1
        evidence += len(found.reps)
    return {"customers": customers, "rep_evidence_rows": evidence}


def classify_list(engine: Any) -> dict[str, Any]:
    """The same as a list, as `classify()` gives it to callers that sort it whole."""
    from reports.classification import classify
    found = classify(engine, policy(), NOW)
    return {"customers": len(found), "rep_evidence_rows": sum(len(c.reps) for c in found)}


def exposure_all(engine: Any) -> dict[str, Any]:
    from reports.classification import exposure
    return {"reps": len(exposure(engine, policy(), NOW))}


def report(fmt: str) -> Callable[[Any], dict[str, Any]]:
    def run(engine: Any) -> dict[str, Any]:
        from reports.coverage import MESSAGES_PER_CUSTOMER, export_report, report_for
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"coverage.{fmt}"
            built = report_for(engine, policy(), NOW, fmt, MESSAGES_PER_CUSTOMER)  # type: ignore[arg-type]
            export_report(engine, built, fmt, out, "bench")  # type: ignore[arg-type]
            return {"bytes": out.stat().st_size}
    return run


PHASES: dict[str, Callable[..., dict[str, Any]]] = {
    "classification_counts": summary,
    "classification_with_evidence": classify_all,
    "classification_as_list": classify_list,
    "exposure": exposure_all,
    "report_html": report("html"),
    "report_csv": report("csv"),
    "report_json": report("json"),
}


def analyze(db: Any) -> None:
    """Statistics for the bench's own tables: a bare ANALYZE would visit every schema of the
    database (the test suite's too) and can run out of lock slots."""
    from sqlmodel import SQLModel

    import registry.models  # noqa: F401  (registers every table)
    for table in SQLModel.metadata.sorted_tables:
        db.exec_driver_sql(f'ANALYZE "{table.name}"')


def _child(name: str, url: str, schema: str | None, args: tuple, queue: Any) -> None:
    """One phase in a fresh interpreter; the clock starts once the registry is open and warm."""
    import reports.coverage  # noqa: F401  (imports are not what is measured)
    engine = open_target(url, schema)
    started = time.perf_counter()
    result = (PHASES.get(name) or generate)(engine, *args)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    queue.put(result)


def in_child(name: str, url: str, schema: str | None, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, url, schema, args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1)
        except Empty:
            if process.exitcode is not None:
                failed = f"bench: the {name} phase failed (exit code {process.exitcode}); its traceback is above"
                raise SystemExit(failed) from None
            continue
        process.join()
        return result


SCALE_PHASES = ("classification_counts", "classification_with_evidence", "classification_as_list", "exposure")


def bench_backend(url: str, schema: str | None, customers: int, interactions: int,
                  phases: Iterable[str] = PHASES) -> dict[str, Any]:
    results = {"generate": in_child("generate", url, schema, customers, interactions)}
    for name in phases:
        results[name] = in_child(name, url, schema)
    return results


def postgres_schema(url: str, action: str, schema: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        db.execute(text(f'{action} SCHEMA "{schema}"' + (" CASCADE" if action == "DROP" else "")))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--scale", action="store_true",
                        help="500,000 customers and 20,000,000 interactions on PostgreSQL alone; classification "
                             "and exposure only")
    args = parser.parse_args()
    if args.scale:
        args.customers, args.interactions = 500_000, 20_000_000
    phases = SCALE_PHASES if args.scale else tuple(PHASES)
    output: dict[str, Any] = {"customers": args.customers, "interactions": args.interactions,
                              "policy": {"lookback_days": 180, "dormant_after_days": 365}}
    if not args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            output["sqlite"] = bench_backend(f"sqlite:///{tmp}/bench.db", None, args.customers, args.interactions)
    if not args.no_postgres:
        schema = f"bench_coverage_{uuid.uuid4().hex[:10]}"
        try:
            postgres_schema(args.postgres, "CREATE", schema)
        except Exception as error:  # an absent server is reported, not fatal
            output["postgresql"] = {"skipped": f"{type(error).__name__}: PostgreSQL not reachable"}
        else:
            try:
                output["postgresql"] = bench_backend(args.postgres, schema, args.customers, args.interactions, phases)
            finally:
                postgres_schema(args.postgres, "DROP", schema)
    print(json.dumps(output, indent=1))


if __name__ == "__main__":
    main()
