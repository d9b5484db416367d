"""Reading stored times fast: reports read a million of them, and the generic conversion cost more
than the query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, Dialect, TypeDecorator


class UtcTime(TypeDecorator[datetime]):
    """A stored time read as an aware UTC datetime at the driver's speed. PostgreSQL sessions run
    in UTC (`registry.store`), so its driver's value is final; SQLite's text goes through
    SQLAlchemy's own parser and is marked UTC, as every time is stored."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        if dialect.name == "postgresql":
            return None
        parse = DateTime().dialect_impl(dialect).result_processor(dialect, coltype)
        if parse is None:
            return None
        utc = timezone.utc
        return lambda value: None if value is None else parse(value).replace(tzinfo=utc)
