"""`custody report`: the compliance reports; every export lands in the audit trail."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from daemon.cli.handover import report as handover_report
from daemon.runtime import runtime
from registry.audit import cli_actor
from registry.contacts import merge_contacts
from registry.models import as_utc, utcnow
from reports.classification import record_snapshots
from reports.coverage import MESSAGES_PER_CUSTOMER, export_report, report_for

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
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="DATE",
                                        help="Classify as of the end of this day (YYYY-MM-DD) or this ISO time, "
                                             "e.g. for an archive or last quarter's audit. Default: now."),
    no_bom: bool = typer.Option(False, "--no-bom",
                                help="CSV without the UTF-8 byte-order mark Excel needs to read it as UTF-8."),
    messages: int = typer.Option(MESSAGES_PER_CUSTOMER, "--messages", min=0, max=100, metavar="N",
                                 help="Latest messages per customer named in the evidence (HTML and JSON); 0 for none."),
) -> None:
    """Classify every customer as of now (or --as-of) and export the report with its evidence."""
    rt = runtime(ctx)
    current = utcnow()
    now = current if as_of is None else _moment(as_of, current)
    actor = cli_actor()
    merge_contacts(rt.engine, actor)
    if now.date() >= current.date():
        record_snapshots(rt.engine, rt.policy, now, history_days)
    report = report_for(rt.engine, rt.policy, now, fmt.value, messages)  # type: ignore[arg-type]
    target = None if out == Path("-") else out or default_path(rt.settings.data_dir, now, fmt.value)
    export_report(rt.engine, report, fmt.value, target, actor, bom=not no_bom)  # type: ignore[arg-type]
    if target is not None:
        typer.echo(f"wrote {target}: {sum(report.summary.values())} customers "
                   + ", ".join(f"{n} {name}" for name, n in report.summary.items()), err=True)


def _moment(text: str, current: datetime) -> datetime:
    """A day means its last instant (UTC), so that day's mail counts; a time without a zone is UTC."""
    try:
        moment = (datetime.combine(date.fromisoformat(text), time.max, timezone.utc) if len(text) == 10
                  else datetime.fromisoformat(text))
    except ValueError:
        typer.echo(f"custody: --as-of: {text!r} is not a date (YYYY-MM-DD) or ISO 8601 time", err=True)
        raise typer.Exit(2) from None
    moment = as_utc(moment).astimezone(timezone.utc)
    if moment > current:
        typer.echo(f"custody: --as-of: {text} is in the future", err=True)
        raise typer.Exit(2)
    return moment


def default_path(data_dir: Path, now: datetime, extension: str) -> Path:
    return data_dir / "reports" / f"coverage-{now:%Y-%m-%d}.{extension}"
