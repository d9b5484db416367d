"""What every command needs: validated settings, the policy, an open registry and logging."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from config.policy import Policy, load_policy
from config.sections import ConfigError
from config.settings import Settings, load_settings
from daemon.logs import configure_logging
from registry.store import migration_state, migrations, open_registry, upgrade

CONFIG_EXIT = 2
UNREACHABLE_EXIT = 1
log = logging.getLogger("custody.registry")


class RegistryError(Exception):
    """The registry answers but cannot be used by this version: one line, exit code 1."""


@dataclass
class Runtime:
    config_path: Path | None
    log_format: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.settings.policy_file)

    @cached_property
    def engine(self) -> Engine:
        """The registry with every migration applied, saying so in the log when there were any."""
        schema = self.settings.database_schema or None
        engine = open_registry(self.settings.registry_url(), schema, migrate=False)
        state = migration_state(engine, schema)
        if state.unknown:
            raise RegistryError(f"database_url: {state.describe()}; upgrade custody")
        if not state.current:
            if state.applied:
                log.info("registry: upgrading from revision %s, %s to apply", revisions(state.applied),
                         migrations(state.pending))
            try:
                upgrade(engine, schema)
            except (SQLAlchemyError, CommandError) as error:
                raise RegistryError(f"migration failed, the registry is left as it was before it: "
                                    f"{first_line(error)}") from None
            done = "upgraded to" if state.applied else "created at"
            log.info("registry: %s revision %s", done, revisions(migration_state(engine, schema).applied))
        return engine

    def reloaded(self) -> Runtime:
        """The config and policy as they are on disk now, validated, sharing this runtime's registry
        (a new database_url takes a restart); raises ConfigError and leaves this runtime as it was."""
        fresh = Runtime(self.config_path, self.log_format)
        fresh.policy  # noqa: B018  (loads and validates the settings too)
        fresh.engine = self.engine
        return fresh


def runtime(ctx: typer.Context) -> Runtime:
    """The command's runtime; a bad config ends the command with one line and exit code 2, a
    registry that cannot be reached or used with one line and exit code 1."""
    rt: Runtime = ctx.obj
    try:
        configure_logging(rt.settings.log_level, rt.log_format)
        rt.policy  # noqa: B018  (validated up front so errors surface before any work)
    except ConfigError as error:
        fail_config(error)
    try:
        rt.engine  # noqa: B018
    except SQLAlchemyError as error:
        typer.echo(f"custody: registry unreachable: {first_line(error)}", err=True)
        raise typer.Exit(UNREACHABLE_EXIT) from None
    except RegistryError as error:
        typer.echo(f"custody: registry: {error}", err=True)
        raise typer.Exit(UNREACHABLE_EXIT) from None
    return rt


def revisions(names: frozenset[str]) -> str:
    return ", ".join(sorted(names))


def first_line(error: BaseException) -> str:
    """The driver's own reason when there is one, without SQLAlchemy's statement and links."""
    reason = str(getattr(error, "orig", None) or error or type(error).__name__)
    return reason.strip().splitlines()[0] if reason.strip() else type(error).__name__


def fail_config(error: ConfigError) -> None:
    typer.echo(f"custody: config error: {error}", err=True)
    raise typer.Exit(CONFIG_EXIT)
