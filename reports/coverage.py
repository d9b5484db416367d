"""The coverage report compliance reads: HTML with charts and evidence, or one CSV/JSON row per customer.

Every export is recorded in the audit trail (who, what, when, how many rows): the report holds
customer data, and reading it is something compliance must be able to account for.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine

from config.policy import Policy
from policies.coverage import CLASSES
from registry.audit import audit
from reports import charts
from reports.classification import CustomerCoverage, RepExposure, classify, exposure, snapshot_history

Format = Literal["html", "csv", "json"]
CSV_FIELDS = (
    "customer_id", "customer", "name", "kind", "class", "owner", "pool", "reps", "interactions",
    "last_company_contact", "personal_sightings", "personal_relays", "personal_messages", "personal_requests",
    "at_risk", "colleagues",
)
_ENV = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html", "j2"]),
                   trim_blocks=True, lstrip_blocks=True)


@dataclass
class CoverageReport:
    as_of: datetime
    policy: Policy
    summary: dict[str, int]
    customers: list[CustomerCoverage]
    reps: list[RepExposure]
    history: list[tuple[date, dict[str, int]]]


def build_report(engine: Engine, policy: Policy, now: datetime) -> CoverageReport:
    customers = classify(engine, policy, now)
    summary = dict.fromkeys(CLASSES, 0)
    summary.update(Counter(c.coverage_class for c in customers))
    return CoverageReport(now, policy, summary, customers, exposure(engine, policy, now), snapshot_history(engine))


def customer_row(customer: CustomerCoverage) -> dict[str, Any]:
    """The documented per-customer schema shared by the JSON and CSV exports."""
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
    }


def rep_row(rep: RepExposure) -> dict[str, Any]:
    return {
        "rep": rep.email, "name": rep.name, "team": rep.team, "status": rep.status,
        "customers": rep.customers, "interactions": rep.interactions,
        "exposed_customers": rep.exposed_customers, "exposed_interactions": rep.exposed_interactions,
        "exposed_share": round(rep.exposed_share, 4), "personal_only_customers": rep.personal_only_customers,
        "personal_relays": rep.personal_relays, "flagged": rep.flagged,
    }


def render_json(report: CoverageReport) -> str:
    return json.dumps({
        "report": "coverage",
        "as_of": report.as_of.isoformat(),
        "lookback_days": report.policy.lookback_days,
        "dormant_after_days": report.policy.dormant_after_days,
        "summary": report.summary,
        "customers": [customer_row(c) for c in report.customers],
        "reps": [rep_row(r) for r in report.reps],
    }, ensure_ascii=False, indent=1)


def render_csv(report: CoverageReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for customer in report.customers:
        row = customer_row(customer)
        row["reps"] = "; ".join(row["reps"])
        row["personal_sightings"] = "; ".join(
            f"{s['rep'] or '?'} via {s['source']}" + (f" ({s['name']})" if s["name"] else "")
            for s in row["personal_sightings"])
        row["owner"] = row["owner"] or ""
        row["last_company_contact"] = row["last_company_contact"] or ""
        row["pool"] = "yes" if row["pool"] else "no"
        row["at_risk"] = "yes" if row["at_risk"] else "no"
        writer.writerow(row)
    return out.getvalue()


def render_html(report: CoverageReport) -> str:
    exposed = [(r.name or r.email, r.exposed_customers, r.personal_only_customers, r.exposed_share)
               for r in report.reps if r.exposed_customers or r.personal_only_customers][:30]
    return _ENV.get_template("coverage.html.j2").render(
        report=report,
        class_chart=charts.class_bars(report.summary),
        exposure_chart=charts.exposure_bars(exposed),
        trend_chart=charts.trend_lines(report.history),
        colours=charts.CLASS_COLOURS,
    )


RENDERERS = {"html": render_html, "csv": render_csv, "json": render_json}


def export_report(engine: Engine, report: CoverageReport, fmt: Format, out: Path | None, actor: str) -> str:
    """Render, write to `out` (or return the text for stdout when `out` is None) and audit the export."""
    text = RENDERERS[fmt](report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    with engine.begin() as db:
        audit(db, actor, "report.exported", "report", "coverage", {
            "format": fmt, "rows": len(report.customers), "path": str(out) if out else "-",
            "as_of": report.as_of.isoformat(),
        })
    return text
