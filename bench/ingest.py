"""Sync the Enron maildirs into a fresh registry and compare with parsing the same headers alone.

Prints one JSON object. Each phase runs in its own child process so peak RSS is its own.
Usage: python bench/ingest.py [--corpus DIR] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from email import policy as email_policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "enron" / "maildir"


def mail_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.glob("*/*/*") if p.is_file())


def parse_with_email_package(files: list[Path], header_policy: Any) -> int:
    """The baseline: read each file and parse the same fields with the standard library only."""
    parser = BytesHeaderParser(policy=header_policy)
    parsed = 0
    for path in files:
        headers = parser.parsebytes(path.read_bytes())
        getaddresses([str(v) for f in ("From", "To", "Cc", "Bcc") for v in headers.get_all(f, [])])
        date = headers.get("Date")
        if date:
            parsedate_to_datetime(str(date))
        str(headers.get("Subject", ""))
        parsed += 1
    return parsed


def baseline_compat32(corpus: Path, _: str | None) -> dict[str, Any]:
    files = mail_files(corpus)
    return {"messages": parse_with_email_package(files, email_policy.compat32)}


def baseline_policy_default(corpus: Path, _: str | None) -> dict[str, Any]:
    files = mail_files(corpus)
    return {"messages": parse_with_email_package(files, email_policy.default)}


def custody_sync(corpus: Path, postgres: str | None) -> dict[str, Any]:
    from config.policy import Policy
    from config.settings import Settings
    from connectors.maildir import MaildirSettings
    from daemon.sync.engine import sync_source
    from registry.status import registry_counts
    from registry.store import open_registry

    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{uuid.uuid4().hex[:10]}" if postgres else None
        if postgres:
            from sqlalchemy import create_engine, text
            with create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as db:
                db.execute(text(f"CREATE SCHEMA {schema}"))
        engine = open_registry(postgres or f"sqlite:///{tmp}/bench.db", schema)
        sources = [MaildirSettings(name=user.name, kind="maildir", path=user)
                   for user in sorted(corpus.iterdir()) if user.is_dir()]
        settings = Settings(data_dir=Path(tmp), sources=sources)
        policy = Policy(company_domains=["enron.com"])
        started = time.perf_counter()
        messages = sum(sync_source(engine, settings, policy, s).messages for s in sources)
        elapsed = time.perf_counter() - started
        counts = registry_counts(engine)
        engine.dispose()
        if postgres:
            with create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as db:
                db.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    return {"messages": messages, "seconds_inside": elapsed, "distinct_messages": counts.messages,
            "interactions": counts.interactions, "customers": counts.customers}


def measured(phase: Callable[[Path, str | None], dict[str, Any]], corpus: Path, postgres: str | None,
             out: Any) -> None:
    started = time.perf_counter()
    result = phase(corpus, postgres)
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["messages_per_second"] = round(result["messages"] / result["seconds"], 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.send(result)


def run_phase(phase: Callable[[Path, str | None], dict[str, Any]], corpus: Path, postgres: str | None) -> dict[str, Any]:
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=measured, args=(phase, corpus, postgres, send))
    child.start()
    result = receive.recv()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--postgres", help="also sync into this PostgreSQL (a private schema, dropped after)")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(json.dumps({"skipped": f"Enron corpus not found at {args.corpus}"}))
        return
    for path in mail_files(args.corpus):
        path.read_bytes()
    report: dict[str, Any] = {
        "corpus": str(args.corpus), "cpu_count": os.cpu_count(),
        "baseline_email_compat32": run_phase(baseline_compat32, args.corpus, None),
        "baseline_email_policy_default": run_phase(baseline_policy_default, args.corpus, None),
        "custody_sqlite": run_phase(custody_sync, args.corpus, None),
    }
    if args.postgres:
        report["custody_postgresql"] = run_phase(custody_sync, args.corpus, args.postgres)
    base = report["baseline_email_compat32"]["messages_per_second"]
    for key in ("custody_sqlite", "custody_postgresql"):
        if key in report:
            report[key]["ratio_to_baseline"] = round(report[key]["messages_per_second"] / base, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
