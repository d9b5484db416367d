"""What every command needs: validated settings, the policy, an open registry and logging."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from config.policy import Policy, load_policy
from config.sections import ConfigError
from config.settings import Settings, load_settings
from daemon.logs import configure_logging
from registry.store import open_registry

CONFIG_EXIT = 2


@dataclass
class Runtime:
    config_path: Path | None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.settings.policy_file)

    @cached_property
    def engine(self) -> Engine:
        return open_registry(self.settings.registry_url(), self.settings.database_schema or None)


def runtime(ctx: typer.Context) -> Runtime:
    """The command's runtime; a bad config ends the command with one line and exit code 2."""
    rt: Runtime = ctx.obj
    try:
        configure_logging(rt.settings.log_level)
        rt.policy  # noqa: B018  (validated up front so errors surface before any work)
    except ConfigError as error:
        fail_config(error)
    try:
        rt.engine  # noqa: B018
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or type(error).__name__).splitlines()[0]
        typer.echo(f"custody: registry unreachable: {reason}", err=True)
        raise typer.Exit(1) from None
    return rt


def fail_config(error: ConfigError) -> None:
    typer.echo(f"custody: config error: {error}", err=True)
    raise typer.Exit(CONFIG_EXIT)
