"""The migrations applied on start build exactly the registry the models describe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (registers every table on SQLModel.metadata)
from registry.store import open_registry


@pytest.fixture
def engine(empty_registry_target: tuple[str, str | None]) -> Iterator[Engine]:
    """A registry every migration is applied to here, unlike the template copies other tests start from."""
    engine = open_registry(*empty_registry_target)
    yield engine
    engine.dispose()


def test_migrated_registry_matches_the_models(engine: Engine) -> None:
    with engine.connect() as db:
        differences = compare_metadata(MigrationContext.configure(db), SQLModel.metadata)
    assert differences == []
