"""`custody check`: what a service started with this config would trip over, one line per item.

Read-only: it never creates the SQLite file or applies a migration, and what it does at a source
(a login, a folder list) changes nothing there, so IT can run it before the first start, after
an upgrade, or beside a running service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.sections import ConfigError
from config.settings import Settings
from connectors.base import SourceSettings
from connectors.errors import AuthError
from connectors.index import open_connector
from daemon.logs import configure_logging
from daemon.runtime import CONFIG_EXIT, UNREACHABLE_EXIT, Runtime, first_line
from registry.store import migration_state, open_registry

Outcome = Literal["ok", "config", "unreachable"]


@dataclass(frozen=True)
class Item:
    name: str
    outcome: Outcome
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.outcome == 'ok' else 'FAIL':<4}  {self.name}: {self.detail}"


def check_command(ctx: typer.Context) -> None:
    """Check config, policy, data_dir, registry and sources, one line each; exit 2: config problem, 1: unreachable.

    Read-only: safe before the first start, after an upgrade, or beside a running service."""
    rt: Runtime = ctx.obj
    items = list(check_items(rt))
    for item in items:
        typer.echo(item.line())
    outcomes = {item.outcome for item in items}
    if "config" in outcomes:
        raise typer.Exit(CONFIG_EXIT)
    if "unreachable" in outcomes:
        raise typer.Exit(UNREACHABLE_EXIT)


def check_items(rt: Runtime) -> Iterator[Item]:
    try:
        settings = rt.settings
    except ConfigError as error:
        yield Item("config", "config", str(error))
        return
    configure_logging(settings.log_level, rt.log_format)
    yield Item("config", "ok", f"{len(settings.reps)} reps, {len(settings.sources)} sources")
    try:
        rt.policy  # noqa: B018
        yield Item("policy", "ok", str(settings.policy_file or "the shipped default"))
    except ConfigError as error:
        yield Item("policy", "config", str(error))
    yield check_data_dir(settings.data_dir)
    yield from check_registry(settings)
    for source in settings.sources:
        yield check_source(source)


def check_data_dir(path: Path) -> Item:
    """Reports and the SQLite registry are written here: under systemd it must be the state directory."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Item("data_dir", "unreachable", f"{path} is not writable by this user")
    return Item("data_dir", "ok", str(path) if existing == path else f"{path} (created on first start)")


def check_registry(settings: Settings) -> Iterator[Item]:
    url, schema = settings.registry_url(), settings.database_schema or None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        yield Item("database", "ok", f"SQLite {parsed.database} (created on first start)")
        yield Item("migrations", "ok", "every migration is applied on first start")
        return
    engine = open_registry(url, schema, migrate=False)
    try:
        state = migration_state(engine, schema)
    except SQLAlchemyError as error:
        yield Item("database", "unreachable", f"{parsed.get_backend_name()} unreachable: {first_line(error)}")
        return
    finally:
        engine.dispose()
    where = parsed.database if parsed.get_backend_name() == "sqlite" else f"{parsed.host or 'localhost'}/{parsed.database}"
    yield Item("database", "ok", f"{parsed.get_backend_name()} {where}" + (f" schema {schema}" if schema else ""))
    yield Item("migrations", "unreachable" if state.unknown else "ok", state.describe())


def check_source(source: SourceSettings) -> Item:
    """The connector's own check: credentials refused or missing are the config's problem, anything
    else (a path not there, a server not answering) is unreachable."""
    name = f"source {source.name}"
    try:
        return Item(name, "ok", open_connector(source).check())
    except AuthError as error:
        return Item(name, "config", str(error))
    except Exception as error:  # any failure of one source is reported as its line, never a crash
        return Item(name, "unreachable", first_line(error))
