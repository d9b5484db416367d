"""Opening the registry: engine, connection settings and migrations applied on start."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from config.database_url import database_url_problem

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_SECONDS = 10


def open_registry(url: str, schema: str | None = None, migrate: bool = True) -> Engine:
    """Engine for `url` with every migration applied; `schema` isolates a PostgreSQL tenant."""
    problem = database_url_problem(url)
    if problem:
        raise ValueError(f"database_url: {problem}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        options: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS,
                                      "options": "-ctimezone=UTC" + (f" -csearch_path={schema}" if schema else "")}
        engine = create_engine(url, connect_args=options, pool_pre_ping=True)
    if migrate:
        upgrade(engine, schema)
    return engine


def upgrade(engine: Engine, schema: str | None = None) -> None:
    """Apply every pending migration in one transaction: on PostgreSQL a failed one leaves the
    registry as it was (SQLite cannot roll back every schema change, hence the backup advice in
    the README)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["schema"] = schema
        command.upgrade(config, "heads")


@dataclass(frozen=True)
class MigrationState:
    """The registry's migration revisions against the ones this version of custody ships."""

    applied: frozenset[str]
    shipped: frozenset[str]
    pending: int
    unknown: frozenset[str]

    @property
    def current(self) -> bool:
        return self.applied == self.shipped

    def describe(self) -> str:
        """One line for `custody check` and /readyz."""
        if self.unknown:
            return (f"the registry is at revision {', '.join(sorted(self.unknown))}, which this version of custody "
                    "does not know: it was upgraded by a newer version")
        if not self.applied:
            return f"the registry is empty: {migrations(self.pending)} are applied on first start"
        if self.pending:
            return f"{migrations(self.pending)} pending: applied when custody next opens the registry"
        return f"current (revision {', '.join(sorted(self.applied))})"


def migration_state(engine: Engine, schema: str | None = None) -> MigrationState:
    """Read-only: which migrations the registry has and which this code would still apply."""
    script = _shipped_scripts()
    with engine.connect() as connection:
        options = {"version_table_schema": schema} if schema else {}
        applied = frozenset(MigrationContext.configure(connection, opts=options).get_current_heads())
    shipped = frozenset(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = frozenset(applied - known)
    done: set[str] = set()
    for revision in applied & known:
        done |= {r.revision for r in script.iterate_revisions(revision, "base")}
    return MigrationState(applied, shipped, len(known - done), unknown)


def migrations(count: int) -> str:
    return f"{count} migration" + ("" if count == 1 else "s")


@lru_cache(maxsize=1)
def _shipped_scripts() -> ScriptDirectory:
    """Read once: /readyz asks at every probe, and the migrations shipped never change in a process."""
    return ScriptDirectory.from_config(_alembic_config())


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """WAL survives a killed process with every committed batch intact and lets readers run."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
