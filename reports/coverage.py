"""The coverage report compliance reads: HTML with charts and evidence, or one CSV/JSON row per customer.

Every export is recorded in the audit trail (who, what, when, how many rows): the report holds
customer data, and reading it is something compliance must be able to account for. Every format
is written to its file row by row, so a report of half a million customers never sits in memory
as text.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine

from config.policy import Policy
from policies.coverage import (
    CLASSES,
    CONTESTED,
    SEVERITY,
    WORKING,
)
from registry.audit import audit
from reports import charts
from reports.classification import (
    STREAM_ROWS,
    CustomerCoverage,
    ExposureFold,
    RepActivity,
    RepExposure,
    classified_chunks,
    snapshot_history,
)
from reports.evidence import MessageEvidence, Person, latest_messages_of, people

Format = Literal["html", "csv", "json"]
CSV_FIELDS = (
    "customer_id", "customer", "name", "kind", "class", "owner", "pool", "reps", "interactions",
    "last_company_contact", "personal_sightings", "personal_relays", "personal_messages", "personal_requests",
    "at_risk", "colleagues", "rep_activity", "contested_by",
)
MESSAGES_PER_CUSTOMER = 5
PRINT_LIMIT = 5000
"""Customers a browser prints at most: the whole filtered list would not fit a printer or a tab."""
_ROWS_GO_HERE = "\x00customer rows\x00"
"""Where the page's template leaves room for the customers, who are written past the template."""
_ENV = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html", "j2"]),
                   trim_blocks=True, lstrip_blocks=True)


@dataclass
class CoverageReport:
    """A report as its writers read it. `customers` may be a stream, most at risk first, that can be
    read once: `summary` and `reps` are complete once it has been read through, and `messages` holds
    the latest messages of the customers being read (of every customer, for a report held whole)."""

    as_of: datetime
    policy: Policy
    summary: dict[str, int]
    customers: Iterable[CustomerCoverage]
    reps: list[RepExposure]
    history: list[tuple[date, dict[str, int]]]
    people: dict[str, Person]
    messages: dict[int, list[MessageEvidence]]
    messages_per_customer: int = MESSAGES_PER_CUSTOMER

    def person(self, email: str) -> Person:
        return self.people.get(email) or Person(email, "", "", "")


def stream_report(engine: Engine, policy: Policy, now: datetime, messages_per_customer: int = MESSAGES_PER_CUSTOMER,
                  chunk: int = STREAM_ROWS) -> CoverageReport:
    """A report whose customers are read as a writer takes them, a few thousand at a time with
    their latest messages, so a report of any size is written in constant memory."""
    with engine.connect() as db:
        directory = people(db)
    report = CoverageReport(now, policy, dict.fromkeys(CLASSES, 0), [], [], snapshot_history(engine),
                            {person.email: person for person in directory.values()}, {}, messages_per_customer)
    report.customers = _read(engine, report, directory, chunk)
    return report


def report_for(engine: Engine, policy: Policy, now: datetime, fmt: Format, messages_per_customer: int) -> CoverageReport:
    """A CSV row has no room for messages, so a CSV report reads none."""
    return stream_report(engine, policy, now, 0 if fmt == "csv" else messages_per_customer)


def _read(engine: Engine, report: CoverageReport, directory: dict[int, Person],
          chunk_size: int) -> Iterator[CustomerCoverage]:
    """Customers most at risk first, a chunk at a time with their latest messages; the summary and
    the reps' exposure are added up as they pass."""
    fold = ExposureFold()
    with engine.connect() as db:
        messages_of = latest_messages_of(db, report.policy, report.as_of, report.messages_per_customer, directory)
        for chunk in classified_chunks(db, report.policy, report.as_of, directory, most_at_risk_first=True,
                                       size=chunk_size):
            report.messages = messages_of([c.customer_id for c in chunk])
            for customer in chunk:
                report.summary[customer.coverage_class] += 1
                fold.add(customer)
                yield customer
        report.reps = fold.result(db, directory, report.policy, report.as_of)


def personal_evidence(customer: CustomerCoverage) -> int:
    return (len(customer.personal_sightings) + customer.personal_relays + customer.personal_messages
            + customer.personal_requests)


def contested_by(report: CoverageReport, customer: CustomerCoverage) -> list[str]:
    """Who contests: the team of each working rep in the window, or a rep without a team on their own,
    as the policy tells camps apart."""
    if customer.coverage_class != CONTESTED:
        return []
    working = [report.person(r.email) for r in customer.reps if r.status in WORKING]
    return sorted({person.team or person.label for person in working})


def customer_row(report: CoverageReport, customer: CustomerCoverage) -> dict[str, Any]:
    """The documented per-customer schema shared by the JSON export (which adds `messages`) and the CSV."""
    last = customer.last_company_contact
    return {
        "customer_id": customer.customer_id,
        "customer": customer.key,
        "name": customer.name,
        "kind": customer.kind,
        "class": customer.coverage_class,
        "owner": customer.owner or None,
        "pool": customer.pool,
        "reps": [r.email for r in customer.reps if r.interactions],
        "interactions": customer.interactions,
        "last_company_contact": last.isoformat() if last else None,
        "personal_sightings": [{"rep": s.rep_email or None, "source": s.source, "name": s.name, "entry": s.entry_ref}
                               for s in customer.personal_sightings],
        "personal_relays": customer.personal_relays,
        "personal_messages": customer.personal_messages,
        "personal_requests": customer.personal_requests,
        "at_risk": customer.at_risk,
        "colleagues": customer.colleagues,
        "rep_activity": [_activity(report, r) for r in customer.reps if r.interactions],
        "contested_by": contested_by(report, customer),
    }


def message_rows(report: CoverageReport, customer: CustomerCoverage) -> list[dict[str, Any]]:
    return [{"at": m.occurred_at, "direction": m.direction, "channel": m.channel,
             "rep": m.rep_email, "subject": m.subject}
            for m in report.messages.get(customer.customer_id, ())]


def _activity(report: CoverageReport, activity: RepActivity) -> dict[str, Any]:
    person = report.person(activity.email)
    return {"rep": activity.email, "name": activity.name, "team": person.team,
            "interactions": activity.interactions, "last_at": activity.last_at.isoformat()}


def rep_row(rep: RepExposure) -> dict[str, Any]:
    return {
        "rep": rep.email, "name": rep.name, "team": rep.team, "status": rep.status,
        "customers": rep.customers, "interactions": rep.interactions,
        "exposed_customers": rep.exposed_customers, "exposed_interactions": rep.exposed_interactions,
        "exposed_share": round(rep.exposed_share, 4), "personal_only_customers": rep.personal_only_customers,
        "personal_relays": rep.personal_relays, "flagged": rep.flagged,
    }


def write_json(report: CoverageReport, out: TextIO) -> None:
    """One customer per line inside one JSON document: valid JSON, written as it goes."""
    head = {
        "report": "coverage",
        "as_of": report.as_of.isoformat(),
        "lookback_days": report.policy.lookback_days,
        "dormant_after_days": report.policy.dormant_after_days,
    }
    out.write(_json(head)[:-1] + ',\n"customers": [')
    for n, customer in enumerate(report.customers):
        row = customer_row(report, customer)
        row["messages"] = message_rows(report, customer)
        out.write(("\n" if n == 0 else ",\n") + _json(row))
    out.write('\n],\n"summary": ' + _json(report.summary) + ',\n"reps": [')
    out.write(",\n".join(_json(rep_row(r)) for r in report.reps))
    out.write("]}\n")


def write_csv(report: CoverageReport, out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for customer in report.customers:
        writer.writerow(csv_row(report, customer))


def csv_row(report: CoverageReport, customer: CustomerCoverage) -> dict[str, Any]:
    row = customer_row(report, customer)
    row["reps"] = "; ".join(row["reps"])
    row["personal_sightings"] = "; ".join(
        f"{s['rep'] or '?'} via {s['source']}" + (f" ({s['name']})" if s["name"] else "")
        for s in row["personal_sightings"])
    row["owner"] = row["owner"] or ""
    row["last_company_contact"] = row["last_company_contact"] or ""
    row["pool"] = "yes" if row["pool"] else "no"
    row["at_risk"] = "yes" if row["at_risk"] else "no"
    row["rep_activity"] = "; ".join(
        f"{report.person(r.email).label}: {r.interactions} ({r.last_at:%Y-%m-%d})"
        for r in customer.reps if r.interactions)
    row["contested_by"] = "; ".join(row["contested_by"])
    return row


def write_html(report: CoverageReport, out: TextIO) -> None:
    """The customers travel as a JSON data block the page renders a hundred at a time, so a report of
    half a million customers opens in a browser; the reps table is small and rendered here.

    The page shows its summary, charts and reps before its customers, which are known only once
    every customer is read: the customers' rows go to a temporary file as they come and are copied
    into the page after, so memory holds one chunk of customers, as for CSV and JSON."""
    emails = sorted(report.people)
    index = {email: n for n, email in enumerate(emails)}
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as rows:
        _write_rows(rows, (_script_json(_html_row(report, c, index)) for c in report.customers))
        rows.seek(0)
        exposed = [(r.name or r.email, r.exposed_customers, r.personal_only_customers, r.exposed_share)
                   for r in report.reps if r.exposed_customers or r.personal_only_customers][:30]
        stream = _ENV.get_template("coverage.html.j2").generate(
            report=report,
            customer_count=sum(report.summary.values()),
            class_chart=charts.class_bars(report.summary),
            exposure_chart=charts.exposure_bars(exposed),
            trend_chart=charts.trend_lines(report.history),
            colours=charts.CLASS_COLOURS,
            severity=SEVERITY,
            print_limit=PRINT_LIMIT,
            people_json=Markup(_script_json([[p.email, p.name, p.team, p.status] for p in map(report.people.get, emails)])),
            customer_rows=Markup(_ROWS_GO_HERE),
        )
        for chunk in stream:
            before, here, after = chunk.partition(_ROWS_GO_HERE)
            out.write(before)
            if here:
                out.writelines(rows)
                out.write(after)


def _write_rows(out: TextIO, rows: Iterator[str]) -> None:
    """The page's data block, one customer per line, written as they come rather than through the
    template: the template engine's per-row bookkeeping cost a quarter of the page's time."""
    for n, row in enumerate(rows):
        out.write(row if n == 0 else ",\n" + row)


def _html_row(report: CoverageReport, customer: CustomerCoverage, index: dict[str, int]) -> dict[str, Any]:
    """One customer for the page's script: people by their index in the directory, dates as days."""
    last = customer.last_company_contact
    return {
        "key": customer.key, "name": customer.name, "class": customer.coverage_class,
        "owner": index.get(customer.owner, -1) if customer.owner else -1, "pool": customer.pool,
        "risk": customer.at_risk, "interactions": customer.interactions,
        "last": last.date().isoformat() if last else "", "personal": personal_evidence(customer),
        "reps": [[index.get(r.email, -1), r.interactions, r.last_at.date().isoformat()] for r in customer.reps],
        "teams": contested_by(report, customer),
        "notes": _notes(report, customer),
        "messages": [[m.occurred_at.date().isoformat(), m.direction, m.channel, index.get(m.rep_email, -1), m.subject]
                     for m in report.messages.get(customer.customer_id, ())],
    }


def _notes(report: CoverageReport, customer: CustomerCoverage) -> list[str]:
    books: dict[tuple[str, str], list[str]] = {}
    for sighting in customer.personal_sightings:
        books.setdefault((sighting.rep_email, sighting.source), []).append(sighting.name)
    notes = [f"in {report.person(rep).name or rep if rep else 'an unowned'}'s personal book {source}"
             + (f" as {', '.join(n for n in names if n)}" if any(names) else "")
             for (rep, source), names in books.items()]
    if customer.personal_relays:
        notes.append(f"{customer.personal_relays} message(s) relayed by a rep to a personal address")
    if customer.personal_messages:
        notes.append(f"{customer.personal_messages} message(s) in a rep's personal mailbox")
    if customer.personal_requests:
        notes.append(f"{customer.personal_requests} request(s) to continue on a personal channel")
    if customer.colleagues:
        notes.append(f"also in touch: {customer.colleagues} colleague(s) who are not declared reps")
    return notes


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<' can close it or open a comment. Plain text, for
    the rows written past the template; the template takes it as `Markup`."""
    return _json(value).replace("<", "\\u003c")


def _json(value: Any) -> str:
    """Compact UTF-8 JSON, dates in ISO 8601, by orjson: the standard encoder took a tenth of a
    report's time."""
    return orjson.dumps(value).decode()


WRITERS = {"html": write_html, "csv": write_csv, "json": write_json}


def export_report(engine: Engine, report: CoverageReport, fmt: Format, out: Path | None, actor: str,
                  bom: bool = True) -> None:
    """Write to `out` (stdout when None) as the rows come and audit the export.

    CSV starts with a UTF-8 byte-order mark unless `bom` is false: without one Excel reads the
    file in the machine's legacy code page and garbles every accented name."""
    with _opened(out, bom and fmt == "csv") as stream:
        WRITERS[fmt](report, stream)
    with engine.begin() as db:
        audit(db, actor, "report.exported", "report", "coverage", {
            "format": fmt, "rows": sum(report.summary.values()), "path": str(out) if out else "-",
            "as_of": report.as_of.isoformat(),
        })


@contextmanager
def _opened(out: Path | None, bom: bool) -> Iterator[TextIO]:
    encoding = "utf-8-sig" if bom else "utf-8"
    if out is None:
        sys.stdout.flush()
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding=encoding, newline="")
        try:
            yield stream
        finally:
            stream.flush()
            stream.detach()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding=encoding, newline="") as stream:
        yield stream

