"""Shared fixtures: a registry on SQLite and on a private PostgreSQL schema, and sample archives."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from registry.store import open_registry

POSTGRES_URL = os.environ.get("CUSTODY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
ENRON = CORPUS / "enron" / "maildir"
pytest_plugins = ["tests.servers.dovecot", "tests.servers.smtp"]


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) of an empty registry on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}", None
    schema = request.getfixturevalue("postgres_schema_factory")()
    return POSTGRES_URL, schema


@pytest.fixture
def engine(registry_target: tuple[str, str | None]) -> Iterator[Engine]:
    url, schema = registry_target
    engine = open_registry(url, schema)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_schema_factory) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A registry on PostgreSQL alone, for what SQLite cannot show: writers working at the same time."""
    engine = open_registry(POSTGRES_URL, postgres_schema_factory())
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def enron() -> Path:
    if not ENRON.is_dir():
        pytest.skip(f"Enron corpus not found at {ENRON}")
    return ENRON
