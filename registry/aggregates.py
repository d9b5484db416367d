"""Coverage aggregates: interactions counted per customer, rep, channel and month (`CoverageBucket`)
and per customer, rep and channel (`CoverageTotal`, the sum of the months).

Ingest adds what it inserted, in the batch's transaction, as deltas: two writers storing mail of
one customer at once each add their own rows, and a replayed batch inserts nothing, so adds
nothing. Merges that move or delete interactions are followed by triggers the migration installs,
which recount the months (and their totals) those rows left and joined within the same statement.
`rebuild` recounts everything from the interactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Date, Insert, Table, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from registry.bulk import flavour, insert_many
from registry.models import CoverageBucket, CoverageTotal, Interaction

_bucket = CoverageBucket.__table__
_total = CoverageTotal.__table__
_interaction = Interaction.__table__
KEY = ("customer_id", "rep_id", "channel", "month")
TOTAL_KEY = KEY[:3]
FIGURES = ("interactions", "first_at", "last_at")


class month_start(FunctionElement[date]):  # noqa: N801  (named like the SQL functions it stands for)
    """The first day of a UTC datetime's month, as each backend computes it."""

    type = Date()
    inherit_cache = True


@compiles(month_start, "sqlite")
def _month_sqlite(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"


@compiles(month_start, "postgresql")
def _month_postgresql(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"CAST(date_trunc('month', {compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


class Counted(NamedTuple):
    """One inserted interaction, as the aggregates key it."""

    customer_id: int
    rep_id: int
    channel: str
    occurred_at: datetime


def count_interactions(db: Connection, inserted: Iterable[Counted]) -> int:
    """Add newly inserted interactions to their months and totals; returns how many months changed.

    Rows are upserted in key order, so concurrent writers lock shared rows in one order."""
    months: dict[tuple[int, int, str, date], list[Any]] = {}
    for item in inserted:
        moment = item.occurred_at.astimezone(timezone.utc)
        _add(months, (item.customer_id, item.rep_id, item.channel, moment.date().replace(day=1)), 1, moment, moment)
    totals: dict[tuple[int, int, str], list[Any]] = {}
    for key, (n, first, last) in months.items():
        _add(totals, key[:3], n, first, last)
    _upsert(db, _bucket, KEY, months)
    _upsert(db, _total, TOTAL_KEY, totals)
    return len(months)


def _add(found: dict[Any, list[Any]], key: Any, n: int, first: datetime, last: datetime) -> None:
    figures = found.get(key)
    if figures is None:
        found[key] = [n, first, last]
    else:
        figures[0] += n
        figures[1] = min(figures[1], first)
        figures[2] = max(figures[2], last)


def _upsert(db: Connection, table: Table, key: tuple[str, ...], found: dict[Any, list[Any]]) -> None:
    if not found:
        return
    columns = (*key, *FIGURES)
    rows = [dict(zip(columns, (*k, *figures), strict=True)) for k, figures in sorted(found.items())]
    insert_many(db, _adding(db.dialect.name, table, key), rows)


@lru_cache(maxsize=8)
def _adding(dialect_name: str, table: Table, key: tuple[str, ...]) -> Insert:
    """The upsert that adds a batch's counts to a row: built once, so its compiled form is reused."""
    insert = flavour(dialect_name).insert(table)
    earliest, latest = (func.least, func.greatest) if dialect_name == "postgresql" else (func.min, func.max)
    statement: Insert = insert.on_conflict_do_update(index_elements=list(key), set_={
        "interactions": table.c.interactions + insert.excluded.interactions,
        "first_at": earliest(table.c.first_at, insert.excluded.first_at),
        "last_at": latest(table.c.last_at, insert.excluded.last_at),
    })
    return statement


def recounted() -> Any:
    """Every month's aggregate as the interactions give it."""
    month = month_start(_interaction.c.occurred_at)
    return (select(_interaction.c.customer_id, _interaction.c.rep_id, _interaction.c.channel, month.label("month"),
                   func.count().label("interactions"), func.min(_interaction.c.occurred_at).label("first_at"),
                   func.max(_interaction.c.occurred_at).label("last_at"))
            .group_by(_interaction.c.customer_id, _interaction.c.rep_id, _interaction.c.channel, month))


def totals_of(months: Any) -> Any:
    """Each customer, rep and channel's total, from months (the table, or a query shaped like it)."""
    return (select(months.c.customer_id, months.c.rep_id, months.c.channel,
                   func.sum(months.c.interactions).label("interactions"),
                   func.min(months.c.first_at).label("first_at"), func.max(months.c.last_at).label("last_at"))
            .group_by(months.c.customer_id, months.c.rep_id, months.c.channel))


class Rebuilt(NamedTuple):
    """What a rebuild found and wrote: `stale` rows it dropped or corrected, `missing` ones it added
    (months and totals together)."""

    interactions: int
    buckets: int
    stale: int
    missing: int


def rebuild(db: Connection, compare: bool = True) -> Rebuilt:
    """Recount every month and total from the interactions, replacing what the aggregates held.

    With `compare`, first count how far the aggregates had drifted (more passes over the facts)."""
    stale = missing = 0
    if compare:
        fresh_months = recounted()
        fresh_totals = totals_of(fresh_months.subquery())
        for table, fresh in ((_bucket, fresh_months), (_total, fresh_totals)):
            held = select(*table.c)
            stale += _count(db, held.except_(fresh))
            missing += _count(db, fresh.except_(held))
    db.execute(_total.delete())
    db.execute(_bucket.delete())
    db.execute(_bucket.insert().from_select([*KEY, *FIGURES], recounted()))
    db.execute(_total.insert().from_select([*TOTAL_KEY, *FIGURES], totals_of(_bucket)))
    interactions = db.execute(select(func.coalesce(func.sum(_total.c.interactions), 0))).scalar_one()
    buckets = db.execute(select(func.count()).select_from(_bucket)).scalar_one()
    return Rebuilt(int(interactions), int(buckets), stale, missing)


def _count(db: Connection, query: Any) -> int:
    return int(db.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def aggregate_rows(db: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The months and the totals in key order, for comparing two registries or two moments row by row."""
    return (
        [tuple(row) for row in db.execute(select(_bucket).order_by(*(_bucket.c[name] for name in KEY)))],
        [tuple(row) for row in db.execute(select(_total).order_by(*(_total.c[name] for name in TOTAL_KEY)))],
    )
