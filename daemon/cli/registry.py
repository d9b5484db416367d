"""`custody registry`: maintenance of the registry itself."""

from __future__ import annotations

import time

import typer

from daemon.runtime import runtime
from registry.aggregates import rebuild
from registry.audit import audit, cli_actor

registry_app = typer.Typer(help="Registry maintenance: the coverage aggregates.", no_args_is_help=True)


@registry_app.command("rebuild")
def rebuild_command(ctx: typer.Context) -> None:
    """Recount the coverage aggregates from every interaction, in one transaction (audited).

    Ingest keeps them current; a rebuild is for after restoring facts by hand or to check them:
    it says how many months it found stale or missing."""
    rt = runtime(ctx)
    started = time.perf_counter()
    with rt.engine.begin() as db:
        rebuilt = rebuild(db)
        audit(db, cli_actor(), "coverage.rebuilt", "coverage_bucket", "", rebuilt._asdict())
    drift = (f"{rebuilt.stale} stale and {rebuilt.missing} missing months corrected" if rebuilt.stale or rebuilt.missing
             else "nothing had drifted")
    typer.echo(f"coverage aggregates rebuilt from {rebuilt.interactions} interactions: {rebuilt.buckets} "
               f"customer-rep-channel months; {drift} ({time.perf_counter() - started:.1f} s)")
