"""The migrations applied on start build exactly the registry the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (registers every table on SQLModel.metadata)


def test_migrated_registry_matches_the_models(engine: Engine) -> None:
    with engine.connect() as db:
        differences = compare_metadata(MigrationContext.configure(db), SQLModel.metadata)
    assert differences == []
