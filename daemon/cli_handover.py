"""`custody depart` and `custody handover`: plan a departure, review it, approve or cancel it, report on it."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from config.sections import ConfigError
from daemon.departure import DepartureError, depart, process_hr_folder, settle_due_handovers
from daemon.runtime import fail_config, runtime
from daemon.readers import identity_for
from daemon.sync import register_reps
from registry.audit import cli_actor
from registry.departure_facts import human_evidence
from registry.handover import (
    HandoverError, approve_handover, cancel_handover, handover_items, handover_report, handover_row,
)
from registry.models import Handover, Rep

handover_app = typer.Typer(help="Review, approve and follow departing reps' handover plans.", no_args_is_help=True)
console = Console()


def depart_command(
    ctx: typer.Context,
    rep: str = typer.Argument(..., help="The departing rep's company address."),
    successor: str = typer.Option("", "--successor", help="Give every customer to this rep, where the policy allows."),
    effective: Optional[datetime] = typer.Option(None, "--effective", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"],
                                                 help="The last day (UTC) of the rep; default now."),
) -> None:
    """Deactivate a rep and plan the handover of their customers."""
    rt = runtime(ctx)
    moment = effective.replace(tzinfo=timezone.utc) if effective else None
    register_reps(rt.engine, rt.settings, identity_for(rt.settings, rt.policy))
    try:
        outcome = depart(rt.engine, rt.policy, rep, successor_email=successor, effective=moment, actor=cli_actor())
    except DepartureError as error:
        _fail(error)
    except ConfigError as error:
        fail_config(error)
    if not outcome.created:
        console.print(f"{rep} already has open handover {outcome.handover_id}; {outcome.planned} new messages planned")
        return
    console.print(f"handover {outcome.handover_id}: {outcome.customers} customers, {outcome.planned} messages planned, "
                  f"{outcome.needs_human} customers for a human, {len(outcome.rejected)} unsafe addresses skipped")
    console.print(f"review it with `custody handover show {outcome.handover_id}`")


@handover_app.command("list")
def list_handovers(ctx: typer.Context) -> None:
    """Every handover, newest first."""
    rt = runtime(ctx)
    table = Table("id", "rep", "status", "trigger", "effective", "approval")
    with rt.engine.connect() as db:
        rows = db.execute(select(Handover.id, Rep.email, Handover.status, Handover.trigger, Handover.effective_at,
                                 Handover.requires_approval, Handover.approved_by)
                          .join(Rep, Rep.id == Handover.rep_id).order_by(Handover.id.desc()))  # type: ignore[union-attr]
        for row in rows:
            approval = row.approved_by or ("required" if row.requires_approval else "not required")
            table.add_row(str(row.id), row.email, row.status, row.trigger, f"{row.effective_at:%Y-%m-%d %H:%M}", approval)
    console.print(table)


@handover_app.command("show")
def show(ctx: typer.Context, handover_id: int = typer.Argument(..., metavar="ID")) -> None:
    """The plan: each customer's successor and why, the messages, and the customers left for a human."""
    rt = runtime(ctx)
    with rt.engine.connect() as db:
        try:
            handover = handover_row(db, handover_id)
        except HandoverError as error:
            _fail(error)
        items = handover_items(db, handover_id)
        rep = db.execute(select(Rep.email).where(Rep.id == handover.rep_id)).scalar_one()
        evidence = human_evidence(db, handover.rep_id, [i.customer_id for i in items if i.needs_human])
        report = handover_report(db, handover_id)
    console.print(f"handover {handover_id} of {rep}: {handover.status}, effective {handover.effective_at:%Y-%m-%d %H:%M} UTC, "
                  f"approval {'required' if handover.requires_approval else 'not required'}"
                  f"{f' (given by {handover.approved_by})' if handover.approved_by else ''}")
    table = Table("customer", "successor", "strategy", "reason")
    for item in items:
        table.add_row(item.customer_name, item.successor_email or "public pool", item.strategy, item.reason,
                      style="yellow" if item.needs_human else "")
    console.print(table)
    console.print(f"messages: {report.planned} ({_states(report.by_state)})")
    if evidence:
        console.print(f"[yellow]{len(evidence)} customers have no company-channel contact to mail; tell them by hand:[/]")
        names = {i.customer_id: i.customer_name for i in items}
        for customer_id, lines in evidence.items():
            console.print(f"  {names[customer_id]}: " + ("; ".join(lines) or "no evidence left in the registry"))


@handover_app.command("approve")
def approve(ctx: typer.Context, handover_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Release a planned handover's messages to the outbox."""
    rt = runtime(ctx)
    try:
        with rt.engine.begin() as db:
            released = approve_handover(db, handover_id, cli_actor())
    except HandoverError as error:
        _fail(error)
    console.print(f"handover {handover_id} approved: {released} messages released to the outbox")


@handover_app.command("cancel")
def cancel(ctx: typer.Context, handover_id: int = typer.Argument(..., metavar="ID"),
           reason: str = typer.Option("cancelled by hand", "--reason")) -> None:
    """Stop a handover: every message not yet sent is held, with the reason."""
    rt = runtime(ctx)
    try:
        with rt.engine.begin() as db:
            held = cancel_handover(db, handover_id, reason, cli_actor())
    except HandoverError as error:
        _fail(error)
    console.print(f"handover {handover_id} cancelled: {held} unsent messages held")


@handover_app.command("report")
def report(ctx: typer.Context, handover_id: int = typer.Argument(..., metavar="ID"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Planned, sent, bounced and held messages of a handover."""
    rt = runtime(ctx)
    try:
        with rt.engine.connect() as db:
            summary = handover_report(db, handover_id)
    except HandoverError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(asdict(summary)))
        return
    console.print(f"handover {handover_id}: {summary.status}; {summary.customers} customers, "
                  f"{summary.needs_human} for a human")
    console.print(f"planned {summary.planned}, sent {summary.by_state.get('sent', 0)}, bounced {summary.bounced}, "
                  f"held {summary.by_state.get('held', 0)} ({_states(summary.by_state)})")
    for to_email, step, reason in summary.held:
        console.print(f"  held: {step} to {to_email}: {reason}")


@handover_app.command("settle")
def settle(ctx: typer.Context) -> None:
    """Move ownership for approved handovers whose effective date has come (the service does this on its own)."""
    rt = runtime(ctx)
    moved = settle_due_handovers(rt.engine, actor=cli_actor())
    console.print(f"ownership moved for handovers: {', '.join(map(str, moved)) or 'none due'}")


@handover_app.command("import-hr")
def import_hr(ctx: typer.Context, folder: Path = typer.Argument(..., help="Folder where HR drops CSV files.")) -> None:
    """Act on HR's CSV files (email, action, effective_date); each file moves to processed/ once acted on."""
    rt = runtime(ctx)
    try:
        lines = process_hr_folder(rt.engine, rt.policy, folder)
    except (OSError, DepartureError) as error:
        _fail(error)
    except ConfigError as error:
        fail_config(error)
    for line in lines:
        console.print(line)


def _states(by_state: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(by_state.items())) or "none"


def _fail(error: Exception) -> None:
    typer.echo(f"custody: {error}", err=True)
    raise typer.Exit(1)
