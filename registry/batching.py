"""Bounded chunks, so IN lists and multi-row inserts stay within every database's parameter limits;
and lists of ids as one parameter where the database takes arrays."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY


def chunked(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def ids_by(db: Connection, key: ColumnElement[Any], id_: ColumnElement[int], keys: Iterable[Any]) -> dict[Any, int]:
    """`id_` by `key` of the stored rows whose key is one of `keys`, read a chunk at a time."""
    found: dict[Any, int] = {}
    for chunk in chunked(list(keys)):
        found.update(db.execute(select(key, id_).where(key.in_(chunk))).all())
    return found


def among(column: ColumnElement[int], parameter: str, dialect: str) -> ColumnElement[bool]:
    """`column` is one of the ids given as `parameter` when the statement runs, so one statement
    serves every chunk. On PostgreSQL one array parameter: thousands of placeholders would make its
    driver parse a long statement again at every run, which cost more than the query."""
    if dialect == "postgresql":
        return column == any_(bindparam(parameter, type_=ARRAY(Integer)))
    return column.in_(bindparam(parameter, expanding=True))
