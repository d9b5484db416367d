"""`custody pool`: the public pool of customers nobody owns."""

from __future__ import annotations

import json

import typer

from daemon.jobs.pool import assign_owners, recycle_dormant
from daemon.runtime import runtime
from registry.audit import cli_actor
from registry.contacts import merge_contacts
from registry.models import utcnow

pool_app = typer.Typer(help="Dormant customers back to the pool, owners for unowned customers.", no_args_is_help=True)


@pool_app.command("recycle")
def recycle(ctx: typer.Context, dry_run: bool = typer.Option(False, "--dry-run", help="List, change nothing.")) -> None:
    """Return customers dormant longer than the policy allows to the public pool (owner cleared, audited)."""
    rt = runtime(ctx)
    actor = cli_actor()
    if not dry_run:
        merge_contacts(rt.engine, actor)
    moved = recycle_dormant(rt.engine, rt.policy, utcnow(), actor, dry_run=dry_run)
    typer.echo(json.dumps({"dry_run": dry_run, "recycled": len(moved), "customer_ids": moved}))


@pool_app.command("assign")
def assign(ctx: typer.Context) -> None:
    """Give unowned customers the owner the policy's owner_rule picks; contested ones wait for a CRM owner."""
    rt = runtime(ctx)
    actor = cli_actor()
    merge_contacts(rt.engine, actor)
    typer.echo(json.dumps({"assigned": assign_owners(rt.engine, rt.policy, utcnow(), actor),
                           "rule": rt.policy.coverage.owner_rule}))
