"""`custody depart` and `custody handover`: plan a departure, review it, approve or cancel it, report on it."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy import Engine, select

from config.sections import ConfigError
from daemon.jobs.departure import (
    DepartureError,
    depart,
    process_hr_folder,
    reassign_customer,
    settle_due_handovers,
)
from daemon.outbox.compose import UnsafeMessage, compose
from daemon.outbox.dispatch import letter_for
from daemon.runtime import fail_config, runtime
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from registry.audit import audit, cli_actor
from registry.handover import HandoverError, approve_handover, cancel_handover, handover_report
from registry.handover_review import (
    HandoverReview,
    ReviewError,
    handover_review,
    letter_rows,
    plan_customer_id,
    reassignable_successor,
    utc,
)
from registry.models import Handover, HandoverStatus, NotificationState, Rep

handover_app = typer.Typer(help="Review, approve and follow departing reps' handover plans.", no_args_is_help=True)
console = Console()
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9@._+-]+")


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
        console.print(f"{rep} already has open handover {outcome.handover_id}; {outcome.joined} customers joined, "
                      f"{outcome.planned} new messages planned")
        return
    console.print(f"handover {outcome.handover_id}: {outcome.customers} customers, {outcome.planned} messages planned, "
                  f"{outcome.needs_human} customers for a human, {len(outcome.rejected)} unsafe addresses skipped")
    if outcome.already_sent:
        console.print(f"{outcome.already_sent} messages of this departure went out under an earlier plan "
                      "and are not planned again")
    for handover_id in outcome.replanned:
        console.print(f"handover {handover_id} named {rep} as a successor: its customers were given new successors")
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
def show(
    ctx: typer.Context,
    handover_id: int = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="The plan as one JSON object, for machines."),
    letters: Optional[Path] = typer.Option(None, "--letters", metavar="DIR", file_okay=False,
                                           help="Also write every letter of the plan, whatever its state, "
                                                "as DIR/<customer>/<step>-<recipient>.eml."),
) -> None:
    """The plan, in any status: each customer's successor and why, whether it needs a human, its
    contacts, and every letter with its language, recipient, sender, state and due time (UTC)."""
    rt = runtime(ctx)
    try:
        with rt.engine.connect() as db:
            review = handover_review(db, handover_id)
            rows = letter_rows(db, handover_id) if letters else []
    except HandoverError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(asdict(review), default=_iso))
    else:
        _print_review(review)
    if letters:
        _export_letters(rt.engine, handover_id, rows, letters, to_stderr=as_json)


@handover_app.command("reassign")
def reassign(
    ctx: typer.Context,
    handover_id: int = typer.Argument(..., metavar="ID"),
    customer: str = typer.Argument(..., help="The customer's key (acme.example) or id."),
    rep: str = typer.Argument(..., help="The new successor's address; an active declared rep."),
    reason: str = typer.Option("", "--reason", help="Why, kept with the plan and in the audit trail."),
) -> None:
    """Give one customer of a plan to another rep; the customer's unsent letters are written again."""
    rt = runtime(ctx)
    try:
        with rt.engine.begin() as db:
            customer_id = plan_customer_id(db, handover_id, customer)
            successor_id = reassignable_successor(db, handover_id, rep)
            outcome = reassign_customer(db, rt.policy, handover_id, customer_id, successor_id, cli_actor(), reason)
    except ReviewError as error:
        typer.echo(f"custody: {error}", err=True)
        raise typer.Exit(2) from None
    except (HandoverError, DepartureError) as error:
        _fail(error)
    except ConfigError as error:
        fail_config(error)
    typer.echo(outcome)


def _print_review(review: HandoverReview) -> None:
    approval = "required" if review.requires_approval else "not required"
    given = f" (given by {review.approved_by})" if review.approved_by else ""
    cancelled = f", cancelled: {review.cancelled_reason}" if review.status == HandoverStatus.CANCELLED else ""
    console.print(escape(f"handover {review.handover_id} of {review.rep_email}: {review.status}{cancelled}, "
                         f"effective {_iso(review.effective_at)}, approval {approval}{given}"))
    customers = _table("customers", "customer", "successor", "strategy: reason", "needs a human\n(no letter)",
                       "contacts")
    letters = _table("letters", "customer", "step", "language", "to", "from", "state", "due")
    for c in review.customers:
        _add_row(customers, f"{c.name}\n{c.key}" if c.name and c.name != c.key else c.key,
                 _person(c.successor_name, c.successor_email) if c.successor_email else "public pool",
                 f"{c.strategy}: {c.reason}", "yes" if c.needs_human else "no",
                 "\n".join(f"{p.name or '(no name)'}: {', '.join(p.points)}" for p in c.contacts),
                 style="yellow" if c.needs_human else "")
        for n, letter in enumerate(c.letters):
            state = f"{letter.state}: {letter.held_reason}" if letter.held_reason else letter.state
            to = "\n".join([letter.to_email, *(f"cc {cc}" for cc in letter.cc_emails)])
            _add_row(letters, "" if n else c.key, letter.step, letter.locale, to,
                     _person(letter.sender_name, letter.sender_email), state, _iso(letter.send_after))
    console.print(customers)
    console.print(letters)
    states = Counter(letter.state for c in review.customers for letter in c.letters)
    console.print(f"messages: {sum(states.values())} ({_states(states)})")
    humans = [c for c in review.customers if c.needs_human]
    if humans:
        console.print(f"[yellow]{len(humans)} customers have no company-channel contact to mail; tell them by hand:[/]")
        for c in humans:
            evidence = "; ".join(c.evidence) or "no evidence left in the registry"
            console.print(escape(f"  {c.name or c.key}: {evidence}"))


def _export_letters(engine: Engine, handover_id: int, rows: list[Any], folder: Path, to_stderr: bool) -> None:
    """Write the letters and audit the export: they carry customer data out of the registry."""
    try:
        written, refused = write_letters(rows, folder)
    except OSError as error:
        _fail(error)
    with engine.begin() as db:
        audit(db, cli_actor(), "handover_letters_exported", "handover", handover_id,
              {"folder": str(folder), "written": written, "refused": len(refused)})
    typer.echo(f"wrote {written} letters to {folder}", err=to_stderr)
    for line in refused:
        typer.echo(f"  not written, the outbox would refuse it: {line}", err=True)


def write_letters(rows: list[Any], folder: Path) -> tuple[int, list[str]]:
    """Each letter as the transport would get it, dated its due time; returns (written, refusals)."""
    written: set[Path] = set()
    refused = []
    for row in rows:
        try:
            message = compose(letter_for(row), utc(row.send_after))
        except UnsafeMessage as error:
            refused.append(f"{row.step} to {row.to_email}: {error}")
            continue
        path = letter_path(folder, row.customer_key, row.step, row.to_email)
        if path in written:  # two names that differ only in characters made safe
            path = path.with_name(f"{path.stem}-{row.id}.eml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(message.as_bytes())
        written.add(path)
    return len(written), refused


def letter_path(folder: Path, customer_key: str, step: str, to_email: str) -> Path:
    """DIR/<customer>/<step>-<recipient>.eml. The parts come from data (a key, an address), so each
    keeps only letters, digits and @._+- and never starts with a dot or dash: none can leave DIR,
    hide a file or look like an option."""
    return folder / _safe_name(customer_key) / f"{_safe_name(step)}-{_safe_name(to_email)}.eml"


def _safe_name(text: str) -> str:
    return _UNSAFE_NAME.sub("_", text).lstrip(".-")[:100] or "_"


def _table(title: str, *headers: str) -> Table:
    """Long addresses and reasons wrap instead of being cut: a reviewer must see them whole."""
    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


def _add_row(table: Table, *cells: str, style: str = "") -> None:
    """Cells are data (names, reasons), never rich markup."""
    table.add_row(*(Text(cell) for cell in cells), style=style)


def _person(name: str, email: str) -> str:
    return f"{name} <{email}>" if name else email


def _iso(moment: datetime) -> str:
    """UTC in ISO 8601, e.g. 2026-07-05T08:00:00Z."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


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
            cancelled = cancel_handover(db, handover_id, reason, cli_actor())
    except HandoverError as error:
        _fail(error)
    console.print(f"handover {handover_id} cancelled: {cancelled.held} unsent messages held, {cancelled.sent} had "
                  "already been sent (a new plan for this departure will not send those again)")


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
    sent, held = (summary.by_state.get(state, 0) for state in (NotificationState.SENT, NotificationState.HELD))
    console.print(f"planned {summary.planned}, sent {sent}, bounced {summary.bounced}, "
                  f"held {held} ({_states(summary.by_state)})")
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
