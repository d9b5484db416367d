"""`custody outbox`: send the planned notifications, review them as files, see what needs a human."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from config.sections import ConfigError
from daemon.outbox.dispatch import Dispatcher, outbox_summary, release_held
from daemon.outbox.round import outbox_round
from daemon.outbox.transports.file import FileTransport
from daemon.runtime import fail_config, runtime
from registry.audit import cli_actor
from registry.models import NotificationState

outbox_app = typer.Typer(help="Send planned change-of-contact notifications, exactly once.", no_args_is_help=True)
console = Console()


@outbox_app.command("run")
def run(
    ctx: typer.Context,
    dry_run: Optional[Path] = typer.Option(None, "--dry-run", metavar="DIR",
                                           help="Write every pending message as .eml into DIR; sends and changes nothing."),
    max_messages: Optional[int] = typer.Option(None, "--max", min=1, help="Send at most this many (the policy caps it too)."),
) -> None:
    """Send what is due; prints what happened as JSON and exits 1 when sending had to stop."""
    rt = runtime(ctx)
    rules = rt.policy.dispatch
    if dry_run is not None:
        written = Dispatcher(rt.engine, rules, FileTransport(dry_run)).preview(max_messages or sys.maxsize)
        typer.echo(json.dumps({"dry_run": str(dry_run), "written": written}))
        return
    try:
        report = outbox_round(rt.engine, rt.settings, rules, max_messages)
    except ConfigError as error:
        fail_config(error)
    typer.echo(json.dumps(report))
    if report["error"]:
        raise typer.Exit(1)


@outbox_app.command("status")
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Notifications per state, and every held or failed one with its reason."""
    summary = outbox_summary(runtime(ctx).engine)
    if as_json:
        typer.echo(json.dumps({"states": summary.states, "attention": [asdict(a) for a in summary.attention]}))
        return
    console.print(", ".join(f"{state} {count}" for state, count in sorted(summary.states.items())) or "outbox empty")
    if summary.attention:
        table = Table("id", "handover", "state", "to", "Message-ID", "reason")
        for item in summary.attention:
            failed = item.state == NotificationState.FAILED
            table.add_row(str(item.notification_id), str(item.handover_id), item.state, item.to_email,
                          item.message_id, item.reason, style="red" if failed else "yellow")
        console.print(table)


@outbox_app.command("release")
def release(
    ctx: typer.Context,
    notification_id: int = typer.Argument(..., metavar="ID"),
    went_out: bool = typer.Option(False, "--went-out", help="It reached the recipient: record it as sent."),
    resend: bool = typer.Option(False, "--resend", help="It did not go out: send it on the next run."),
) -> None:
    """Decide a held message after checking the recipient or the sending mailbox."""
    if went_out == resend:
        typer.echo("custody: say either --went-out or --resend", err=True)
        raise typer.Exit(2)
    if not release_held(runtime(ctx).engine, notification_id, went_out, cli_actor()):
        typer.echo(f"custody: notification {notification_id} is not held", err=True)
        raise typer.Exit(1)
    typer.echo(f"notification {notification_id}: {'recorded as sent' if went_out else 'will be sent on the next run'}")
