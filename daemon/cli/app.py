"""The `custody` command line."""

from __future__ import annotations

import gc
import shutil
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.policy import DEFAULT_POLICY
from config.sections import ConfigError
from config.settings import CONFIG_ENV
from connectors.base import SourceSettings
from daemon.cli.check import check_command
from daemon.cli.handover import depart_command, handover_app
from daemon.cli.outbox import outbox_app
from daemon.cli.pool import pool_app
from daemon.cli.registry import registry_app
from daemon.cli.reports import report_app
from daemon.cli.templates import templates_app
from daemon.jobs.coverage import coverage_round
from daemon.logs import LOG_FORMAT_ENV
from daemon.runtime import Runtime, fail_config, runtime
from daemon.service.scheduler import run_service
from daemon.sync.engine import SyncReport, sync_sources
from daemon.sync.readers import reader_launcher
from demo.company import generate_demo
from registry.models import SourceStatus, utcnow
from registry.status import registry_counts, rep_activity, skipped_items, source_statuses
from reports.classification import coverage_summary

app = typer.Typer(help="Keep customer relationships with the company when salespeople leave.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
app.add_typer(report_app, name="report")
app.add_typer(pool_app, name="pool")
app.add_typer(handover_app, name="handover")
app.add_typer(registry_app, name="registry")
app.add_typer(templates_app, name="templates")
app.command("depart")(depart_command)
app.command("check")(check_command)
console = Console()
EXAMPLE_CONFIG = Path(__file__).parents[2] / "config" / "custody.example.toml"


class LogFormatChoice(str, Enum):
    json = "json"
    text = "text"


def print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"custody {installed_version()}")
        raise typer.Exit()


def installed_version() -> str:
    try:
        return metadata.version("custody")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


@app.callback()
def main(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", envvar=CONFIG_ENV, help="Path to custody.toml."),
    log_format: Optional[LogFormatChoice] = typer.Option(
        None, "--log-format", envvar=LOG_FORMAT_ENV,
        help="Log lines as JSON or text; default: text on a terminal, JSON otherwise (a service)."),
    _version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True,
                                  help="Print the version and exit."),
) -> None:
    """Objects alive by now (modules, the policy's domain lists) live as long as the process; freezing
    them keeps the collector from scanning them again at every full collection of a long sync."""
    gc.freeze()
    ctx.obj = Runtime(config, log_format.value if log_format else None)


@app.command()
def init(path: Path = typer.Argument(Path("custody.toml")), force: bool = typer.Option(False, "--force")) -> None:
    """Write a commented starter config and the policy file it names."""
    policy_name = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8")).get("policy_file")
    written = [(EXAMPLE_CONFIG, path)] + ([(DEFAULT_POLICY, path.parent / policy_name)] if policy_name else [])
    for _, target in written:
        if target.exists() and not force:
            typer.echo(f"custody: {target} exists; use --force to overwrite", err=True)
            raise typer.Exit(1)
    for origin, target in written:
        shutil.copyfile(origin, target)
    names = " and ".join(str(target) for _, target in written)
    typer.echo(f"wrote {names}: edit reps, sources and company_domains, then run `custody --config {path} check`")


@app.command()
def sync(ctx: typer.Context, source: Optional[str] = typer.Option(None, "--source", "-s")) -> None:
    """Sync every source, or one; exits 1 when a source failed."""
    with syncing(ctx) as rt:
        try:
            chosen = [rt.settings.source(source)] if source else rt.settings.sources
        except ConfigError as error:
            fail_config(error)
        try:
            reports = sync_with_progress(rt, chosen)
        except KeyboardInterrupt:
            typer.echo("custody: sync interrupted; every batch stored so far is kept and the next sync resumes "
                       "after it", err=True)
            raise typer.Exit(130) from None
    for report in reports:
        state = "[green]ok[/]" if report.ok else f"[red]failed[/]: {report.error}"
        events = f"{report.events} directory events, " if report.events else ""
        console.print(f"{report.source}: {report.messages} messages ({report.new_messages} new), "
                      f"{report.entries} address-book entries, "
                      f"{events}{report.skipped} skipped, {state}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@contextmanager
def syncing(ctx: typer.Context) -> Iterator[Runtime]:
    """The runtime of a command that syncs, with the launcher its readers are forked from forked
    first, before the registry is opened, when its config lets syncs start readers."""
    with reader_launcher(readers_wanted(ctx)):
        yield runtime(ctx)


def readers_wanted(ctx: typer.Context) -> bool:
    """Whether this command's syncs may start reader processes; a bad config is left for `runtime` to report."""
    try:
        return bool(ctx.obj.settings.sync_workers)
    except ConfigError:
        return False


def sync_with_progress(rt: Runtime, sources: list[SourceSettings]) -> list[SyncReport]:
    """One bar per source, counting items as their batches are stored (sources are read in parallel)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(source: str, items: int) -> None:
            if source not in tasks:
                tasks[source] = progress.add_task(f"sync {source}", total=None)
            progress.advance(tasks[source], items)

        return sync_sources(rt.engine, rt.settings, rt.policy, sources, progress=advance)


@app.command()
def run(ctx: typer.Context) -> None:
    """Run as a service: scheduled syncs and jobs, /healthz, /readyz and /metrics on the configured port."""
    with syncing(ctx) as rt:
        try:
            run_service(rt)
        except ConfigError as error:
            fail_config(error)


@app.command()
def status(
    ctx: typer.Context,
    skipped: bool = typer.Option(False, "--skipped", help="List the items syncs skipped, newest first."),
    source: Optional[str] = typer.Argument(None, help="With --skipped: only this source's items."),
) -> None:
    """Sources, their last sync and errors, and what the registry holds; --skipped lists unread items."""
    rt = runtime(ctx)
    if skipped:
        print_skipped(rt, source)
        return
    table = Table("source", "kind", "channel", "status", "last success", "skipped", "last error")
    for row in source_statuses(rt.engine):
        style = "red" if row.status in SourceStatus.failed() else ""
        retry = f" until {row.retry_at:%Y-%m-%d %H:%M}" if row.retry_at and row.status == SourceStatus.RETRYING else ""
        table.add_row(row.name, row.kind, row.channel, row.status + retry,
                      row.last_success.strftime("%Y-%m-%d %H:%M") if row.last_success else "never",
                      str(row.skipped), one_line(row.last_error), style=style)
    console.print(table)
    counts = registry_counts(rt.engine)
    console.print(f"reps {counts.reps}, colleagues {counts.colleagues}, customers {counts.customers}, "
                  f"contacts {counts.contacts}, messages {counts.messages} ({counts.noise_messages} noise), "
                  f"interactions {counts.interactions}, address-book sightings {counts.sightings}")
    if counts.reps == 0 and rt.policy.coverage.credit == "reps":
        console.print("[yellow]no reps are declared (\\[\\[reps]] in the config): nobody is credited with coverage[/]")


def print_skipped(rt: Runtime, source: str | None) -> None:
    if source is not None and source not in {s.name for s in rt.settings.sources}:
        fail_config(ConfigError(f"sources: no source named {source!r}"))
    items = skipped_items(rt.engine, source)
    table = Table("when", "source", title=f"{len(items)} skipped items")
    table.add_column("item", overflow="fold")
    table.add_column("reason", overflow="fold")
    for item in items:
        table.add_row(item.seen_at.strftime("%Y-%m-%d %H:%M"), item.source, item.ref, item.reason)
    console.print(table)


def one_line(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Path = typer.Option(Path("custody-data"), "--data-dir", help="Where the demo company is written."),
    seed: int = typer.Option(7, help="The same seed always generates the same company."),
) -> None:
    """Generate a fictional company, sync it into SQLite and show what custody sees."""
    root = data_dir / "demo"
    if root.exists():
        shutil.rmtree(root)
    company = generate_demo(root, seed=seed)
    console.print(f"generated {company.messages} messages and {company.address_book_entries} address-book entries "
                  f"for {len(company.reps)} reps under {root}")
    ctx.obj = Runtime(company.config_path, ctx.obj.log_format)
    with syncing(ctx) as rt:
        reports = sync_with_progress(rt, rt.settings.sources)
    skipped = sum(r.skipped for r in reports)
    console.print(f"synced {len(reports)} sources; {skipped} unreadable items skipped and counted")
    changed = coverage_round(rt.engine, rt.policy, utcnow(), actor="cli:demo")
    console.print(f"coverage round: {changed['owners_assigned']} owners assigned by the policy's "
                  f"{rt.policy.coverage.owner_rule} rule, {changed['recycled']} dormant customers returned to the pool")
    print_demo_summary(rt)
    console.print(f"explore: custody --config {company.config_path} status   (from a checkout: ./run custody ...)")


def print_demo_summary(rt: Runtime) -> None:
    reps = Table("rep", "team", "interactions", "customers", title="Reps")
    for rep in rep_activity(rt.engine):
        reps.add_row(f"{rep.name} <{rep.email}>", rep.team, str(rep.interactions), str(rep.customers))
    console.print(reps)
    counts = registry_counts(rt.engine)
    console.print(f"customers {counts.customers}, contacts {counts.contacts}, messages {counts.messages} "
                  f"({counts.noise_messages} noise), interactions {counts.interactions}, "
                  f"address-book sightings {counts.sightings}")
    classes = Table("coverage class", "customers", title=f"Coverage (last {rt.policy.lookback_days} days)")
    for name, customers in coverage_summary(rt.engine, rt.policy, utcnow()).items():
        classes.add_row(name, str(customers))
    console.print(classes)


if __name__ == "__main__":
    app()
