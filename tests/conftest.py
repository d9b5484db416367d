"""Shared fixtures: a registry on SQLite and on a private PostgreSQL schema, and sample archives.

Migrations run once per backend and session, into a template every test copies: a file copy on
SQLite, a replayed pg_dump on PostgreSQL. Tests of the migrations themselves start from nothing
(`empty_registry_target`, `postgres_schema_factory`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from demo.company import DemoCompany, generate_demo
from registry.store import open_registry
from tests.support.forks import CustodyForks

POSTGRES_URL = os.environ.get("CUSTODY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
ENRON = CORPUS / "enron" / "maildir"
DEMO_TODAY = date(2026, 6, 1)
pytest_plugins = ["tests.servers.dovecot", "tests.servers.smtp", "tests.servers.graph", "tests.servers.google"]


def postgres_unavailable() -> str:
    """Why PostgreSQL tests cannot run here, or '' when they can."""
    try:
        with create_engine(POSTGRES_URL).connect() as db:
            db.execute(text("select 1"))
    except Exception as error:  # any driver or network failure means: skip, with the reason
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {type(error).__name__}"
    return ""


@pytest.fixture(scope="session")
def postgres_schema_factory() -> Iterator:
    """Creates throwaway schemas in the test database and drops them at the end of the run."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        schema = f"custody_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as db:
            db.execute(text(f'CREATE SCHEMA "{schema}"'))
        created.append(schema)
        return schema

    yield make
    with admin.connect() as db:
        for schema in created:
            db.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry file with every migration applied, once per session."""
    path = tmp_path_factory.mktemp("template") / "registry.db"
    open_registry(f"sqlite:///{path}").dispose()  # the last connection closed folds the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_registry_factory(postgres_schema_factory) -> Callable[[], str]:  # type: ignore[no-untyped-def]
    """Makes schemas holding a registry with every migration applied, migrated once per session: each
    replays the SQL pg_dump wrote of the migrated template (PostgreSQL has no CREATE SCHEMA ... TEMPLATE,
    and CREATE/DROP DATABASE each force a checkpoint, slower than migrating). Without pg_dump, each migrates."""
    template = postgres_schema_factory()
    open_registry(POSTGRES_URL, template).dispose()
    script = schema_script(template)

    def make() -> str:
        schema = postgres_schema_factory()
        if not script:
            open_registry(POSTGRES_URL, schema).dispose()
            return schema
        with psycopg.connect(libpq_url()) as db:  # one transaction: one commit to flush
            db.execute(script.replace(template, schema))
        return schema

    return make


def schema_script(schema: str) -> str:
    """The SQL that fills an existing schema like `schema`, tables, rows and all; '' without pg_dump.
    Lines for psql (backslash commands) and the CREATE SCHEMA are left out."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return ""
    dump = subprocess.run([pg_dump, "--schema", schema, "--no-owner", "--no-privileges", "--inserts", "--dbname",
                           libpq_url()], check=True, capture_output=True, text=True).stdout
    return "\n".join(line for line in dump.splitlines() if not line.startswith(("\\", "CREATE SCHEMA ")))


def libpq_url() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) of a registry with every migration applied and no data, on each supported backend."""
    if request.param == "sqlite":
        path = tmp_path / "registry.db"
        shutil.copyfile(request.getfixturevalue("sqlite_registry_template"), path)
        return f"sqlite:///{path}", None
    return POSTGRES_URL, request.getfixturevalue("postgres_registry_factory")()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) where no migration has run yet, on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}", None
    return POSTGRES_URL, request.getfixturevalue("postgres_schema_factory")()


@pytest.fixture
def engine(registry_target: tuple[str, str | None]) -> Iterator[Engine]:
    """The registry of `registry_target`, opened without the migration check: the template had them all."""
    url, schema = registry_target
    engine = open_registry(url, schema, migrate=False)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_registry_factory: Callable[[], str]) -> Iterator[Engine]:
    """A registry on PostgreSQL alone, for what SQLite cannot show: writers working at the same time."""
    engine = open_registry(POSTGRES_URL, postgres_registry_factory(), migrate=False)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def enron() -> Path:
    if not ENRON.is_dir():
        pytest.skip(f"Enron corpus not found at {ENRON}")
    return ENRON


@pytest.fixture(scope="session")
def custody_forks() -> Iterator[CustodyForks]:
    """`custody` commands forked from one interpreter that imported custody once, for tests that start
    and kill hundreds of them."""
    forks = CustodyForks()
    yield forks
    forks.close()


@pytest.fixture(scope="session")
def demo_company(tmp_path_factory: pytest.TempPathFactory) -> DemoCompany:
    """The demo company of seed 7 with its mail before DEMO_TODAY, generated once per session.
    Shared: read it; a test that writes to it takes a `tests.support.demo.copy_company`."""
    return generate_demo(tmp_path_factory.mktemp("demo") / "northwind", seed=7, today=DEMO_TODAY)


@pytest.fixture(scope="session")
def demo_company_today(tmp_path_factory: pytest.TempPathFactory) -> DemoCompany:
    """The demo company of seed 7 with its mail before today, for tests on the real clock; shared like `demo_company`."""
    return generate_demo(tmp_path_factory.mktemp("demo") / "northwind", seed=7)
