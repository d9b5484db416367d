"""What a report shows beside a customer's class: who the reps are, and the latest messages behind it.

An auditor checks a classification from headers as stored (date, direction, rep, subject) without
opening anyone's mailbox. Each query serves a chunk of customers at once and returns a bounded number
of rows per customer, so evidence never costs one query per customer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Select, select, true, type_coerce
from sqlalchemy.dialects.postgresql import distinct_on

from config.policy import Policy
from policies.coverage import is_credited, window_start
from registry.batching import among
from registry.models import Customer, Interaction, Message, Rep, Role
from registry.utc import UtcTime

_FETCH_ROWS = 5000
"""Rows taken from the driver at once: one call for many rows, never the whole answer in memory."""
_customer = Customer.__table__
_interaction = Interaction.__table__
_message = Message.__table__
_rep = Rep.__table__


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    name: str
    team: str
    status: str
    role: str = Role.REP

    @property
    def label(self) -> str:
        """How a person is named in a single text cell: by name, with the address that proves who."""
        return f"{self.name} <{self.email}>" if self.name else self.email


class MessageEvidence(NamedTuple):
    """A tuple: a report reads hundreds of thousands, and a frozen dataclass cost twice as much to make."""

    occurred_at: datetime
    direction: str
    channel: str
    rep_email: str
    subject: str


def people_query() -> Select:
    return select(_rep.c.id, _rep.c.email, _rep.c.name, _rep.c.team, _rep.c.status, _rep.c.role).order_by(_rep.c.email)


def latest_messages_query(policy: Policy, now: datetime, limit: int, dialect: str) -> Select:
    """Per customer, its newest `limit` messages in the window with a rep given as `rep_ids` when it
    runs, newest first, each once per rep: a message to two contacts of one customer is two
    interactions, of which the first stored stands for both.

    One query for the customers given as `customer_ids`, that reads only their rows, through the
    (customer, time) index: PostgreSQL joins a LATERAL subquery that keeps one interaction per
    message and rep with DISTINCT ON; SQLite, which has neither, a correlated IN that passes over an
    interaction with an earlier twin. A window function instead sorts every interaction in the
    window: four times slower at 2M interactions.
    """
    newest_first = (_interaction.c.occurred_at.desc(), _interaction.c.message_id.desc(), _interaction.c.rep_id)
    latest = (
        select(_interaction.c.id, _interaction.c.customer_id, _interaction.c.message_id, _interaction.c.rep_id,
               _interaction.c.occurred_at, _interaction.c.direction, _interaction.c.channel)
        .where(_interaction.c.customer_id == _customer.c.id, _interaction.c.occurred_at >= window_start(policy, now),
               _interaction.c.occurred_at <= now, among(_interaction.c.rep_id, "rep_ids", dialect))
        .limit(limit)
    )
    customers = select(_customer.c.id).where(among(_customer.c.id, "customer_ids", dialect))
    if dialect == "postgresql":
        shown = (latest.ext(distinct_on(_interaction.c.occurred_at, _interaction.c.message_id, _interaction.c.rep_id))
                 .order_by(*newest_first, _interaction.c.id).lateral("shown"))
        rows = customers.join(shown, true())
    else:
        twin = _interaction.alias("twin")
        earlier_twin = (select(twin.c.id)
                        .where(twin.c.message_id == _interaction.c.message_id, twin.c.rep_id == _interaction.c.rep_id,
                               twin.c.customer_id + 0 == _interaction.c.customer_id, twin.c.id < _interaction.c.id)
                        .exists())
        shown = _interaction.alias("shown")
        rows = customers.join(shown, shown.c.id.in_(
            latest.with_only_columns(_interaction.c.id).where(~earlier_twin).order_by(*newest_first)
            .correlate(_customer)))
    return (
        rows.with_only_columns(shown.c.customer_id, type_coerce(shown.c.occurred_at, UtcTime), shown.c.direction,
                               shown.c.channel, shown.c.rep_id, _message.c.subject)
        .join(_message, _message.c.id == shown.c.message_id)
        .order_by(shown.c.customer_id, shown.c.occurred_at.desc(), shown.c.message_id.desc(), shown.c.rep_id)
    )


def people(db: Connection) -> dict[int, Person]:
    """Every internal person by id: reps and colleagues alike may appear in evidence."""
    return {row.id: Person(row.email, row.name, row.team, row.status, row.role) for row in db.execute(people_query())}


def latest_messages_of(db: Connection, policy: Policy, now: datetime, per_customer: int,
                       directory: dict[int, Person]) -> Callable[[Sequence[int]], dict[int, list[MessageEvidence]]]:
    """Reads the newest `per_customer` messages of each customer of a chunk, each shown once per
    rep, with one statement built once for every chunk.

    PostgreSQL plans the statement for each chunk's ids and leaves its JIT compiler out of the
    report's transaction: after five runs it would switch to a generic plan, four times slower for
    a chunk, and compiling this query of many small index reads took longer than the reads."""
    if per_customer <= 0:
        return lambda customer_ids: {}
    query = latest_messages_query(policy, now, per_customer, db.dialect.name)
    reps = [rep_id for rep_id, person in directory.items() if is_credited(policy, person.role)]
    if db.dialect.name == "postgresql":
        db.exec_driver_sql("SET LOCAL jit = off")
        db.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")

    def read(customer_ids: Sequence[int]) -> dict[int, list[MessageEvidence]]:
        found: dict[int, list[MessageEvidence]] = defaultdict(list)
        for rows in db.execute(query, {"rep_ids": reps, "customer_ids": list(customer_ids)}).partitions(_FETCH_ROWS):
            for customer_id, occurred_at, direction, channel, rep_id, subject in rows:
                found[customer_id].append(MessageEvidence(occurred_at, direction, channel, directory[rep_id].email,
                                                          subject))
        return found

    return read
