"""Insert many rows, skipping those that already exist, at the driver's speed.

A sync inserts tens of thousands of rows per minute. SQLAlchemy's executemany turns every row's
parameters into a new dict and runs each value's type processor through generic code; here the
statement is compiled once per statement and column set, the dialect's own processors convert only
the columns that have one, and the driver's executemany gets the rows as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.sql.sqltypes import UTCDateTime

from registry.utc import sqlite_utc_text

Row = dict[str, Any]
Converter = Callable[[Any], Any]


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
    processors: tuple[tuple[str, Converter], ...]

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
    processors = tuple((columns[index], convert) for index, convert in _converters(dialect, table, columns))
    order = tuple(state.positiontup) if state.positiontup else None
    return _InsertPlan(state.statement, order, processors)


def insert_returning(db: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]],
                     returning: tuple[str, ...], size: int = 500) -> list[tuple[Any, ...]]:
    """Like `insert_ignoring`, for rows given as value tuples in `columns` order, returning
    `returning` of the rows actually inserted: multi-row VALUES with RETURNING, which skipped rows
    do not answer. The hot path of a sync, so rows are never turned into dicts: each chunk's values
    are laid out flat and every converter runs over its column's slice."""
    if not rows:
        return []
    width = len(columns)
    converters = _converters(db.dialect, table, columns)
    head, one = _values_statement(db.dialect, table, columns)
    tail = f" ON CONFLICT DO NOTHING RETURNING {', '.join(map(db.dialect.identifier_preparer.quote, returning))}"
    inserted: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), size):
        chunk = rows[start:start + size]
        values = list(chain.from_iterable(chunk))
        for index, convert in converters:
            values[index::width] = map(convert, values[index::width])
        inserted += map(tuple, db.exec_driver_sql(head + ", ".join([one] * len(chunk)) + tail, tuple(values)).all())
    return inserted


@lru_cache(maxsize=64)
def _values_statement(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, str]:
    """`INSERT INTO t (columns) VALUES ` and one row's placeholders, in the driver's parameter style."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, columns))}) VALUES "
    return head, "(" + ", ".join([mark] * len(columns)) + ")"


@lru_cache(maxsize=64)
def _converters(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[tuple[int, Converter], ...]:
    """Each column's converter that has one, by position. A UTC datetime on SQLite is written by
    `sqlite_utc_text`, which gives the text SQLAlchemy's own chain of three converters would."""
    found = []
    for index, column in enumerate(columns):
        column_type = table.c[column].type
        if dialect.name == "sqlite" and isinstance(column_type, UTCDateTime):
            found.append((index, sqlite_utc_text))
            continue
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((index, process))
    return tuple(found)
