"""`custody report`: the compliance reports; every export lands in the audit trail."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from daemon.cli_handover import report as handover_report
from daemon.runtime import runtime
from registry.audit import cli_actor
from registry.contacts import merge_contacts
from registry.coverage import record_snapshots
from registry.models import utcnow
from reports.coverage import build_report, export_report

report_app = typer.Typer(help="Compliance reports: coverage now, HTML, CSV or JSON.", no_args_is_help=True)
report_app.command("handover")(handover_report)


class ReportFormat(str, Enum):
    html = "html"
    csv = "csv"
    json = "json"


@report_app.command("coverage")
def coverage(
    ctx: typer.Context,
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", "-f", help="html, csv or json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Where to write; '-' for stdout. Default: DATA_DIR/reports/coverage-DATE.EXT"),
    history_days: int = typer.Option(1, "--history-days", min=1, max=3650,
                                     help="Store daily snapshots for this many past days (the trend chart) first."),
) -> None:
    """Classify every customer now and export the report with its evidence."""
    rt = runtime(ctx)
    now = utcnow()
    actor = cli_actor()
    merge_contacts(rt.engine, actor)
    record_snapshots(rt.engine, rt.policy, now, history_days)
    report = build_report(rt.engine, rt.policy, now)
    target = None if out == Path("-") else out or default_path(rt.settings.data_dir, now, fmt.value)
    text = export_report(rt.engine, report, fmt.value, target, actor)  # type: ignore[arg-type]
    if target is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {target}: {len(report.customers)} customers "
                   + ", ".join(f"{n} {name}" for name, n in report.summary.items()), err=True)


def default_path(data_dir: Path, now: datetime, extension: str) -> Path:
    return data_dir / "reports" / f"coverage-{now:%Y-%m-%d}.{extension}"
