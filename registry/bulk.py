"""Insert many rows, skipping those that already exist, at the driver's speed.

A sync inserts tens of thousands of rows per minute. SQLAlchemy's executemany turns every row's
parameters into a new dict and runs each value's type processor through generic code; here the
statement is compiled once per statement and column set, the dialect's own processors convert only
the columns that have one, and the driver's executemany gets the rows as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

Row = dict[str, Any]


def insert_ignoring(db: Connection, table: Table, rows: list[Row]) -> int:
    """Insert `rows` (all with the same keys); a row that violates a unique constraint is skipped.
    Returns how many were new.

    The rows' values are replaced by their converted form."""
    if not rows:
        return 0
    return max(insert_many(db, _ignoring(db.dialect.name, table), rows), 0)


def insert_many(db: Connection, statement: Insert, rows: list[Row]) -> int:
    """Run an INSERT (an upsert too) once per row of `rows` (all with the same keys); returns the
    driver's row count. `statement` should be built once and reused, as its compiled form is
    remembered by identity.

    The rows' values are replaced by their converted form."""
    plan = _plan(db.dialect, statement, tuple(rows[0]))
    return int(db.exec_driver_sql(plan.sql, plan.parameters(rows)).rowcount)


def flavour(dialect_name: str) -> Any:
    """The dialect module whose `insert` has ON CONFLICT: PostgreSQL's or SQLite's."""
    return postgresql if dialect_name == "postgresql" else sqlite


@lru_cache(maxsize=64)
def _ignoring(dialect_name: str, table: Table) -> Insert:
    statement: Insert = flavour(dialect_name).insert(table).on_conflict_do_nothing()
    return statement


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    order: tuple[str, ...] | None
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def convert(self, rows: list[Row]) -> None:
        for column, process in self.processors:
            for row in rows:
                row[column] = process(row[column])

    def parameters(self, rows: list[Row]) -> list[Any]:
        self.convert(rows)
        if self.order is None:
            return rows
        pick = itemgetter(*self.order)
        if len(self.order) == 1:
            return [(pick(row),) for row in rows]
        return list(map(pick, rows))


@lru_cache(maxsize=64)
def _plan(dialect: Dialect, statement: Insert, columns: tuple[str, ...]) -> _InsertPlan:
    """Built once per statement and column set: a sync runs each a thousand times.

    Public SQLAlchemy API only, since a compiler's own attributes may change in any release: the SQL
    and the positional parameter order come from `construct_expanded_state`, the converters from
    each column type's `bind_processor`."""
    table = statement.table
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    state = compiled.construct_expanded_state(dict.fromkeys(columns))
    processors = []
    for column in columns:
        process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((column, process))
    order = tuple(state.positiontup) if state.positiontup else None
    return _InsertPlan(state.statement, order, tuple(processors))


def insert_returning(db: Connection, table: Table, rows: list[Row], returning: tuple[str, ...],
                     size: int = 500) -> list[tuple[Any, ...]]:
    """Like `insert_ignoring`, returning `returning` of the rows actually inserted, as the driver
    gives them: multi-row VALUES with RETURNING, which skipped rows do not answer.

    The rows' values are replaced by their converted form."""
    if not rows:
        return []
    columns = tuple(rows[0])
    _plan(db.dialect, _ignoring(db.dialect.name, table), columns).convert(rows)
    mark = "?" if db.dialect.paramstyle == "qmark" else "%s"
    quote = db.dialect.identifier_preparer.quote
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    head = f"INSERT INTO {db.dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, columns))}) VALUES "
    tail = f" ON CONFLICT DO NOTHING RETURNING {', '.join(map(quote, returning))}"
    inserted: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), size):
        chunk = rows[start:start + size]
        values = tuple(row[column] for row in chunk for column in columns)
        inserted += [tuple(r) for r in db.exec_driver_sql(head + ", ".join([one] * len(chunk)) + tail, values)]
    return inserted
